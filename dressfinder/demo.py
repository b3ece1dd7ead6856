"""The demo: a store of Fashion-MNIST's 'Dress' class, searched and (optionally) served.

Fashion-MNIST comes from Debian's ``dataset-fashion-mnist`` package (/usr/share/datasets/fashion-mnist).
With ``--get-dataset`` (what ``make demo`` passes) a missing package is installed with apt-get (as
root, or through sudo); where that cannot be done the demo stops with one line saying what to run.
``$DRESSFINDER_FASHION_MNIST`` names another folder holding the four ``*-idx?-ubyte.gz`` files.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from .errors import DressfinderError
from .settings import Settings, cache_dir

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
APT_PACKAGE = "dataset-fashion-mnist"
DATASET_ENV = "DRESSFINDER_FASHION_MNIST"
DRESS = 3
FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
         "t10k": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}


def dataset_dirs() -> list[Path]:
    """Where the four files are looked for: ``$DRESSFINDER_FASHION_MNIST`` alone when set, else
    Debian's folder, then ``<cache>/fashion-mnist``."""
    override = Settings.from_env().fashion_mnist
    if override:
        return [Path(override)]
    return [DEBIAN_DIR, cache_dir() / "fashion-mnist"]


def dataset_dir() -> Path | None:
    """The first folder of ``dataset_dirs()`` with all four files, or None."""
    for folder in dataset_dirs():
        if all((folder / n).is_file() for pair in FILES.values() for n in pair):
            return folder
    return None


def apt_command() -> list[str] | None:
    """``apt-get`` as root, ``sudo apt-get`` otherwise (``sudo -n`` when nobody can type a
    password); None without apt-get, or without root and sudo."""
    apt = shutil.which("apt-get")
    if apt is None:
        return None
    if os.geteuid() == 0:
        return [apt]
    sudo = shutil.which("sudo")
    if sudo is None:
        return None
    return [sudo] + ([] if sys.stdin.isatty() else ["-n"]) + [apt]


def install_dataset() -> bool:
    """apt-get install the dataset package (after an apt-get update when the first try fails: a
    fresh machine has no package lists). True when apt-get says it worked."""
    cmd = apt_command()
    if cmd is None:
        return False
    print(f"demo: installing Fashion-MNIST: {' '.join(cmd)} install {APT_PACKAGE}", file=sys.stderr, flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    install = cmd + ["install", "-y", "-q", "--no-install-recommends", APT_PACKAGE]

    def ok(args: list[str]) -> bool:
        try:
            return subprocess.run(args, env=env, stdin=subprocess.DEVNULL if "-n" in cmd else None,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0
        except OSError:
            return False

    return ok(install) or (ok(cmd + ["update", "-q"]) and ok(install))


def missing_dataset_message() -> str:
    """One line: where we looked, and exactly what to run."""
    where = ", ".join(str(d) for d in dataset_dirs())
    if Settings.from_env().fashion_mnist or shutil.which("apt-get") is None:
        todo = (f"put the four Fashion-MNIST files ({', '.join(n for p in FILES.values() for n in p)}) "
                f"in {dataset_dirs()[0]}, or set {DATASET_ENV} to their folder")
    else:
        sudo = "" if os.geteuid() == 0 else "sudo "
        todo = f"run: {sudo}apt-get update && {sudo}apt-get install -y {APT_PACKAGE}"
    return f"Fashion-MNIST not found in {where}; {todo}, then run the demo again"


def ensure_dataset(install: bool = False) -> Path:
    """The folder with Fashion-MNIST, installing Debian's package first when ``install`` allows it."""
    folder = dataset_dir()
    if folder is None and install and install_dataset():
        folder = dataset_dir()
    if folder is None:
        raise DressfinderError(missing_dataset_message())
    return folder


def _find(name: str) -> Path:
    return ensure_dataset() / name


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
    ap.add_argument("--get-dataset", action="store_true",
                    help=f"apt-get install {APT_PACKAGE} when Fashion-MNIST is missing (as root or with sudo)")
    ap.add_argument("--dataset-only", action="store_true", help="only make sure Fashion-MNIST is there")
    a = ap.parse_args(argv)
    from .store import Store

    try:
        folder = ensure_dataset(install=a.get_dataset)
        if a.dataset_only:
            print(f"Fashion-MNIST is in {folder}")
            return 0
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
