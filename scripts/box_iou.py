"""How well the box head's best box fits the true one on composed pictures of the evaluation's dresses.

The evaluation's generator (``dressfinder.tools.scenes``) pastes each source dress photo into a
picture of each kind asked for, at another variant seed than the evaluation's (default: its + 7),
the picture is JPEG-compressed and read as the service reads a query (moiré taken out), and the
head's best box is compared with where the generator put the photo. Prints, per kind, the mean IoU
and the share above 0.5 and 0.8, of the peak cell's box and of the voted box (``boxhead.decode``):

    PYTHONPATH=. python scripts/box_iou.py ../shared/data --max-sources 400
    PYTHONPATH=. python scripts/box_iou.py ../shared/data --head build/boxhead-new.onnx

The box head never saw these dresses (it is trained on fashion-products-9k). About 3 minutes for
400 sources x 2 kinds on the 2-core machine.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from dressfinder import boxhead, regions, search
from dressfinder.images import descreen, load_image
from dressfinder.tools.evaluate.queries import background_pool
from dressfinder.tools.evaluate.run_eval import pick_sources, read_ground
from dressfinder.tools.evaluate.variants import DEFAULT_SEED, picture_variant, variant_rng


def fits(head: boxhead.BoxHead, ground, sources: list[int], kind: str, seed: int, pool) -> dict[str, np.ndarray]:
    """IoU of the best box with the true one, per picture, peak cell's box and voted box."""
    out: dict[str, list[float]] = {"peak": [], "voted": []}
    for s in sources:
        data, truth = picture_variant(load_image(ground.images[s]), kind, variant_rng(seed, ground.ids[s], kind), pool)
        im = load_image(data, draft=search.query_draft(224, detect=True))
        seen = descreen(im) or im
        centre, edges = head.maps(seen)
        for name, voted in (("peak", False), ("voted", True)):
            found = boxhead.decode(centre, edges, voted=voted)
            out[name].append(regions.iou(boxhead.from_square(seen.size, found[0][0]), truth) if found else 0.0)
    return {k: np.array(v) for k, v in out.items()}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("data", help="the evaluation's catalogue (../shared/data)")
    p.add_argument("--head", default=str(boxhead.MODEL), help="box head .onnx (default: the shipped one)")
    p.add_argument("--kinds", default="screen,scene")
    p.add_argument("--seed-offset", type=int, default=7)
    p.add_argument("--max-sources", type=int, default=400)
    a = p.parse_args()
    ground = read_ground(a.data, "auto", None)
    seed = DEFAULT_SEED + a.seed_offset
    sources = pick_sources(ground.ids, [], a.max_sources, seed)
    pool = background_pool(ground.images, set(sources), seed)
    head = boxhead.BoxHead(a.head)
    print(f"{a.head} ({head.digest}), {len(sources)} sources, seed {seed}")
    for kind in a.kinds.split(","):
        for name, ious in fits(head, ground, sources, kind, seed, pool).items():
            print(f"{kind:8} {name:6} mean IoU {ious.mean():.3f}  >0.5 {(ious > 0.5).mean():.3f}  "
                  f">0.8 {(ious > 0.8).mean():.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
