"""Calibrate the close-up reading (``search.CLOSEUP_WEIGHT``) on generated data.

For sources picked apart from the evaluation's order, with another variant seed than the
evaluation's, it makes every query kind, searches each as the service does (``regions.locate``
against the whole catalogue; ``regions.wants_closeup`` decides whether the photo is also read as a
close-up, ``Encoder.encode_closeup``), and replays the ranking for a grid of weights
(0 = the photo alone; the most weight: ``search.closeup_weight`` lowers it as the whole photo
gets surer), alone and with a least best-patch cosine (the gate): Recall@1/@10 per kind, the photo
edits' mean and the close-ups'. Then, at the shipped weight and gate, which photos a close-up
reading may go with (:data:`RULES`; the service's is ``unexplained``: ``regions.wants_closeup``).

    PYTHONPATH=. python scripts/calibrate_closeups.py ../shared/data --sources 150 --save cc150.npz
    PYTHONPATH=. python scripts/calibrate_closeups.py ../shared/data --records cc150.npz   # replay
    PYTHONPATH=. python scripts/calibrate_closeups.py ../shared/data --records cc150.npz --check

``--check`` replays the service as it ranks now, close-ups looked at closer
(``search.closeup_checked``: views of the first ``search.CLOSEUP_CHECK`` candidates' catalogue
images, encoded here once per photo), at the shipped weight for a sweep of gates (:data:`GATES`),
then of the largest share of the picture under which the box head's box counts as a product's
photo framed in it (``regions.FRAMED_AREA``, :data:`FRAMES`: such a picture is not read as a
close-up). Records made before the head's box was kept get it with ``--add-frames`` (the
pictures made again from the same ``--sources``, ``--kinds`` and ``--seed``):

    PYTHONPATH=. python scripts/calibrate_closeups.py ../shared/data --records cc200.npz --add-frames \
        --sources 200 --kinds fabric,background,combo,blur_jpeg,screen,crop,scene,social --check

The catalogue's vectors and patch vectors come from the evaluation's cache (``dressfinder evaluate``
makes them; this makes them if absent).
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from dressfinder import boxhead, regions, search
from dressfinder.encoders import get_encoder
from dressfinder.images import descreen, load_image
from dressfinder.settings import cache_dir
from dressfinder.thresholds import Thresholds
from dressfinder.tools.evaluate.configs import catalogue_keys, embed_cached
from dressfinder.tools.evaluate.queries import background_pool
from dressfinder.tools.evaluate.run_eval import pick_sources, read_ground
from dressfinder.tools.evaluate.variants import DEFAULT_SEED, KINDS, PHOTO_KINDS, make_variant, variant_rng

WEIGHTS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.7, 1.0)
#: (weight, least best patch cosine) pairs replayed besides the weights alone
GATED = tuple((w, g) for w in (0.3, 0.5, 0.7) for g in (0.55, 0.6, 0.65))
#: least best-patch cosines replayed by ``--check`` (0.3857: the shipped model's gate until 2026-12-05)
GATES = (0.0, 0.30, 0.32, 0.34, 0.35, 0.36, 0.37, 0.38, 0.3857, 0.39, 0.40, 0.42)


def one(enc, cat: np.ndarray, data: bytes) -> tuple:
    """The photo's vector, the vector of the region the service uses, the photo's close-up vector
    (None when the whole photo's best match is sure), the used region's kind and area, the photo's
    shape (width / height), and the box head's best box with its peak (:func:`frame`)."""
    def best(vectors):
        sims = np.asarray(vectors, np.float32) @ cat.T
        rows = sims.argmax(axis=1)
        return sims[np.arange(len(rows)), rows], rows

    im = load_image(data, draft=search.query_draft(enc.input_size, detect=True))
    whole = np.asarray(enc.encode_query_arrays(enc.preprocess(im)[None]), np.float32)[0]
    found = regions.locate(enc, im, best, whole_vector=whole, propose=boxhead.shipped())
    unsure = found.whole_score < Thresholds.of(enc).sure and min(im.size) >= regions.MIN_SIDE
    close = enc.encode_closeup(im) if unsure else None      # the rules are replayed (RULES)
    return (whole, found.used.vector, close, found.used.kind, found.used.area(), im.width / im.height,
            frame(im, found.proposed))


def framed(fr: tuple[regions.Box, float] | None, most: float | None = None) -> bool:
    """``regions.framed`` of a record's :func:`frame` (None: no box), at ``most`` (default the shipped share)."""
    return regions.framed([fr] if fr else [], most)


def frame(im, proposed=None) -> tuple[regions.Box, float] | None:
    """The box head's best box on ``im`` (without moiré) and its peak, as ``regions.wants_closeup``
    looks at it (``proposed``: the boxes ``regions.locate`` looked at, if it did); None: no box."""
    if proposed is None:
        proposed = regions.proposals(descreen(im) or im, boxhead.shipped())
    return proposed[0] if proposed else None


#: Which photos a close-up reading may go with, by the used region's kind, its area, how much
#: its best match beats the whole photo's and the box head's best box (replayed by ``--records``):
#: the service's rule is ``unframed`` (``regions.wants_closeup``); ``unexplained``, the one before
#: 2026-12-05 13:00, did not look at the head's box.
RULES = {
    "whole": lambda kind, area, gain, fr, th: kind == "whole",
    "head": lambda kind, area, gain, fr, th: kind in ("whole", "head"),
    "any": lambda kind, area, gain, fr, th: True,
    "unexplained": lambda kind, area, gain, fr, th: gain < th.closeup_max_gain,
    "unframed": lambda kind, area, gain, fr, th: gain < th.closeup_max_gain and not framed(fr),
}
#: Largest shares of the picture (``regions.FRAMED_AREA``) replayed by ``--check`` (None: no
#: framing rule, ``unexplained``)
FRAMES = (None, 0.2, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6)


def ranks(rec, cat, patches, weight: float, gate: float, th: Thresholds, k: int = 10,
          rule: str = "unframed") -> list[int]:
    """The top ``k`` rows as the service ranks them, with the close-up reading at ``weight`` (the
    most, ``search.closeup_weight``) and ``gate`` (a least best patch cosine) and ``rule`` (the
    other lines: ``th``, the encoder's thresholds)."""
    whole, used = rec[:2]
    patch = closeup_patch(rec, cat, patches, th, rule)
    if patch is not None and weight > 0 and patch.max() >= gate:
        w = search.closeup_weight(float((cat @ whole).max()), th, weight)
        photo_cos = search.best_cosines(cat, np.stack([used, whole]))
        return np.argsort(-search.closeup_scores(photo_cos, patch, w), kind="stable")[:k].tolist()
    top = np.argsort(-(cat @ used), kind="stable")[:k].tolist()
    if np.array_equal(used, whole):
        return top
    return search.fuse(top, np.argsort(-(cat @ whole), kind="stable")[:k].tolist(), k)


def closeup_patch(rec, cat: np.ndarray, patches: np.ndarray, th: Thresholds, rule: str = "unframed"):
    """The catalogue's patch cosines to the photo's close-up vector, or None when ``rule`` (or the
    lack of a close-up vector) says the photo is not read as a close-up."""
    whole, used, close, kind, area = rec[:5]
    gain = float((cat @ used).max()) - float((cat @ whole).max())
    return patches @ close if close is not None and RULES[rule](kind, area, gain, rec[6], th) else None


def checked_ranks(rec, patch: np.ndarray | None, cat, th: Thresholds, enc, images: list[str],
                  k: int = 10) -> list[int] | None:
    """The top ``k`` rows of a photo read as a close-up at any gate, looked at closer as the service
    does (``search.closeup_checked``, at the shipped weight); ``patch``: its :func:`closeup_patch`;
    None when the photo is not read as one."""
    whole, used, aspect = rec[0], rec[1], rec[5]
    if patch is None:
        return None
    if not np.isfinite(aspect):
        raise SystemExit("these records have no photo shapes: record them again (--save) for --check")
    photo = np.stack([used, whole]).astype(np.float64)
    scores = search.closeup_scores(search.best_cosines(cat, photo), patch,
                                   search.closeup_weight(float((cat @ whole).max()), th))
    rows = np.argsort(-scores, kind="stable")[:max(k, search.CLOSEUP_POOL)]
    view = np.full(len(rows), np.nan)
    n = min(search.CLOSEUP_CHECK, len(rows))
    view[:n] = search.view_cosines(enc, photo, [load_image(images[r]) for r in rows[:n]], aspect)
    order, _ = search.checked_order(scores[rows], search.best_cosines(cat[rows].astype(np.float64), photo),
                                    view, rows)
    return rows[order][:k].tolist()


def report_checked(recs, cat, patches, th: Thresholds, enc, images: list[str]) -> None:
    """Recall@1/@10 per kind as the service ranks now (close-ups looked at closer), for each gate
    of :data:`GATES` (a photo whose close-up's best patch match is below the gate is ranked as a
    photo), then, at the shipped gate, for each largest framed share of :data:`FRAMES` (a photo
    whose box head's best box is framed in it, ``regions.framed``, is ranked as a photo). Each
    photo is ranked both ways once; the gates and frames only pick."""
    t0 = time.time()
    patch = {kind: [closeup_patch(rec, cat, patches, th, "unexplained") for rec, _ in v] for kind, v in recs.items()}
    looked = {kind: [checked_ranks(rec, p, cat, th, enc, images) for (rec, _), p in zip(v, patch[kind])]
              for kind, v in recs.items()}
    plain = {kind: [ranks(rec, cat, patches, 0.0, 0.0, th) for rec, _ in v] for kind, v in recs.items()}
    best = {kind: [np.nan if p is None else float(p.max()) for p in ps] for kind, ps in patch.items()}
    print(f"closer looks: {sum(r is not None for v in looked.values() for r in v)} photos, {time.time() - t0:.0f} s",
          file=sys.stderr)

    def row(gate: float, most: float | None) -> str:
        out = {}
        for kind, v in recs.items():
            rk = [lk if b >= gate and (most is None or not framed(rec[6], most)) else pk
                  for lk, pk, b, (rec, _) in zip(looked[kind], plain[kind], best[kind], v)]
            out[kind] = (float(np.mean([r[0] in t for r, (_, t) in zip(rk, v)])),
                         float(np.mean([bool(set(r) & t) for r, (_, t) in zip(rk, v)])))
        return line(out)

    print("weight  gate    framed<  " + "  ".join(f"{k[:11]:>11}" for k in recs))
    for gate in sorted(set(GATES) | {round(th.closeup_min_patch, 4)}):
        print(f"{search.CLOSEUP_WEIGHT:6.2f}  {gate:.4f}  {regions.FRAMED_AREA:7.2f}  "
              + row(gate, regions.FRAMED_AREA))
    for most in FRAMES:
        name = "   none" if most is None else f"{most:7.2f}"
        print(f"{search.CLOSEUP_WEIGHT:6.2f}  {th.closeup_min_patch:.4f}  {name}  " + row(th.closeup_min_patch, most))


def add_frames(path: str, g, sources: list[int], kinds: list[str], seed: int, draft: int) -> None:
    """Records written before they kept the box head's box (``frame``): the same pictures made
    again (the same ``--sources``, ``--kinds`` and ``--seed`` as when recorded), decoded as
    :func:`one` does (``draft``), and their box head's best boxes written into ``path``."""
    recs = load(path)
    pool = background_pool(g.images, set(sources), seed)
    for n, s in enumerate(sources):
        im = load_image(g.images[s])
        for kind in kinds:
            q = load_image(make_variant(im, kind, variant_rng(seed, g.ids[s], kind), pool), draft=draft)
            rec, t = recs[kind][n]
            recs[kind][n] = (rec[:6] + (frame(q),), t)
    save(path, recs)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("catalog")
    p.add_argument("--sources", type=int, default=150)
    p.add_argument("--seed", type=int, default=DEFAULT_SEED + 7, help="variant seed (default: the evaluation's + 7)")
    p.add_argument("--precision", default="fp32")
    p.add_argument("--model", default=None, help="an effnet-tuned model file (default: the shipped one)")
    p.add_argument("--save", default=None, help="also write the records here (.npz) for other rules")
    p.add_argument("--records", default=None, help="replay records written by --save (no searching)")
    p.add_argument("--kinds", default=",".join(KINDS), help="query kinds to make (comma-separated)")
    p.add_argument("--check", action="store_true", help="replay close-ups looked at closer, gate by gate")
    p.add_argument("--add-frames", action="store_true",
                   help="add the box head's boxes to older --records (same --sources, --kinds, --seed)")
    a = p.parse_args()
    g = read_ground(a.catalog, "auto", None)
    enc = get_encoder("effnet-tuned", model=a.model, precision=a.precision)
    th = Thresholds.of(enc)
    if a.add_frames:
        if not a.records:
            p.error("--add-frames needs --records")
        add_frames(a.records, g, pick_sources(g.ids, [], a.sources, 13), [k for k in a.kinds.split(",") if k], a.seed,
                   search.query_draft(enc.input_size, detect=True))
    cat, ok, _, _, patches = embed_cached(enc, g.images, cache_dir() / "eval",
                                          catalogue_keys(g.ids, g.images), "catalogue", True)
    if patches is None:
        print("this encoder makes no patch vectors", file=sys.stderr)
        return 1
    if a.records:
        recs = load(a.records)
        if a.check:
            report_checked(recs, cat, patches, th, enc, [g.images[i] for i in ok])
        else:
            report(recs, cat, patches, th)
        return 0
    row_of = {int(s): r for r, s in enumerate(ok)}
    sources = pick_sources(g.ids, [], a.sources, 13)
    pool = background_pool(g.images, set(sources), a.seed)
    kinds = [k for k in a.kinds.split(",") if k]
    recs: dict[str, list] = {k: [] for k in kinds}
    t0 = time.time()
    for n, s in enumerate(sources):
        im = load_image(g.images[s])
        targets = {row_of[i] for i in g.by_digest[g.digests[s]] if i in row_of}
        for kind in kinds:
            data = make_variant(im, kind, variant_rng(a.seed, g.ids[s], kind), pool)
            recs[kind].append((one(enc, cat, data), targets))
        if n % 10 == 0:
            print(f"{n}/{len(sources)} sources, {time.time() - t0:.0f} s", file=sys.stderr)
    if a.save:
        save(a.save, recs)
    if a.check:
        report_checked(recs, cat, patches, th, enc, [g.images[i] for i in ok])
    else:
        report(recs, cat, patches, th)
    return 0


def save(path: str, recs) -> None:
    kinds, whole, used, close, has, used_kind, area, aspect, targets = [], [], [], [], [], [], [], [], []
    frame_box, frame_peak = [], []
    for kind, v in recs.items():
        for (w, u, c, uk, ar, asp, fr), t in v:
            kinds.append(kind)
            whole.append(w)
            used.append(u)
            has.append(c is not None)
            close.append(c if c is not None else np.zeros_like(w))
            used_kind.append(uk)
            area.append(ar)
            aspect.append(asp)
            frame_box.append(fr[0] if fr else (np.nan,) * 4)
            frame_peak.append(fr[1] if fr else np.nan)
            targets.append(",".join(map(str, sorted(t))))
    np.savez(path, kind=np.array(kinds), whole=np.array(whole), used=np.array(used), close=np.array(close),
             has=np.array(has), used_kind=np.array(used_kind), area=np.array(area), aspect=np.array(aspect),
             frame_box=np.array(frame_box, np.float64).reshape(-1, 4), frame_peak=np.array(frame_peak, np.float64),
             targets=np.array(targets))


def load(path: str) -> dict[str, list]:
    """Records written by :func:`save`; older ones without the photos' shapes or the box head's
    boxes get NaN shapes and no boxes (``--add-frames`` adds them)."""
    z = np.load(path)
    recs: dict[str, list] = {}
    n = len(z["kind"])
    aspect = z["aspect"] if "aspect" in z.files else np.full(n, np.nan)
    boxes = z["frame_box"] if "frame_box" in z.files else np.full((n, 4), np.nan)
    peaks = z["frame_peak"] if "frame_peak" in z.files else np.full(n, np.nan)
    for kind, w, u, c, has, uk, ar, asp, fb, fp, t in zip(z["kind"], z["whole"], z["used"], z["close"], z["has"],
                                                          z["used_kind"], z["area"], aspect, boxes, peaks,
                                                          z["targets"]):
        fr = None if np.isnan(fp) else (tuple(float(x) for x in fb), float(fp))
        recs.setdefault(str(kind), []).append(((w, u, c if has else None, str(uk), float(ar), float(asp), fr),
                                               {int(x) for x in str(t).split(",") if x}))
    return recs


def recall(recs, cat, patches, weight: float, gate: float, rule: str, th: Thresholds) -> dict[str, tuple[float, float]]:
    row = {}
    for kind, v in recs.items():
        rk = [ranks(rec, cat, patches, weight, gate, th, rule=rule) for rec, _ in v]
        row[kind] = (float(np.mean([bool(r) and r[0] in t for r, (_, t) in zip(rk, v)])),
                     float(np.mean([bool(set(r) & t) for r, (_, t) in zip(rk, v)])))
    return row


def line(row: dict[str, tuple[float, float]]) -> str:
    edits = [row[k] for k in PHOTO_KINDS if k in row]
    tail = f"   {np.mean([e[0] for e in edits]):.4f}/{np.mean([e[1] for e in edits]):.4f}" if edits else ""
    return "  ".join(f"{r1:.3f}/{r10:.3f}" for r1, r10 in row.values()) + tail


def report(recs, cat, patches, th: Thresholds) -> None:
    used = {k: {u: sum(r[0][3] == u for r in v) for u in ("whole", "content", "head", "window")} for k, v in recs.items()}
    print("used regions:", "; ".join(f"{k} " + " ".join(f"{u} {n}" for u, n in c.items() if n) for k, c in used.items()))
    head = "  ".join(f"{k[:11]:>11}" for k in recs) + ("   photo edits" if set(recs) & set(PHOTO_KINDS) else "")
    print("weight  gate  rule      " + head)
    for w, gate in [(w, -1.0) for w in WEIGHTS] + list(GATED):
        print(f"{w:6.2f}  {'   -' if gate < 0 else f'{gate:.2f}'}  {'unexpl.':8}  " + line(recall(recs, cat, patches, w, gate, "unexplained", th)))
    w, gate = search.CLOSEUP_WEIGHT, th.closeup_min_patch
    for rule in RULES:
        print(f"{w:6.2f}  {gate:.2f}  {rule[:8]:8}  " + line(recall(recs, cat, patches, w, gate, rule, th)))


if __name__ == "__main__":
    sys.exit(main())
