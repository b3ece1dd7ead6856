"""A store: one folder with everything needed to answer queries.

::

    STORE/
      store.json                 the manifest, and the commit point (replaced atomically)
      catalog-<gen>.sqlite       products (id, row, image, title, price, ...)
      vectors-<seg>.npy          row-aligned embeddings, append-only segments
      patches-<seg>.npy          their patch vectors (close-ups of the fabric), when the encoder makes them
      index-<gen>.faiss          the FAISS index, keyed by row
      deleted-<gen>.npy          tombstoned rows (kinds that cannot remove, e.g. hnsw)
      images/ab/<sha256>.<ext>   the catalogue images, content-addressed, served by product id
      models/                    encoder files the store depends on (the seed autoencoder)
      .work/                     chunks of an unfinished build (resume), removed when it commits
      .lock                      writers take an exclusive lock on it

Every change (build, add, remove) writes new files, then replaces ``store.json``: a reader sees
the old store or the new one, never a mix, and a crash at any point leaves the last committed
store intact. Files of the previous generation are kept (a reader may still be opening them);
older ones are deleted by the next writer.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from . import __version__
from .catalog import CatalogDB, Filters, products_from
from .embed import EmbedResult, embed, fingerprint
from .encoders import Encoder, get_encoder, load_encoder
from .errors import Conflict, DressfinderError, StoreError
from .index import VectorIndex, auto_kind
from .schema import Product
from .search import Searchable

log = logging.getLogger(__name__)

FORMAT = 1
MANIFEST = "store.json"
EXACT_SUBSET = 4096             # filtered searches over at most this many rows are done exactly


def _fsync_write(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


PENDING = ".images-pending"


@contextmanager
def _images_pending(root: Path):
    """Mark a change that writes image files before it commits. Yields whether a marker was already
    there: an earlier writer died mid-change and may have left uncommitted images, so this change's
    clean-up lists every stored image. The marker goes when the change committed (it stays after
    an exception, for the next writer)."""
    marker = Path(root) / PENDING
    stale = marker.exists()
    marker.touch()
    yield stale
    marker.unlink(missing_ok=True)


@contextmanager
def writer_lock(root: Path, timeout: float = 60.0):
    """Exclusive, cross-process lock for changing a store."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "a+") as f:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise StoreError(f"{root} is being changed by another process; try again later") from None
                time.sleep(0.1)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def pictures(p: Product) -> list[tuple[int, str]]:
    """A product's pictures to encode, as (n, source): its ``image`` (n = 0), then each path of its
    ``more_images`` (n = its place there, from 1); URLs there were never downloaded and are left out."""
    more = (p.more_images or "").split()
    return [(0, p.image)] + [(n, m) for n, m in enumerate(more, 1) if not re.match(r"^[a-z][a-z0-9+.-]*://", m, re.I)]


@dataclass
class Batch:
    """New rows for a store: ``vectors`` (and ``patches``) row-aligned from ``first_row``; the
    ``products`` with their rows (their main pictures') and stored ``files``; ``images``: the
    products' other pictures as (vector row, product row, n, stored file)."""

    vectors: np.ndarray
    patches: np.ndarray | None
    products: list[Product]
    rows: list[int]
    files: list[str | None]
    images: list[tuple[int, int, int, str | None]] = field(default_factory=list)


def layout(products: Sequence[Product]) -> tuple[list[str], list[tuple[int, int, int]]]:
    """The pictures of ``products`` to encode, each path once (a feed's variants share their
    pictures), and every product's pictures in order as (product index, n, index in the sources)."""
    sources: list[str] = []
    where: dict[str, int] = {}
    owners = []
    for i, p in enumerate(products):
        for n, src in pictures(p):
            key = str(src)
            if key not in where:
                where[key] = len(sources)
                sources.append(src)
            owners.append((i, n, where[key]))
    return sources, owners


def assemble(products: Sequence[Product], owners: Sequence[tuple[int, int, int]], result: EmbedResult,
             first_row: int) -> tuple[Batch, list[tuple[str, str]]]:
    """The rows ``result`` (the encoding of :func:`layout`'s sources) gives, numbered from
    ``first_row``, each product's main picture then its others; a product whose main picture cannot
    be read is skipped, another picture that cannot be read is left out. And the skips, with reasons."""
    pos = {int(i): j for j, i in enumerate(result.ok)}
    reasons = dict(result.skipped)
    take: list[int] = []
    batch = Batch(result.vectors[:0], None, [], [], [])
    product_row: dict[int, int] = {}
    skipped: list[tuple[str, str]] = []
    for pi, n, s in owners:
        j = pos.get(s)
        if j is None:
            if n == 0:
                skipped.append((products[pi].id, reasons.get(s, "cannot read")))
            elif pi in product_row:
                skipped.append((f"{products[pi].id} picture {n}", reasons.get(s, "cannot read")))
            continue
        row = first_row + len(take)
        if n == 0:
            product_row[pi] = row
            batch.products.append(products[pi])
            batch.rows.append(row)
            batch.files.append(result.files[j])
        elif pi in product_row:
            batch.images.append((row, product_row[pi], n, result.files[j]))
        else:
            continue
        take.append(j)
    idx = np.asarray(take, np.int64)
    batch.vectors = np.asarray(result.vectors, np.float32)[idx]
    batch.patches = None if result.patches is None else np.asarray(result.patches, np.float32)[idx]
    return batch, skipped


