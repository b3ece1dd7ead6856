"""``dressfinder recommend``: every product's k most similar other products, for a shop's
"similar dresses" block, as CSV or JSON.

::

    dressfinder recommend --store STORE --k 12 --out similar.csv     # product_id,rank,similar_id,score
    dressfinder recommend --store STORE --k 12 --out similar.json    # {"id": [{"id":..., "score":...}, ...]}

Products are ranked by ``search.similar_rows``, the same code as the product page's "similar
dresses" (``Store.similar``), so both give the same answer for the same store and ``k``: never the
product itself, nor its exact duplicates unless ``--include-duplicates``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from ..catalog import Filters, chunks
from ..errors import DressfinderError
from ..search import Searchable, in_stock_only, similar_rows

#: Products per batched index search.
BATCH = 256


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


def export(store: Searchable, out: str | Path, *, k: int = 12, fmt: str | None = None,
           filters: Filters | None = None, include_duplicates: bool = False, batch: int = BATCH,
           progress: bool = True, variants: bool = False, in_stock: bool = True) -> dict[str, Any]:
    """Write every product's ``k`` most similar products to ``out`` (CSV or JSON), atomically:
    unless ``in_stock`` is false none sold out, unless ``variants`` one variant per product
    (``item_group_id``) and none of the product's own. Returns a summary: products, pairs, seconds."""
    from tqdm import tqdm

    if k < 1:
        raise DressfinderError("--k must be at least 1")
    out = Path(out)
    fmt = _format_for(out, fmt)
    if out.parent and not out.parent.is_dir():
        raise DressfinderError(f"no such folder for the output: {out.parent}")
    t0 = time.perf_counter()
    snap = store.snapshot()
    records = snap.row_ids()
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
            for chunk in chunks(records, max(1, int(batch))):
                results = similar_rows(snap, [r for r, _ in chunk], k, filters=in_stock_only(filters, in_stock),
                                       include_duplicates=include_duplicates, variants=variants)
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
    p.add_argument("--shop", default=None, help="only recommend products of this shop (retailer)")
    p.add_argument("--category", default=None, help="only recommend products of this category")
    p.add_argument("--brand", default=None, help="only recommend products of this brand")
    p.add_argument("--variants", action="store_true",
                   help="keep variants apart: a product's other colours and sizes may be recommended, and "
                        "several variants of one product (default: one place per item_group_id)")
    p.add_argument("--include-sold-out", action="store_true",
                   help="also recommend products that are out of stock (default: only what can be bought)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from ..backends import open_store
    from ..settings import Settings

    settings = Settings.from_env(store=args.store)
    if not settings.store:
        raise DressfinderError("no store given: use --store DIR or set DRESSFINDER_STORE")
    store = open_store(settings.store, milvus_token=settings.milvus_token)
    filters = Filters(min_price=args.min_price, max_price=args.max_price, shop=args.shop, category=args.category,
                      brand=args.brand)
    summary = export(store, args.out, k=args.k, fmt=args.format, filters=None if filters.is_empty() else filters,
                     include_duplicates=args.include_duplicates, batch=args.batch, progress=not args.quiet,
                     variants=args.variants, in_stock=not args.include_sold_out)
    print(f"wrote {summary['pairs']} recommendations for {summary['products']} products to {summary['out']} "
          f"in {summary['seconds']:.1f} s", file=sys.stderr)
    return 0
