"""Calibrate the box head's anchor (``regions.ANCHOR_PEAK``, ``ANCHOR_OVERLAP``) on generated data.

On a photo of a screen the windows' round sometimes uses a window on something else in the room
that looks like some other catalogue product, while the box head had found the dress (with a box
a little too loose to win by itself). The anchor: when the head's best box has a peak of at least
``ANCHOR_PEAK`` and none of its boxes won, the boxes inside it are tried too and a window or
content box is used only when it overlaps the head's box (``regions.choose``'s ``anchor``).

For sources apart from the evaluation's pictures (variant seed: the evaluation's + 7), it makes
the given kinds of query, encodes every box ``regions.locate`` would look at (content boxes, the
head's boxes and their rescalings, the windows and the boxes inside the best three, and the boxes
inside the head's best box), records each box's best match and whether its first (and first ten)
results hold the source, then replays ``locate``'s rounds with ``regions.choose`` for a grid of
peaks and overlaps, with and without the boxes inside the head's box.

    PYTHONPATH=. python scripts/calibrate_anchor.py ../shared/data --sources 600 --kinds screen
    PYTHONPATH=. python scripts/calibrate_anchor.py ../shared/data --sources 150 \\
        --kinds screen,scene,shop,social,fabric,background,combo,crop

Single-pass box vectors judge every box (the service re-encodes the used box with its mirror
image), and the whole photo's results are not woven in: the numbers compare rules, they are not
the evaluation's. The catalogue vectors come from the evaluation's cache (``dressfinder evaluate``).

``--fuse`` replays, at the shipped anchor, the results as the service weaves them
(``search.fuse``): the used box's, the whole photo's, and the box head's sure box's
(``regions.Located.head``) for a range of weights (``search.HEAD_WEIGHT``; 0: not woven in):

    PYTHONPATH=. python scripts/calibrate_anchor.py ../shared/data --records anchor.pkl --fuse
"""

from __future__ import annotations

import argparse
import pickle
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
from dressfinder.tools.evaluate.variants import DEFAULT_SEED, make_variant, variant_rng

KINDS = "screen,scene,shop,social,fabric,background,combo,crop"
PEAKS = (None, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)
OVERLAPS = (0.3, 0.5, 0.7)
#: The box head's box's weights (``search.HEAD_WEIGHT``) replayed by ``--fuse`` (0: not woven in).
FUSE_WEIGHTS = (0.0, 0.3, 0.5, 0.7, 1.0)


class Judge:
    """Boxes of a picture encoded once each and judged against the catalogue."""

    def __init__(self, enc, cat: np.ndarray, targets: set[int]):
        self.enc, self.cat, self.targets = enc, cat, targets

    def regions(self, im, boxes: list[tuple[regions.Box, str]], peak: float | None = None) -> list[dict]:
        if not boxes:
            return []
        batch = np.stack([self.enc.preprocess(regions.crop_box(im, b)) for b, _ in boxes])
        return self.judged(np.asarray(self.enc.encode_arrays(batch), np.float32), boxes, peak)

    def judged(self, vectors: np.ndarray, boxes, peak) -> list[dict]:
        sims = vectors @ self.cat.T
        top = np.argsort(-sims, axis=1)[:, :10]
        return [{"region": regions.Region(tuple(b), float(s[t[0]]), None, kind, int(t[0])), "peak": peak,
                 "hit": (bool(t[0] in self.targets), bool(self.targets & set(t.tolist()))),
                 "vec": v.astype(np.float16)}
                for (b, kind), s, t, v in zip(boxes, sims, top, vectors)]


