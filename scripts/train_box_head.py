"""Makes the shipped box head, dressfinder/models/boxhead.onnx (+ .json), see dressfinder/boxhead.py.

    .venv/bin/python scripts/train_box_head.py ../shared/data/fashion-products-9k

The pictures are composed from the product photos in the folder given (by default the 9,583
fashion-products-9k photos: none of the evaluation's 1,203 dress sources is among them), so the
evaluation judges the head on dresses it never saw. Needs the [train] extra (torch).
"""

import argparse
import glob
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("photos", help="folder of product photos (searched recursively for .jpg/.png)")
    p.add_argument("--out", default="dressfinder/models/boxhead.onnx")
    p.add_argument("--pictures", type=int, default=7000, help="composed training pictures (default 7000)")
    p.add_argument("--epochs", type=int, default=16)
    p.add_argument("--seed", type=int, default=20261203)
    p.add_argument("--work", default="build/boxhead.work", help="composed pictures are kept here")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    a = p.parse_args()
    paths = sorted(f for ext in ("jpg", "jpeg", "png") for f in glob.glob(f"{a.photos}/**/*.{ext}", recursive=True))
    if not paths:
        print(f"error: no photos in {a.photos}", file=sys.stderr)
        return 2
    from dressfinder.training.boxhead import train

    info = train(paths, Path(a.out), n=a.pictures, epochs=a.epochs, seed=a.seed, work=Path(a.work),
                 workers=a.workers)
    print(f"wrote {a.out}: validation {info['validation']}, {info['minutes']} min")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
