"""Catalogue: product records, reading a folder or a CSV, and the SQLite table a store keeps.

A catalogue is either

* a **folder**, searched recursively for .jpg .jpeg .png .webp; a product's id is its path
  relative to the folder, POSIX style (``f21-dresses/images/00319753-03.jpg``); or
* a **CSV** with at least ``id,image`` (image relative to the CSV's folder, or absolute) and
  optional ``title,price,currency,url,shop,category,availability,sale_price,brand,color,size,
  item_group_id,more_images`` (the fields of ``schema.Product``). Common synonyms are understood
  (``product_id``, ``product_url``, ``link``, ``name``, ``store`` for ``shop``, ``vendor`` for
  ``brand``...), other columns are kept as extras. ``availability`` is read as one of
  ``schema.AVAILABILITY`` (a word not understood stays in the extras); ``more_images`` lists paths
  (resolved like ``image``) or URLs, separated by spaces.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import re
import sqlite3
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from .errors import CatalogError
from .images import IMAGE_EXTENSIONS
from .prices import parse_price
from .schema import ALIASES, FACETS, FIELDS, MAX_ID_LENGTH, NAMES, Product, availability, product_from

log = logging.getLogger(__name__)

#: Rows per ``IN (...)`` query: well under SQLite's limit on bound parameters.
SQL_CHUNK = 500


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


def _column_names(path: Path, raw_columns: Sequence[str]) -> dict[str, str]:
    """CSV column -> field name (synonyms understood, other columns kept by their own name)."""
    columns = {}
    for col in raw_columns:
        key = (col or "").strip().lower()
        columns[col] = key if key in NAMES else ALIASES.get(key, key)
    missing = [c for c in ("id", "image") if c not in set(columns.values())]
    if missing:
        raise CatalogError(f"{path}: CSV needs columns id,image; missing {','.join(missing)}"
                           f" (found: {','.join(raw_columns) or 'none'})")
    return columns


def _row_product(row: dict[str, Any], columns: dict[str, str], base: Path, seen: set[str]) -> Product | str:
    """One CSV row -> a product, or the reason it is skipped."""
    rec: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for col, value in row.items():
        if col is None:
            continue
        key = columns.get(col, col)
        if key in NAMES and key not in rec:
            rec[key] = value
        elif value not in (None, ""):
            extra[col] = value
    pid, image = _clean(rec.get("id")), _clean(rec.get("image"))
    if not pid:
        return "no id"
    if len(pid) > MAX_ID_LENGTH:
        return f"id longer than {MAX_ID_LENGTH} characters"
    if pid in seen:
        return f"duplicate id {pid!r}"
    if not image:
        return "no image"
    if re.match(r"^[a-z][a-z0-9+.-]*://", image, re.I):
        return "image is a URL; download it first (dressfinder scrape does)"
    img_path = Path(image)
    if not img_path.is_absolute():
        img_path = base / img_path
    text = {name: _clean(rec.get(name)) for name in NAMES}
    price, cur = parse_price(rec.get("price"), currency=text["currency"], plain_numbers=True)
    sale, sale_cur = parse_price(rec.get("sale_price"), currency=cur or text["currency"], plain_numbers=True)
    if text["availability"] and availability(text["availability"]) is None:
        extra["availability"] = text["availability"]       # a word we do not know: kept as given
    return product_from({**text, "id": pid, "image": str(img_path), "price": price,
                         "currency": cur or text["currency"] or sale_cur, "sale_price": sale,
                         "availability": availability(text["availability"]),
                         "more_images": _resolve_images(text["more_images"], base)}, extra)


def _resolve_images(value: str | None, base: Path) -> str | None:
    """``more_images``: each relative path resolved against the CSV's folder (as ``image``); URLs kept."""
    if not value:
        return None
    out = []
    for item in value.split():
        if re.match(r"^[a-z][a-z0-9+.-]*://", item, re.I) or Path(item).is_absolute():
            out.append(item)
        else:
            out.append(str(base / item))
    return " ".join(out) or None


