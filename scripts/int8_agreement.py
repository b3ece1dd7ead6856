"""How close the 8-bit encoder's vectors are to the float32 ones, on catalogue images and on the
crops that region search encodes (screens, scenes, screenshots, close-ups from the generator).

    .venv/bin/python scripts/int8_agreement.py ../shared/data [--crops 200] [--int8 MODEL.int8.onnx]

Prints the cosine's median, 5th percentile, minimum and mean for each set.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def region_crops(catalog: str, n: int, seed: int = 202):
    """``n`` crops around the dress of generated bigger pictures, jittered as a region search's boxes are."""
    from dressfinder import regions
    from dressfinder.images import load_image
    from dressfinder.tools.evaluate.queries import background_pool
    from dressfinder.tools.evaluate.run_eval import pick_sources, read_ground
    from dressfinder.tools.evaluate.variants import jpeg_bytes, variant_rng
    from dressfinder.tools.scenes import make_picture

    g = read_ground(catalog, None, None)
    src = pick_sources(g.ids, [], n, seed)
    pool = background_pool(g.images, set(src), seed)
    crops = []
    for j, s in enumerate(src):
        kind = ("screen", "scene", "fabric", "social")[j % 4]
        rng = variant_rng(seed, g.ids[s], kind)
        pic, (l, t, r, b) = make_picture(load_image(g.images[s]), kind, rng, pool)
        w, h = r - l, b - t
        box = (max(0, l - rng.uniform(0, .3) * w), max(0, t - rng.uniform(0, .3) * h),
               min(1, r + rng.uniform(0, .3) * w), min(1, b + rng.uniform(0, .3) * h))
        crops.append(regions.crop_box(load_image(jpeg_bytes(pic, 90), draft=448), box))
    return crops, [Path(p) for p in g.images[5::60]]


def unit_vectors(enc, images) -> np.ndarray:
    v = np.asarray(enc.encode(images), np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def main() -> int:
    from dressfinder.encoders.effnet_tuned import DEFAULT_MODEL, TunedEffNet, int8_path

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("catalog")
    p.add_argument("--crops", type=int, default=200)
    p.add_argument("--int8", default=str(int8_path(DEFAULT_MODEL)))
    a = p.parse_args()
    crops, catalogue = region_crops(a.catalog, a.crops)
    fp32, int8 = TunedEffNet(precision="fp32"), TunedEffNet(model=Path(a.int8), precision="int8")
    for name, images in (("region crops", crops), ("catalogue images", catalogue)):
        c = np.sum(unit_vectors(fp32, images) * unit_vectors(int8, images), axis=1)
        print(f"{name} ({len(images)}): cosine median {np.median(c):.4f}, 5th percentile "
              f"{np.percentile(c, 5):.4f}, minimum {c.min():.4f}, mean {c.mean():.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
