"""The demo: a store of Fashion-MNIST's 'Dress' class, searched and (optionally) served.

Fashion-MNIST comes from Debian's ``dataset-fashion-mnist`` package
(/usr/share/datasets/fashion-mnist) or, when online, is downloaded once into the cache.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import sys
from pathlib import Path

import numpy as np

from .errors import DressfinderError
from .settings import cache_dir

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
MIRROR = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
DRESS = 3
FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
         "t10k": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}


def _find(name: str) -> Path:
    for folder in (DEBIAN_DIR, cache_dir() / "fashion-mnist"):
        if (folder / name).is_file():
            return folder / name
    target = cache_dir() / "fashion-mnist" / name
    try:
        import httpx

        print(f"downloading {name} ...", file=sys.stderr)
        r = httpx.get(MIRROR + name, timeout=60, follow_redirects=True)
        r.raise_for_status()
    except Exception as e:
        raise DressfinderError(f"Fashion-MNIST not found in {DEBIAN_DIR} and could not be downloaded ({e}); "
                               "install it with: apt-get install dataset-fashion-mnist") from None
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(r.content)
    return target


def read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def dresses(split: str) -> np.ndarray:
    images, labels = (read_idx(_find(n)) for n in FILES[split])
    return images[labels == DRESS]


def write_demo_catalog(out: Path, limit: int | None = None) -> tuple[Path, list[Path]]:
    """Write the train-split dresses as a catalogue (dark on white, 3x upscaled PNG) and a few
    test-split dresses as query photos. Returns (catalog.csv, query paths)."""
    from PIL import Image

    out.mkdir(parents=True, exist_ok=True)
    (out / "images").mkdir(exist_ok=True)
    (out / "queries").mkdir(exist_ok=True)
    train = dresses("train")[:limit]
    rows = []
    for i, arr in enumerate(train):
        name = f"images/dress-{i:05d}.png"
        if not (out / name).exists():
            Image.fromarray(255 - arr, "L").resize((84, 84), Image.Resampling.NEAREST).save(out / name)
        rows.append({"id": f"fmnist-{i:05d}", "image": name, "title": f"Fashion-MNIST dress #{i}",
                     "price": f"{19 + (i * 7919) % 80}.99", "currency": "USD", "store": "demo",
                     "category": "dress"})
    with open(out / "catalog.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    queries = []
    for i, arr in enumerate(dresses("t10k")[:3]):
        q = out / "queries" / f"query-{i}.png"
        Image.fromarray(255 - arr, "L").resize((84, 84), Image.Resampling.NEAREST).save(q)
        queries.append(q)
    return out / "catalog.csv", queries


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m dressfinder.demo", description=__doc__)
    ap.add_argument("--data", default="demo-data", help="where to write the demo catalogue")
    ap.add_argument("--store", default="demo-store")
    ap.add_argument("--limit", type=int, default=None, help="index only the first N dresses")
    ap.add_argument("--rebuild", action="store_true")
    ap.add_argument("--serve", action="store_true", help="then serve the web app")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=2000)
    a = ap.parse_args(argv)
    from .store import Store

    try:
        csv_path, queries = write_demo_catalog(Path(a.data), a.limit)
        if a.rebuild or not (Path(a.store) / "store.json").exists():
            store = Store.build(csv_path, a.store)
            r = store.last_report
            print(f"indexed {r.added} dresses in {r.seconds:.1f} s ({r.rate:.1f} images/s) into {a.store}")
        else:
            store = Store.open(a.store)
            print(f"using the existing store {a.store} ({len(store)} dresses; --rebuild to redo it)")
        for q in queries:
            hits = store.search(q, k=5)
            print(f"{q}:")
            for rank, h in enumerate(hits, 1):
                print(f"  {rank}. {h.score:.3f}  {h.id}  {h.product.title}")
        if a.serve:
            from .cli import main as cli_main

            print(f"serving on http://{a.host}:{a.port}/  (Ctrl-C to stop)", flush=True)
            return cli_main(["serve", "--store", a.store, "--host", a.host, "--port", str(a.port)])
    except DressfinderError as e:
        print(f"demo: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
