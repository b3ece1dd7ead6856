"""Shared helpers for the web tests: a small generated catalogue and store, image bytes of many
kinds, and a real uvicorn server in a background thread.

Imported by test_web_api.py, test_web_pages.py, test_security.py and test_browser.py (fixtures
live here, not in conftest.py, which belongs to the whole suite).
"""

from __future__ import annotations

import csv
import io
import shutil
import socket
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest
import numpy as np
from PIL import Image, ImageDraw, ImageFilter

N_PRODUCTS = 16
STORES = ("Maison A", "Boutique B")
CATEGORIES = ("maxi", "mini")
_BUILT: dict[str, Path] = {}


def dress_image(i: int, size: tuple[int, int] = (200, 300), background=(255, 255, 255)) -> Image.Image:
    """A simple, distinct 'dress' (a coloured A-line with a pattern) per index."""
    w, h = size
    im = Image.new("RGB", size, background)
    d = ImageDraw.Draw(im)
    color = ((i * 67 + 40) % 256, (i * 131 + 90) % 256, (i * 29 + 160) % 256)
    flare = 0.18 + 0.03 * (i % 6)
    d.polygon([(w * 0.38, h * 0.08), (w * 0.62, h * 0.08), (w * (0.5 + flare * 2), h * 0.93),
               (w * (0.5 - flare * 2), h * 0.93)], fill=color)
    stripe = tuple(255 - c for c in color)
    for k in range(i % 5 + 1):
        y = h * (0.25 + 0.12 * k)
        d.line([(w * 0.25, y), (w * 0.75, y)], fill=stripe, width=3 + i % 4)
    if i % 3 == 0:
        d.ellipse([w * 0.42, h * 0.12, w * 0.58, h * 0.2], fill=stripe)
    return im