def record(enc, cat: np.ndarray, head, data: bytes, targets: set[int]) -> dict[str, list[dict]]:
    """Every box of the rounds, by round: whole, content, head (its boxes, then the rescalings of
    the best), inside (boxes inside the head's best box), windows (with the boxes inside the best three)."""
    judge = Judge(enc, cat, targets)
    im = load_image(data, draft=search.query_draft(enc.input_size, detect=True))
    whole = np.asarray(enc.encode_query_arrays(enc.preprocess(im)[None]), np.float32)
    rec = {"whole": judge.judged(whole, [(regions.WHOLE, "whole")], None), "content": [], "head": [],
           "inside": [], "windows": []}
    rec["whole"][0]["targets"] = sorted(targets)
    if min(im.size) < regions.MIN_SIDE:
        return rec
    cands = regions.candidate_boxes(im)
    rec["content"] = judge.regions(im, [c for c in cands if c[1] == "content"])
    seen = descreen(im) or im
    proposed = regions.proposals(seen, head)
    for b, p in proposed:
        rec["head"] += judge.regions(seen, [(b, "head")], p)
    if proposed:
        best = proposed[0]
        rec["head"] += judge.regions(seen, [(regions.scaled(best[0], s), "head") for s in regions.HEAD_SCALES], best[1])
        rec["inside"] = judge.regions(seen, [(b, "head") for b in regions.refine_boxes(best[0])], best[1])
    windows = judge.regions(seen, [c for c in cands if c[1] == "window"])
    tops = sorted(windows, key=lambda r: -r["region"].score)[:regions.REFINE_TOP]
    rec["windows"] = windows + judge.regions(seen, [(b, "window") for t in tops
                                                    for b in regions.refine_boxes(t["region"].box)])
    return rec


def replay(rec: dict[str, list[dict]], th: Thresholds, peak: float | None, overlap: float,
           inside: bool) -> tuple[bool, bool]:
    """Found first, found in the first ten: ``locate``'s rounds with the anchor at ``peak`` (None:
    no anchor) and ``overlap``, with or without the boxes inside the head's box."""
    return used_record(rec, th, peak, overlap, inside)[0]["hit"]


def used_record(rec: dict[str, list[dict]], th: Thresholds, peak: float | None = regions.ANCHOR_PEAK,
                overlap: float = regions.ANCHOR_OVERLAP, inside: bool = True) -> tuple[dict, bool]:
    """The record of the box ``locate``'s rounds use (see :func:`replay`), and whether they looked
    at the box head's boxes (not when the whole photo was sure or a content box clearly won)."""
    by = {id(r["region"]): r for part in rec.values() for r in part}
    whole = rec["whole"][0]["region"]
    if whole.score >= th.sure or not (rec["content"] or rec["head"] or rec["windows"]):
        return rec["whole"][0], False
    content = [r["region"] for r in rec["content"]]
    used = regions.choose(whole, content, th).used
    if used.kind == "content" and used.score >= th.content_sure:
        return by[id(used)], False
    heads = [r["region"] for r in rec["head"] if r["peak"] >= regions.HEAD_MIN_PEAK]
    used = regions.choose(whole, content + heads, th).used
    if used.kind == "head":
        return by[id(used)], True
    top = rec["head"][0] if rec["head"] else None
    anchor = top["region"].box if top and peak is not None and top["peak"] >= peak else None
    extra = [r["region"] for r in rec["inside"]] if inside and anchor is not None else []
    boxes = content + heads + extra + [r["region"] for r in rec["windows"]]
    located = regions.choose(whole, boxes, th, anchor, anchor_overlap=overlap)
    if anchor is not None:      # a framed photo whose whole matches nothing: the head's boxes over it
        located = regions.framed_photo(located, heads + extra, [(anchor, top["peak"])], th)
    return by[id(located.used)], True


def fused_hits(rec: dict[str, list[dict]], th: Thresholds, cat: np.ndarray, weight: float) -> tuple[bool, bool]:
    """Found first, found in the first ten, as the service ranks at the shipped anchor: the used
    box's results, the whole photo's woven in when a region was used (``search.fuse``), and the box
    head's sure box's at ``weight`` (``search.HEAD_WEIGHT``; 0: not woven in) when it was looked at
    and another region was used (``regions.Located.head``). Needs records with vectors."""
    used, looked = used_record(rec, th)
    whole, targets = rec["whole"][0], set(rec["whole"][0]["targets"])

    def top(r: dict) -> list[int]:
        return np.argsort(-(cat @ r["vec"].astype(np.float32)), kind="stable")[:10].tolist()

    rows = top(used)
    if used is not whole:
        head = rec["head"][0] if rec["head"] else None
        second = (looked and weight > 0 and head is not None and head is not used
                  and head["peak"] >= regions.ANCHOR_PEAK)
        rows = search.fuse(rows, top(whole), 10, more=[(top(head), weight)] if second else ())
    return rows[0] in targets, bool(targets & set(rows))


