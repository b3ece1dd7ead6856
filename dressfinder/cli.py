"""``dressfinder`` command line: index, search, add, remove, info, train, evaluate, serve, scrape,
import, inspect, recommend, bench.

Each subcommand is a module with ``add_arguments(parser)`` and ``run(args) -> int``; modules keep
heavy imports inside ``run`` so ``dressfinder --help`` stays fast. Errors a user can cause print
one line and exit 2; nothing prints a traceback unless ``--debug`` is given.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys

from . import __version__
from .errors import DressfinderError
from .schema import AVAILABILITY

# name -> (module, one-line help). Core commands live in this file (module None).
COMMANDS: dict[str, tuple[str | None, str]] = {
    "index": (None, "encode a catalogue (folder or CSV) into a searchable store"),
    "search": (None, "find the catalogue products most like some photos"),
    "add": (None, "add products (folder or CSV) to a store without a rebuild"),
    "remove": (None, "remove products from a store by id"),
    "sync": (None, "make a store match a product feed or catalogue: add, update, re-encode changed pictures, remove"),
    "info": (None, "describe a store"),
    "train": ("dressfinder.training.command", "train an encoder (the seed autoencoder, or contrastive fine-tuning)"),
    "evaluate": ("dressfinder.tools.evaluate.command", "measure Recall@K on photo-like variants, encoders side by side"),
    "serve": ("dressfinder.web.command", "serve the web app and JSON API for a store"),
    "stats": ("dressfinder.web.stats", "views and clicks of the embed block (similar dresses on a shop's pages)"),
    "scrape": ("dressfinder.scrape.command", "collect store products (image, title, price, link) into a catalogue"),
    "import": ("dressfinder.scrape.feed_command",
               "read a shop's product feed (Google Merchant Center, Shopify, WooCommerce) into a catalogue"),
    "inspect": ("dressfinder.tools.inspect.command", "HTML report of a catalogue or store"),
    "recommend": ("dressfinder.tools.recommend", "export the k most similar products of every product"),
    "bench": ("dressfinder.tools.bench.command", "benchmarks: indexing speed, query latency, recall at scale"),
}


# --------------------------------------------------------------------------- core commands

def _index_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("catalog", help="folder of images, CSV with id,image[,title,price,currency,url,shop,category,...], "
                                   "or a product feed (file or URL: Google Merchant Center, Shopify, WooCommerce), "
                                   "imported first as `dressfinder import` does")
    p.add_argument("--store", required=True, help="store folder to write")
    p.add_argument("--encoder", default=None, help="encoder name (default: the best shipped one); see `dressfinder info --encoders`")
    p.add_argument("--model", default=None,
                   help="model file for the encoder (the autoencoder's .keras, an effnet-tuned .onnx)")
    p.add_argument("--index", default="auto", choices=["auto", "flat", "ivf", "hnsw", "ivfpq"],
                   help="flat: exact; ivf: the seed's k-means clusters + k-NN; hnsw: approximate graph; "
                        "ivfpq: compressed, for the largest catalogues; auto: by size")
    p.add_argument("--nlist", type=int, default=None,
                   help="ivf/ivfpq: number of k-means clusters (default: ivf 10, ivfpq sqrt(n))")
    p.add_argument("--nprobe", type=int, default=None,
                   help="ivf/ivfpq: clusters searched per query (default: ivf 1, ivfpq 16)")
    p.add_argument("--M", type=int, default=None, dest="hnsw_m", help="hnsw: graph degree (default 32)")
    p.add_argument("--ef", type=int, default=None, help="hnsw: search depth efSearch (default 128)")
    p.add_argument("--epochs", type=int, default=20, help="autoencoder: epochs when training one first")
    p.add_argument("--add", action="store_true", help="add the catalogue's products to an existing store")
    p.add_argument("--workers", type=int, default=None,
                   help="worker processes (1000+ images: one per CPU by default) or decoding threads; 1: in-process")
    p.add_argument("--dask", default=None, metavar="local|ADDRESS",
                   help="spread decoding and encoding over a Dask cluster (local: one on 127.0.0.1)")
    _backend_args(p, store_help="; with milvus, --store is the folder that keeps the images")
    precision_arg(p)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    _feed_args(p, "CATALOG")


def _feed_args(p: argparse.ArgumentParser, source: str) -> None:
    """``index`` and ``sync``'s options for when ``source`` is a product feed (imported first)."""
    from .scrape.feed_command import add_feed_arguments

    feed = p.add_argument_group(f"when {source} is a product feed")
    feed.add_argument("--feed-dir", default=None, metavar="DIR",
                      help="where the feed's catalogue (catalog.csv, images/) is imported and kept (default: "
                           "the store's folder name + '-feed', beside it)")
    add_feed_arguments(feed)


