"""What a scrape leaves in DIR: verified images under ``images/`` and ``catalog.csv``.

Both are written atomically (temporary file + ``os.replace``): an interrupted scrape never
leaves a truncated CSV or half an image.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import tempfile
from pathlib import Path

from ..errors import ImageTooLarge, NotAnImage
from ..images import EXTENSIONS, load_image, sniff_format

CATALOG_FILE = "catalog.csv"
IMAGES_DIR = "images"
#: The catalogue columns ``read_catalog`` knows, then extras it keeps as-is.
COLUMNS = ("id", "image", "title", "price", "currency", "url", "shop", "category", "scraped_at",
           "brand", "availability", "image_url", "more_images", "source")


def atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def verify_image(data: bytes, max_pixels: int | None) -> str:
    """The file extension for image bytes that decode fully; raises a reason string.

    Never trusts the Content-Type or the URL's extension: the bytes must be a supported
    raster image that Pillow decodes completely (no truncation) within ``max_pixels``.
    """
    try:
        fmt = sniff_format(data)
        load_image(data, max_pixels=max_pixels)
    except ImageTooLarge:
        raise ValueError("too many pixels") from None
    except NotAnImage:
        raise ValueError("not an image") from None
    except Exception:  # hostile bytes can upset a decoder in unplanned ways
        raise ValueError("not an image") from None
    return EXTENSIONS[fmt]


def save_image(out_dir: Path, data: bytes, ext: str) -> tuple[str, str]:
    """Store image bytes under ``images/`` named by their hash; (relative path, sha256)."""
    sha = hashlib.sha256(data).hexdigest()
    rel = f"{IMAGES_DIR}/{sha[:20]}{ext}"
    path = out_dir / rel
    if not (path.is_file() and path.stat().st_size == len(data)):
        atomic_write(path, data)
    return rel, sha


def _price(value) -> str:
    if value is None:
        return ""
    return repr(float(value))


def write_catalog(out_dir: Path, rows: list[dict], shop_name: str | None = None) -> Path:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        images = r.get("images") or []
        w.writerow({
            "id": r["id"], "image": r["image"], "title": r.get("title") or "",
            "price": _price(r.get("price")), "currency": r.get("currency") or "",
            "url": r.get("url") or "", "shop": shop_name or r.get("shop") or "",
            "category": r.get("category") or "", "scraped_at": r.get("scraped_at") or "",
            "brand": r.get("brand") or "", "availability": r.get("availability") or "",
            "image_url": r.get("image_url") or "",
            "more_images": " ".join(u for u in images if u != r.get("image_url")),
            "source": r.get("source") or "",
        })
    path = Path(out_dir) / CATALOG_FILE
    atomic_write(path, buf.getvalue().encode("utf-8"))
    return path
