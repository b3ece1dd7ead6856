"""Milvus as the vector backend: vectors *and* product metadata in one Milvus collection.

::

    dressfinder index CATALOG --store IMAGES_DIR --backend milvus --milvus-uri ./dresses.db
    dressfinder search photo.jpg --backend milvus --milvus-uri ./dresses.db --max-price 50

``uri`` is a local file for **Milvus Lite** (embedded in the ``milvus-lite`` package, one process at
a time per file) or a server address (``http://host:19530``) for a Milvus standalone/cluster; the
code is the same. A token for a server is read from ``$MILVUS_TOKEN`` (never from the command line).

The collection holds one entity per product: ``id`` (primary key), ``vector``, the catalogue
fields (``image, file, title, price, currency, url, store, category, extra``) and lower-cased
``store_key``/``category_key`` for case-insensitive filters. Filters on price, store and category
run inside Milvus as boolean expressions, built only from numbers formatted by us and string
literals escaped by ``json.dumps`` (checked against injection in tests/test_milvus.py).
The encoder's spec is kept in the collection's properties, so ``open`` rebuilds the same encoder.

Index: FLAT (exact) on Milvus Lite, which supports little else at scale; ``AUTOINDEX`` on a server
(Milvus picks HNSW-like graphs or DiskANN by deployment). ``index_type=`` overrides either.

The FAISS store stays the embedded default; this backend trades its atomic generations for a
database other services can share. A rebuild writes a new collection, then drops the old one and
renames the new one into place (readers see an error for that instant, never a mix).
"""

from __future__ import annotations

import json
import logging
import math
import os
import secrets
import time
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from .. import __version__
from ..catalog import Filters, Product, products_from
from ..embed import EmbedResult, embed
from ..encoders import Encoder, get_encoder, load_encoder
from ..errors import DressfinderError, NotFound, StoreError
from ..extras import require
from ..images import ImageSource, crop_relative, load_image
from ..store import ChangeReport, Hit

log = logging.getLogger(__name__)

META_KEY = "dressfinder.meta"
DEFAULT_COLLECTION = "dressfinder"
INSERT_BATCH = 512
# VARCHAR limits (bytes); longer values are cut at a character boundary
LIMITS = {"id": 2048, "image": 4096, "file": 256, "title": 2048, "currency": 16, "url": 4096, "store": 512,
          "category": 512, "store_key": 512, "category_key": 512, "extra": 65535}
TEXT_FIELDS = ("image", "file", "title", "currency", "url", "store", "category")
OUTPUT_FIELDS = ["id", "image", "file", "title", "price", "currency", "url", "store", "category", "extra"]
HNSW_EF = 128


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


def filter_expr(filters: Filters | None, *, exclude_ids: Sequence[str] = ()) -> str:
    """The Milvus boolean expression for ``filters`` (and products to leave out); "" for none."""
    parts = []
    f = filters or Filters()
    if f.min_price is not None:
        parts.append(f"price >= {literal_number(f.min_price)}")
    if f.max_price is not None:
        parts.append(f"price <= {literal_number(f.max_price)}")
    if f.store is not None:
        parts.append(f"store_key == {literal_string(str(f.store).lower())}")
    if f.category is not None:
        parts.append(f"category_key == {literal_string(str(f.category).lower())}")
    if exclude_ids:
        parts.append("id not in [" + ", ".join(literal_string(i) for i in exclude_ids) + "]")
    return " and ".join(parts)


def _cut(text: str | None, limit: int) -> str | None:
    if text is None:
        return None
    raw = text.encode("utf-8")
    if len(raw) <= limit:
        return text
    return raw[:limit].decode("utf-8", "ignore")