def read_csv(path: Path) -> CatalogReadReport:
    path = Path(path)
    products: list[Product] = []
    skipped: list[tuple[str, str]] = []
    seen: set[str] = set()
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            sample = f.read(65536)
            f.seek(0)
            try:
                dialect = csv.Sniffer().sniff(sample, delimiters=",;\t")
            except csv.Error:
                dialect = csv.excel
            reader = csv.DictReader(f, dialect=dialect)
            columns = _column_names(path, reader.fieldnames or [])
            for lineno, row in enumerate(reader, start=2):
                got = _row_product(row, columns, path.resolve().parent, seen)
                if isinstance(got, str):
                    skipped.append((f"{path.name}:{lineno}", got))
                else:
                    seen.add(got.id)
                    products.append(got)
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

def _schema_sql() -> str:
    """The products table, made from ``schema.FIELDS``: ``row`` (the vector's row), the fields,
    ``file`` (the image's name under the store's images/) and ``extra`` (JSON)."""
    cols = ["row INTEGER PRIMARY KEY"]
    for f in FIELDS:
        kind = "REAL" if f.kind is float else "TEXT"
        cols.append(f"{f.name} {kind}" + (" NOT NULL UNIQUE" if f.name == "id" else ""))
    cols += ["file TEXT", "extra TEXT"]
    indexes = [f"CREATE INDEX IF NOT EXISTS products_{n} ON products({n});" for n in ("price", "file", *FACETS)]
    return "CREATE TABLE IF NOT EXISTS products (\n    " + ",\n    ".join(cols) + "\n);\n" + "\n".join(indexes) \
        + "\n" + IMAGES_SQL


#: A product's other pictures (``more_images``), each its own vector row: ``row`` (the vector's row),
#: ``product_row`` (the product's row in ``products``, its main picture's vector), ``n`` (1 for the
#: first of ``more_images``...; the main picture is 0, the product's own row) and ``file`` (under images/).
#: Stores written before it have no such table: every row is then a product's main picture.
IMAGES_SQL = """CREATE TABLE IF NOT EXISTS images (
    row INTEGER PRIMARY KEY, product_row INTEGER NOT NULL, n INTEGER NOT NULL, file TEXT
);
CREATE INDEX IF NOT EXISTS images_product ON images(product_row);
CREATE INDEX IF NOT EXISTS images_file ON images(file);"""


SCHEMA = _schema_sql()
#: Columns renamed since stores were first written: (old, new). Read from old stores, renamed when changed.
LEGACY_COLUMNS = (("store", "shop"),)


@dataclass
class Filters:
    """Metadata filters applied to a search (all optional, combined with AND). Facets (``shop``,
    ``category``, ``availability``, ``brand``: ``schema.FACETS``) match exactly, ignoring case;
    ``shop`` was called ``store`` before."""

    min_price: float | None = None
    max_price: float | None = None
    shop: str | None = None
    category: str | None = None
    availability: str | None = None
    brand: str | None = None
    #: only products that can be bought: availability is not out_of_stock (preorder, backorder and
    #: an unknown availability can be; ``schema.availability``)
    in_stock: bool = False

    def is_empty(self) -> bool:
        return not self.in_stock and all(v is None for v in (self.min_price, self.max_price,
                                                             *self.facets().values()))

    def facets(self) -> dict[str, str | None]:
        return {name: getattr(self, name) for name in FACETS}

    def sql(self) -> tuple[str, list[Any]]:
        clauses, args = [], []
        if self.min_price is not None:
            clauses.append("price >= ?")
            args.append(float(self.min_price))
        if self.max_price is not None:
            clauses.append("price <= ?")
            args.append(float(self.max_price))
        for name, value in self.facets().items():
            if value is not None:
                clauses.append(f"{name} = ? COLLATE NOCASE")
                args.append(value)
        if self.in_stock:
            clauses.append("(availability IS NULL OR availability != 'out_of_stock' COLLATE NOCASE)")
        return (" AND ".join(clauses) or "1"), args


