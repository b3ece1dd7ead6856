"""Milvus as the vector backend: vectors *and* product metadata in one Milvus collection.

::

    dressfinder index CATALOG --store STORE --backend milvus --milvus-uri ./dresses.db
    dressfinder search --store STORE photo.jpg --max-price 50       # the folder remembers the backend

``uri`` is a local file for **Milvus Lite** (embedded in the ``milvus-lite`` package, one process at
a time per file) or a server address (``http://host:19530``) for a Milvus standalone/cluster; the
code is the same. A token for a server is read from ``$MILVUS_TOKEN`` (``Settings.milvus_token``,
never from the command line).

The collection holds one entity per product: ``id`` (primary key), ``row`` (the product's vector
row, as in a FAISS store), ``vector``, the fields of ``schema.Product``, ``file`` and ``extra``, and
lower-cased ``<facet>_key`` copies of the facets for case-insensitive filters. Filters on price and
facets run inside Milvus as boolean expressions, built only from numbers formatted by us and string
literals escaped by ``json.dumps`` (checked against injection in tests/test_milvus.py). The
encoder's spec and the next free row are kept in the collection's properties.

Ranking is ``search``'s, as for a FAISS store: :class:`MilvusSnapshot` gives candidates, vectors,
products and duplicates by row, and ``Searchable`` does the rest, so both backends rank the same
catalogue the same way (tests/test_backends.py).

Index: FLAT (exact) on Milvus Lite, which supports little else at scale; ``AUTOINDEX`` on a server
(Milvus picks HNSW-like graphs or DiskANN by deployment). ``index_type=`` overrides either.
A rebuild writes a new collection, then drops the old one and renames the new one into place
(readers see an error for that instant, never a mix).
"""

from __future__ import annotations

import json
import logging
import math
import secrets
import time
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from .. import __version__
from ..catalog import Filters, chunks, products_from
from ..embed import EmbedResult, embed
from ..encoders import Encoder, get_encoder, load_encoder
from ..errors import Conflict, DressfinderError, StoreError
from ..extras import require
from ..index import DEFAULTS
from ..schema import FACETS, FIELDS, NAMES, Product, product_from
from ..search import Searchable
from ..store import ChangeReport

log = logging.getLogger(__name__)

FORMAT = 2                      # 2: entities have a row (format 1 collections: rebuild them)
META_KEY = "dressfinder.meta"
DEFAULT_COLLECTION = "dressfinder"
INSERT_BATCH = 512
PAGE = 1000                     # entities per get / query_iterator page
# VARCHAR sizes (bytes) beyond the schema's fields; longer values are cut at a character boundary
LIMITS = {**{f.name: f.max_length for f in FIELDS if f.kind is str}, "id": 2048, "file": 256, "extra": 65535,
          **{f"{n}_key": 512 for n in FACETS}}
STORED = ["id", "row", *[n for n in NAMES if n != "id"], "file", "extra"]


def is_lite(uri: str) -> bool:
    """A local file path (Milvus Lite) rather than a server address."""
    return "://" not in uri


# --------------------------------------------------------------------------- safe expressions

def literal_number(value: Any) -> str:
    """A finite number as a plain decimal literal (never an exponent, never text from the user)."""
    x = float(value)
    if not math.isfinite(x):
        raise DressfinderError(f"not a finite number: {value!r}")
    text = format(Decimal(repr(x)), "f")
    return text if "." in text else text + ".0"


def literal_string(value: Any) -> str:
    """A Milvus string literal: double-quoted, with quotes, backslashes and control characters
    escaped (JSON escaping, which Milvus' expression parser reads the same way)."""
    return json.dumps(str(value), ensure_ascii=False)


def filter_expr(filters: Filters | None, columns: frozenset[str] | None = None) -> str:
    """The Milvus boolean expression for ``filters``; "" for none. ``columns``: the collection's
    fields (a facet filter on one it lacks, one older than the field, is refused in one line)."""
    parts = []
    f = filters or Filters()
    if columns is not None:
        for name, value in f.facets().items():
            if value is not None and f"{name}_key" not in columns:
                raise StoreError(f"this Milvus collection was built before products had a {name}: build it "
                                 f"again (dressfinder index) to filter by {name}")
    if f.min_price is not None:
        parts.append(f"price >= {literal_number(f.min_price)}")
    if f.max_price is not None:
        parts.append(f"price <= {literal_number(f.max_price)}")
    for name, value in f.facets().items():
        if value is not None:
            parts.append(f"{name}_key == {literal_string(str(value).lower())}")
    if f.in_stock and (columns is None or "availability_key" in columns):   # older: none is known sold out
        parts.append('(availability_key is null or availability_key != "out_of_stock")')
    return " and ".join(parts)