def _entity(p: Product, file: str | None, vector: np.ndarray) -> dict[str, Any]:
    row: dict[str, Any] = {"id": p.id, "vector": np.asarray(vector, np.float32).tolist(),
                           "price": float(p.price) if p.price is not None and math.isfinite(p.price) else None,
                           "extra": json.dumps(p.extra, ensure_ascii=False) if p.extra else None}
    values = {"image": p.image or "", "file": file, "title": p.title, "currency": p.currency, "url": p.url,
              "store": p.store, "category": p.category}
    for key, value in values.items():
        row[key] = _cut(value, LIMITS[key])
    row["store_key"] = _cut(p.store.lower(), LIMITS["store_key"]) if p.store else None
    row["category_key"] = _cut(p.category.lower(), LIMITS["category_key"]) if p.category else None
    if len(p.id.encode("utf-8")) > LIMITS["id"]:
        raise DressfinderError(f"product id too long for Milvus: {p.id[:40]}...")
    return row


def _product(e: dict[str, Any]) -> tuple[Product, str | None]:
    extra = json.loads(e["extra"]) if e.get("extra") else {}
    p = Product(id=e["id"], image=e.get("image") or "", title=e.get("title"), price=e.get("price"),
                currency=e.get("currency"), url=e.get("url"), store=e.get("store"), category=e.get("category"),
                extra=extra)
    return p, e.get("file")


# --------------------------------------------------------------------------- the store