def precision_arg(p: argparse.ArgumentParser) -> None:
    from .settings import PRECISIONS

    p.add_argument("--precision", default=None, choices=PRECISIONS,
                   help="the default encoder's variant: int8 (8-bit, faster on CPUs with VNNI), fp32, or auto "
                        "(int8 where faster; default $DRESSFINDER_PRECISION or auto). A store's queries use "
                        "the variant it was built with; asking for another is refused")


def requested_precision(a: argparse.Namespace) -> str:
    """--precision, else $DRESSFINDER_PRECISION, else auto."""
    return a.precision or _settings(a).precision


def check_store_precision(store, a: argparse.Namespace) -> None:
    """Refuse, in one line, a --precision other than the one the store was encoded with."""
    from .encoders import refuse_precision_mismatch

    refuse_precision_mismatch(store.manifest["encoder"], requested_precision(a), where=f"store {store.location}")


def _backend_args(p: argparse.ArgumentParser, store_help: str = "") -> None:
    from .backends import BACKENDS

    p.add_argument("--backend", default=None, choices=BACKENDS,
                   help="where vectors live: faiss (the store folder, default) or milvus" + store_help)
    p.add_argument("--milvus-uri", default=None, metavar="URI",
                   help="milvus: a local file (Milvus Lite) or a server address, e.g. http://host:19530 "
                        "(token from $MILVUS_TOKEN); default $DRESSFINDER_MILVUS_URI")
    p.add_argument("--collection", default=None, help="milvus: collection name (default dressfinder)")


def _settings(a: argparse.Namespace):
    from .settings import Settings

    return Settings.from_env(store=getattr(a, "store", None), milvus_uri=getattr(a, "milvus_uri", None))


def _milvus(a: argparse.Namespace):
    """(uri, collection) for --backend milvus."""
    uri = _settings(a).milvus_uri
    if not uri:
        raise DressfinderError("--backend milvus needs --milvus-uri (a .db file or http://host:19530)")
    return uri, a.collection or "dressfinder"


def _index_run(a: argparse.Namespace) -> int:
    from .backends import backend_of
    from .store import Store

    from .scrape.feeds import is_feed_source

    if is_feed_source(a.catalog):
        from .scrape.feed_command import import_for_index

        a.catalog = str(import_for_index(a, a.catalog, a.store))
    if a.backend == "milvus" or (a.add and a.backend is None and backend_of(a.store) == "milvus"):
        return _index_run_milvus(a)
    if a.add:
        store = Store.open(a.store)
        check_store_precision(store, a)
        rep = store.add(a.catalog, progress=not a.quiet)
        _print_skipped(rep.skipped)
        print(f"added {rep.added} products to {a.store} ({len(store)} in all)"
              + (f", {rep.rate:.1f} images/s" if rep.added else ""), file=sys.stderr)
        return 0
    params = {"nlist": a.nlist, "nprobe": a.nprobe, "M": a.hnsw_m, "efSearch": a.ef}
    store = Store.build(a.catalog, a.store, encoder=a.encoder, index=a.index, model=a.model,
                        index_params={k: v for k, v in params.items() if v is not None},
                        train_epochs=a.epochs, progress=not a.quiet, workers=a.workers, dask=a.dask,
                        precision=requested_precision(a))
    rep = store.last_report
    _print_skipped(rep.skipped)
    info = store.info()
    variant = f" ({info['encoder']['precision']})" if info["encoder"].get("precision") else ""
    print(f"indexed {rep.added} products into {a.store} with {info['encoder']['name']}{variant} + "
          f"{info['index']['kind']} in {rep.seconds:.1f} s: {rep.rate:.1f} images/s"
          + (f"; skipped {len(rep.skipped)}" if rep.skipped else ""), file=sys.stderr)
    return 0


def _index_run_milvus(a: argparse.Namespace) -> int:
    from pathlib import Path

    from .backends.milvus import MilvusStore

    images = Path(a.store) / "images"
    if a.add:
        with _open_store(a) as store:
            rep = store.add(a.catalog, progress=not a.quiet, workers=a.workers)
            _print_skipped(rep.skipped)
            print(f"added {rep.added} products to {store.collection} ({len(store)} in all)"
                  + (f", {rep.rate:.1f} images/s" if rep.added else ""), file=sys.stderr)
        return 0
    uri, collection = _milvus(a)
    with MilvusStore.build(a.catalog, uri, collection, encoder=a.encoder, model=a.model, images_dir=images,
                           progress=not a.quiet, workers=a.workers, dask=a.dask,
                           token=_settings(a).milvus_token) as store:
        store.remember(a.store)
        rep = store.last_report
        _print_skipped(rep.skipped)
        print(f"indexed {rep.added} products into Milvus collection {collection} at {uri} with "
              f"{store.meta['encoder']['name']} + {store.meta['index_type']} in {rep.seconds:.1f} s: "
              f"{rep.rate:.1f} images/s" + (f"; skipped {len(rep.skipped)}" if rep.skipped else ""), file=sys.stderr)
    return 0