def chunks(seq: Sequence, n: int = SQL_CHUNK) -> Iterator[Sequence]:
    for i in range(0, len(seq), n):
        yield seq[i:i + n]


class CatalogDB:
    """The products table of a store. Rows are the vectors' row numbers. The only SQL in the package."""

    def __init__(self, path: str | Path, *, readonly: bool = False):
        self.path = Path(path)
        if readonly:
            uri = f"file:{self.path}?mode=ro"
            self.conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
        else:
            self.conn = sqlite3.connect(self.path, check_same_thread=False)
            self._upgrade()
            self.conn.executescript(SCHEMA)
        self.conn.row_factory = sqlite3.Row
        #: whether the table of products' other pictures is there (stores before it have none)
        self.has_images = self.conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'images'").fetchone() is not None
        have = {r[1] for r in self.conn.execute("PRAGMA table_info(products)")}
        renamed = {new: old for old, new in LEGACY_COLUMNS if old in have and new not in have}

        def column(n: str) -> str:
            if n in renamed:
                return f"{renamed[n]} AS {n}"
            return n if n in have or not have else f"NULL AS {n}"   # a field newer than the table
        self._select = "SELECT " + ", ".join(["row", "file", "extra"] + [column(n) for n in NAMES]) + " FROM products"

    def _upgrade(self) -> None:
        """A table copied from an older store: rename its legacy columns, add the fields declared
        since (empty)."""
        have = {r[1] for r in self.conn.execute("PRAGMA table_info(products)")}
        if not have:
            return
        with self.conn:
            for old, new in LEGACY_COLUMNS:
                if old in have and new not in have:
                    self.conn.execute(f"ALTER TABLE products RENAME COLUMN {old} TO {new}")
                    self.conn.execute(f"DROP INDEX IF EXISTS products_{old}")
                    have.add(new)
            for f in FIELDS:
                if f.name not in have:
                    self.conn.execute(f"ALTER TABLE products ADD COLUMN {f.name} {'REAL' if f.kind is float else 'TEXT'}")

    def close(self) -> None:
        self.conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @staticmethod
    def _product(r: sqlite3.Row) -> Product:
        extra = json.loads(r["extra"]) if r["extra"] else {}
        return product_from({n: r[n] for n in NAMES}, extra)

    def insert(self, items: Iterable[tuple[int, Product, str | None]]) -> int:
        """Insert (row, product, stored file name) records in one transaction."""
        cols = ["row", *NAMES, "file", "extra"]
        q = f"INSERT INTO products ({', '.join(cols)}) VALUES ({','.join('?' * len(cols))})"
        n = 0
        with self.conn:
            for row, p, file in items:
                values = [getattr(p, name) for name in NAMES]
                values[NAMES.index("image")] = p.image or ""
                self.conn.execute(q, (int(row), *values, file,
                                      json.dumps(p.extra, ensure_ascii=False) if p.extra else None))
                n += 1
        return n

    def insert_images(self, items: Iterable[tuple[int, int, int, str | None]]) -> int:
        """Insert (vector row, product row, n, stored file) records of products' other pictures."""
        n = 0
        with self.conn:
            for row, product_row, k, file in items:
                self.conn.execute("INSERT INTO images (row, product_row, n, file) VALUES (?,?,?,?)",
                                  (int(row), int(product_row), int(k), file))
                n += 1
        return n

    def delete(self, ids: Sequence[str]) -> list[int]:
        """Delete products by id, their other pictures too; returns every vector row they had."""
        rows = []
        with self.conn:
            for pid in ids:
                r = self.conn.execute("SELECT row FROM products WHERE id = ?", (pid,)).fetchone()
                if r is not None:
                    rows.append(int(r[0]))
                    if self.has_images:
                        rows += [int(x[0]) for x in self.conn.execute(
                            "SELECT row FROM images WHERE product_row = ? ORDER BY row", (int(r[0]),))]
                        self.conn.execute("DELETE FROM images WHERE product_row = ?", (int(r[0]),))
                    self.conn.execute("DELETE FROM products WHERE id = ?", (pid,))
        return rows

    def update(self, items: Iterable[tuple[Product, str | None]]) -> int:
        """Replace the fields (and extras) of products already there, by id, keeping their rows and
        pictures: a change of price or stock re-encodes nothing."""
        sets = ", ".join(f"{n} = ?" for n in NAMES if n != "id")
        n = 0
        with self.conn:
            for p, _ in items:
                values = [getattr(p, name) for name in NAMES if name != "id"]
                values[[x for x in NAMES if x != "id"].index("image")] = p.image or ""
                n += self.conn.execute(f"UPDATE products SET {sets}, extra = ? WHERE id = ?", (
                    *values, json.dumps(p.extra, ensure_ascii=False) if p.extra else None, p.id)).rowcount
        return n

    def count(self) -> int:
        return int(self.conn.execute("SELECT COUNT(*) FROM products").fetchone()[0])

    def max_row(self) -> int:
        r = self.conn.execute("SELECT MAX(row) FROM products").fetchone()[0]
        return -1 if r is None else int(r)

    def get(self, pid: str) -> tuple[int, Product, str | None] | None:
        r = self.conn.execute(f"{self._select} WHERE id = ?", (pid,)).fetchone()
        return None if r is None else (int(r["row"]), self._product(r), r["file"])

    def by_rows(self, rows: Sequence[int]) -> dict[int, tuple[Product, str | None]]:
        out: dict[int, tuple[Product, str | None]] = {}
        for chunk in chunks([int(r) for r in rows]):
            q = f"{self._select} WHERE row IN ({','.join('?' * len(chunk))})"
            for r in self.conn.execute(q, chunk):
                out[int(r["row"])] = (self._product(r), r["file"])
        return out

    def rows(self, filters: Filters | None = None) -> np.ndarray:
        """The products' rows (their main pictures' vectors) that pass ``filters``."""
        where, args = (filters or Filters()).sql()
        cur = self.conn.execute(f"SELECT row FROM ({self._select}) WHERE {where} ORDER BY row", args)
        return np.fromiter((r[0] for r in cur), dtype=np.int64)

    def vector_rows(self, filters: Filters | None = None) -> np.ndarray:
        """Every vector row of the products that pass ``filters``: their main pictures' and the others'."""
        main = self.rows(filters)
        if not self.has_images:
            return main
        where, args = (filters or Filters()).sql()
        cur = self.conn.execute(f"SELECT i.row FROM images i JOIN ({self._select}) p ON p.row = i.product_row "
                                f"WHERE {where}", args)
        more = np.fromiter((r[0] for r in cur), dtype=np.int64)
        return np.union1d(main, more) if len(more) else main

    def image_rows(self, rows: Sequence[int]) -> dict[int, tuple[int, int, str | None]]:
        """For the ``rows`` that are a product's other picture: (product row, n, stored file)."""
        if not self.has_images:
            return {}
        out: dict[int, tuple[int, int, str | None]] = {}
        for chunk in chunks([int(r) for r in rows]):
            q = f"SELECT row, product_row, n, file FROM images WHERE row IN ({','.join('?' * len(chunk))})"
            out.update((int(r), (int(p), int(n), f)) for r, p, n, f in self.conn.execute(q, chunk))
        return out

    def pictures(self, product_row: int) -> list[tuple[int, int, str | None]]:
        """A product's other pictures: (vector row, n, stored file), by n (the main one, 0, is the product's row)."""
        if not self.has_images:
            return []
        return [(int(r), int(n), f) for r, n, f in self.conn.execute(
            "SELECT row, n, file FROM images WHERE product_row = ? ORDER BY n", (int(product_row),))]

    def all_pictures(self) -> dict[int, list[tuple[int, int, str | None]]]:
        """Every product's other pictures, by product row (see :meth:`pictures`)."""
        out: dict[int, list[tuple[int, int, str | None]]] = defaultdict(list)
        if self.has_images:
            for r, p, n, f in self.conn.execute("SELECT row, product_row, n, file FROM images ORDER BY product_row, n"):
                out[int(p)].append((int(r), int(n), f))
        return out

    def rows_of_products(self, product_rows: Sequence[int]) -> np.ndarray:
        """Every vector row of the products at ``product_rows``."""
        main = np.asarray(sorted({int(r) for r in product_rows}), np.int64)
        if not self.has_images or not len(main):
            return main
        more = []
        for chunk in chunks(main.tolist()):
            q = f"SELECT row FROM images WHERE product_row IN ({','.join('?' * len(chunk))})"
            more += [int(r[0]) for r in self.conn.execute(q, chunk)]
        return np.union1d(main, np.asarray(more, np.int64))

    def row_ids(self) -> list[tuple[int, str]]:
        """(row, id) of every product, by row."""
        return [(int(r[0]), r[1]) for r in self.conn.execute("SELECT row, id FROM products ORDER BY row")]

    def iter_products(self) -> Iterator[tuple[int, Product, str | None]]:
        for r in self.conn.execute(f"{self._select} ORDER BY row"):
            yield int(r["row"]), self._product(r), r["file"]

    def files(self) -> set[str]:
        """The stored image files every product uses (its other pictures' too)."""
        out = {r[0] for r in self.conn.execute("SELECT file FROM products WHERE file IS NOT NULL")}
        if self.has_images:
            out |= {r[0] for r in self.conn.execute("SELECT file FROM images WHERE file IS NOT NULL")}
        return out

    def files_of(self, key: str, values: Sequence[str]) -> set[str]:
        """The stored image files of the products whose ``key`` (``id`` or ``file``) is in ``values``."""
        if key not in ("id", "file"):
            raise ValueError(key)
        out: set[str] = set()
        for part in chunks(list(values)):
            marks = ",".join("?" * len(part))
            out.update(r[0] for r in self.conn.execute(
                f"SELECT file FROM products WHERE {key} IN ({marks}) AND file IS NOT NULL", part))
            if self.has_images:
                q = f"SELECT i.file FROM images i JOIN products p ON p.row = i.product_row WHERE p.id IN ({marks})" \
                    if key == "id" else f"SELECT file FROM images WHERE file IN ({marks})"
                out.update(r[0] for r in self.conn.execute(q + " AND i.file IS NOT NULL" if key == "id"
                                                           else q, part) if r[0])
        return out

    def duplicates(self, rows: Sequence[int]) -> list[np.ndarray]:
        """For each row, the rows whose stored image file is the same bytes (the row itself included)."""
        rows = [int(r) for r in rows]
        file_of: dict[int, str | None] = {}
        for chunk in chunks(rows):
            q = f"SELECT row, file FROM products WHERE row IN ({','.join('?' * len(chunk))})"
            file_of.update((int(r), f) for r, f in self.conn.execute(q, chunk))
        by_file: dict[str, list[int]] = defaultdict(list)
        for chunk in chunks(sorted({f for f in file_of.values() if f})):
            q = f"SELECT row, file FROM products WHERE file IN ({','.join('?' * len(chunk))})"
            for r, f in self.conn.execute(q, chunk):
                by_file[f].append(int(r))
        return [np.array(sorted(set(by_file.get(file_of.get(r) or "", ())) | {r}), np.int64) for r in rows]

    def facets(self) -> dict[str, list[str]]:
        out = {}
        for col in FACETS:
            out[col] = [r[0] for r in self.conn.execute(
                f"SELECT DISTINCT {col} FROM ({self._select}) WHERE {col} IS NOT NULL ORDER BY {col}")]
        return out

    def backup_to(self, path: str | Path) -> None:
        dest = sqlite3.connect(path)
        try:
            self.conn.backup(dest)
        finally:
            dest.close()