class MilvusStore:
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

    # ------------------------------------------------------------------ connecting
    @staticmethod
    def connect(uri: str):
        MilvusClient = require("pymilvus", "milvus", "the milvus backend").MilvusClient
        if is_lite(uri):
            Path(uri).expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)
            uri = str(Path(uri).expanduser().resolve())
        try:
            return MilvusClient(uri=uri, token=os.environ.get("MILVUS_TOKEN", ""))
        except Exception as e:  # pymilvus raises several kinds (MilvusException, ConnectionError...)
            raise StoreError(f"cannot connect to Milvus at {uri}: {e}") from None

    @classmethod
    def open(cls, uri: str, collection: str = DEFAULT_COLLECTION, encoder: Encoder | None = None,
             client=None) -> "MilvusStore":
        client = client or cls.connect(uri)
        if not client.has_collection(collection):
            raise StoreError(f"no collection {collection!r} in Milvus at {uri} "
                             f"(build one with: dressfinder index CATALOG --backend milvus --milvus-uri {uri})")
        props = client.describe_collection(collection).get("properties") or {}
        if META_KEY not in props:
            raise StoreError(f"collection {collection!r} was not made by dressfinder")
        meta = json.loads(props[META_KEY])
        try:
            client.load_collection(collection)
        except Exception as e:  # pragma: no cover - server-side trouble
            raise StoreError(f"cannot load collection {collection!r}: {e}") from None
        return cls(client, uri, collection, meta, encoder)

    def close(self) -> None:
        self.client.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def encoder(self) -> Encoder:
        if self._encoder is None:
            self._encoder = load_encoder(self.meta["encoder"])
        return self._encoder

    @property
    def metric(self) -> str:
        return self.meta["metric"]

    # ------------------------------------------------------------------ building
    @classmethod
    def _create(cls, client, name: str, dim: int, metric: str, meta: dict[str, Any], index_type: str,
                consistency: str) -> None:
        pymilvus = require("pymilvus", "milvus", "the milvus backend")
        DataType, MilvusClient = pymilvus.DataType, pymilvus.MilvusClient

        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=LIMITS["id"])
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=int(dim))
        schema.add_field("price", DataType.DOUBLE, nullable=True)
        for key in (*TEXT_FIELDS, "store_key", "category_key", "extra"):
            schema.add_field(key, DataType.VARCHAR, max_length=LIMITS[key], nullable=key != "image")
        params = client.prepare_index_params()
        extra = {"M": 32, "efConstruction": 80} if index_type == "HNSW" else {}
        params.add_index(field_name="vector", index_type=index_type, metric_type=metric.upper(), params=extra)
        client.create_collection(name, schema=schema, index_params=params, consistency_level=consistency,
                                 properties={META_KEY: json.dumps(meta)})

    @classmethod
    def build(cls, catalog: str | Path | Sequence[Product], uri: str, collection: str = DEFAULT_COLLECTION,
              encoder: str | Encoder | None = None, *, model: str | Path | None = None,
              images_dir: str | Path | None = None, index_type: str | None = None, progress: bool = True,
              workers: int | None = None, dask: str | None = None, consistency: str = "Strong") -> "MilvusStore":
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
        client = cls.connect(uri)
        index_type = index_type or ("FLAT" if is_lite(uri) else "AUTOINDEX")
        meta = {"format": 1, "dressfinder": __version__, "encoder": enc.spec(), "metric": enc.metric,
                "dim": int(enc.dim), "index_type": index_type, "images": str(images) if images else None,
                "built": {"source": source, "products": len(kept), "encode_seconds": round(result.seconds, 2),
                          "images_per_second": round(result.rate, 1),
                          "updated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}}
        building = f"{collection}__building_{secrets.token_hex(3)}"
        try:
            cls._create(client, building, enc.dim, enc.metric, meta, index_type, consistency)
            cls._insert(client, building, kept, result.files, result.vectors)
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
        store = cls(client, uri, collection, meta, enc)
        store.last_report = ChangeReport(
            added=len(kept), seconds=time.perf_counter() - t0, encode_seconds=result.seconds,
            skipped=pre_skipped + [(products[i].id, r) for i, r in result.skipped], timings=result.timings)
        return store

    @staticmethod
    def _embed(enc: Encoder, sources: list, images_dir: Path | None, progress: bool, workers: int | None,
               dask: str | None) -> EmbedResult:
        if dask:
            from ..distributed import embed_with_dask

            return embed_with_dask(enc, sources, images_dir, dask, progress=progress)
        return embed(enc, sources, images_dir=images_dir, progress=progress, workers=workers)

    @staticmethod
    def _insert(client, collection: str, products: Sequence[Product], files: Sequence[str | None],
                vectors: np.ndarray, upsert: bool = False) -> None:
        write = client.upsert if upsert else client.insert
        for i in range(0, len(products), INSERT_BATCH):
            rows = [_entity(p, f, v) for p, f, v in zip(products[i:i + INSERT_BATCH], files[i:i + INSERT_BATCH],
                                                         vectors[i:i + INSERT_BATCH])]
            write(collection, rows)
        client.flush(collection)

    # ------------------------------------------------------------------ products
    def __len__(self) -> int:
        res = self.client.query(self.collection, filter="", output_fields=["count(*)"])
        return int(res[0]["count(*)"])

    def info(self) -> dict[str, Any]:
        return {"backend": "milvus", "uri": self.uri, "collection": self.collection, "products": len(self),
                "encoder": self.meta["encoder"], "index": {"kind": self.meta["index_type"], "metric": self.metric},
                "built": self.meta.get("built", {})}

    def _get(self, ids: Sequence[str], fields: list[str]) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        ids = list(ids)
        for i in range(0, len(ids), 1000):
            for e in self.client.get(self.collection, ids=ids[i:i + 1000], output_fields=fields):
                out[e["id"]] = e
        return out

    def product(self, pid: str) -> Product:
        e = self._get([pid], OUTPUT_FIELDS).get(pid)
        if e is None:
            raise NotFound(f"no product with id {pid!r}")
        return _product(e)[0]

    def image_file(self, pid: str) -> Path:
        e = self._get([pid], ["file"]).get(pid)
        if e is None:
            raise NotFound(f"no product with id {pid!r}")
        if not e.get("file") or self.images_dir is None:
            raise NotFound(f"product {pid!r} has no stored image")
        return self.images_dir / e["file"]

    def vector(self, pid: str) -> np.ndarray:
        e = self._get([pid], ["vector"]).get(pid)
        if e is None:
            raise NotFound(f"no product with id {pid!r}")
        return np.asarray(e["vector"], np.float32)

    def products(self) -> Iterable[Product]:
        it = self.client.query_iterator(self.collection, batch_size=1000, filter="", output_fields=OUTPUT_FIELDS)
        try:
            while True:
                page = it.next()
                if not page:
                    break
                for e in page:
                    yield _product(e)[0]
        finally:
            it.close()

    # ------------------------------------------------------------------ search
    def embed_query(self, image: ImageSource, crop: Sequence[float] | None = None) -> np.ndarray:
        enc = self.encoder
        im = crop_relative(load_image(image) if crop is not None else enc.load(image), crop)
        encode = getattr(enc, "encode_query", None) or enc.encode  # an encoder may spend more on queries
        return np.asarray(encode([im]), np.float32)[0]

    def search(self, image: ImageSource, k: int = 10, *, filters: Filters | None = None,
               crop: Sequence[float] | None = None) -> list[Hit]:
        """The ``k`` products most like ``image``; ``filters`` are applied inside Milvus."""
        return self.search_vectors(self.embed_query(image, crop)[None, :], k, filters=filters)[0]

    def similar(self, pid: str, k: int = 10, *, filters: Filters | None = None) -> list[Hit]:
        """Products most like catalogue product ``pid`` (never ``pid`` itself)."""
        return self.search_vectors(self.vector(pid)[None, :], k, filters=filters, exclude_ids=[pid])[0]

    def search_vectors(self, queries: np.ndarray, k: int, *, filters: Filters | None = None,
                       exclude_ids: Sequence[str] = ()) -> list[list[Hit]]:
        k = int(k)
        if k < 1:
            raise DressfinderError("k must be at least 1")
        params: dict[str, Any] = {"metric_type": self.metric.upper()}
        if self.meta.get("index_type") == "HNSW":
            params["params"] = {"ef": max(HNSW_EF, k)}
        res = self.client.search(self.collection, data=np.asarray(queries, np.float32).tolist(), limit=k,
                                 filter=filter_expr(filters, exclude_ids=exclude_ids),
                                 output_fields=OUTPUT_FIELDS, search_params=params)
        out = []
        for hits in res:
            row = []
            for h in hits:
                e = dict(h["entity"])
                e.setdefault("id", h["id"])
                prod, file = _product(e)
                row.append(Hit(prod.id, self._score(float(h["distance"])), prod, -1, file))
            out.append(row)
        return out

    def _score(self, d: float) -> float:
        """Higher is more similar, as ``Store``: cosine for ip, 1 / (1 + Euclidean distance) for l2
        (Milvus reports the squared distance)."""
        return d if self.metric == "ip" else 1.0 / (1.0 + math.sqrt(max(d, 0.0)))

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
        present = set(self._get([p.id for p in unique], ["id"]))
        fresh = [p for p in unique if replace or p.id not in present]
        skipped += [(p.id, "id already in the store") for p in unique if not replace and p.id in present]
        report = ChangeReport(skipped=skipped)
        if fresh:
            result = embed(self.encoder, [p.image for p in fresh], images_dir=self.images_dir, progress=progress,
                           desc="adding", workers=workers)
            report.skipped += [(fresh[i].id, r) for i, r in result.skipped]
            kept = [fresh[i] for i in result.ok]
            if kept:
                self._insert(self.client, self.collection, kept, result.files, result.vectors, upsert=replace)
            report.added = len(kept)
            report.removed = sum(1 for p in kept if p.id in present)
            report.encode_seconds = result.seconds
        report.seconds = time.perf_counter() - t0
        return report

    def remove(self, ids: Sequence[str]) -> ChangeReport:
        """Remove products by id (unknown ids are reported as skipped)."""
        t0 = time.perf_counter()
        present = set(self._get(list(ids), ["id"]))
        gone = [i for i in dict.fromkeys(ids) if i in present]
        if gone:
            self.client.delete(self.collection, ids=gone)
            self.client.flush(self.collection)
        return ChangeReport(removed=len(gone), skipped=[(i, "no such product") for i in ids if i not in present],
                            seconds=time.perf_counter() - t0)