@dataclass
class ChangeReport:
    """What a build or an update did."""

    added: int = 0
    removed: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)   # (product id or source, reason)
    updated: int = 0          # products whose fields changed, nothing re-encoded (sync)
    reencoded: int = 0        # products given new pictures (sync)
    unchanged: int = 0        # products already as the source has them (sync)
    encoded: int = 0          # pictures encoded (not reused from the store, nor from an earlier run's chunks)
    resumed: int = 0          # pictures an earlier, interrupted run had encoded (.work/ chunks)
    plan: Any = None          # sync: the SyncPlan

    def format_sync(self) -> str:
        """The one-line summary of a sync."""
        return (f"added {self.added}, updated {self.updated}, re-encoded {self.reencoded} "
                f"({self.encoded} pictures encoded" + (f", {self.resumed} resumed" if self.resumed else "")
                + f"), removed {self.removed}, unchanged {self.unchanged}, skipped {len(self.skipped)}")
    seconds: float = 0.0
    encode_seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.added / self.encode_seconds if self.encode_seconds > 0 else 0.0


#: Catalogue columns that change on every import without the product changing (the feed import's time)
VOLATILE_EXTRAS = ("imported_at",)


def _same(a: Product, b: Product) -> bool:
    """Whether two records of one product say the same (volatile extras aside)."""
    ea = {k: v for k, v in (a.extra or {}).items() if k not in VOLATILE_EXTRAS}
    eb = {k: v for k, v in (b.extra or {}).items() if k not in VOLATILE_EXTRAS}
    return a.fields() == b.fields() and ea == eb


def _digest(path: str, cache: dict[str, str | None]) -> str | None:
    """sha256 of a picture's bytes (the name its stored copy gets under images/), None: unreadable."""
    if path not in cache:
        try:
            h = hashlib.sha256()
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
            cache[path] = h.hexdigest()
        except OSError:
            cache[path] = None
    return cache[path]


