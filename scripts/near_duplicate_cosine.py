"""Measure an encoder's near-duplicate line (``Encoder.near_duplicate_cosine``, ``dressfinder inspect --near``).

For ``--images`` catalogue images spread evenly over the sorted catalogue, it encodes copies of
each re-saved as JPEG (quality 90) or resized to 90 % (alternately) and reports the cosine of each
image to its copy (median, 1st percentile, share at or above ``--near``), and the cosine of each
image to its nearest *different* catalogue image (byte-identical files left out): the line should
keep the copies above it and the different images below.

    PYTHONPATH=. .venv/bin/python scripts/near_duplicate_cosine.py ../shared/data [--model FILE.onnx]

The catalogue's vectors come from the evaluation's cache (made here when absent).
"""

from __future__ import annotations

import argparse
import io
import sys

import numpy as np
from PIL import Image

from dressfinder.encoders import get_encoder
from dressfinder.images import load_image
from dressfinder.settings import cache_dir
from dressfinder.tools.evaluate.configs import catalogue_keys, embed_cached
from dressfinder.tools.evaluate.run_eval import read_ground


def copy_of(path: str, i: int) -> bytes:
    im = load_image(path)
    if i % 2:
        im = im.resize((max(1, round(im.width * 0.9)), max(1, round(im.height * 0.9))), Image.Resampling.BICUBIC)
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("catalog")
    p.add_argument("--model", default=None, help="an effnet-tuned model file (default: the shipped one)")
    p.add_argument("--encoder", default="effnet-tuned")
    p.add_argument("--images", type=int, default=1500)
    p.add_argument("--near", type=float, default=None, help="the line to report (default: the encoder's)")
    a = p.parse_args()
    g = read_ground(a.catalog, "auto", None)
    opts = {"model": a.model, "precision": "fp32"} if a.encoder == "effnet-tuned" else {}
    enc = get_encoder(a.encoder, **opts)
    near = enc.near_duplicate_cosine if a.near is None else a.near
    cat, ok, _, _, _ = embed_cached(enc, g.images, cache_dir() / "eval",
                                    catalogue_keys(g.ids, g.images), "catalogue", True)
    row_of = {int(s): r for r, s in enumerate(ok)}
    order = sorted(range(len(g.images)), key=lambda i: g.images[i])
    picks = [order[j] for j in np.linspace(0, len(order) - 1, min(a.images, len(order))).astype(int)
             if order[j] in row_of]
    copies = enc.encode([copy_of(g.images[i], n) for n, i in enumerate(picks)])
    own = cat[[row_of[i] for i in picks]]
    to_copy = np.sum(own * copies, axis=1)
    nearest = []
    for i, v in zip(picks, own):
        sims = cat @ v
        same = [row_of[j] for j in g.by_digest[g.digests[i]] if j in row_of]
        sims[same] = -1.0
        nearest.append(float(sims.max()))
    nearest = np.array(nearest)
    print(f"{enc.name} {enc.version}, {len(picks)} images; line {near}")
    print(f"copies: median {np.median(to_copy):.3f}, 1st percentile {np.percentile(to_copy, 1):.3f}, "
          f"{np.mean(to_copy >= near):.1%} >= {near}")
    print(f"nearest different image: median {np.median(nearest):.3f}, 99th percentile "
          f"{np.percentile(nearest, 99):.3f}, max {nearest.max():.3f}, {np.mean(nearest >= near):.1%} >= {near}")
    for line in (0.90, 0.92, 0.93, 0.94, 0.95, 0.96, 0.97):
        print(f"  {line:.2f}: copies {np.mean(to_copy >= line):.1%} above, "
              f"different images {np.mean(nearest >= line):.1%} above")
    return 0


if __name__ == "__main__":
    sys.exit(main())
