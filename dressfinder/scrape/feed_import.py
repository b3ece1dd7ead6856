"""``dressfinder import FEED --out DIR``: a shop's product feed (``feeds``) into a catalogue folder
like the scraper's: every picture downloaded and checked under ``DIR/images/``, and
``DIR/catalog.csv`` with every field of the product record.

FEED is a file or an http(s) URL. A URL is fetched with the scraper's fetcher: its size caps,
timeouts, retries, robots.txt and per-host delay, and, unless private addresses are allowed, only
from public addresses (each request's host resolved and checked, the connection made to the
checked address). Shopify's ``/products.json`` (``/collections/<handle>/products.json``) is paged
with ``?limit=250&page=N`` until an empty ``products`` list, WooCommerce's Store API with
``?per_page=100&page=N`` up to its ``X-WP-TotalPages``, both at most ``max_pages`` pages and
stopped when a page only repeats products already read; WooCommerce's variations are then read
from the same route with ``type=variation`` (their own prices, stock and pictures).

A full feed is the shop's catalogue: ``catalog.csv`` is rewritten with what this feed holds (a
product missing from it is gone from the catalogue). Pictures are content-addressed, so a picture
several products (variants) share is stored once, and each URL is downloaded once.
"""

from __future__ import annotations

import csv
import io
import logging
import re
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

from tqdm import tqdm

from ..images import DEFAULT_MAX_PIXELS
from ..prices import currency_code
from .defaults import (DEFAULT_BACKOFF, DEFAULT_DELAY, DEFAULT_MAX_FEED_BYTES, DEFAULT_MAX_FEED_PAGES,
                       DEFAULT_MAX_IMAGE_BYTES, DEFAULT_MAX_PAGE_BYTES, DEFAULT_RETRIES, DEFAULT_TIMEOUT,
                       DEFAULT_USER_AGENT)
from .errors import FeedError, FetchError
from .feeds import (SHOPIFY_PATH, WOO_PATH, FeedOptions, FeedPage, FeedRow, detect, parse, parse_shopify,
                    parse_woo, shopify_products, woo_products, woo_variation_ids)
from .fetch import Fetcher, Response
from .output import CATALOG_FILE, atomic_write, save_image, verify_image

log = logging.getLogger(__name__)

#: catalog.csv's columns (the product record's fields, then where each came from); the feed's
#: other attributes follow as extras, in the order first seen.
COLUMNS = ("id", "image", "title", "price", "sale_price", "currency", "availability", "url", "shop", "brand",
           "category", "color", "size", "item_group_id", "more_images", "image_url", "more_image_urls", "source",
           "imported_at")
SHOPIFY_PAGE_SIZE = 250
WOO_PAGE_SIZE = 100
_SHOPIFY_CURRENCY = re.compile(r"Shopify\.currency\s*=\s*\{[^{}]*?[\"']active[\"']\s*:\s*[\"']([A-Za-z]{3})[\"']")
_META_CURRENCY = (
    re.compile(r"<meta[^>]+property=[\"'](?:og|product):price:currency[\"'][^>]*content=[\"']([A-Za-z]{3})[\"']", re.I),
    re.compile(r"<meta[^>]+content=[\"']([A-Za-z]{3})[\"'][^>]*property=[\"'](?:og|product):price:currency[\"']", re.I),
)


@dataclass
class ImportSummary:
    source: str
    kind: str
    out_dir: Path
    catalog: Path | None = None
    pages: int = 0                     # feed documents read (Shopify's and WooCommerce's pages)
    items: int = 0                     # items the feed held (Shopify: products, with their variants)
    products: int = 0                  # rows written to catalog.csv
    variants: int = 0                  # of them, rows with an item_group_id
    groups: int = 0                    # distinct item_group_ids
    pictures: int = 0                  # pictures the written rows list (main and others)
    files: int = 0                     # image files saved (each URL once; the same bytes once)
    image_failures: Counter = field(default_factory=Counter)     # reason -> URLs that failed
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (where, reason) of rows left out
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def reasons(self) -> Counter:
        """Skipped rows counted by reason (its words before any ": detail")."""
        return Counter(reason.split(": ")[0] for _, reason in self.skipped)

    def format(self) -> str:
        pages = f" ({self.pages} pages)" if self.pages > 1 else ""
        lines = [f"imported {self.products} products from a {self.kind} feed{pages} into {self.catalog} "
                 f"in {self.seconds:.1f} s"]
        if self.variants:
            lines.append(f"  variants: {self.variants} rows of {self.groups} products (item_group_id)")
        failed = sum(self.image_failures.values())
        lines.append(f"  images: {self.pictures} pictures listed, {self.files} files saved"
                     + (f", {failed} URLs failed (" + ", ".join(f"{r} {n}" for r, n in self.image_failures.most_common())
                        + ")" if failed else ""))
        if self.skipped:
            lines.append(f"  skipped {len(self.skipped)} rows: "
                         + ", ".join(f"{r} {n}" for r, n in self.reasons().most_common()))
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def with_query(url: str, **params: Any) -> str:
    """``url`` with ``params`` set in its query (replacing those it has), in the order given."""
    parts = urlsplit(url)
    kept = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in params]
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(kept + [(k, str(v)) for k, v in params.items()]), ""))


