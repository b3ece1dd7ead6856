"""The ``dressfinder import`` subcommand: a product feed into a catalogue folder
(``add_arguments(parser)`` and ``run(args) -> exit code``); ``dressfinder index FEED`` uses
``add_feed_arguments`` and ``import_for_index`` to import first."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import DressfinderError
from .command import add_fetch_arguments
from .defaults import DEFAULT_MAX_FEED_BYTES, DEFAULT_MAX_FEED_PAGES

PROG = "dressfinder import"
SHOWN_SKIPS = 20


def add_feed_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of reading a feed (shared by ``import`` and ``index FEED``)."""
    parser.add_argument("--currency", metavar="CODE",
                        help="the shop's ISO 4217 currency where the feed names none (Shopify's products.json; "
                             "read from the shop's pages when FEED is its URL)")
    parser.add_argument("--shop-name", metavar="NAME", dest="shop_name",
                        help="value of the catalogue's shop column (default: the host of each product's link)")
    parser.add_argument("--allow-private", action="store_true",
                        help="also fetch from private and loopback addresses (your own network; default: only "
                             "public ones, or DRESSFINDER_ALLOW_PRIVATE_URLS=1)")
    add_fetch_arguments(parser)
    parser.add_argument("--max-pages", type=int, default=DEFAULT_MAX_FEED_PAGES, metavar="N",
                        help=f"Shopify and WooCommerce: read at most N pages (default {DEFAULT_MAX_FEED_PAGES})")
    parser.add_argument("--max-feed-bytes", type=int, default=DEFAULT_MAX_FEED_BYTES, metavar="N",
                        help=f"refuse a feed document larger than N bytes (default {DEFAULT_MAX_FEED_BYTES})")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("feed", metavar="FEED",
                        help="a file or http(s) URL: a Google Merchant Center feed (tab-separated, RSS or Atom), a "
                             "Shopify store's /products.json, WooCommerce's /wp-json/wc/store/v1/products")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder: catalog.csv and images/")
    add_feed_arguments(parser)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def options(args: argparse.Namespace, progress: bool | None = None) -> dict:
    from ..settings import Settings

    return dict(currency=args.currency, shop_name=args.shop_name, delay=args.delay, user_agent=args.user_agent,
                timeout=args.timeout, retries=args.retries, max_pages=args.max_pages,
                max_feed_bytes=args.max_feed_bytes, max_image_bytes=args.max_image_bytes,
                allow_private=args.allow_private or Settings.from_env().allow_private_urls, progress=progress)


def print_summary(summary, out=None) -> None:
    for where, reason in summary.skipped[:SHOWN_SKIPS]:
        print(f"skipped {where}: {reason}", file=sys.stderr)
    if len(summary.skipped) > SHOWN_SKIPS:
        print(f"... and {len(summary.skipped) - SHOWN_SKIPS} more skipped", file=sys.stderr)
    print(summary.format(), file=out or sys.stdout, flush=True)   # sys.stdout as it is now, not at import


def import_for_index(args: argparse.Namespace, feed: str, store: str) -> Path:
    """``dressfinder index FEED --store S``: import FEED into ``--feed-dir`` (default ``S-feed``, beside
    the store, kept: the catalogue the store was built from) and return its catalog.csv."""
    from .feed_import import import_feed

    folder = Path(args.feed_dir) if args.feed_dir else Path(str(Path(store)).rstrip("/") + "-feed")
    summary = import_feed(feed, folder, **options(args, progress=False if args.quiet else None))
    print_summary(summary, out=sys.stderr)
    if summary.products == 0:
        raise DressfinderError(f"the feed {feed} gave no products with a picture (see the skipped reasons above)")
    return summary.catalog


def run(args: argparse.Namespace) -> int:
    """Import a feed; print the summary. 0 ok, 1 no products, 2 user error (a feed that cannot be read)."""
    from .feed_import import import_feed

    try:
        summary = import_feed(args.feed, args.out, **options(args, progress=False if args.no_progress else None))
    except DressfinderError as e:
        print(f"{PROG}: error: {_one_line(e)}", file=sys.stderr)
        return 2
    except OSError as e:  # disk full, permissions
        print(f"{PROG}: error: {_one_line(e)}", file=sys.stderr)
        return 2
    print_summary(summary)
    if summary.products == 0:
        print(f"{PROG}: no products with a picture in {args.feed}; see the skipped reasons above", file=sys.stderr)
        return 1
    return 0


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__
