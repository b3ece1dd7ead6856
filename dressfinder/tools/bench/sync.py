"""The bench's ``sync`` section: how long keeping a store in step with a feed takes, against
building it. A generated catalogue of ``n`` products is built into a store (the full build's time),
then ``changed`` of its prices are changed and the store synced to it (``Store.sync``: a metadata
update, nothing re-encoded). Reported: both times and their ratio, on the same host, one after
the other."""

from __future__ import annotations

import csv
import time
from pathlib import Path
from typing import Any

import numpy as np


def write_catalogue(folder: Path, n: int, *, seed: int = 0, changed: set[int] = frozenset(),
                    name: str = "catalog.csv") -> Path:
    """``n`` products, each its own small generated picture (written once), a CSV of them;
    the products in ``changed`` with another price."""
    from PIL import Image

    img = folder / "images"
    img.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        path = img / f"{i // 1000:03d}" / f"p{i:06d}.png"
        if not path.exists():
            path.parent.mkdir(exist_ok=True)
            blocks = rng.integers(0, 256, size=(6, 4, 3), dtype=np.uint8)   # a 4x6 pattern, its own
            Image.fromarray(blocks).resize((64, 96), Image.NEAREST).save(path)
        price = 20 + i % 80 + (0.5 if i in changed else 0.0)
        rows.append({"id": f"p-{i:06d}", "image": str(path.relative_to(folder)), "title": f"Dress {i}",
                     "price": f"{price:.2f}", "currency": "EUR", "availability": "in_stock"})
    with open(folder / name, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return folder / name


def bench_sync(root: Path, *, n: int = 10_000, changed: float = 0.01, encoder: Any = None,
               workers: int | None = None, entry: dict | None = None) -> dict[str, Any]:
    """Build a store of ``n`` generated products under ``root``, change ``changed`` (a fraction) of
    their prices, sync: the times and ``sync_over_build``. ``encoder``: a name or an Encoder
    (default: the default encoder)."""
    from ...store import Store

    entry = {} if entry is None else entry
    folder = root / "catalogue"
    write_catalogue(folder, n)
    t0 = time.perf_counter()
    store = Store.build(folder / "catalog.csv", root / "store", encoder=encoder, index="auto", progress=False,
                        workers=workers)
    build = time.perf_counter() - t0
    m = max(1, int(round(n * changed)))
    picked = set(np.random.default_rng(1).choice(n, size=m, replace=False).tolist())
    tomorrow = write_catalogue(folder, n, changed=picked, name="tomorrow.csv")
    t0 = time.perf_counter()
    rep = store.sync(tomorrow)
    sync = time.perf_counter() - t0
    entry.update({"products": n, "prices_changed": m, "encoder": store.manifest["encoder"]["name"],
                  "build_seconds": round(build, 3), "sync_seconds": round(sync, 3),
                  "sync_over_build": round(sync / build, 4) if build > 0 else None,
                  "updated": rep.updated, "encoded": rep.encoded, "generation": store.generation})
    return entry