def report_fused(recs: dict[str, list], th: Thresholds, cat: np.ndarray) -> None:
    print("head's weight  " + "  ".join(f"{k[:11]:>11}" for k in recs))
    for weight in FUSE_WEIGHTS:
        row = []
        for v in recs.values():
            h = np.array([fused_hits(rec, th, cat, weight) for rec in v], float).reshape(-1, 2)
            row.append(f"{h[:, 0].mean():.3f}/{h[:, 1].mean():.3f}")
        print(f"{weight:13.2f}  " + "  ".join(row))


def report(recs: dict[str, list], th: Thresholds) -> None:
    print("peak  overlap inside  " + "  ".join(f"{k[:11]:>11}" for k in recs))
    for peak in PEAKS:
        for overlap in (OVERLAPS if peak is not None else (0.5,)):
            for inside in ((False, True) if peak is not None else (False,)):
                row = []
                for v in recs.values():
                    h = np.array([replay(rec, th, peak, overlap, inside) for rec in v], float).reshape(-1, 2)
                    row.append(f"{h[:, 0].mean():.3f}/{h[:, 1].mean():.3f}")
                name = "none" if peak is None else f"{peak:.2f}"
                print(f"{name:>4}  {overlap:7.2f} {'yes' if inside else 'no':>6}  " + "  ".join(row))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("catalog")
    p.add_argument("--sources", type=int, default=150)
    p.add_argument("--kinds", default=KINDS)
    p.add_argument("--seed", type=int, default=DEFAULT_SEED + 7, help="variant seed (default: the evaluation's + 7)")
    p.add_argument("--save", default=None, help="also write the records here (pickle)")
    p.add_argument("--records", default=None, help="replay records written by --save (no encoding)")
    p.add_argument("--fuse", action="store_true", help="replay the weight of the box head's box in the fused results")
    a = p.parse_args()
    enc = get_encoder("effnet-tuned", precision="fp32")
    th = Thresholds.of(enc)
    g = read_ground(a.catalog, "auto", None)
    cat, ok, _, _, _ = embed_cached(enc, g.images, cache_dir() / "eval", catalogue_keys(g.ids, g.images),
                                    "catalogue", True)
    cat = np.asarray(cat, np.float32)
    if a.records:
        with open(a.records, "rb") as f:
            recs = pickle.load(f)
        if a.fuse:
            report_fused(recs, th, cat)
        else:
            report(recs, th)
        return 0
    row_of = {int(s): r for r, s in enumerate(ok)}
    sources = pick_sources(g.ids, [], a.sources, 13)
    pool = background_pool(g.images, set(sources), a.seed)
    head = boxhead.shipped()
    recs: dict[str, list] = {k: [] for k in a.kinds.split(",") if k}
    t0 = time.time()
    for n, s in enumerate(sources):
        im = load_image(g.images[s])
        targets = {row_of[i] for i in g.by_digest[g.digests[s]] if i in row_of}
        for kind, v in recs.items():
            v.append(record(enc, cat, head, make_variant(im, kind, variant_rng(a.seed, g.ids[s], kind), pool), targets))
        if n % 20 == 0:
            print(f"{n}/{len(sources)} sources, {time.time() - t0:.0f} s", file=sys.stderr)
    if a.save:
        with open(a.save, "wb") as f:
            pickle.dump(recs, f)
    if a.fuse:
        report_fused(recs, th, cat)
    else:
        report(recs, th)
    return 0


if __name__ == "__main__":
    sys.exit(main())