def is_url(source: str | Path) -> bool:
    return bool(re.match(r"^https?://", str(source), re.I))


class FeedImporter:
    def __init__(self, source: str | Path, out_dir: str | Path, *, currency: str | None = None,
                 shop_name: str | None = None, delay: float = DEFAULT_DELAY, user_agent: str = DEFAULT_USER_AGENT,
                 timeout: float = DEFAULT_TIMEOUT, retries: int = DEFAULT_RETRIES, backoff: float = DEFAULT_BACKOFF,
                 max_feed_bytes: int = DEFAULT_MAX_FEED_BYTES, max_image_bytes: int = DEFAULT_MAX_IMAGE_BYTES,
                 max_pixels: int | None = DEFAULT_MAX_PIXELS, max_pages: int = DEFAULT_MAX_FEED_PAGES,
                 allow_private: bool = False, progress: bool | None = None, transport=None):
        self.source = str(source)
        self.remote = is_url(source)
        self.out_dir = Path(out_dir)
        if currency and not currency_code(currency):
            raise FeedError(f"--currency {currency!r} is not an ISO 4217 currency code (e.g. EUR, USD, JPY)")
        self.currency = currency_code(currency) if currency else None
        self.opts = FeedOptions(currency=self.currency, shop=(shop_name or "").strip() or None,
                                base_url=self.source if self.remote else None)
        if max_pages < 1 or max_feed_bytes < 1 or max_image_bytes < 1:
            raise FeedError("--max-pages, --max-feed-bytes and --max-image-bytes must be at least 1")
        self.max_feed_bytes, self.max_image_bytes = int(max_feed_bytes), int(max_image_bytes)
        self.max_pixels, self.max_pages, self.progress = max_pixels, int(max_pages), progress
        self.fetcher = Fetcher(user_agent=user_agent, delay=delay, timeout=timeout, retries=retries, backoff=backoff,
                               transport=transport, public_only=not allow_private,
                               accept="application/json,application/xml,text/xml,text/tab-separated-values,"
                                      "text/plain;q=0.9,image/*;q=0.8,*/*;q=0.5")
        self.summary = ImportSummary(self.source, "?", self.out_dir)

    # ------------------------------------------------------------------ fetching
    def _get(self, url: str, max_bytes: int | None = None) -> Response:
        try:
            return self.fetcher.get(url, max_bytes=max_bytes or self.max_feed_bytes, in_scope=lambda u: True)
        except FetchError as e:
            raise FeedError(f"cannot fetch {url}: {e}") from None

    def _read_local(self) -> bytes:
        path = Path(self.source)
        if not path.is_file():
            raise FeedError(f"no such feed file: {path}")
        if path.stat().st_size > self.max_feed_bytes:
            raise FeedError(f"{path} is larger than --max-feed-bytes {self.max_feed_bytes}")
        try:
            return path.read_bytes()
        except OSError as e:
            raise FeedError(f"cannot read {path}: {e.strerror or e}") from None

    # ------------------------------------------------------------------ the feed's rows
    def pages(self) -> list[FeedPage]:
        if not self.remote:
            body = self._read_local()
            kind = self.summary.kind = detect(body, self.source)
            self.summary.pages = 1
            if kind == "shopify" and not self.currency:
                raise FeedError("a Shopify products.json names no currency: give --currency (e.g. --currency EUR); "
                                "from the shop's URL it is read from its pages")
            return [parse(body, kind, self.opts, self.source)]
        path = urlsplit(self.source).path
        if SHOPIFY_PATH.search(path):
            return self._shopify()
        if WOO_PATH.search(path):
            return self._woo()
        resp = self._get(self.source)
        kind = self.summary.kind = detect(resp.body, self.source)
        self.summary.pages = 1
        if kind == "shopify":
            products = shopify_products(resp.body, self.source)
            return [parse_shopify(products, self.currency or self._shop_currency(products), self.opts)]
        if kind == "woocommerce":
            return [parse_woo(woo_products(resp.body, self.source), self.opts)]
        return [parse(resp.body, kind, self.opts, self.source)]

    def _repeats(self, page_ids: list[str], seen: set[str], n: int) -> bool:
        if page_ids and all(i in seen for i in page_ids):
            self.summary.notes.append(f"page {n} only repeats products read before: paging stopped there")
            return True
        seen.update(page_ids)
        return False

    def _shopify(self) -> list[FeedPage]:
        self.summary.kind = "shopify"
        out: list[FeedPage] = []
        seen: set[str] = set()
        currency = self.currency
        for n in range(1, self.max_pages + 1):
            url = with_query(self.source, limit=SHOPIFY_PAGE_SIZE, page=n)
            products = shopify_products(self._get(url).body, url)
            self.summary.pages = n
            if not products:
                return out
            currency = currency or self._shop_currency(products)
            page = parse_shopify(products, currency, self.opts)
            if self._repeats(page.item_ids, seen, n):
                return out
            page.skipped = [(f"page {n} {where}", reason) for where, reason in page.skipped]
            out.append(page)
        self.summary.notes.append(f"stopped after --max-pages {self.max_pages} pages; the feed may have more")
        return out

    def _shop_currency(self, products: list[Any]) -> str:
        """The shop's currency from its pages: ``Shopify.currency.active`` on its home page, else a
        product page's ``og:price:currency``."""
        home = urljoin(self.source, "/")
        handle = next((p.get("handle") for p in products if isinstance(p, dict) and p.get("handle")), None)
        for url in [home] + ([urljoin(home, f"products/{handle}")] if handle else []):
            try:
                text = self.fetcher.get(url, max_bytes=DEFAULT_MAX_PAGE_BYTES, in_scope=lambda u: True,
                                        truncate=True).text()
            except FetchError as e:
                log.info("shop currency: %s: %s", url, e)
                continue
            for pattern in (_SHOPIFY_CURRENCY, *_META_CURRENCY):
                m = pattern.search(text)
                if m and currency_code(m.group(1).upper()):
                    self.summary.notes.append(f"currency {m.group(1).upper()} read from {url}")
                    return currency_code(m.group(1).upper())
        raise FeedError("a Shopify products.json names no currency and the shop's pages did not say it "
                        "(Shopify.currency.active, og:price:currency): give --currency (e.g. --currency EUR)")

    def _woo_pages(self, **params: Any) -> list[Any]:
        """Every item of the Store API's products route with ``params``, page by page."""
        items: list[Any] = []
        seen: set[str] = set()
        for n in range(1, self.max_pages + 1):
            url = with_query(self.source, **params, per_page=WOO_PAGE_SIZE, page=n)
            resp = self._get(url)
            page = woo_products(resp.body, url)
            if not params:
                self.summary.pages = n
            if not page or self._repeats([str(i.get("id")) for i in page if isinstance(i, dict)], seen, n):
                return items
            items += page
            total = resp.headers.get("x-wp-totalpages", "").strip()
            if total.isdigit() and n >= int(total):
                return items
        self.summary.notes.append(f"stopped after --max-pages {self.max_pages} pages; the feed may have more")
        return items

    def _woo(self) -> list[FeedPage]:
        self.summary.kind = "woocommerce"
        items = self._woo_pages()
        need = set(woo_variation_ids(items))
        details: dict[str, dict] = {}
        if need:
            try:
                details = {str(v["id"]): v for v in self._woo_pages(type="variation")
                           if isinstance(v, dict) and str(v.get("id")) in need}
            except FeedError as e:
                self.summary.notes.append(f"variations not read ({e}): their rows carry their product's price")
            if len(details) < len(need):
                self.summary.notes.append(f"{len(need) - len(details)} of {len(need)} variations not in the "
                                          "variations list: their rows carry their product's price and stock")
        return [parse_woo(items, self.opts, details)]

    # ------------------------------------------------------------------ pictures
    def _download(self, urls: list[str]) -> dict[str, tuple[str, str] | str]:
        """URL -> (relative path under DIR, URL) or the reason it failed. Each URL once."""
        done: dict[str, tuple[str, str] | str] = {}
        bar = tqdm(urls, unit="image", desc="images", file=sys.stderr, leave=True, dynamic_ncols=True,
                   disable=(None if self.progress is None else not self.progress))
        for url in bar:
            try:
                resp = self.fetcher.get(url, max_bytes=self.max_image_bytes, in_scope=lambda u: True)
                ext = verify_image(resp.body, self.max_pixels)
            except FetchError as e:
                done[url] = f"image: {e.reason}"
                log.info("image %s: %s", url, e)
                continue
            except ValueError as e:
                done[url] = f"image: {e}"
                continue
            rel, _ = save_image(self.out_dir, resp.body, ext)
            done[url] = (rel, url)
        bar.close()
        return done

    # ------------------------------------------------------------------ the whole import
    def run(self) -> ImportSummary:
        t0 = time.monotonic()
        try:
            if self.out_dir.exists() and not self.out_dir.is_dir():
                raise FeedError(f"--out must be a folder, {self.out_dir} is a file")
            pages = self.pages()
            rows: list[FeedRow] = []
            seen: set[str] = set()
            for page in pages:
                self.summary.items += page.items
                self.summary.skipped += page.skipped
                for row in page.rows:
                    if row.product.id in seen:
                        self.summary.skipped.append((f"id {row.product.id}", "duplicate id"))
                        continue
                    seen.add(row.product.id)
                    rows.append(row)
            try:
                self.out_dir.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise FeedError(f"cannot create {self.out_dir}: {e.strerror or e}") from None
            saved = self._download(list(dict.fromkeys(u for r in rows for u in r.images)))
            self.summary.image_failures = Counter(v for v in saved.values() if isinstance(v, str))
            self.summary.files = len({v[0] for v in saved.values() if isinstance(v, tuple)})
            self.summary.catalog = self._write(rows, saved)
        finally:
            self.fetcher.close()
        self.summary.seconds = time.monotonic() - t0
        return self.summary

    def _write(self, rows: list[FeedRow], saved: dict[str, tuple[str, str] | str]) -> Path:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        records: list[dict[str, Any]] = []
        extras: dict[str, None] = {}
        for row in rows:
            ok = [saved[u] for u in row.images if isinstance(saved.get(u), tuple)]
            if not ok:
                self.summary.skipped.append((f"id {row.product.id}", str(saved.get(row.images[0], "no image"))))
                continue
            (main, main_url), others = ok[0], [o for o in dict(ok[1:]).items() if o[0] != ok[0][0]]
            p = row.product
            record = {**{k: ("" if v is None else v) for k, v in p.fields().items()},
                      "image": main, "price": _number(p.price), "sale_price": _number(p.sale_price),
                      "more_images": " ".join(rel for rel, _ in others), "image_url": main_url,
                      "more_image_urls": " ".join(url for _, url in others), "source": self.summary.kind,
                      "imported_at": stamp}
            for k, v in p.extra.items():
                if k not in COLUMNS:
                    extras.setdefault(k)
                    record[k] = v
            records.append(record)
            self.summary.pictures += 1 + len(others)
        groups = [r["item_group_id"] for r in records if r["item_group_id"]]
        self.summary.products, self.summary.variants, self.summary.groups = len(records), len(groups), len(set(groups))
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=[*COLUMNS, *extras], extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        w.writerows(records)
        path = self.out_dir / CATALOG_FILE
        atomic_write(path, buf.getvalue().encode("utf-8"))
        return path


def _number(value: float | None) -> str:
    return "" if value is None else repr(float(value))


def import_feed(source: str | Path, out_dir: str | Path, **options: Any) -> ImportSummary:
    """Import a product feed (a file or an http(s) URL) into ``out_dir`` (``catalog.csv`` and
    ``images/``); see ``FeedImporter`` for the options. Raises ``FeedError`` (one line) when the
    feed cannot be read at all; rows that cannot be used are in the summary's ``skipped``."""
    return FeedImporter(source, out_dir, **options).run()