def in_expr(field: str, values: Sequence[Any]) -> str:
    items = (str(int(v)) if field == "row" else literal_string(v) for v in values)
    return f"{field} in [" + ", ".join(items) + "]"


def _cut(text: str | None, limit: int) -> str | None:
    if text is None:
        return None
    raw = text.encode("utf-8")
    if len(raw) <= limit:
        return text
    return raw[:limit].decode("utf-8", "ignore")


def _entity(row: int, p: Product, file: str | None, vector: np.ndarray,
            columns: frozenset[str] | None = None) -> dict[str, Any]:
    """One product as an entity; ``columns``: only the collection's fields (an older one lacks the
    fields declared since)."""
    if len(p.id.encode("utf-8")) > LIMITS["id"]:
        raise DressfinderError(f"product id too long for Milvus: {p.id[:40]}...")
    e: dict[str, Any] = {"id": p.id, "row": int(row), "vector": np.asarray(vector, np.float32).tolist(),
                         "file": _cut(file, LIMITS["file"]),
                         "extra": json.dumps(p.extra, ensure_ascii=False) if p.extra else None}
    for f in FIELDS:
        value = getattr(p, f.name)
        if f.name == "id":
            continue
        if f.kind is float:
            e[f.name] = float(value) if value is not None and math.isfinite(value) else None
        else:
            e[f.name] = _cut(value if f.name != "image" else (value or ""), LIMITS[f.name])
    for n in FACETS:
        value = getattr(p, n)
        e[f"{n}_key"] = _cut(value.lower(), LIMITS[f"{n}_key"]) if value else None
    return e if columns is None else {k: v for k, v in e.items() if k in columns}


def collection_columns(client, collection: str) -> frozenset[str]:
    """The names of a collection's fields."""
    return frozenset(f["name"] for f in client.describe_collection(collection).get("fields", []))


def _record(e: dict[str, Any]) -> tuple[int, Product, str | None]:
    extra = json.loads(e["extra"]) if e.get("extra") else {}
    return int(e["row"]), product_from(e, extra), e.get("file")


# --------------------------------------------------------------------------- the snapshot

