"""``dressfinder recommend``: every product's k most similar other products, for a shop's
"similar dresses" block, as CSV or JSON.

::

    dressfinder recommend --store STORE --k 12 --out similar.csv     # product_id,rank,similar_id,score
    dressfinder recommend --store STORE --k 12 --out similar.json    # {"id": [{"id":..., "score":...}, ...]}

This module also holds :func:`similar_rows`, the one implementation of "products like this
product": ``Store.similar`` (and so the web app's ``GET /api/products/{id}/similar`` and product
page) calls it for one product, the export calls it for batches of products, so both give the
same ranking for the same store and ``k``:

* a product is never its own neighbour;
* unless ``include_duplicates``, neither are its exact duplicates: products whose stored image
  has the same bytes (same content-addressed file), or whose vector is the same picture's
  (cosine >= :data:`NEAR_DUPLICATE_COSINE`, e.g. the same photo saved twice);
* candidates come from the store's index (batched), then are re-scored exactly (float64) and
  ordered by (score descending, row ascending), so a batch of 256 queries and a single query
  rank ties and near-ties identically.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from .errors import DressfinderError

if TYPE_CHECKING:  # pragma: no cover
    from .catalog import Filters
    from .store import Hit, Store

#: Vectors at least this alike (cosine) count as the same picture: left out unless duplicates are asked for.
NEAR_DUPLICATE_COSINE = 0.9999
#: Candidates fetched beyond ``k`` before the exact re-scoring, so ties at the cut are resolved alike.
MARGIN = 8
#: Products per batched index search in the export.
BATCH = 256
_SQL_CHUNK = 500


# --------------------------------------------------------------------------- the shared helper

def _chunks(seq: Sequence, n: int = _SQL_CHUNK):
    for i in range(0, len(seq), n):
        yield seq[i:i + n]


def duplicate_rows(snap: Any, rows: Sequence[int]) -> list[np.ndarray]:
    """For each row, the rows whose stored image file is the same bytes (the row itself included)."""
    conn = snap.db.conn
    rows = [int(r) for r in rows]
    file_of: dict[int, str | None] = {}
    for chunk in _chunks(rows):
        q = f"SELECT row, file FROM products WHERE row IN ({','.join('?' * len(chunk))})"
        for r, f in conn.execute(q, chunk):
            file_of[int(r)] = f
    files = sorted({f for f in file_of.values() if f})
    by_file: dict[str, list[int]] = defaultdict(list)
    for chunk in _chunks(files):
        q = f"SELECT row, file FROM products WHERE file IN ({','.join('?' * len(chunk))})"
        for r, f in conn.execute(q, chunk):
            by_file[f].append(int(r))
    out = []
    for r in rows:
        group = set(by_file.get(file_of.get(r) or "", ()))
        group.add(r)
        out.append(np.array(sorted(group), np.int64))
    return out


def _rescore(snap: Any, queries: np.ndarray, found: list[list["Hit"]]) -> list[np.ndarray]:
    """Exact float64 scores (the index's scale: cosine for ``ip``, 1/(1+d) for ``l2``) and cosines
    of each query's candidates; sets ``hit.score`` and returns the cosines per query."""
    counts = [len(h) for h in found]
    if not sum(counts):
        return [np.zeros(0) for _ in found]
    rows = np.fromiter((h.row for hits in found for h in hits), np.int64, sum(counts))
    cand = snap.vectors(rows).astype(np.float64)
    qd = queries.astype(np.float64)
    dots = np.einsum("ij,ij->i", np.repeat(qd, counts, axis=0), cand)
    qn2 = np.repeat(np.einsum("ij,ij->i", qd, qd), counts)
    cn2 = np.einsum("ij,ij->i", cand, cand)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = np.where((qn2 > 0) & (cn2 > 0), dots / np.sqrt(qn2 * cn2), 0.0)
    if snap.index.metric == "l2":
        scores = 1.0 / (1.0 + np.sqrt(np.maximum(qn2 + cn2 - 2.0 * dots, 0.0)))
    else:
        scores = dots
    out, pos = [], 0
    for hits in found:
        for j, h in enumerate(hits):
            h.score = float(scores[pos + j])
        out.append(cos[pos:pos + len(hits)])
        pos += len(hits)
    return out


def similar_rows(store: "Store", rows: Sequence[int], k: int, *, filters: "Filters | None" = None,
                 include_duplicates: bool = False, snap: Any = None) -> list[list["Hit"]]:
    """The ``k`` products most like each of the products at ``rows`` (batched): never the product
    itself, nor (unless ``include_duplicates``) its exact duplicates. Best first."""
    snap = snap or store._snap
    k = int(k)
    if k < 1:
        raise DressfinderError("k must be at least 1")
    rows = np.asarray(rows, dtype=np.int64)
    n = len(rows)
    if n == 0:
        return []
    queries = snap.vectors(rows)
    exclude = duplicate_rows(snap, rows) if not include_duplicates else [np.array([r], np.int64) for r in rows]
    out: list[list[Hit] | None] = [None] * n
    pending = list(range(n))
    fetch = k + MARGIN
    while pending:
        found = store.search_vectors(queries[pending], fetch, filters=filters,
                                     exclude_rows=[exclude[i] for i in pending], snap=snap)
        cosines = _rescore(snap, queries[pending], found)
        again = []
        for i, hits, cos in zip(pending, found, cosines):
            exhausted = len(hits) < fetch
            order = sorted(range(len(hits)), key=lambda j: (-hits[j].score, hits[j].row))
            if not include_duplicates:
                order = [j for j in order if cos[j] < NEAR_DUPLICATE_COSINE]
            if exhausted or len(order) >= k + MARGIN or fetch >= snap.n_rows:
                out[i] = [hits[j] for j in order[:k]]
            else:  # near-duplicates took candidate places: ask the index for more
                again.append(i)
        pending = again
        fetch *= 2
    return out  # type: ignore[return-value]


def similar_ids(store: "Store", ids: Sequence[str], k: int, **kw: Any) -> list[list["Hit"]]:
    """:func:`similar_rows` by product id (``NotFound`` for an unknown id)."""
    from .errors import NotFound

    snap = kw.pop("snap", None) or store._snap
    rows = []
    for pid in ids:
        rec = snap.db.get(pid)
        if rec is None:
            raise NotFound(f"no product with id {pid!r}")
        rows.append(rec[0])
    return similar_rows(store, rows, k, snap=snap, **kw)


# --------------------------------------------------------------------------- export

FORMATS = ("csv", "json")
CSV_COLUMNS = ("product_id", "rank", "similar_id", "score")


def _format_for(path: Path, given: str | None) -> str:
    if given:
        return given
    ext = path.suffix.lower().lstrip(".")
    if ext in FORMATS:
        return ext
    raise DressfinderError(f"cannot tell the format of {path}: name it .csv or .json, or give --format")


def export(store: "Store", out: str | Path, *, k: int = 12, fmt: str | None = None,
           filters: "Filters | None" = None, include_duplicates: bool = False, batch: int = BATCH,
           progress: bool = True) -> dict[str, Any]:
    """Write every product's ``k`` most similar products to ``out`` (CSV or JSON), atomically.
    Returns a summary: products, pairs, seconds."""
    import csv
    import json
    import time

    from tqdm import tqdm

    if k < 1:
        raise DressfinderError("--k must be at least 1")
    out = Path(out)
    fmt = _format_for(out, fmt)
    if out.parent and not out.parent.is_dir():
        raise DressfinderError(f"no such folder for the output: {out.parent}")
    t0 = time.perf_counter()
    snap = store._snap
    records = [(row, pid) for row, pid in snap.db.conn.execute("SELECT row, id FROM products ORDER BY row")]
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    pairs = 0
    bar = tqdm(total=len(records), desc="recommending", unit="product", disable=not progress,
               dynamic_ncols=True, file=sys.stderr)
    try:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            writer = None
            if fmt == "csv":
                writer = csv.writer(f)
                writer.writerow(CSV_COLUMNS)
            else:
                f.write("{")
            first = True
            for chunk in _chunks(records, max(1, int(batch))):
                results = similar_rows(store, [r for r, _ in chunk], k, filters=filters,
                                       include_duplicates=include_duplicates, snap=snap)
                for (_, pid), hits in zip(chunk, results):
                    pairs += len(hits)
                    if writer is not None:
                        writer.writerows((pid, rank, h.id, f"{h.score:.6f}") for rank, h in enumerate(hits, 1))
                    else:
                        items = [{"id": h.id, "score": round(h.score, 6)} for h in hits]
                        f.write(("\n" if first else ",\n") + json.dumps(pid, ensure_ascii=False) + ": "
                                + json.dumps(items, ensure_ascii=False))
                        first = False
                bar.update(len(chunk))
            if writer is None:
                f.write("\n}\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        bar.close()
    return {"products": len(records), "pairs": pairs, "k": k, "format": fmt, "out": str(out),
            "seconds": time.perf_counter() - t0}


# --------------------------------------------------------------------------- command line

def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--store", default=None, help="store folder (default: $DRESSFINDER_STORE)")
    p.add_argument("--k", "-k", type=int, default=12, help="similar products per product (default 12)")
    p.add_argument("--out", "-o", required=True, metavar="FILE.csv|FILE.json",
                   help="where to write: CSV (product_id,rank,similar_id,score) or JSON ({id: [{id, score}]})")
    p.add_argument("--format", choices=FORMATS, default=None, help="output format (default: from --out's extension)")
    p.add_argument("--include-duplicates", action="store_true",
                   help="keep each product's exact duplicates (same image bytes, or cosine >= 0.9999) "
                        "among its similar products")
    p.add_argument("--batch", type=int, default=BATCH, help=f"products per batched index search (default {BATCH})")
    p.add_argument("--min-price", type=float, default=None, help="only recommend products at least this price")
    p.add_argument("--max-price", type=float, default=None, help="only recommend products at most this price")
    p.add_argument("--shop", default=None, help="only recommend products of this store")
    p.add_argument("--category", default=None, help="only recommend products of this category")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from .catalog import Filters
    from .store import Store

    path = args.store or os.environ.get("DRESSFINDER_STORE")
    if not path:
        raise DressfinderError("no store given: use --store DIR or set DRESSFINDER_STORE")
    store = Store.open(path)
    filters = Filters(min_price=args.min_price, max_price=args.max_price, store=args.shop, category=args.category)
    summary = export(store, args.out, k=args.k, fmt=args.format, filters=None if filters.is_empty() else filters,
                     include_duplicates=args.include_duplicates, batch=args.batch, progress=not args.quiet)
    print(f"wrote {summary['pairs']} recommendations for {summary['products']} products to {summary['out']} "
          f"in {summary['seconds']:.1f} s", file=sys.stderr)
    return 0