def _print_skipped(skipped, limit: int = 20) -> None:
    for where, reason in skipped[:limit]:
        print(f"skipped {where}: {reason}", file=sys.stderr)
    if len(skipped) > limit:
        print(f"... and {len(skipped) - limit} more skipped", file=sys.stderr)


def _filter_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--min-price", type=float, default=None)
    p.add_argument("--max-price", type=float, default=None)
    p.add_argument("--shop", default=None, help="only products of this shop (retailer)")
    p.add_argument("--category", default=None)
    p.add_argument("--brand", default=None, help="only products of this brand")
    p.add_argument("--availability", default=None, choices=AVAILABILITY,
                   help="only products with this availability (e.g. in_stock: no sold-out dresses)")
    p.add_argument("--in-stock", action="store_true",
                   help="only products that can be bought (not out_of_stock: preorder and backorder can)")


def _filters(a: argparse.Namespace):
    from .catalog import Filters

    return Filters(min_price=a.min_price, max_price=a.max_price, shop=a.shop, category=a.category,
                   brand=a.brand, availability=a.availability, in_stock=getattr(a, "in_stock", False))


def _search_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("images", nargs="+", metavar="IMAGE", help="photos to search with")
    p.add_argument("--store", default=None, help="store folder (default: $DRESSFINDER_STORE)")
    p.add_argument("--k", "-k", type=int, default=10, help="results per photo (default 10)")
    p.add_argument("--json", action="store_true", help="one JSON object per query line")
    p.add_argument("--crop", default=None, metavar="L,T,R,B",
                   help="search only this box of the photo, as fractions of width/height, e.g. 0.2,0.1,0.8,0.9")
    p.add_argument("--no-detect", dest="detect", action="store_false",
                   help="search the whole photo (default: find the dress in a screenshot or scene first)")
    p.add_argument("--variants", action="store_true",
                   help="keep variants apart (default: one result per item_group_id, its best-matching variant)")
    _filter_args(p)
    _backend_args(p)
    precision_arg(p)


def _open_store(a: argparse.Namespace):
    """The store that --store (or $DRESSFINDER_STORE) names, whichever its backend; or, with
    ``--backend milvus --milvus-uri``, that collection."""
    from .backends import open_store

    settings = _settings(a)
    if getattr(a, "backend", None) == "milvus" and (getattr(a, "milvus_uri", None) or not settings.store):
        from .backends.milvus import MilvusStore

        return MilvusStore.open(*_milvus(a), token=settings.milvus_token)
    if not settings.store:
        raise DressfinderError("no store given: use --store DIR or set DRESSFINDER_STORE")
    return open_store(settings.store, milvus_token=settings.milvus_token)


def _search_run(a: argparse.Namespace) -> int:
    from .catalog import display_title

    if a.k < 1:
        raise DressfinderError("--k must be at least 1")
    crop = None
    if a.crop:
        try:
            crop = [float(v) for v in a.crop.split(",")]
            assert len(crop) == 4
        except (ValueError, AssertionError):
            raise DressfinderError("--crop takes four numbers: left,top,right,bottom (fractions)") from None
    store = _open_store(a)
    check_store_precision(store, a)
    filters = _filters(a)
    failures = 0
    for q in a.images:
        try:
            found = store.search_regions(q, a.k, filters=filters, crop=crop, detect=a.detect, variants=a.variants)
            hits = found.hits
        except DressfinderError as e:
            failures += 1
            if a.json:
                print(json.dumps({"query": q, "error": str(e)}), flush=True)
            print(f"dressfinder search: error: {q}: {e}", file=sys.stderr)
            continue
        if a.json:
            print(json.dumps({"query": q, "region": found.region_dict(),
                              "results": [h.to_dict() for h in hits],
                              "regions": [r.to_dict() for r in found.others],
                              "detected": found.detected_dicts()}, ensure_ascii=False), flush=True)
        else:
            where = "" if found.kind == "whole" else "  [" + ",".join(f"{v:.2f}" for v in found.region) + "]"
            print(q + where)
            for rank, h in enumerate(hits, 1):
                p = h.product
                price = f"  {p.price:.2f} {p.currency or ''}".rstrip() if p.price is not None else ""
                shown = display_title(p)
                title = f"  {shown}" if shown != h.id else ""
                sold = "  sold out" if p.availability == "out_of_stock" else ""
                pic = f"  (picture {h.image})" if h.image else ""
                print(f"  {rank:2d}. {h.score:.3f}  {h.id}{title}{price}{sold}{pic}" + (f"  {p.url}" if p.url else ""))
    return 1 if failures else 0