def encode(im: Image.Image, fmt: str = "JPEG", **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def scene_with_dress(i: int) -> Image.Image:
    """A 'street photo': dress ``i`` small in the middle-right of a busy scene."""
    scene = Image.new("RGB", (800, 600), (90, 120, 90))
    d = ImageDraw.Draw(scene)
    for k in range(12):
        d.rectangle([k * 70, 0, k * 70 + 35, 600], fill=((k * 40) % 256, 60, (255 - k * 20) % 256))
    d.ellipse([40, 300, 300, 560], fill=(200, 40, 40))
    scene.paste(dress_image(i, (160, 240)), (520, 200))
    return scene


SCENE_CROP = (520 / 800, 200 / 600, 680 / 800, 440 / 600)


def room(size: tuple[int, int], seed: int) -> Image.Image:
    """A busy background, no layout (blurred noise blobs and lines; as tests/test_boxhead.py's)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (size[1] // 40, size[0] // 40, 3)).astype(np.uint8)
    im = Image.fromarray(small).resize(size, Image.Resampling.BICUBIC)
    d = ImageDraw.Draw(im)
    for _ in range(20):
        x, y = rng.integers(0, size[0]), rng.integers(0, size[1])
        d.line([x, y, x + rng.integers(-300, 300), y + rng.integers(-300, 300)],
               fill=tuple(int(v) for v in rng.integers(0, 256, 3)), width=int(rng.integers(3, 12)))
    return im.filter(ImageFilter.GaussianBlur(1.5))


def unknown_dress(seed: int, size: tuple[int, int]) -> Image.Image:
    """A product photo of a dress the test catalogue does not hold: a dress shape with a print on a
    light backdrop (as tests/test_boxhead.py's ``dress_photo``)."""
    rng = np.random.default_rng(seed)
    w, h = size
    im = Image.new("RGB", size, tuple(int(v) for v in rng.integers(215, 250, 3)))
    d = ImageDraw.Draw(im)
    d.polygon([(w * 0.38, h * 0.08), (w * 0.62, h * 0.08), (w * 0.66, h * 0.4), (w * 0.88, h * 0.94),
               (w * 0.12, h * 0.94), (w * 0.34, h * 0.4)], fill=tuple(int(v) for v in rng.integers(20, 200, 3)))
    for _ in range(40):
        x, y = rng.uniform(0.3, 0.7) * w, rng.uniform(0.2, 0.9) * h
        d.ellipse([x, y, x + w * 0.04, y + w * 0.04], fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
    return im


def two_dress_scene(left: Image.Image | None = None, right: Image.Image | None = None, *, seed: int = 6,
                    size: tuple[int, int] = (1200, 800), height: int = 360) -> tuple[Image.Image, list[tuple[float, ...]]]:
    """Two dress photos side by side in a busy room (no flat layout: the box head's case), each
    ``height`` pixels high: by default catalogue dress ``3 + seed`` on the left and a dress the
    catalogue does not hold on the right. Returns the picture and the two photos' boxes (fractions)."""
    w, h = size
    pic = room(size, seed)
    left = left if left is not None else dress_image(3 + seed, (height * 2 // 3, height))
    right = right if right is not None else unknown_dress(seed + 50, (height * 3 // 4, height))
    boxes = []
    for x, im in ((160, left), (w - 160 - right.width, right)):
        y = (h - im.height) // 2
        pic.paste(im, (x, y))
        boxes.append((x / w, y / h, (x + im.width) / w, (y + im.height) / h))
    return pic, boxes


def make_catalog(folder: Path, n: int = N_PRODUCTS) -> Path:
    folder = Path(folder)
    (folder / "img").mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        name = f"img/dress-{i:02d}.jpg" if i % 4 else f"img/dress-{i:02d}.png"
        im = dress_image(i)
        im.save(folder / name, quality=92) if name.endswith(".jpg") else im.save(folder / name)
        rows.append({"id": f"shop/dress-{i:02d}" if i % 2 else f"dress-{i:02d}", "image": name,
                     "title": f"Dress number {i}", "price": f"{19 + i * 5}.90" if i != 5 else "",
                     "currency": "USD", "url": f"https://shop.example/p/{i}" if i != 3 else "javascript:alert(1)",
                     "store": STORES[i % 2], "category": CATEGORIES[i // (n // 2)]})
    path = folder / "catalog.csv"
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


def product_id(i: int) -> str:
    return f"shop/dress-{i:02d}" if i % 2 else f"dress-{i:02d}"


OUT_OF_STOCK = {1, 4, 7, 10, 13}          # products stock_catalog says are out of stock


def stock_catalog(folder: Path) -> Path:
    """The catalogue above with an availability column: some out of stock, in the spellings feeds use."""
    path = make_catalog(folder)
    rows = list(csv.DictReader(open(path)))
    spellings = ["OutOfStock", "https://schema.org/SoldOut", "out_of_stock", "Discontinued", "out of stock"]
    for i, row in enumerate(rows):
        row["availability"] = spellings[i % 5] if i in OUT_OF_STOCK else ("InStock" if i % 2 else "")
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


def build_stock_store(root: Path) -> Path:
    """A store of :func:`stock_catalog` under ``root`` (writable: the embed block's events go there)."""
    from dressfinder.store import Store

    Store.build(stock_catalog(root / "catalog"), root / "store", encoder="effnet-lite0", progress=False)
    return root / "store"


def build_web_store() -> Path:
    """Build the test store once per test process (read-only use; copy it to change it)."""
    if "store" not in _BUILT:
        from dressfinder.store import Store

        root = Path(tempfile.mkdtemp(prefix="dressfinder-webtest-"))
        csv_path = make_catalog(root / "catalog")
        Store.build(csv_path, root / "store", encoder="effnet-lite0", progress=False)
        _BUILT["store"] = root / "store"
        _BUILT["root"] = root
        import atexit

        atexit.register(shutil.rmtree, root, True)
    return _BUILT["store"]


@pytest.fixture(scope="session")
def web_store() -> Path:
    return build_web_store()


@pytest.fixture
def web_store_copy(web_store: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "store"
    shutil.copytree(web_store, dest)
    return dest


def make_app(store_path, **settings):
    from dressfinder.settings import Settings
    from dressfinder.web import create_app

    base = dict(reload_interval=0)
    base.update(settings)
    return create_app(str(store_path), Settings(**base))


# --------------------------------------------------------------------------- a real server

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve(app, port: int | None = None) -> Iterator[str]:
    """Run ``app`` with uvicorn on 127.0.0.1 in a background thread; yields its base URL."""
    import uvicorn

    port = port or free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