@dataclass
class SyncPlan:
    """What a sync does (:meth:`Store.sync`), decided by comparing each product's fields and its
    pictures' content hashes (sha256 of the bytes, which is the stored copy's name) with the store's:

    * a new id: added; its pictures encoded, unless the store already has one with the same bytes
      (a variant's picture, a product's moved picture): that vector is reused;
    * same pictures (same hashes, in the same places), other fields: ``update`` (same rows,
      nothing encoded: a price, stock or title change);
    * other pictures: ``reencode``: the product gets new rows; only pictures whose bytes the store
      has never seen are encoded (``encode``, each once), the others' vectors are copied;
    * an id the catalogue no longer has: ``remove``."""

    add: list[Product] = field(default_factory=list)
    update: list[Product] = field(default_factory=list)
    reencode: list[Product] = field(default_factory=list)
    remove: list[str] = field(default_factory=list)
    unchanged: int = 0
    encode: list[tuple[str, str]] = field(default_factory=list)        # (sha256, source) to encode
    skipped: list[tuple[str, str]] = field(default_factory=list)
    hashes: dict[tuple[str, int], str | None] = field(default_factory=dict)   # (id, n) -> sha256
    known: dict[str, tuple[int, str]] = field(default_factory=dict)           # sha256 -> (row, stored file)

    @property
    def new_ids(self) -> set[str]:
        return {p.id for p in self.add}

    def is_empty(self) -> bool:
        return not (self.add or self.update or self.reencode or self.remove)

    def report(self) -> ChangeReport:
        return ChangeReport(added=len(self.add), removed=len(self.remove), updated=len(self.update),
                            reencoded=len(self.reencode), unchanged=self.unchanged, encoded=len(self.encode),
                            skipped=list(self.skipped))

    @classmethod
    def make(cls, snap: "StoreSnapshot", products: Sequence[Product], skipped: Sequence[tuple[str, str]]) -> "SyncPlan":
        plan = cls(skipped=list(skipped))
        others = snap.db.all_pictures()
        current: dict[str, tuple[int, Product, list[tuple[int, str | None]]]] = {}
        for row, prod, file in snap.iter_products():
            current[prod.id] = (row, prod, [(0, Path(file).stem if file else None)] +
                                [(n, Path(f).stem if f else None) for _, n, f in others.get(row, [])])
            if file:
                plan.known.setdefault(Path(file).stem, (row, file))
            for r, _, f in others.get(row, []):
                if f:
                    plan.known.setdefault(Path(f).stem, (r, f))
        cache: dict[str, str | None] = {}
        seen: set[str] = set()
        queued: set[str] = set()
        for p in products:
            if p.id in seen:
                plan.skipped.append((p.id, "duplicate id in the catalogue"))
                continue
            seen.add(p.id)
            pics = [(n, _digest(src, cache)) for n, src in pictures(p)]
            plan.hashes.update(((p.id, n), h) for n, h in pics)
            old = current.get(p.id)
            if old is not None and old[2] == pics:
                if _same(old[1], p):
                    plan.unchanged += 1
                else:
                    plan.update.append(p)
                continue
            (plan.add if old is None else plan.reencode).append(p)
            for (n, src), (_, h) in zip(pictures(p), pics):
                if h is not None and h not in plan.known and h not in queued:
                    queued.add(h)
                    plan.encode.append((h, src))
        plan.remove = [pid for pid in current if pid not in seen]
        return plan

    def batch(self, snap: "StoreSnapshot", result: EmbedResult) -> tuple["Batch", set[str], list[tuple[str, str]]]:
        """The new rows: the added and re-pictured products, their pictures' vectors from ``result``
        (the encoding of :attr:`encode`) or copied from the store's rows with the same bytes. A
        product whose main picture cannot be read is skipped (an existing one keeps its old record:
        returned in the set); another picture that cannot be read is left out."""
        fresh = {self.encode[int(i)][0]: j for j, i in enumerate(result.ok)}
        reasons = {self.encode[int(i)][0]: r for i, r in result.skipped}
        first = snap.n_rows
        take: list[tuple[str, int]] = []          # ("new", index in result) or ("old", row), row order
        batch = Batch(np.zeros((0, snap.manifest["encoder"]["dim"]), np.float32), None, [], [], [])
        kept_old: set[str] = set()
        skipped: list[tuple[str, str]] = []
        existing = {p.id for p in self.reencode}
        for p in self.add + self.reencode:
            placed: list[tuple[int, tuple[str, int], str | None]] = []
            for n, src in pictures(p):
                h = self.hashes.get((p.id, n))
                if h in fresh:
                    placed.append((n, ("new", fresh[h]), result.files[fresh[h]]))
                elif h in self.known:
                    placed.append((n, ("old", self.known[h][0]), self.known[h][1]))
                elif n == 0:
                    break
                else:
                    skipped.append((f"{p.id} picture {n}", reasons.get(h, "cannot read") if h else "cannot read"))
            if not placed or placed[0][0] != 0:
                skipped.append((p.id, reasons.get(self.hashes.get((p.id, 0)) or "", "cannot read its picture")))
                if p.id in existing:
                    kept_old.add(p.id)
                continue
            prow = first + len(take)
            batch.products.append(p)
            batch.rows.append(prow)
            batch.files.append(placed[0][2])
            for i, (n, where, file) in enumerate(placed):
                if i:
                    batch.images.append((first + len(take), prow, n, file))
                take.append(where)
        new_idx = np.array([w for kind, w in take if kind == "new"], np.int64)
        old_rows = np.array([w for kind, w in take if kind == "old"], np.int64)
        is_new = np.array([kind == "new" for kind, _ in take], bool)
        def merged(width: int, encoded: Any, stored: Any) -> np.ndarray:
            """One row per picture taken: the new ones from ``encoded``, the kept ones from ``stored(rows)``."""
            out = np.zeros((len(take), width), np.float32)
            if len(new_idx):
                out[is_new] = np.asarray(encoded, np.float32)[new_idx]
            if len(old_rows):
                out[~is_new] = stored(old_rows)
            return out

        batch.vectors = merged(snap.manifest["encoder"]["dim"], result.vectors, snap.vectors)
        if snap.patch_segments is not None and (result.patches is not None or not len(new_idx)):
            batch.patches = merged(snap.patch_segments[0].shape[1], result.patches, snap.patch_vectors)
        return batch, kept_old, skipped