def _add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("catalog", help="folder or CSV of products to add")
    p.add_argument("--store", required=True)
    p.add_argument("--replace", action="store_true", help="replace products whose id is already there")
    p.add_argument("-q", "--quiet", action="store_true")


def _add_run(a: argparse.Namespace) -> int:
    store = _open_store(a)
    rep = store.add(a.catalog, progress=not a.quiet, replace=a.replace)
    _print_skipped(rep.skipped)
    print(f"added {rep.added} products" + (f", replaced {rep.removed}" if rep.removed else "")
          + f"; {len(store)} in the store", file=sys.stderr)
    return 0


def _remove_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("ids", nargs="+", metavar="ID")
    p.add_argument("--store", required=True)


def _remove_run(a: argparse.Namespace) -> int:
    store = _open_store(a)
    rep = store.remove(a.ids)
    _print_skipped(rep.skipped)
    print(f"removed {rep.removed} products; {len(store)} in the store", file=sys.stderr)
    return 0 if not rep.skipped else 1


def _sync_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", metavar="SOURCE",
                   help="the shop's whole catalogue now: a product feed (file or URL, imported first as "
                        "`dressfinder import` does), a scraped catalogue folder, or a CSV")
    p.add_argument("--store", required=True, help="the store to bring in step (a FAISS store folder)")
    p.add_argument("--dry-run", action="store_true", help="print what would change, change nothing")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    _feed_args(p, "SOURCE")


def _sync_run(a: argparse.Namespace) -> int:
    from .backends import backend_of
    from .scrape.feeds import is_feed_source
    from .store import Store

    if backend_of(a.store) == "milvus":
        raise DressfinderError(f"{a.store} is a Milvus store: sync keeps FAISS stores only; rebuild it with "
                               "dressfinder index, or use add and remove")
    store = Store.open(a.store)
    if is_feed_source(a.source):
        from .scrape.feed_command import import_for_index

        a.source = str(import_for_index(a, a.source, a.store))
    rep = store.sync(a.source, dry_run=a.dry_run, progress=not a.quiet)
    _print_skipped(rep.skipped)
    if a.dry_run:
        plan = rep.plan
        for what, items in (("add", [p.id for p in plan.add]), ("update", [p.id for p in plan.update]),
                            ("re-encode", [p.id for p in plan.reencode]), ("remove", plan.remove)):
            for pid in items[:50]:
                print(f"{what} {pid}")
            if len(items) > 50:
                print(f"... and {len(items) - 50} more to {what}")
        print(f"would add {rep.added}, update {rep.updated}, re-encode {rep.reencoded} ({len(plan.encode)} "
              f"pictures to encode), remove {rep.removed}; unchanged {rep.unchanged}, skipped {len(rep.skipped)}")
        return 0
    print(f"synced {a.store}: {rep.format_sync()}; {len(store)} products, generation {store.generation}, "
          f"{rep.seconds:.1f} s")
    return 0


def _info_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--store", default=None)
    p.add_argument("--encoders", action="store_true", help="list the encoders this installation has")


def _info_run(a: argparse.Namespace) -> int:
    if a.encoders:
        from .encoders import DEFAULT_ENCODER, available_encoders

        for name in available_encoders():
            print(name + ("  (default)" if name == DEFAULT_ENCODER else ""))
        return 0
    print(json.dumps(_open_store(a).info(), indent=2))
    return 0


CORE = {
    "index": (_index_args, _index_run),
    "search": (_search_args, _search_run),
    "add": (_add_args, _add_run),
    "remove": (_remove_args, _remove_run),
    "sync": (_sync_args, _sync_run),
    "info": (_info_args, _info_run),
}


# --------------------------------------------------------------------------- entry point

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dressfinder", description="Visual search for dresses.")
    parser.add_argument("--version", action="version", version=f"dressfinder {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, (module, help_) in COMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        if module is None:
            add, run = CORE[name]
        else:
            try:
                mod = importlib.import_module(module)
            except ImportError:
                continue  # a part not installed in this build
            add, run = mod.add_arguments, mod.run
        add(p)
        p.set_defaults(handler=run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.handler(args) or 0)
    except DressfinderError as e:
        if args.debug:
            raise
        print(f"dressfinder {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"dressfinder {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as e:  # last resort: one line, never a traceback
        if args.debug:
            raise
        print(f"dressfinder {args.command}: internal error: {type(e).__name__}: {e} (rerun with --debug)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
