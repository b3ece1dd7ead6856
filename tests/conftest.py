"""Shared fixtures: small generated catalogues (no data files in the repo) and a built store."""

from __future__ import annotations

import csv
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = (REPO.parent / "shared" / "data").resolve()

os.environ.setdefault("KERAS_BACKEND", "torch")


def shared_data() -> Path:
    """../shared/data, or skip the test when this machine does not have it."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not here")
    return SHARED_DATA


# ------------------------------------------------------------------ what a test needs from the machine

CHROMIUM = os.environ.get("DRESSFINDER_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"


def in_ci() -> bool:
    """CI sets CI=true: there every browser and demo test must run (.ci/run installs what they need)."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def unavailable(what: str, enable: str):
    """A test this machine cannot run: skipped, saying how to enable it; a failure under CI=true,
    so a CI run can never be green with its browser or demo tests quietly skipped."""
    if in_ci():
        pytest.fail(f"CI=true, but {what} (CI must {enable})", pytrace=False)
    pytest.skip(f"{what} (to run it: {enable})")


def playwright_api():
    """Playwright's sync API and Debian's Chromium beside it, or :func:`unavailable`."""
    try:
        from playwright import sync_api
    except ImportError:
        unavailable("the playwright package is not installed", "make install")
    if not Path(CHROMIUM).exists():
        unavailable(f"no chromium at {CHROMIUM}", "apt-get install chromium")
    return sync_api


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_terminal_summary(terminalreporter):
    """After pytest's own summary (its -ra lists each test), one line naming what was skipped and
    how to enable it."""
    yield
    skipped = terminalreporter.stats.get("skipped", [])
    reasons: dict[str, int] = {}
    for rep in skipped:
        reason = rep.longrepr[2] if isinstance(rep.longrepr, tuple) else str(rep.longrepr)
        reason = reason.removeprefix("Skipped: ")
        reasons[reason] = reasons.get(reason, 0) + 1
    if reasons:
        terminalreporter.write_line(f"skipped {len(skipped)}: " + "; ".join(
            f"{n} x {r}" for r, n in sorted(reasons.items(), key=lambda kv: -kv[1])))


PALETTE = [(200, 30, 40), (30, 90, 200), (20, 150, 60), (240, 200, 40), (120, 40, 160), (250, 120, 170),
           (20, 20, 20), (140, 90, 50), (0, 170, 170), (250, 140, 0), (100, 100, 100), (180, 220, 255)]


def dress_image(i: int, size: tuple[int, int] = (160, 240)) -> Image.Image:
    """A synthetic 'dress': a silhouette with a colour and a pattern that depend on ``i``."""
    rng = np.random.default_rng(i)
    w, h = size
    im = Image.new("RGB", size, (255, 255, 255))
    d = ImageDraw.Draw(im)
    colour = PALETTE[i % len(PALETTE)]
    waist = int(h * (0.3 + 0.1 * rng.random()))
    hem = int(w * (0.3 + 0.2 * rng.random()))
    d.polygon([(w * 0.35, h * 0.05), (w * 0.65, h * 0.05), (w * 0.6, waist), (w / 2 + hem, h * 0.95),
               (w / 2 - hem, h * 0.95), (w * 0.4, waist)], fill=colour)
    pattern = (i // len(PALETTE)) % 4
    accent = tuple(255 - c for c in colour)
    if pattern == 1:
        for y in range(waist, int(h * 0.95), 12):
            d.line([(0, y), (w, y)], fill=accent, width=3)
    elif pattern == 2:
        for _ in range(25):
            x, y = rng.integers(0, w), rng.integers(waist, h)
            d.ellipse([x - 4, y - 4, x + 4, y + 4], fill=accent)
    elif pattern == 3:
        d.rectangle([w * 0.3, waist - 6, w * 0.7, waist + 6], fill=accent)
    return im


def write_catalog(folder: Path, n: int = 24, *, broken: int = 0, fmt: str = "JPEG",
                  with_csv: bool = True) -> Path:
    """Write ``n`` generated dress images (+ ``broken`` corrupt files) and a catalog.csv."""
    img_dir = folder / "images"
    img_dir.mkdir(parents=True, exist_ok=True)
    ext = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}[fmt]
    rows = []
    for i in range(n):
        name = f"dress-{i:03d}.{ext}"
        dress_image(i).save(img_dir / name, fmt, **({"quality": 92} if fmt == "JPEG" else {}))
        rows.append({"id": f"sku-{i:03d}", "image": f"images/{name}", "title": f"Dress {i}",
                     "price": f"{10 + i * 2.5:.2f}", "currency": "EUR", "url": f"https://shop.example/p/{i}",
                     "store": "shop-a" if i % 2 == 0 else "shop-b", "category": "maxi" if i % 3 == 0 else "mini"})
    for j in range(broken):
        name = f"broken-{j}.jpg"
        (img_dir / name).write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
        rows.append({"id": f"broken-{j}", "image": f"images/{name}", "title": "Broken", "price": "",
                     "currency": "", "url": "", "store": "", "category": ""})
    if with_csv:
        with open(folder / "catalog.csv", "w", newline="") as f:
            wr = csv.DictWriter(f, fieldnames=list(rows[0]))
            wr.writeheader()
            wr.writerows(rows)
    return folder / "catalog.csv"


def write_catalog_with_duplicates(folder: Path, n: int = 20) -> Path:
    """``n`` dresses, two byte-for-byte copies of dress 3, and dress 7's pixels saved as a PNG."""
    csv_path = write_catalog(folder, n=n)
    img = folder / "images"
    shutil.copyfile(img / "dress-003.jpg", img / "copy-a.jpg")
    shutil.copyfile(img / "dress-003.jpg", img / "copy-b.jpg")
    with Image.open(img / "dress-007.jpg") as im:
        im.convert("RGB").save(img / "same-pixels.png", "PNG")
    with open(csv_path, "a", newline="") as f:
        w = csv.writer(f)
        w.writerow(["sku-dup-a", "images/copy-a.jpg", "Copy A", "1", "EUR", "", "shop-a", "mini"])
        w.writerow(["sku-dup-b", "images/copy-b.jpg", "Copy B", "2", "EUR", "", "shop-b", "mini"])
        w.writerow(["sku-same-pixels", "images/same-pixels.png", "Same", "3", "EUR", "", "shop-a", "maxi"])
    return csv_path


@pytest.fixture(scope="session")
def catalog_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("catalog")
    write_catalog(folder, n=24, broken=1)
    return folder


@pytest.fixture(scope="session")
def built_store(tmp_path_factory, catalog_dir):
    """A store built once per session from the generated catalogue (effnet-lite0 + flat)."""
    from dressfinder.store import Store

    root = tmp_path_factory.mktemp("stores") / "base"
    Store.build(catalog_dir / "catalog.csv", root, encoder="effnet-lite0", index="flat", progress=False)
    return root


@pytest.fixture
def store_copy(built_store, tmp_path):
    """A private copy of the session store, for tests that change it."""
    dest = tmp_path / "store"
    shutil.copytree(built_store, dest)
    from dressfinder.store import Store

    return Store.open(dest)