class StoreSnapshot:
    """One committed generation of a store, loaded: immutable once made (changes make a new one).
    The FAISS backend's :class:`search.Snapshot`."""

    def __init__(self, root: Path, manifest: dict[str, Any]):
        self.root = root
        self.manifest = manifest
        files = manifest["files"]
        self.db = CatalogDB(root / files["catalog"], readonly=True)
        deleted = np.load(root / files["deleted"]) if files.get("deleted") else None
        self.index = VectorIndex.load(root / files["index"], manifest["index"], deleted)
        self.segments = [np.load(root / s, mmap_mode="r") for s in files["vectors"]]
        self.offsets = np.cumsum([0] + [len(s) for s in self.segments])
        self.metric = self.index.metric
        self._lock = threading.Lock()
        self._allowed_cache: dict[tuple, np.ndarray] = {}
        self._sold_out: bool | None = None
        # patch vectors (close-ups of the fabric), row-aligned with the vectors, one file a segment
        patches = files.get("patches") or []
        self.patch_segments = [np.load(root / s, mmap_mode="r") for s in patches] \
            if len(patches) == len(self.segments) and patches else None

    @property
    def n_rows(self) -> int:
        return int(self.offsets[-1])

    @property
    def spread(self) -> float:
        """Vector rows per product (several when products have several pictures): how many more
        candidates a search asks the index for, to fill its places with distinct products."""
        return min(max(self.n_rows / max(int(self.manifest.get("count") or 1), 1), 1.0), 11.0)

    def vectors(self, rows: np.ndarray) -> np.ndarray:
        return self._gather(self.segments, rows, self.manifest["encoder"]["dim"])

    def _gather(self, segments: list, rows: np.ndarray, width: int) -> np.ndarray:
        """The rows of row-aligned segment files (vectors or patch vectors), in the order asked."""
        rows = np.asarray(rows, dtype=np.int64)
        out = np.empty((len(rows), width), np.float32)
        seg = np.searchsorted(self.offsets, rows, side="right") - 1
        for s in np.unique(seg):
            m = seg == s
            out[m] = segments[s][rows[m] - self.offsets[s]]
        return out

    def patch_vectors(self, rows: np.ndarray) -> np.ndarray | None:
        """The rows' patch vectors (``Encoder.encode_catalogue_arrays``), or None: the store has none."""
        if self.patch_segments is None:
            return None
        rows = np.asarray(rows, dtype=np.int64)
        if len(self.patch_segments) == 1 and len(rows) == self.n_rows and (rows == np.arange(len(rows))).all():
            return np.asarray(self.patch_segments[0], np.float32)   # every row, in order: the file itself
        return self._gather(self.patch_segments, rows, self.patch_segments[0].shape[1])

    def all_vectors(self) -> np.ndarray:
        """Every row's vector (removed products' rows too: rows are never reused)."""
        return np.concatenate([np.asarray(s, np.float32) for s in self.segments]) if self.segments else \
            np.zeros((0, self.manifest["encoder"]["dim"]), np.float32)

    def _allowed(self, filters: Filters | None) -> np.ndarray | None:
        """The vector rows ``filters`` lets through (None: all), remembered per filter (the snapshot
        never changes). ``in_stock`` in a store where nothing is sold out lets everything through."""
        if filters is not None and filters.in_stock and not self.sold_out:
            filters = dataclasses.replace(filters, in_stock=False)
        if filters is None or filters.is_empty():
            return None
        key = dataclasses.astuple(filters)
        with self._lock:
            rows = self._allowed_cache.get(key)
        if rows is None:
            rows = self.db.vector_rows(filters)
            with self._lock:
                if len(self._allowed_cache) >= 64:
                    self._allowed_cache.clear()
                self._allowed_cache[key] = rows
        return rows

    @property
    def sold_out(self) -> bool:
        """Whether any product is out of stock."""
        if self._sold_out is None:
            self._sold_out = len(self.db.rows(Filters(availability="out_of_stock"))) > 0
        return self._sold_out

    def candidates(self, queries: np.ndarray, k: int, filters: Filters | None = None,
                   nprobe: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        allowed = self._allowed(filters)
        if allowed is None or len(allowed) > EXACT_SUBSET:
            return self.index.search(queries, k, allowed=allowed, nprobe=nprobe)
        if len(allowed) == 0:   # filtered searches over few rows are done exactly
            n = len(queries)
            return np.full((n, k), -np.inf, np.float32), np.full((n, k), -1, np.int64)
        sub = VectorIndex.build("flat", self.vectors(allowed), allowed, metric=self.metric)
        return sub.search(queries, k)

    def rows(self, filters: Filters | None = None) -> np.ndarray:
        allowed = self._allowed(filters)
        return self.db.vector_rows(None) if allowed is None else allowed

    def image_rows(self, rows: Sequence[int]) -> dict[int, tuple[int, int, str | None]]:
        return self.db.image_rows(rows)

    def rows_of_products(self, product_rows: Sequence[int]) -> np.ndarray:
        return self.db.rows_of_products(product_rows)

    def pictures(self, product_row: int) -> list[tuple[int, int, str | None]]:
        return self.db.pictures(product_row)

    def records(self, rows: Sequence[int]) -> dict[int, tuple[Product, str | None]]:
        return self.db.by_rows(rows)

    def get(self, pid: str) -> tuple[int, Product, str | None] | None:
        return self.db.get(pid)

    def duplicates(self, rows: Sequence[int]) -> list[np.ndarray]:
        return self.db.duplicates(rows)

    def row_ids(self) -> list[tuple[int, str]]:
        return self.db.row_ids()

    def iter_products(self) -> Iterator[tuple[int, Product, str | None]]:
        return self.db.iter_products()

    def facets(self) -> dict[str, list[str]]:
        return self.db.facets()

    def count(self) -> int:
        return self.db.count()

    def close(self) -> None:
        self.db.close()


class Store(Searchable):
    """A built catalogue you can search. ``Store.build(...)`` or ``Store.open(dir)``. Searching,
    similar products and look-ups are :class:`search.Searchable`'s, over :meth:`snapshot`."""

    def __init__(self, root: Path, snapshot: StoreSnapshot, encoder: Encoder | None = None):
        self.root = Path(root)
        self.images_dir = self.root / "images"
        self._snap = snapshot
        self._encoder = encoder
        self._write = threading.Lock()

    @property
    def location(self) -> str:
        return str(self.root)

    def snapshot(self) -> StoreSnapshot:
        """The current generation (a reader keeps using the one it took, whatever changes after)."""
        return self._snap

    def close(self) -> None:
        self._snap.close()

    # ------------------------------------------------------------------ opening
    @staticmethod
    def read_manifest(root: str | Path) -> dict[str, Any]:
        path = Path(root) / MANIFEST
        if not Path(root).is_dir():
            raise StoreError(f"no store at {root} (build one with: dressfinder index CATALOG --store {root})")
        if not path.is_file():
            raise StoreError(f"{root} is not a finished store (no {MANIFEST}); run dressfinder index again")
        try:
            manifest = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise StoreError(f"cannot read {path}: {e}") from None
        if isinstance(manifest, dict) and manifest.get("backend", "faiss") != "faiss":
            raise StoreError(f"{root} is a {manifest['backend']} store: open it with backends.open_store")
        if manifest.get("format") != FORMAT:
            raise StoreError(f"{root} has store format {manifest.get('format')}, this version reads {FORMAT}")
        return manifest

    @classmethod
    def open(cls, root: str | Path, encoder: Encoder | None = None) -> "Store":
        root = Path(root)
        return cls(root, cls._load_snapshot(root), encoder)

    @classmethod
    def _load_snapshot(cls, root: Path) -> StoreSnapshot:
        for attempt in range(5):
            manifest = cls.read_manifest(root)
            try:
                return StoreSnapshot(root, manifest)
            except FileNotFoundError:
                if attempt == 4:
                    raise StoreError(f"{root} is incomplete: files named in {MANIFEST} are missing") from None
                time.sleep(0.05)  # a writer replaced the manifest under us: read it again
            except RuntimeError as e:  # faiss
                raise StoreError(f"cannot read the index of {root}: {e}") from None
        raise AssertionError("unreachable")

    @property
    def manifest(self) -> dict[str, Any]:
        return self._snap.manifest

    @property
    def generation(self) -> int:
        return int(self._snap.manifest["generation"])

    def reload(self) -> bool:
        """Pick up a store rebuilt or changed by another process. True when something changed."""
        try:
            on_disk = self.read_manifest(self.root)
        except StoreError:
            return False
        if on_disk.get("token") == self._snap.manifest.get("token"):
            return False
        new = self._load_snapshot(self.root)
        old, self._snap = self._snap, new
        if old.manifest["encoder"] != new.manifest["encoder"]:
            self._encoder = None
        return True

    @property
    def encoder(self) -> Encoder:
        if self._encoder is None:
            self._encoder = load_encoder(self.manifest["encoder"], self.root)
        return self._encoder

    def info(self) -> dict[str, Any]:
        m = self.manifest
        return {"path": str(self.root), "products": len(self), "encoder": m["encoder"], "index": m["index"],
                "generation": m["generation"], "updated": m["updated"], "built": m.get("built", {})}

    # ------------------------------------------------------------------ building
    @classmethod
    def build(cls, catalog: str | Path | Sequence[Product], root: str | Path, *,
              encoder: str | Encoder | None = None, index: str = "auto",
              index_params: dict[str, Any] | None = None, model: str | Path | None = None,
              train_epochs: int = 20, progress: bool = True, workers: int | None = None,
              dask: str | None = None, precision: str | None = None) -> "Store":
        """Encode a catalogue and write a store at ``root`` (replacing one that is there, atomically).
        ``precision``: the encoder's variant (auto, int8, fp32; None: ``DRESSFINDER_PRECISION``)."""
        root = Path(root)
        t0 = time.perf_counter()
        products, pre_skipped, source = products_from(catalog)
        if not products:
            raise DressfinderError(f"catalogue {catalog} has no images")
        root.mkdir(parents=True, exist_ok=True)
        with writer_lock(root, timeout=0.5):
            images_dir = root / "images"
            enc = cls._prepare_encoder(encoder, model, products, root, train_epochs, progress, precision)
            sources, owners = layout(products)
            work = root / ".work" / fingerprint(enc, [str(src) for src in sources])
            result = cls._embed(enc, sources, images_dir, work, progress, workers, dask)
            batch, skipped = assemble(products, owners, result, 0)
            if not batch.products:
                raise DressfinderError("no readable images in the catalogue; nothing to index")
            vectors = batch.vectors
            kept = batch.products
            kind = index
            if kind == "auto":
                kind = auto_kind(len(vectors), vectors.shape[1])   # the rule and its numbers: index.auto_kind
            vindex = VectorIndex.build(kind, vectors, metric=enc.metric, **(index_params or {}))
            manifest = cls._commit_new(root, enc, vindex, batch, {
                "source": source, "products": len(kept), "skipped": len(skipped) + len(pre_skipped),
                "seconds": round(time.perf_counter() - t0, 2), "encode_seconds": round(result.seconds, 2),
                "images_per_second": round(result.rate, 1)})
            shutil.rmtree(root / ".work", ignore_errors=True)
        store = cls(root, StoreSnapshot(root, manifest), enc)
        store.last_report = ChangeReport(
            added=len(kept), seconds=time.perf_counter() - t0, encode_seconds=result.seconds,
            skipped=pre_skipped + skipped, timings=result.timings)
        store.last_report.encoded = len(result.ok)
        return store

    @classmethod
    def from_vectors(cls, root: str | Path, encoder: Encoder, index: VectorIndex, vectors: np.ndarray,
                     products: list[Product], files: list[str | None], built: dict[str, Any],
                     patches: np.ndarray | None = None) -> "Store":
        """Write a store from vectors already made (row i = ``products[i]``, its image ``files[i]``
        under ``root/images``; ``patches``: their patch vectors, if any), replacing one that is
        there, atomically."""
        root = Path(root)
        root.mkdir(parents=True, exist_ok=True)
        with writer_lock(root, timeout=0.5):
            batch = Batch(vectors, patches, list(products), list(range(len(products))), list(files))
            manifest = cls._commit_new(root, encoder, index, batch, built)
        return cls(root, StoreSnapshot(root, manifest), encoder)

    @staticmethod
    def _embed(enc: Encoder, sources: list, images_dir: Path, work: Path | None, progress: bool,
               workers: int | None, dask: str | None) -> EmbedResult:
        if dask:
            from .distributed import embed_with_dask

            return embed_with_dask(enc, sources, images_dir, dask, progress=progress)
        return embed(enc, sources, images_dir=images_dir, work_dir=work, progress=progress, workers=workers)

    @staticmethod
    def _prepare_encoder(encoder, model, products, root: Path, epochs: int, progress: bool,
                         precision: str | None = None) -> Encoder:
        if isinstance(encoder, Encoder):
            return encoder
        name = encoder or None
        if name == "autoencoder" and model is None:
            from .training.autoencoder import train_from_sources

            model = root / ".work" / "autoencoder-trained.keras"
            if not model.exists():
                log.info("no --model given: training the seed autoencoder on this catalogue first")
                train_from_sources([p.image for p in products], model, epochs=epochs, progress=progress)
        return get_encoder(name, precision=precision, **({"model": str(model)} if model else {}))

    @classmethod
    def _commit_new(cls, root: Path, enc: Encoder, vindex: VectorIndex, batch: Batch,
                    built: dict[str, Any]) -> dict[str, Any]:
        vectors, patches, products = batch.vectors, batch.patches, batch.products
        old = cls._try_manifest(root)
        gen = (old["generation"] + 1) if old else 1
        tag = f"{gen:06d}-{secrets.token_hex(3)}"
        names = {"catalog": f"catalog-{tag}.sqlite", "index": f"index-{tag}.faiss",
                 "vectors": [f"vectors-{tag}.npy"], "deleted": None,
                 "patches": [f"patches-{tag}.npy"] if patches is not None else None}
        with CatalogDB(root / names["catalog"]) as db:
            db.insert(zip(batch.rows, products, batch.files))
            db.insert_images(batch.images)
        np.save(root / names["vectors"][0], np.ascontiguousarray(vectors, np.float32))
        if patches is not None:
            np.save(root / names["patches"][0], np.ascontiguousarray(patches, np.float32))
        vindex.save(root / names["index"])
        encoder_spec = enc.save_into(root)
        manifest = {
            "format": FORMAT, "dressfinder": __version__, "generation": gen, "token": secrets.token_hex(8),
            "encoder": encoder_spec, "index": vindex.meta(), "files": names, "count": len(products),
            "rows": int(len(vectors)), "updated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "built": built, "previous": old["files"] if old else None,
        }
        cls._write_manifest(root, manifest)
        return manifest

    @staticmethod
    def _try_manifest(root: Path) -> dict[str, Any] | None:
        try:
            return Store.read_manifest(root)
        except StoreError:
            return None

    @staticmethod
    def _write_manifest(root: Path, manifest: dict[str, Any], *, full_image_sweep: bool = True) -> None:
        files = manifest["files"]
        for name in [files["catalog"], files["index"], *files["vectors"], *(files.get("patches") or []),
                     files.get("deleted")]:
            if name:
                _fsync_file(root / name)
        tmp = root / f".{MANIFEST}.{os.getpid()}.tmp"
        _fsync_write(tmp, json.dumps(manifest, indent=2).encode())
        os.replace(tmp, root / MANIFEST)
        _fsync_dir(root)
        Store._collect_garbage(root, manifest, full_image_sweep=full_image_sweep)

    @staticmethod
    def _collect_garbage(root: Path, manifest: dict[str, Any], *, full_image_sweep: bool = True) -> None:
        """Delete generation files that neither the current nor the previous manifest names, and
        stored images that neither generation's catalogue references.

        Images: ``full_image_sweep`` lists every stored image (a build, or the first change after a
        writer died mid-change and may have left images behind); otherwise only the images the
        previous change released (``files["released"]``: its removed or replaced products' files)
        are looked at, so an add or remove does not cost a scan of the whole store."""
        keep = set()
        for files in (manifest["files"], manifest.get("previous") or {}):
            for key in ("catalog", "index", "deleted"):
                if files.get(key):
                    keep.add(files[key])
            keep.update(files.get("vectors") or [])
            keep.update(files.get("patches") or [])
        for path in root.iterdir():
            if path.is_file() and path.name.split("-")[0] in ("catalog", "index", "vectors", "patches", "deleted") \
                    and path.name not in keep:
                path.unlink(missing_ok=True)
            elif path.is_file() and path.name.startswith(f".{MANIFEST}.") and path.name.endswith(".tmp"):
                path.unlink(missing_ok=True)
        # images no longer referenced by either generation's catalogue
        images = root / "images"
        if not images.is_dir():
            return
        candidates = None if full_image_sweep else list((manifest.get("previous") or {}).get("released") or [])
        if candidates is not None and not candidates:
            return
        referenced: set[str] = set()
        for files in (manifest["files"], manifest.get("previous") or {}):
            if files.get("catalog") and (root / files["catalog"]).exists():
                with CatalogDB(root / files["catalog"], readonly=True) as db:
                    if candidates is None:
                        referenced |= db.files()
                    else:
                        referenced |= db.files_of("file", candidates)
        if candidates is None:
            candidates = [f"{sub.name}/{f.name}" for sub in images.iterdir() if sub.is_dir() for f in sub.iterdir()]
        for name in candidates:
            if name not in referenced and "/" in name and ".." not in name:
                (images / name).unlink(missing_ok=True)

    # ------------------------------------------------------------------ incremental updates
    def add(self, catalog: str | Path | Sequence[Product], *, progress: bool = False,
            replace: bool = False) -> ChangeReport:
        """Encode and add products without a rebuild. Ids already in the store are skipped
        (or replaced with ``replace=True``)."""
        t0 = time.perf_counter()
        products, skipped, _ = products_from(catalog)
        with self._write, writer_lock(self.root):
            self.reload()
            snap = self._snap
            fresh, dupes = [], []
            seen: set[str] = set()
            for p in products:
                if p.id in seen:
                    skipped.append((p.id, "duplicate id in the new products"))
                    continue
                seen.add(p.id)
                if snap.db.get(p.id) is not None:
                    if replace:
                        dupes.append(p.id)
                        fresh.append(p)
                    else:
                        skipped.append((p.id, "id already in the store"))
                else:
                    fresh.append(p)
            report = ChangeReport(skipped=skipped)
            if not fresh:
                report.seconds = time.perf_counter() - t0
                return report
            enc = self.encoder
            sources, owners = layout(fresh)
            # finished chunks are kept under .work/ (named by what is encoded): a killed add resumes
            work = self.root / ".work" / ("add-" + fingerprint(enc, [str(src) for src in sources]))
            with _images_pending(self.root) as stale:
                result = embed(enc, sources, images_dir=self.root / "images", work_dir=work, progress=progress,
                               desc="adding")
                batch, skipped_now = assemble(fresh, owners, result, snap.n_rows)
                report.skipped += skipped_now
                kept = batch.products
                if kept:
                    self._commit_change(snap, add=batch, remove_ids=dupes, full_image_sweep=stale)
            shutil.rmtree(work, ignore_errors=True)
            report.added, report.removed = len(kept), len(dupes) if kept else 0
            report.encoded = len(result.ok)
            report.encode_seconds = result.seconds
            report.seconds = time.perf_counter() - t0
            return report

    def add_image(self, product: Product, image: bytes) -> ChangeReport:
        """Add one product whose image arrives as bytes (the web API)."""
        product.image = product.image or "upload"
        t0 = time.perf_counter()
        with self._write, writer_lock(self.root):
            self.reload()
            snap = self._snap
            if snap.db.get(product.id) is not None:
                raise Conflict(f"a product with id {product.id!r} already exists")
            with _images_pending(self.root) as stale:
                result = embed(self.encoder, [image], images_dir=self.root / "images", progress=False)
                if not len(result.ok):
                    raise DressfinderError(result.skipped[0][1])
                batch = Batch(result.vectors, result.patches, [product], [snap.n_rows], result.files)
                self._commit_change(snap, add=batch, remove_ids=[], full_image_sweep=stale)
        return ChangeReport(added=1, seconds=time.perf_counter() - t0, encode_seconds=result.seconds)

    def plan_sync(self, catalog: str | Path | Sequence[Product]) -> "SyncPlan":
        """What :meth:`sync` would do to make the store match ``catalog``, without doing it."""
        products, skipped, _ = products_from(catalog)
        self.reload()
        return SyncPlan.make(self._snap, products, skipped)

    def sync(self, catalog: str | Path | Sequence[Product], *, dry_run: bool = False,
             progress: bool = False) -> ChangeReport:
        """Make the store hold exactly ``catalog``'s products (a catalogue folder or CSV, e.g. an
        imported feed's catalog.csv, or products): new ones added, changed fields updated in place
        (nothing re-encoded), products whose pictures' bytes changed given new rows (only pictures
        the store has never seen are encoded; the others' vectors are reused, by content hash),
        products no longer there removed. One new generation, committed at once: a reader sees the
        store before or after, never a mix. The encoding keeps finished chunks under ``.work/``,
        so a sync killed midway resumes without re-encoding them. ``dry_run``: plan only."""
        t0 = time.perf_counter()
        products, skipped, _ = products_from(catalog)
        with self._write, writer_lock(self.root):
            self.reload()
            snap = self._snap
            plan = SyncPlan.make(snap, products, skipped)
            report = plan.report()
            report.plan = plan
            if dry_run or plan.is_empty():
                report.seconds = time.perf_counter() - t0
                return report
            enc = self.encoder
            work = self.root / ".work" / ("sync-" + fingerprint(enc, [f"{h}\0{src}" for h, src in plan.encode]))
            with _images_pending(self.root) as stale:
                result = embed(enc, [src for _, src in plan.encode], images_dir=self.root / "images", work_dir=work,
                               progress=progress, desc="syncing")
                batch, kept_old, skipped_now = plan.batch(snap, result)
                report.skipped += skipped_now
                renewed = [p.id for p in plan.reencode if p.id not in kept_old]
                report.added = sum(1 for p in batch.products if p.id in plan.new_ids)
                report.reencoded = len(renewed)
                report.encoded = len(result.ok) - result.resumed
                report.resumed = result.resumed
                self._commit_change(snap, add=batch if batch.products else None, remove_ids=plan.remove + renewed,
                                    update=plan.update, full_image_sweep=stale)
            shutil.rmtree(work, ignore_errors=True)
            report.encode_seconds = result.seconds
            report.seconds = time.perf_counter() - t0
            return report

    def remove(self, ids: Sequence[str]) -> ChangeReport:
        """Remove products by id (unknown ids are reported as skipped)."""
        t0 = time.perf_counter()
        with self._write, writer_lock(self.root):
            self.reload()
            snap = self._snap
            present = [i for i in ids if snap.db.get(i) is not None]
            skipped = [(i, "no such product") for i in ids if i not in set(present)]
            if present:
                with _images_pending(self.root) as stale:
                    self._commit_change(snap, add=None, remove_ids=present, full_image_sweep=stale)
        return ChangeReport(removed=len(present), skipped=skipped, seconds=time.perf_counter() - t0)

    def _commit_change(self, snap: StoreSnapshot, add: Batch | None, remove_ids: Sequence[str], *,
                       full_image_sweep: bool, update: Sequence[Product] = ()) -> dict[str, Any]:
        """One new generation: ``remove_ids`` removed, ``update``'s fields replaced (same rows,
        nothing re-encoded), ``add``'s rows added; committed by replacing store.json."""
        root = self.root
        old = snap.manifest
        gen = old["generation"] + 1
        tag = f"{gen:06d}-{secrets.token_hex(3)}"
        files = dict(old["files"])
        files["catalog"] = f"catalog-{tag}.sqlite"
        files["index"] = f"index-{tag}.faiss"
        files["vectors"] = list(old["files"]["vectors"])
        files["patches"] = list(old["files"].get("patches") or []) or None
        vindex = VectorIndex.load(root / old["files"]["index"], old["index"],
                                  np.load(root / old["files"]["deleted"]) if old["files"].get("deleted") else None)
        snap.db.backup_to(root / files["catalog"])
        rows_total = snap.n_rows
        files["released"] = []
        with CatalogDB(root / files["catalog"]) as db:
            if remove_ids:
                files["released"] = sorted(db.files_of("id", remove_ids))
                gone = np.array(db.delete(remove_ids), np.int64)
                vindex.remove(gone)
            if update:
                db.update((p, None) for p in update)
            if add is not None:
                vectors, patches = add.vectors, add.patches
                rows = np.arange(rows_total, rows_total + len(vectors), dtype=np.int64)
                seg = f"vectors-{tag}.npy"
                np.save(root / seg, np.ascontiguousarray(vectors, np.float32))
                files["vectors"].append(seg)
                if files["patches"] and patches is not None:   # kept row-aligned, else dropped whole
                    np.save(root / f"patches-{tag}.npy", np.ascontiguousarray(patches, np.float32))
                    files["patches"].append(f"patches-{tag}.npy")
                else:
                    files["patches"] = None
                db.insert(zip(add.rows, add.products, add.files))
                db.insert_images(add.images)
                vindex.add(vectors, rows)
                rows_total += len(vectors)
            count = db.count()
        vindex.save(root / files["index"])
        if vindex.deleted:
            files["deleted"] = f"deleted-{tag}.npy"
            np.save(root / files["deleted"], np.array(sorted(vindex.deleted), np.int64))
        else:
            files["deleted"] = None
        manifest = {**old, "generation": gen, "token": secrets.token_hex(8), "files": files, "count": count,
                    "rows": rows_total, "index": vindex.meta(),
                    "updated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "previous": old["files"]}
        self._write_manifest(root, manifest, full_image_sweep=full_image_sweep)
        self._snap = StoreSnapshot(root, manifest)
        return manifest
