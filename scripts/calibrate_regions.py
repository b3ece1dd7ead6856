"""Calibrate the region choice (``dressfinder/thresholds.py``: margin, sure, other_min) on generated data.

For sources *not* in the evaluation's subset (other dresses, another variant seed), it makes every
query kind (the photo edits and the bigger pictures of ``dressfinder.tools.scenes``), runs
``regions.locate``'s candidates once, and records for the whole photo and each candidate box its
best match's cosine and whether its first (and first ten) results hold the source. Then it
replays the choice rule for a grid of margins and prints Recall@1/@10 for the old kinds and the
new ones, and the precision of "other region" best matches by score.

    PYTHONPATH=. python scripts/calibrate_regions.py ../shared/data --sources 120 --exclude-eval 300

``--model FILE.onnx``: another effnet-tuned model (its own thresholds, if its ``.json`` has them).

The catalogue vectors come from the evaluation's cache (``dressfinder evaluate`` makes them).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time

import numpy as np

from dressfinder import boxhead, regions
from dressfinder.catalog import read_catalog
from dressfinder.embed import embed, fingerprint
from dressfinder.encoders import get_encoder
from dressfinder.tools.evaluate.configs import catalogue_keys
from dressfinder.tools.evaluate.queries import background_pool
from dressfinder.tools.evaluate.variants import DEFAULT_SEED, KINDS, make_variant, variant_rng
from dressfinder.images import load_image
from dressfinder.settings import cache_dir
from dressfinder.search import query_draft
from dressfinder.thresholds import Thresholds


def catalogue_vectors(enc, ids, images) -> np.ndarray:
    keys = catalogue_keys(ids, images)
    work = cache_dir() / "eval" / f"vectors-{fingerprint(enc, keys)}"
    done = work / "done.npz"
    if done.exists():
        with np.load(done) as z:
            return z["vectors"]
    return embed(enc, images, work_dir=work, progress=True).vectors


def pick_sources(ids, n: int, exclude_eval: int, seed: int) -> list[int]:
    dresses = [i for i, pid in enumerate(ids) if "dress" in pid.lower()]
    rng = np.random.default_rng([seed, 7])   # the evaluation's own subset (evaluate --max-sources)
    taken = set(rng.choice(dresses, size=min(exclude_eval, len(dresses)), replace=False).tolist()) \
        if exclude_eval else set()
    rest = [i for i in dresses if i not in taken]
    return sorted(np.random.default_rng(12345).choice(rest, size=min(n, len(rest)), replace=False).tolist())


def record(enc, cat: np.ndarray, data: bytes, same: set[int]) -> dict:
    """Every region ``locate`` looks at for this query (none skipped, the shipped box head's boxes
    among them, as the service has them), and which of them find the source."""
    def best(vectors):
        sims = np.asarray(vectors, np.float32) @ cat.T
        rows = sims.argmax(axis=1)
        return sims[np.arange(len(rows)), rows], rows

    im = load_image(data, draft=query_draft(enc.input_size, detect=True))
    every = dataclasses.replace(Thresholds.of(enc), sure=2.0)   # look at every candidate
    seen: list = []
    choose = regions.choose
    regions.choose = lambda whole, found, th, *a: (seen.clear(), seen.extend([whole, *found]))[1] \
        or choose(whole, found, th, *a)
    try:
        regions.locate(enc, im, best, thresholds=every, propose=boxhead.shipped())
    finally:
        regions.choose = choose
    if not seen:   # a small photo: the whole photo only
        seen = [regions.locate(enc, im, best, propose=boxhead.shipped()).used]
    sims = np.stack([r.vector for r in seen]) @ cat.T
    top = np.argsort(-sims, axis=1)[:, :10]
    return {"regions": [(r, bool(t[0] in same), bool(same & set(t.tolist()))) for r, t in zip(seen, top)]}


def replay(recs, th: Thresholds, margin: float, sure: float = 2.0) -> tuple[float, float]:
    """Recall@1/@10 of the region ``regions.choose`` picks with this margin (other lines: ``th``)."""
    th = dataclasses.replace(th, margin=margin)
    r1, r10 = [], []
    for rec in recs:
        (whole, _, _), rest = rec["regions"][0], rec["regions"][1:]
        used = whole if whole.score >= sure else regions.choose(whole, [r for r, _, _ in rest], th).used
        hit = {id(r): (a, b) for r, a, b in rec["regions"]}[id(used)]
        r1.append(hit[0])
        r10.append(hit[1])
    return float(np.mean(r1)), float(np.mean(r10))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("catalog")
    p.add_argument("--sources", type=int, default=120)
    p.add_argument("--exclude-eval", type=int, default=300, help="the evaluation's --max-sources (left out)")
    p.add_argument("--kinds", default=",".join(KINDS))
    p.add_argument("--seed", type=int, default=DEFAULT_SEED + 1)
    p.add_argument("--model", default=None, help="an effnet-tuned model file (default: the shipped one)")
    a = p.parse_args()
    products = read_catalog(a.catalog).products
    ids, images = [p.id for p in products], [p.image for p in products]
    enc = get_encoder("effnet-tuned", model=a.model)
    cat = catalogue_vectors(enc, ids, images)
    from dressfinder.encoders import file_digest

    digests = [file_digest(x, 64) for x in images]
    groups: dict[str, set[int]] = {}
    for i, d in enumerate(digests):
        groups.setdefault(d, set()).add(i)
    sources = pick_sources(ids, a.sources, a.exclude_eval, DEFAULT_SEED)
    pool = background_pool(images, set(sources), a.seed)
    kinds = a.kinds.split(",")
    recs: dict[str, list] = {k: [] for k in kinds}
    t0 = time.time()
    for n, s in enumerate(sources):
        im = load_image(images[s])
        for k in kinds:
            data = make_variant(im, k, variant_rng(a.seed, ids[s], k), pool)
            recs[k].append(record(enc, cat, data, groups[digests[s]]))
        if n % 10 == 0:
            print(f"{n}/{len(sources)} sources, {time.time() - t0:.0f} s", file=sys.stderr)
    report(recs, Thresholds.of(enc))
    return 0


def report(recs, th: Thresholds) -> None:
    from dressfinder.tools.scenes import SCENE_KINDS

    print("margin  " + "  ".join(f"{k[:8]:>13}" for k in recs) + "   old(R@1/R@10)  new(R@1/R@10)")
    for m in (0.0, 0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.08, 0.1, 1.0):
        row = {k: replay(v, th, m) for k, v in recs.items() if v}
        old = [row[k] for k in row if k not in SCENE_KINDS]
        new = [row[k] for k in row if k in SCENE_KINDS]
        mean = lambda xs, i: np.mean([x[i] for x in xs]) if xs else float("nan")  # noqa: E731
        print(f"{m:6.2f}  " + "  ".join(f"{r1:.3f}/{r10:.3f}" for r1, r10 in row.values())
              + f"   {mean(old, 0):.3f}/{mean(old, 1):.3f}    {mean(new, 0):.3f}/{mean(new, 1):.3f}")
    print(f"with margin {th.margin}: sure score -> old(R@1/R@10) new(R@1/R@10), share of queries sure")
    for sure in sorted({0.7, 0.75, 0.8, 0.85, 0.9, 0.93, 0.95, 2.0, th.sure}):
        rows = {k: replay(v, th, th.margin, sure) for k, v in recs.items() if v}
        share = np.mean([r["regions"][0][0].score >= sure for v in recs.values() for r in v])
        old = [rows[k] for k in rows if k not in SCENE_KINDS]
        new = [rows[k] for k in rows if k in SCENE_KINDS]
        print(f"  {sure:.2f}: {np.mean([x[0] for x in old]):.3f}/{np.mean([x[1] for x in old]):.3f}  "
              f"{np.mean([x[0] for x in new]):.3f}/{np.mean([x[1] for x in new]):.3f}  sure {share:.2f}")
    allrec = [x for v in recs.values() for r in v for x in r["regions"]]
    s = np.array([r.score for r, _, _ in allrec])
    h = np.array([a for _, a, _ in allrec])
    print("best-match cosine -> share right (all whole photos and boxes)")
    for t in (0.6, 0.7, 0.75, 0.8, 0.85, 0.9):
        m = s >= t
        print(f"  >= {t:.2f}: {m.sum():6d} boxes, {h[m].mean() if m.any() else float('nan'):.3f} right")


if __name__ == "__main__":
    sys.exit(main())