class MilvusSnapshot:
    """A collection seen through ``search.Snapshot``. Milvus has no generations: a change made
    meanwhile is seen at once (``Strong`` consistency)."""

    def __init__(self, client, collection: str, meta: dict[str, Any], columns: frozenset[str] | None = None):
        self.client, self.collection, self.meta = client, collection, meta
        self.metric = meta["metric"]
        self.n_rows = int(meta["next_row"])
        #: the collection's fields: one built before a field was declared is read without it (None)
        self.columns = columns
        self.stored = STORED if columns is None else [n for n in STORED if n in columns]
        self.facet_names = FACETS if columns is None else tuple(n for n in FACETS if n in columns)

    def _query(self, expr: str, fields: list[str]) -> list[dict[str, Any]]:
        return self.client.query(self.collection, filter=expr, output_fields=fields)

    def _by_rows(self, rows: Sequence[int], fields: list[str]) -> dict[int, dict[str, Any]]:
        out: dict[int, dict[str, Any]] = {}
        for part in chunks([int(r) for r in rows]):
            out.update((int(e["row"]), e) for e in self._query(in_expr("row", part), ["row", *fields]))
        return out

    def _scan(self, fields: list[str], expr: str = "") -> Iterator[dict[str, Any]]:
        it = self.client.query_iterator(self.collection, batch_size=PAGE, filter=expr, output_fields=fields)
        try:
            while page := it.next():
                yield from page
        finally:
            it.close()

    def candidates(self, queries: np.ndarray, k: int, filters: Filters | None = None,
                   nprobe: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        params: dict[str, Any] = {"metric_type": self.metric.upper()}
        if self.meta.get("index_type") == "HNSW":
            params["params"] = {"ef": max(int(DEFAULTS["hnsw"]["efSearch"]), k)}
        res = self.client.search(self.collection, data=np.asarray(queries, np.float32).tolist(),
                                 limit=min(int(k), 16384), filter=filter_expr(filters, self.columns), output_fields=["row"],
                                 search_params=params)
        scores = np.full((len(queries), k), -np.inf, np.float32)
        rows = np.full((len(queries), k), -1, np.int64)
        for qi, hits in enumerate(res):
            for j, h in enumerate(hits):
                rows[qi, j] = int(h["entity"]["row"])
                scores[qi, j] = self._score(float(h["distance"]))
        return scores, rows

    def _score(self, d: float) -> float:
        """Higher is more similar: cosine for ip, 1 / (1 + Euclidean distance) for l2 (Milvus
        reports the squared distance)."""
        return d if self.metric == "ip" else 1.0 / (1.0 + math.sqrt(max(d, 0.0)))

    def vectors(self, rows: np.ndarray) -> np.ndarray:
        found = self._by_rows(rows, ["vector"])
        return np.array([found[int(r)]["vector"] for r in rows], np.float32).reshape(len(rows), -1)

    def patch_vectors(self, rows: np.ndarray) -> None:
        """Milvus collections keep one vector a product: no patch vectors (close-ups search as photos)."""
        return None

    def rows(self, filters: Filters | None = None) -> np.ndarray:
        return np.array(sorted(int(e["row"]) for e in self._scan(["row"], filter_expr(filters, self.columns))),
                        np.int64)

    def records(self, rows: Sequence[int]) -> dict[int, tuple[Product, str | None]]:
        return {r: _record(e)[1:] for r, e in self._by_rows(rows, self.stored).items()}

    def image_rows(self, rows: Sequence[int]) -> dict[int, tuple[int, int, str | None]]:
        """Milvus collections keep one vector a product, its main picture's: no other pictures' rows."""
        return {}

    def rows_of_products(self, product_rows: Sequence[int]) -> np.ndarray:
        return np.asarray(sorted({int(r) for r in product_rows}), np.int64)

    def pictures(self, product_row: int) -> list[tuple[int, int, str | None]]:
        return []

    def get(self, pid: str) -> tuple[int, Product, str | None] | None:
        found = self.client.get(self.collection, ids=[pid], output_fields=self.stored)
        return _record(found[0]) if found else None

    def duplicates(self, rows: Sequence[int]) -> list[np.ndarray]:
        file_of = {r: e.get("file") for r, e in self._by_rows(rows, ["file"]).items()}
        by_file: dict[str, set[int]] = {}
        for part in chunks(sorted({f for f in file_of.values() if f})):
            for e in self._query(in_expr("file", part), ["row", "file"]):
                by_file.setdefault(e["file"], set()).add(int(e["row"]))
        return [np.array(sorted(by_file.get(file_of.get(int(r)) or "", set()) | {int(r)}), np.int64)
                for r in rows]

    def row_ids(self) -> list[tuple[int, str]]:
        return sorted((int(e["row"]), e["id"]) for e in self._scan(["row", "id"]))

    def iter_products(self) -> Iterator[tuple[int, Product, str | None]]:
        return iter(sorted((_record(e) for e in self._scan(self.stored)), key=lambda rec: rec[0]))

    def facets(self) -> dict[str, list[str]]:
        values: dict[str, set[str]] = {n: set() for n in FACETS}
        for e in self._scan(list(self.facet_names)):
            for n in self.facet_names:
                if e.get(n):
                    values[n].add(e[n])
        return {n: sorted(v) for n, v in values.items()}

    def count(self) -> int:
        return int(self._query("", ["count(*)"])[0]["count(*)"])


# --------------------------------------------------------------------------- the store

class MilvusStore(Searchable):
    """Products in a Milvus collection, searched like ``Store`` (``search``, ``similar``, ``product``,
    ``add``, ``remove``). ``MilvusStore.build(...)`` or ``MilvusStore.open(uri, collection)``."""

    def __init__(self, client, uri: str, collection: str, meta: dict[str, Any], encoder: Encoder | None = None,
                 images_dir: Path | None = None):
        self.client = client
        self.uri = uri
        self.collection = collection
        self.meta = meta
        self._encoder = encoder
        self.images_dir = Path(images_dir) if images_dir else (Path(meta["images"]) if meta.get("images") else None)
        self.last_report: ChangeReport | None = None
        self._columns: frozenset[str] | None = None

    @property
    def columns(self) -> frozenset[str]:
        """The collection's fields (one built by an older version lacks the fields declared since)."""
        if self._columns is None:
            self._columns = collection_columns(self.client, self.collection)
        return self._columns

    # ------------------------------------------------------------------ connecting
    @staticmethod
    def connect(uri: str, token: str = ""):
        MilvusClient = require("pymilvus", "milvus", "the milvus backend").MilvusClient
        if is_lite(uri):
            Path(uri).expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)
            uri = str(Path(uri).expanduser().resolve())
        try:
            return MilvusClient(uri=uri, token=token)
        except Exception as e:  # pymilvus raises several kinds (MilvusException, ConnectionError...)
            raise StoreError(f"cannot connect to Milvus at {uri}: {e}") from None

    @classmethod
    def open(cls, uri: str, collection: str = DEFAULT_COLLECTION, encoder: Encoder | None = None,
             client=None, token: str = "") -> "MilvusStore":
        client = client or cls.connect(uri, token)
        if not client.has_collection(collection):
            raise StoreError(f"no collection {collection!r} in Milvus at {uri} "
                             f"(build one with: dressfinder index CATALOG --backend milvus --milvus-uri {uri})")
        props = client.describe_collection(collection).get("properties") or {}
        if META_KEY not in props:
            raise StoreError(f"collection {collection!r} was not made by dressfinder")
        meta = json.loads(props[META_KEY])
        if meta.get("format") != FORMAT:
            raise StoreError(f"collection {collection!r} has format {meta.get('format')}, this version reads "
                             f"{FORMAT}: build it again with dressfinder index")
        try:
            client.load_collection(collection)
        except Exception as e:  # pragma: no cover - server-side trouble
            raise StoreError(f"cannot load collection {collection!r}: {e}") from None
        return cls(client, uri, collection, meta, encoder)

    def close(self) -> None:
        self.client.close()

    @property
    def location(self) -> str:
        return f"Milvus collection {self.collection} at {self.uri}"

    def snapshot(self) -> MilvusSnapshot:
        return MilvusSnapshot(self.client, self.collection, self.meta, self.columns)

    @property
    def encoder(self) -> Encoder:
        if self._encoder is None:
            self._encoder = load_encoder(self.meta["encoder"])
        return self._encoder

    @property
    def metric(self) -> str:
        return self.meta["metric"]

    @property
    def manifest(self) -> dict[str, Any]:
        """What the web app shows of a store: its encoder and index."""
        return {"encoder": self.meta["encoder"], "index": {"kind": self.meta["index_type"], "metric": self.metric},
                "generation": 0}

    generation = 0

    def reload(self) -> bool:
        """Milvus shows changes at once: nothing to pick up."""
        return False

    def info(self) -> dict[str, Any]:
        return {"backend": "milvus", "uri": self.uri, "collection": self.collection, "products": len(self),
                "encoder": self.meta["encoder"], "index": {"kind": self.meta["index_type"], "metric": self.metric},
                "built": self.meta.get("built", {})}

    # ------------------------------------------------------------------ building
    @classmethod
    def _create(cls, client, name: str, dim: int, meta: dict[str, Any], consistency: str) -> None:
        pymilvus = require("pymilvus", "milvus", "the milvus backend")
        DataType, MilvusClient = pymilvus.DataType, pymilvus.MilvusClient

        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=LIMITS["id"])
        schema.add_field("row", DataType.INT64)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=int(dim))
        for f in FIELDS[1:]:
            if f.kind is float:
                schema.add_field(f.name, DataType.DOUBLE, nullable=True)
            else:
                schema.add_field(f.name, DataType.VARCHAR, max_length=LIMITS[f.name], nullable=f.name != "image")
        for key in ("file", "extra", *[f"{n}_key" for n in FACETS]):
            schema.add_field(key, DataType.VARCHAR, max_length=LIMITS[key], nullable=True)
        params = client.prepare_index_params()
        hnsw = DEFAULTS["hnsw"]
        extra = {"M": hnsw["M"], "efConstruction": hnsw["efConstruction"]} if meta["index_type"] == "HNSW" else {}
        params.add_index(field_name="vector", index_type=meta["index_type"], metric_type=meta["metric"].upper(),
                         params=extra)
        params.add_index(field_name="row", index_type="INVERTED")
        client.create_collection(name, schema=schema, index_params=params, consistency_level=consistency,
                                 properties={META_KEY: json.dumps(meta)})

    @classmethod
    def build(cls, catalog: str | Path | Sequence[Product], uri: str, collection: str = DEFAULT_COLLECTION,
              encoder: str | Encoder | None = None, *, model: str | Path | None = None,
              images_dir: str | Path | None = None, index_type: str | None = None, progress: bool = True,
              workers: int | None = None, dask: str | None = None, consistency: str = "Strong",
              token: str = "") -> "MilvusStore":
        """Encode a catalogue into ``collection`` at ``uri`` (replacing one of that name).

        ``images_dir``: where to keep the catalogue's images (content-addressed, as a store's
        ``images/``); none: only the source paths are recorded.
        """
        t0 = time.perf_counter()
        products, pre_skipped, source = products_from(catalog)
        if not products:
            raise DressfinderError(f"catalogue {catalog} has no images")
        enc = encoder if isinstance(encoder, Encoder) else get_encoder(encoder or None,
                                                                      **({"model": str(model)} if model else {}))
        images = Path(images_dir).resolve() if images_dir else None
        result = cls._embed(enc, [p.image for p in products], images, progress, workers, dask)
        if len(result.ok) == 0:
            raise DressfinderError("no readable images in the catalogue; nothing to index")
        kept = [products[i] for i in result.ok]
        client = cls.connect(uri, token)
        meta = {"format": FORMAT, "dressfinder": __version__, "encoder": enc.spec(), "metric": enc.metric,
                "dim": int(enc.dim), "index_type": index_type or ("FLAT" if is_lite(uri) else "AUTOINDEX"),
                "images": str(images) if images else None, "next_row": len(kept),
                "built": {"source": source, "products": len(kept), "encode_seconds": round(result.seconds, 2),
                          "images_per_second": round(result.rate, 1),
                          "updated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}}
        cls._replace_collection(client, collection, meta, consistency,
                                lambda name: cls._insert(client, name, 0, kept, result.files, result.vectors))
        store = cls(client, uri, collection, meta, enc)
        store.last_report = ChangeReport(
            added=len(kept), seconds=time.perf_counter() - t0, encode_seconds=result.seconds,
            skipped=pre_skipped + [(products[i].id, r) for i, r in result.skipped], timings=result.timings)
        return store

    @classmethod
    def _replace_collection(cls, client, collection: str, meta: dict[str, Any], consistency: str, fill) -> None:
        """Fill a new collection, then drop the old one and rename the new one into place."""
        building = f"{collection}__building_{secrets.token_hex(3)}"
        try:
            cls._create(client, building, meta["dim"], meta, consistency)
            fill(building)
            if client.has_collection(collection):
                client.drop_collection(collection)
            client.rename_collection(building, collection)
            client.load_collection(collection)
        except BaseException:
            try:
                if client.has_collection(building):
                    client.drop_collection(building)
            finally:
                client.close()
            raise

    @staticmethod
    def _embed(enc: Encoder, sources: list, images_dir: Path | None, progress: bool, workers: int | None,
               dask: str | None) -> EmbedResult:
        if dask:
            from ..distributed import embed_with_dask

            return embed_with_dask(enc, sources, images_dir, dask, progress=progress)
        return embed(enc, sources, images_dir=images_dir, progress=progress, workers=workers)

    @staticmethod
    def _insert(client, collection: str, first_row: int, products: Sequence[Product], files: Sequence[str | None],
                vectors: np.ndarray, upsert: bool = False, columns: frozenset[str] | None = None) -> None:
        write = client.upsert if upsert else client.insert
        for i in range(0, len(products), INSERT_BATCH):
            rows = [_entity(first_row + j, p, f, v, columns) for j, p, f, v in
                    zip(range(i, i + INSERT_BATCH), products[i:i + INSERT_BATCH], files[i:i + INSERT_BATCH],
                        vectors[i:i + INSERT_BATCH])]
            write(collection, rows)
        client.flush(collection)

    def _present(self, ids: Sequence[str]) -> set[str]:
        out: set[str] = set()
        for part in chunks(list(ids), PAGE):
            out.update(e["id"] for e in self.client.get(self.collection, ids=list(part), output_fields=["id"]))
        return out

    # ------------------------------------------------------------------ updates
    def add(self, catalog: str | Path | Sequence[Product], *, progress: bool = False, replace: bool = False,
            workers: int | None = None) -> ChangeReport:
        """Encode and add products. Ids already there are skipped (or replaced with ``replace``)."""
        t0 = time.perf_counter()
        products, skipped, _ = products_from(catalog)
        seen: set[str] = set()
        unique = []
        for p in products:
            if p.id in seen:
                skipped.append((p.id, "duplicate id in the new products"))
            else:
                seen.add(p.id)
                unique.append(p)
        present = self._present([p.id for p in unique])
        fresh = [p for p in unique if replace or p.id not in present]
        skipped += [(p.id, "id already in the store") for p in unique if not replace and p.id in present]
        report = ChangeReport(skipped=skipped)
        if fresh:
            result = embed(self.encoder, [p.image for p in fresh], images_dir=self.images_dir, progress=progress,
                           desc="adding", workers=workers)
            report.skipped += [(fresh[i].id, r) for i, r in result.skipped]
            kept = [fresh[i] for i in result.ok]
            if kept:
                self._append(kept, result.files, result.vectors)
            report.added = len(kept)
            report.removed = sum(1 for p in kept if p.id in present)
            report.encode_seconds = result.seconds
        report.seconds = time.perf_counter() - t0
        return report

    def add_image(self, product: Product, image: bytes) -> ChangeReport:
        """Add one product whose image arrives as bytes (the web API)."""
        t0 = time.perf_counter()
        if self._present([product.id]):
            raise Conflict(f"a product with id {product.id!r} already exists")
        result = embed(self.encoder, [image], images_dir=self.images_dir, progress=False)
        if not len(result.ok):
            raise DressfinderError(result.skipped[0][1])
        self._append([product], result.files, result.vectors)
        return ChangeReport(added=1, seconds=time.perf_counter() - t0, encode_seconds=result.seconds)

    def remember(self, folder: str | Path) -> Path:
        """Write ``folder/store.json`` pointing at this collection, so that ``--store folder`` opens it
        (``backends.open_store``). Written atomically; the token is never written."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        uri = str(Path(self.uri).expanduser().resolve()) if is_lite(self.uri) else self.uri
        pointer = {"format": FORMAT, "backend": "milvus", "uri": uri, "collection": self.collection,
                   "encoder": self.meta["encoder"]}
        tmp = folder / f".store.json.{secrets.token_hex(4)}.tmp"
        tmp.write_text(json.dumps(pointer, indent=2))
        return Path(tmp.replace(folder / "store.json"))

    def _append(self, products: list[Product], files: list[str | None], vectors: np.ndarray) -> None:
        """New rows for ``products`` (a replaced product gets a new row, as in a FAISS store)."""
        first = int(self.meta["next_row"])
        self.meta = {**self.meta, "next_row": first + len(products)}
        self.client.alter_collection_properties(self.collection, properties={META_KEY: json.dumps(self.meta)})
        self._insert(self.client, self.collection, first, products, files, vectors, upsert=True,
                     columns=self.columns)

    def remove(self, ids: Sequence[str]) -> ChangeReport:
        """Remove products by id (unknown ids are reported as skipped)."""
        t0 = time.perf_counter()
        present = self._present(list(ids))
        gone = [i for i in dict.fromkeys(ids) if i in present]
        if gone:
            self.client.delete(self.collection, ids=gone)
            self.client.flush(self.collection)
        return ChangeReport(removed=len(gone), skipped=[(i, "no such product") for i in ids if i not in present],
                            seconds=time.perf_counter() - t0)
