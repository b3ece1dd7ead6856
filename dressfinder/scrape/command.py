"""The ``dressfinder scrape`` subcommand: ``add_arguments(parser)`` and ``run(args) -> exit code``."""

from __future__ import annotations

import argparse
import sys

from ..errors import DressfinderError
from .defaults import (DEFAULT_DELAY, DEFAULT_MAX_IMAGE_BYTES, DEFAULT_MAX_PAGE_BYTES, DEFAULT_MAX_PAGES,
                       DEFAULT_RETRIES, DEFAULT_TIMEOUT, DEFAULT_USER_AGENT)

PROG = "dressfinder scrape"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("start_urls", nargs="+", metavar="START_URL",
                        help="category page(s) or sitemap.xml of the store; the crawl never leaves "
                             "their scheme://host:port")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="output folder: catalog.csv, images/, and the state that makes a rerun resume")
    parser.add_argument("--max-pages", type=int, default=DEFAULT_MAX_PAGES, metavar="N",
                        help=f"stop after N pages (HTML and sitemaps) in DIR, over all runs (default {DEFAULT_MAX_PAGES})")
    parser.add_argument("--recipe", metavar="FILE",
                        help="JSON file of CSS selectors for sites without schema.org/OpenGraph data")
    parser.add_argument("--shop-name", "--store-name", metavar="NAME", dest="shop_name",
                        help="value of the catalogue's shop column (default: the site's host name)")
    parser.add_argument("--image-host", action="append", default=[], metavar="HOST",
                        help="also download images from HOST (a CDN), e.g. cdn.shop.com; repeatable")
    parser.add_argument("--robots-sitemaps", action="store_true",
                        help="also crawl the sitemaps listed in the start hosts' robots.txt")
    parser.add_argument("--retry-failed", action="store_true",
                        help="on a rerun, fetch again the pages that failed with 5xx, 429, a timeout "
                             "or a connection error")
    parser.add_argument("--max-page-bytes", type=int, default=DEFAULT_MAX_PAGE_BYTES, metavar="N",
                        help=f"skip pages larger than N bytes (default {DEFAULT_MAX_PAGE_BYTES})")
    add_fetch_arguments(parser)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def add_fetch_arguments(parser: argparse.ArgumentParser) -> None:
    """How the fetcher treats a shop: politeness, timeouts, retries, picture size (``scrape`` and the
    feed commands alike)."""
    parser.add_argument("--delay", type=float, default=DEFAULT_DELAY, metavar="SECONDS",
                        help=f"pause between requests to a host; robots.txt Crawl-delay can raise it "
                             f"(default {DEFAULT_DELAY:g})")
    parser.add_argument("--user-agent", default=DEFAULT_USER_AGENT, metavar="UA",
                        help=f"User-Agent header, also matched against robots.txt (default {DEFAULT_USER_AGENT!r})")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="SECONDS",
                        help=f"per-request timeout (default {DEFAULT_TIMEOUT:g})")
    parser.add_argument("--retries", type=int, default=DEFAULT_RETRIES, metavar="N",
                        help=f"attempts per request on timeouts, connection errors, 429 and 5xx (default {DEFAULT_RETRIES})")
    parser.add_argument("--max-image-bytes", type=int, default=DEFAULT_MAX_IMAGE_BYTES, metavar="N",
                        help=f"skip images larger than N bytes (default {DEFAULT_MAX_IMAGE_BYTES})")


def run(args: argparse.Namespace) -> int:
    """Run a scrape from parsed arguments; print the summary. 0 ok, 1 nothing scraped,
    2 user error, 130 interrupted (rerun to resume)."""
    from .crawler import scrape  # heavy (extruct, httpx): only when a scrape runs
    from .errors import ScrapeInterrupted

    try:
        summary = scrape(
            args.start_urls, args.out, max_pages=args.max_pages, delay=args.delay, recipe=args.recipe,
            user_agent=args.user_agent, shop_name=args.shop_name, image_hosts=args.image_host,
            timeout=args.timeout, retries=args.retries, max_page_bytes=args.max_page_bytes,
            max_image_bytes=args.max_image_bytes, robots_sitemaps=args.robots_sitemaps,
            retry_failed=args.retry_failed, progress=False if args.no_progress else None)
    except ScrapeInterrupted as e:
        print(e.summary.format(), flush=True)
        return 130
    except DressfinderError as e:
        print(f"{PROG}: error: {_one_line(e)}", file=sys.stderr)
        return 2
    except OSError as e:  # disk full, permissions: the environment, not a bug
        print(f"{PROG}: error: {_one_line(e)}", file=sys.stderr)
        return 2
    print(summary.format(), flush=True)
    if summary.images == 0:
        print(f"{PROG}: no products with images found; see the skipped reasons above "
              "(a --recipe may help on sites without structured data)", file=sys.stderr)
        return 1
    return 0


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__
