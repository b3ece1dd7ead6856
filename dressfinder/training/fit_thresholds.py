"""Fit the region search's and close-up reading's cosine thresholds to another model's score scale
(not on the serving path).

::

    python -m dressfinder.training.fit_thresholds ../shared/data --model FILE.onnx --write
    scripts/fit_thresholds.sh --model FILE.onnx --write                 # the same, DATA=../shared/data

The thresholds (``dressfinder/thresholds.py``) were calibrated on one model
(``scripts/calibrate_regions.py``, ``scripts/calibrate_closeups.py``, on the model shipped until
2026-12-05). A model trained otherwise spreads its cosines otherwise: one trained with photos of
screens put the median best match of a fabric close-up at 0.43 where that one puts it at 0.70, so
its lines read far more photos as "not sure" and far fewer close-ups as such (docs/regions.md).
This script carries a reference model's lines (default: the shipped model's own) over by rank,
on photos made for it (every query kind of the evaluation's generator, a variant seed of its own,
sources apart from the evaluation's 300-source subset):

* each absolute line (``sure``, ``content_sure``, ``other_min``) goes to the new model's score of
  the same rank among the photos' best whole-photo matches (the share of photos at or above it
  stays the same); ``closeup_min_patch`` likewise among their close-ups' best patch matches;
* each difference (``margin``, ``tie``, ``closeup_max_gain``) is stretched by how much wider the
  new model spreads the band below ``sure`` (the mapped 0.60..sure over the reference's);
  ``closeup_ramp`` and ``framed_gap`` are the mapped distances from ``sure`` down to ``sure``
  less each.

It prints both models' score quantiles and the fitted values; ``--write`` puts them in the
model's ``.json`` (and its int8 variant's, when there is one) under ``"thresholds"``.

The catalogue's vectors come from the evaluation's cache (made here when absent).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from .. import search
from ..encoders import get_encoder
from ..encoders.effnet_tuned import int8_path
from ..images import load_image
from ..settings import cache_dir
from ..thresholds import Thresholds
from ..tools.evaluate.configs import catalogue_keys, embed_cached
from ..tools.evaluate.queries import background_pool
from ..tools.evaluate.run_eval import pick_sources, read_ground
from ..tools.evaluate.variants import DEFAULT_SEED, KINDS, make_variant, variant_rng

#: The lower end of the band whose spread stretches the differences (the region choice's scores
#: live between it and ``sure``).
BAND_LOW = 0.60


def scores(enc, cat: np.ndarray, patches: np.ndarray, photos: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """Each photo's best whole-photo cosine (as queries are encoded) and its close-up's best patch cosine."""
    whole, patch = [], []
    for data in photos:
        im = load_image(data, draft=search.query_draft(enc.input_size, detect=True))
        v = np.asarray(enc.encode_query_arrays(enc.preprocess(im)[None]), np.float32)[0]
        whole.append(float((cat @ v).max()))
        c = enc.encode_closeup(im)
        patch.append(float((patches @ c).max()) if c is not None else np.nan)
    return np.array(whole), np.array(patch)


def mapper(ref: np.ndarray, new: np.ndarray):
    """x on the reference's scale -> the new scale's value of the same rank (share at or above x)."""
    ref, new = np.sort(ref[np.isfinite(ref)]), np.sort(new[np.isfinite(new)])

    def to_new(x: float) -> float:
        share_below = np.searchsorted(ref, x, side="left") / len(ref)
        return float(np.quantile(new, min(max(share_below, 0.0), 1.0)))
    return to_new


def fit(ref_th: Thresholds, ref_whole, new_whole, ref_patch, new_patch) -> tuple[Thresholds, float]:
    """The thresholds on the new scale, and the stretch applied to the differences."""
    w, p = mapper(ref_whole, new_whole), mapper(ref_patch, new_patch)
    sure = w(ref_th.sure)
    stretch = (sure - w(BAND_LOW)) / (ref_th.sure - BAND_LOW)
    return Thresholds(
        sure=sure, content_sure=w(ref_th.content_sure), other_min=w(ref_th.other_min),
        margin=ref_th.margin * stretch, tie=ref_th.tie * stretch,
        closeup_max_gain=ref_th.closeup_max_gain * stretch,
        closeup_ramp=sure - w(ref_th.sure - ref_th.closeup_ramp),
        closeup_min_patch=p(ref_th.closeup_min_patch),
        framed_gap=sure - w(ref_th.sure - ref_th.framed_gap)), stretch


def calibration_photos(g, sources: list[int], kinds: list[str], seed: int) -> list[bytes]:
    pool = background_pool(g.images, set(sources), seed)
    photos = []
    for s in sources:
        im = load_image(g.images[s])
        photos += [make_variant(im, k, variant_rng(seed, g.ids[s], k), pool) for k in kinds]
    return photos


def write(model: Path, th: Thresholds, note: dict) -> list[Path]:
    """Put ``th`` in the model's ``.json`` and its int8 variant's (when there is one)."""
    written = []
    for onnx in (model, int8_path(model)):
        side = onnx.with_name(onnx.name[:-len(".onnx")] + ".json")
        if not onnx.is_file() or (onnx != model and not side.is_file()):
            continue
        meta = json.loads(side.read_text()) if side.is_file() else {}
        meta["thresholds"] = {k: round(v, 4) for k, v in th.to_dict().items()}
        meta["thresholds_fit"] = note
        tmp = side.with_name(side.name + ".tmp")
        tmp.write_text(json.dumps(meta, indent=2) + "\n")
        tmp.replace(side)
        written.append(side)
    return written


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m dressfinder.training.fit_thresholds",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("catalog")
    p.add_argument("--model", required=True, help="the effnet-tuned model (.onnx, float32) to fit")
    p.add_argument("--reference", default=None, help="the model whose thresholds are carried over (default: shipped)")
    p.add_argument("--sources", type=int, default=150)
    p.add_argument("--exclude-eval", type=int, default=300, help="leave out the evaluation's --max-sources subset")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED + 11, help="variant seed (default: the evaluation's + 11)")
    p.add_argument("--kinds", default=",".join(KINDS))
    p.add_argument("--write", action="store_true", help="write the fitted thresholds into the model's .json")
    a = p.parse_args(argv)
    g = read_ground(a.catalog, "auto", None)
    taken = set(pick_sources(g.ids, [], a.exclude_eval, DEFAULT_SEED)) if a.exclude_eval else set()
    rest = [i for i in pick_sources(g.ids, [], None, 0) if i not in taken]
    rng = np.random.default_rng([a.seed, 11])
    sources = sorted(rng.choice(rest, min(a.sources, len(rest)), replace=False).tolist())
    kinds = [k for k in a.kinds.split(",") if k]
    t0 = time.time()
    photos = calibration_photos(g, sources, kinds, a.seed)
    got = {}
    for name, model in (("reference", a.reference), ("model", a.model)):
        enc = get_encoder("effnet-tuned", model=model, precision="fp32")
        cat, _, _, _, patches = embed_cached(enc, g.images, cache_dir() / "eval",
                                             catalogue_keys(g.ids, g.images), "catalogue", True)
        if patches is None:
            print(f"fit_thresholds: {model or 'the shipped model'} makes no patch vectors", file=sys.stderr)
            return 1
        got[name] = (enc, *scores(enc, cat, patches, photos))
        print(f"{name}: {len(photos)} photos scored, {time.time() - t0:.0f} s", file=sys.stderr)
    (ref_enc, ref_w, ref_p), (_, new_w, new_p) = got["reference"], got["model"]
    ref_th = Thresholds.of(ref_enc)
    th, stretch = fit(ref_th, ref_w, new_w, ref_p, new_p)
    qs = (0.1, 0.25, 0.5, 0.75, 0.9)
    print("quantiles " + " ".join(f"{q:>6}" for q in qs))
    for label, v in (("ref whole", ref_w), ("new whole", new_w), ("ref patch", ref_p), ("new patch", new_p)):
        print(f"{label:9} " + " ".join(f"{x:6.3f}" for x in np.nanquantile(v, qs)))
    print(f"stretch of the differences: {stretch:.3f}")
    for k, v in th.to_dict().items():
        print(f"  {k:18} {getattr(ref_th, k):.3f} -> {v:.4f}")
    if a.write:
        note = {"reference": f"{ref_enc.name} {ref_enc.version}" + (" (shipped)" if a.reference is None else ""),
                "photos": len(photos), "sources": len(sources), "kinds": kinds, "seed": a.seed,
                "stretch": round(stretch, 4), "made_by": "python -m dressfinder.training.fit_thresholds"}
        for side in write(Path(a.model), th, note):
            print(f"wrote {side}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
