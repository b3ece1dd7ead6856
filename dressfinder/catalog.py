"""Catalogue: product records, reading a folder or a CSV, and the SQLite table a store keeps.

A catalogue is either

* a **folder**, searched recursively for .jpg .jpeg .png .webp; a product's id is its path
  relative to the folder, POSIX style (``f21-dresses/images/00319753-03.jpg``); or
* a **CSV** with at least ``id,image`` (image relative to the CSV's folder, or absolute) and
  optional ``title,price,currency,url,store,category``. Common synonyms are understood
  (``product_id``, ``product_url``, ``link``, ``name``...), other columns are kept as extras.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import re
import sqlite3
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from .errors import CatalogError
from .images import IMAGE_EXTENSIONS

log = logging.getLogger(__name__)

FIELDS = ("id", "image", "title", "price", "currency", "url", "store", "category")
ALIASES = {
    "product_id": "id", "sku": "id", "item_id": "id",
    "image_path": "image", "image_file": "image", "img": "image", "file": "image",
    "name": "title", "product_name": "title",
    "product_url": "url", "link": "url", "href": "url",
    "brand_store": "store", "shop": "store", "retailer": "store",
}
CURRENCY_SYMBOLS = {"$": "USD", "€": "EUR", "£": "GBP", "¥": "JPY", "₹": "INR"}
MAX_ID_LENGTH = 512


@dataclass
class Product:
    id: str
    image: str = ""                 # where the picture came from (path as resolved when indexed)
    title: str | None = None
    price: float | None = None
    currency: str | None = None
    url: str | None = None
    store: str | None = None
    category: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if not d["extra"]:
            d.pop("extra")
        return d


# File and folder names that say nothing about the product ("img_00051.jpg", "images/").
_GENERIC_NAMES = frozenset({"img", "image", "images", "imgs", "photo", "photos", "pic", "pics", "picture",
                            "pictures", "dsc", "dscn", "dscf", "scan", "file", "files", "copy", "data",
                            "catalog", "catalogue", "products", "product", "dress", "dresses", "item", "items"})


def _name_words(name: str) -> str | None:
    """'Watercolor_Ikat_High-Low_Dress' -> 'Watercolor Ikat High-Low Dress'; 'blue_summer-dress_01'
    -> 'Blue Summer Dress'; None for a name that says nothing ('img_00000051', 'images')."""
    lowered = name == name.lower()
    seps = r"[_\s.+]+" if not lowered else r"[_\s.+\-]+"   # a cased name keeps its hyphens (High-Low)
    words = [w for w in re.split(seps, name) if w and not re.fullmatch(r"[\d\-]+", w)]
    if not words or all(w.lower() in _GENERIC_NAMES for w in words):
        return None
    return " ".join(w[:1].upper() + w[1:] if lowered else w for w in words)


def display_title(p: "Product") -> str:
    """The title to show: the product's own, else one read from its file or folder name
    (``deepfashion-dresses/Watercolor_Ikat_High-Low_Dress/img_00000051.jpg`` -> "Watercolor Ikat
    High-Low Dress") when the id is a file path (a catalogue folder's), else its id."""
    if p.title:
        return p.title
    path = p.id or ""
    if "/" not in path and not path.lower().endswith(IMAGE_EXTENSIONS):
        return path  # an id of the shop's own (a SKU): shown as it is
    parts = [x for x in path.split("/") if x]
    if parts:
        parts[-1] = re.sub(r"\.[A-Za-z0-9]{2,5}$", "", parts[-1])   # the file's extension
    for part in reversed(parts):
        words = _name_words(part)
        if words:
            return words
    return p.id


def parse_price(raw: Any) -> tuple[float | None, str | None]:
    """'$19.90' -> (19.9, 'USD'); '1.299,00 €' -> (1299.0, 'EUR'); '' -> (None, None)."""
    if raw is None:
        return None, None
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        return (float(raw), None) if math.isfinite(raw) and raw >= 0 else (None, None)
    text = str(raw).strip()
    if not text:
        return None, None
    currency = next((code for sym, code in CURRENCY_SYMBOLS.items() if sym in text), None)
    m = re.search(r"\b([A-Z]{3})\b", text)
    if currency is None and m:
        currency = m.group(1)
    num = re.search(r"\d[\d.,\s]*", text)
    if not num:
        return None, currency
    digits = re.sub(r"\s", "", num.group(0)).rstrip(".,")
    if "," in digits and "." in digits:  # the last separator is the decimal one
        if digits.rfind(",") > digits.rfind("."):
            digits = digits.replace(".", "").replace(",", ".")
        else:
            digits = digits.replace(",", "")
    elif "," in digits:
        head, _, tail = digits.rpartition(",")
        digits = head.replace(",", "") + ("." + tail if len(tail) != 3 else tail)
    try:
        value = float(digits)
    except ValueError:
        return None, currency
    return (value if math.isfinite(value) else None), currency


def _clean(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


@dataclass
class CatalogReadReport:
    products: list[Product]
    skipped: list[tuple[str, str]]  # (row or path, reason)


def read_folder(folder: Path) -> CatalogReadReport:
    folder = Path(folder)
    products = []
    for path in sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()):
        pid = path.relative_to(folder).as_posix()
        products.append(Product(id=pid, image=str(path.resolve())))
    return CatalogReadReport(products, [])


def read_csv(path: Path) -> CatalogReadReport:
    path = Path(path)
    base = path.resolve().parent
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            sample = f.read(65536)
            f.seek(0)
            try:
                dialect = csv.Sniffer().sniff(sample, delimiters=",;\t")
            except csv.Error:
                dialect = csv.excel
            reader = csv.DictReader(f, dialect=dialect)
            raw_columns = reader.fieldnames or []
            columns = {}
            for col in raw_columns:
                key = (col or "").strip().lower()
                columns[col] = key if key in FIELDS else ALIASES.get(key, key)
            mapped = set(columns.values())
            missing = [c for c in ("id", "image") if c not in mapped]
            if missing:
                raise CatalogError(f"{path}: CSV needs columns id,image; missing {','.join(missing)}"
                                   f" (found: {','.join(raw_columns) or 'none'})")
            products: list[Product] = []
            skipped: list[tuple[str, str]] = []
            seen: set[str] = set()
            for lineno, row in enumerate(reader, start=2):
                rec: dict[str, Any] = {}
                extra: dict[str, Any] = {}
                for col, value in row.items():
                    if col is None:
                        continue
                    key = columns.get(col, col)
                    if key in FIELDS and key not in rec:
                        rec[key] = value
                    elif value not in (None, ""):
                        extra[col] = value
                pid, image = _clean(rec.get("id")), _clean(rec.get("image"))
                where = f"{path.name}:{lineno}"
                if not pid:
                    skipped.append((where, "no id"))
                    continue
                if len(pid) > MAX_ID_LENGTH:
                    skipped.append((where, "id longer than 512 characters"))
                    continue
                if pid in seen:
                    skipped.append((where, f"duplicate id {pid!r}"))
                    continue
                if not image:
                    skipped.append((where, "no image"))
                    continue
                if re.match(r"^[a-z][a-z0-9+.-]*://", image, re.I):
                    skipped.append((where, "image is a URL; download it first (dressfinder scrape does)"))
                    continue
                img_path = Path(image)
                if not img_path.is_absolute():
                    img_path = base / img_path
                price, cur = parse_price(rec.get("price"))
                seen.add(pid)
                products.append(Product(
                    id=pid, image=str(img_path), title=_clean(rec.get("title")), price=price,
                    currency=_clean(rec.get("currency")) or cur, url=_clean(rec.get("url")),
                    store=_clean(rec.get("store")), category=_clean(rec.get("category")), extra=extra))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise CatalogError(f"cannot read catalogue CSV {path}: {e}") from None
    return CatalogReadReport(products, skipped)


def read_catalog(source: str | Path) -> CatalogReadReport:
    """Read a catalogue folder or CSV file into product records (images are not decoded here)."""
    path = Path(source)
    if path.is_dir():
        report = read_folder(path)
    elif path.is_file():
        if path.suffix.lower() not in (".csv", ".tsv", ".txt"):
            raise CatalogError(f"{path}: a catalogue is a folder of images or a .csv file")
        report = read_csv(path)
    else:
        raise CatalogError(f"no such catalogue folder or CSV: {path}")
    for where, reason in report.skipped:
        log.warning("skipped %s: %s", where, reason)
    return report


def products_from(catalog: str | Path | Sequence["Product"]) -> tuple[list["Product"], list[tuple[str, str]], str]:
    """What a build or an add takes: a catalogue folder or CSV (read with ``read_catalog``), or
    products already made in Python -> (products, skipped rows with reasons, where they came from)."""
    if isinstance(catalog, (str, os.PathLike)):
        read = read_catalog(catalog)
        return read.products, list(read.skipped), str(Path(catalog).resolve())
    return list(catalog), [], "python"


# --------------------------------------------------------------------------- SQLite table

SCHEMA = """
CREATE TABLE IF NOT EXISTS products (
    row      INTEGER PRIMARY KEY,   -- row of the product's vector
    id       TEXT NOT NULL UNIQUE,
    image    TEXT,                  -- source path or URL the picture came from
    file     TEXT,                  -- file name under the store's images/ folder
    title    TEXT,
    price    REAL,
    currency TEXT,
    url      TEXT,
    store    TEXT,
    category TEXT,
    extra    TEXT
);
CREATE INDEX IF NOT EXISTS products_price ON products(price);
CREATE INDEX IF NOT EXISTS products_store ON products(store);
CREATE INDEX IF NOT EXISTS products_category ON products(category);
"""
_COLUMNS = ("row", "id", "image", "file", "title", "price", "currency", "url", "store", "category", "extra")


@dataclass
class Filters:
    """Metadata filters applied to a search (all optional, combined with AND)."""

    min_price: float | None = None
    max_price: float | None = None
    store: str | None = None
    category: str | None = None

    def is_empty(self) -> bool:
        return all(v is None for v in (self.min_price, self.max_price, self.store, self.category))

    def sql(self) -> tuple[str, list[Any]]:
        clauses, args = [], []
        if self.min_price is not None:
            clauses.append("price >= ?")
            args.append(float(self.min_price))
        if self.max_price is not None:
            clauses.append("price <= ?")
            args.append(float(self.max_price))
        if self.store is not None:
            clauses.append("store = ? COLLATE NOCASE")
            args.append(self.store)
        if self.category is not None:
            clauses.append("category = ? COLLATE NOCASE")
            args.append(self.category)
        return (" AND ".join(clauses) or "1"), args


class CatalogDB:
    """The products table of a store. Rows are the vectors' row numbers."""

    def __init__(self, path: str | Path, *, readonly: bool = False):
        self.path = Path(path)
        if readonly:
            uri = f"file:{self.path}?mode=ro"
            self.conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
        else:
            self.conn = sqlite3.connect(self.path, check_same_thread=False)
            self.conn.executescript(SCHEMA)
        self.conn.row_factory = sqlite3.Row

    def close(self) -> None:
        self.conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @staticmethod
    def _product(r: sqlite3.Row) -> Product:
        extra = json.loads(r["extra"]) if r["extra"] else {}
        return Product(id=r["id"], image=r["image"] or "", title=r["title"], price=r["price"],
                       currency=r["currency"], url=r["url"], store=r["store"], category=r["category"],
                       extra=extra)

    def insert(self, items: Iterable[tuple[int, Product, str | None]]) -> int:
        """Insert (row, product, stored file name) records in one transaction."""
        n = 0
        with self.conn:
            for row, p, file in items:
                self.conn.execute(
                    "INSERT INTO products (row, id, image, file, title, price, currency, url, store, category, extra)"
                    " VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                    (int(row), p.id, p.image, file, p.title, p.price, p.currency, p.url, p.store, p.category,
                     json.dumps(p.extra, ensure_ascii=False) if p.extra else None))
                n += 1
        return n

    def delete(self, ids: Sequence[str]) -> list[int]:
        """Delete products by id; returns the rows they had."""
        rows = []
        with self.conn:
            for pid in ids:
                r = self.conn.execute("SELECT row FROM products WHERE id = ?", (pid,)).fetchone()
                if r is not None:
                    rows.append(int(r[0]))
                    self.conn.execute("DELETE FROM products WHERE id = ?", (pid,))
        return rows

    def count(self) -> int:
        return int(self.conn.execute("SELECT COUNT(*) FROM products").fetchone()[0])

    def max_row(self) -> int:
        r = self.conn.execute("SELECT MAX(row) FROM products").fetchone()[0]
        return -1 if r is None else int(r)

    def get(self, pid: str) -> tuple[int, Product, str | None] | None:
        r = self.conn.execute("SELECT * FROM products WHERE id = ?", (pid,)).fetchone()
        return None if r is None else (int(r["row"]), self._product(r), r["file"])

    def by_rows(self, rows: Sequence[int]) -> dict[int, tuple[Product, str | None]]:
        out: dict[int, tuple[Product, str | None]] = {}
        rows = [int(r) for r in rows]
        for i in range(0, len(rows), 500):
            chunk = rows[i:i + 500]
            q = f"SELECT * FROM products WHERE row IN ({','.join('?' * len(chunk))})"
            for r in self.conn.execute(q, chunk):
                out[int(r["row"])] = (self._product(r), r["file"])
        return out

    def rows(self, filters: Filters | None = None) -> np.ndarray:
        where, args = (filters or Filters()).sql()
        cur = self.conn.execute(f"SELECT row FROM products WHERE {where} ORDER BY row", args)
        return np.fromiter((r[0] for r in cur), dtype=np.int64)

    def ids(self) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT id FROM products ORDER BY row")]

    def iter_products(self) -> Iterator[tuple[int, Product, str | None]]:
        for r in self.conn.execute("SELECT * FROM products ORDER BY row"):
            yield int(r["row"]), self._product(r), r["file"]

    def facets(self) -> dict[str, list[str]]:
        out = {}
        for col in ("store", "category"):
            out[col] = [r[0] for r in self.conn.execute(
                f"SELECT DISTINCT {col} FROM products WHERE {col} IS NOT NULL ORDER BY {col}")]
        return out

    def backup_to(self, path: str | Path) -> None:
        dest = sqlite3.connect(path)
        try:
            self.conn.backup(dest)
        finally:
            dest.close()
