"""A stand-in encoder and a generated shop catalogue for the tests of several pictures, variants,
stock and `dressfinder sync` (tests/test_sync.py; the kill -9 test's child process imports it too).

``ColourEncoder`` (registered as ``test-colour``) is the mean colour of 4x4 cells: every generated
picture gets its own vector in milliseconds, so a store of a few hundred pictures builds at once and
a child process can rebuild the encoder from the store's manifest. It counts the pictures it
encodes (``ColourEncoder.encoded``), across instances, so a test can tell what was re-encoded."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from dressfinder.encoders import Encoder, l2_normalize
from dressfinder.encoders.base import register

from conftest import dress_image


class ColourEncoder(Encoder):
    name, version, dim, metric, input_size, batch_size = "test-colour", "1", 48, "ip", 32, 16
    encoded = 0          # pictures encoded by every instance (class-wide), for the tests' counts

    def __init__(self, precision: str | None = None, **_):
        pass

    def preprocess(self, im):
        return np.asarray(im.convert("RGB").resize((4, 4)), np.float32).reshape(-1) / 255.0

    def encode_arrays(self, batch):
        type(self).encoded += len(batch)
        return l2_normalize(np.asarray(batch, np.float32) - 0.5)


register("test-colour")(ColourEncoder)

FIELDS = ["id", "image", "more_images", "title", "price", "currency", "availability", "item_group_id", "size",
          "brand", "url"]


def picture(i: int, view: int = 0) -> "Image":
    """Product ``i``'s picture number ``view`` (0 the front; 1, 2... other views: other pictures)."""
    return dress_image(i + 7919 * view)


def write_shop(folder: Path, n: int = 40, *, views: int = 2, groups: dict[int, int] | None = None,
               sold_out: set[int] = frozenset(), name: str = "catalog.csv",
               overrides: dict[str, dict] | None = None, skip: set[int] = frozenset()) -> Path:
    """A shop's catalogue: ``n`` products ``p-000``..., each with a front picture and ``views - 1``
    more (``more_images``); ``groups``: product index -> how many size variants it comes in (rows
    ``p-007-S1``... sharing ``item_group_id`` ``g-007`` and the pictures); ``sold_out``: product
    indexes out of stock; ``overrides``: id -> fields to change; ``skip``: indexes left out. Returns the CSV."""
    img = folder / "images"
    img.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        if i in skip:
            continue
        files = []
        for v in range(views):
            path = img / f"p{i:03d}-{v}.png"
            if not path.exists():
                picture(i, v).save(path)
            files.append(f"images/{path.name}")
        base = {"image": files[0], "more_images": " ".join(files[1:]), "title": f"Dress {i}",
                "price": f"{20 + i:.2f}", "currency": "EUR",
                "availability": "out_of_stock" if i in sold_out else "in_stock", "brand": "Maison",
                "url": f"https://shop.example/p/{i}"}
        count = (groups or {}).get(i, 0)
        if count:
            for s in range(count):
                rows.append({**base, "id": f"p-{i:03d}-S{s + 1}", "item_group_id": f"g-{i:03d}", "size": f"S{s + 1}"})
        else:
            rows.append({**base, "id": f"p-{i:03d}", "item_group_id": "", "size": ""})
    for r in rows:
        r.update((overrides or {}).get(r["id"], {}))
    with open(folder / name, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS)
        w.writeheader()
        w.writerows(rows)
    return folder / name
