"""The crawl: frontier, pages, products, images, summary.

Order: start URLs and sitemaps first, then pagination (``rel=next``, the recipe's ``next``),
then product links (sitemap entries, ItemList entries, product URLs seen on listing pages),
then any other same-site link found on a listing page. Product pages' own links are not
followed, nor links of a page with ``<meta name=robots content=nofollow>``; with a recipe
only the recipe's links (and rel=next) are followed. Everything stays within the start URLs'
origins, and ``max_pages`` (HTML pages and sitemaps, over all runs in DIR) bounds it.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from ..images import DEFAULT_MAX_PIXELS
from .errors import AlreadySeen, FetchError, ScrapeError, ScrapeInterrupted
from .extract import PageData, PageParseError, extract_page
from .defaults import (DEFAULT_BACKOFF, DEFAULT_DELAY, DEFAULT_MAX_IMAGE_BYTES, DEFAULT_MAX_PAGE_BYTES,
                       DEFAULT_MAX_PAGES, DEFAULT_MAX_REDIRECTS, DEFAULT_RETRIES, DEFAULT_TIMEOUT,
                       DEFAULT_USER_AGENT)
from .fetch import Fetcher, Response
from .model import ScrapedProduct, url_id
from .output import save_image, verify_image, write_catalog
from .recipe import Recipe, load_recipe
from .sitemap import SitemapError, looks_like_sitemap, parse_sitemap
from .state import CrawlState
from .urls import Scope, host_label, is_asset, normalize

log = logging.getLogger("dressfinder.scrape")

PRIO_START, PRIO_NEXT, PRIO_PRODUCT, PRIO_OTHER = 0, 1, 2, 3
HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
MAX_IMAGE_TRIES = 3


@dataclass
class ScrapeSummary:
    out_dir: Path
    catalog: Path
    pages: int                    # pages fetched (HTML and sitemaps), all runs in this folder
    pages_this_run: int
    products: int                 # distinct products found (saved or skipped)
    images: int                   # images saved = rows in catalog.csv
    images_this_run: int
    skipped: dict[str, int] = field(default_factory=dict)   # reason -> count
    queued: int = 0               # URLs still waiting (max_pages reached or interrupted)
    max_pages: int = 0
    interrupted: bool = False
    elapsed: float = 0.0

    @property
    def complete(self) -> bool:
        return self.queued == 0 and not self.interrupted

    def format(self) -> str:
        lines = [f"pages fetched: {self.pages} ({self.pages_this_run} this run)",
                 f"products found: {self.products}",
                 f"images saved: {self.images} ({self.images_this_run} this run) -> {self.catalog}"]
        lines.append(f"skipped: {sum(self.skipped.values())}")
        for reason, n in sorted(self.skipped.items(), key=lambda kv: (-kv[1], kv[0])):
            lines.append(f"  {reason}: {n}")
        if self.interrupted:
            lines.append("interrupted: rerun the same command to resume")
        elif self.queued:
            lines.append(f"stopped at max-pages {self.max_pages} with {self.queued} URLs queued: "
                         "rerun with a larger --max-pages to continue")
        return "\n".join(lines)


def _now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _number(name: str, value: Any, *, minimum: float, integer: bool = False, strict: bool = False):
    try:
        v = int(value) if integer else float(value)
    except (TypeError, ValueError):
        raise ScrapeError(f"{name} must be a number, got {value!r}") from None
    if integer and v != value and not isinstance(value, str):
        raise ScrapeError(f"{name} must be a whole number, got {value!r}")
    if not math.isfinite(v) or v < minimum or (strict and v == minimum):
        rel = ">" if strict else ">="
        raise ScrapeError(f"{name} must be {rel} {minimum:g}, got {value!r}")
    return v


class Crawler:
    def __init__(self, start_urls: Iterable[str], out_dir: str | Path, *,
                 max_pages: int = DEFAULT_MAX_PAGES, delay: float = DEFAULT_DELAY,
                 recipe: str | Path | dict | Recipe | None = None,
                 user_agent: str = DEFAULT_USER_AGENT, shop_name: str | None = None,
                 image_hosts: Iterable[str] = (), timeout: float = DEFAULT_TIMEOUT,
                 retries: int = DEFAULT_RETRIES, backoff: float = DEFAULT_BACKOFF,
                 max_redirects: int = DEFAULT_MAX_REDIRECTS,
                 max_page_bytes: int = DEFAULT_MAX_PAGE_BYTES,
                 max_image_bytes: int = DEFAULT_MAX_IMAGE_BYTES,
                 max_pixels: int | None = DEFAULT_MAX_PIXELS, robots_sitemaps: bool = False,
                 retry_failed: bool = False, progress: bool | None = None, transport=None):
        if isinstance(start_urls, (str, bytes)):
            start_urls = [start_urls]
        starts = []
        for raw in start_urls:
            u = normalize(str(raw))
            if u is None:
                raise ScrapeError(f"not an http(s) URL: {raw!r}")
            starts.append(u)
        if not starts:
            raise ScrapeError("give at least one start URL (a category page or a sitemap.xml)")
        self.max_pages = _number("max-pages", max_pages, minimum=1, integer=True)
        delay = _number("delay", delay, minimum=0)
        timeout = _number("timeout", timeout, minimum=0, strict=True)
        retries = _number("retries", retries, minimum=1, integer=True)
        backoff = _number("backoff", backoff, minimum=0)
        max_redirects = _number("max-redirects", max_redirects, minimum=0, integer=True)
        self.max_page_bytes = _number("max-page-bytes", max_page_bytes, minimum=1, integer=True)
        self.max_image_bytes = _number("max-image-bytes", max_image_bytes, minimum=1, integer=True)
        if not user_agent or not str(user_agent).strip() or "\n" in user_agent or "\r" in user_agent:
            raise ScrapeError("user-agent must be a non-empty single line")
        self.recipe = load_recipe(recipe) if recipe is not None else None
        self.shop_name = shop_name.strip() if shop_name and shop_name.strip() else None
        self.max_pixels = max_pixels
        self.robots_sitemaps = bool(robots_sitemaps)
        self.retry_failed = bool(retry_failed)
        self.progress = progress

        self.out_dir = Path(out_dir)
        if self.out_dir.exists() and not self.out_dir.is_dir():
            raise ScrapeError(f"--out must be a folder, {self.out_dir} is a file")
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ScrapeError(f"cannot create output folder {self.out_dir}: {e}") from None
        self._lock_file = self._lock()
        try:
            self.state = CrawlState(self.out_dir)
        except BaseException:
            self._unlock()
            raise
        previous = self.state.get_meta("start_urls", [])
        self.start_urls = list(dict.fromkeys(previous + starts))
        self.new_start_urls = starts
        self.scope = Scope(self.start_urls, image_hosts)
        self.fetcher = Fetcher(user_agent=user_agent, delay=delay, timeout=timeout, retries=retries,
                               backoff=backoff, max_redirects=max_redirects, transport=transport)
        self.pages_this_run = 0
        self.images_this_run = 0

    # ------------------------------------------------------------------ lock
    def _lock(self):
        if fcntl is None:
            return None
        f = open(self.out_dir / ".scrape.lock", "w")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.close()
            raise ScrapeError(f"another scrape is running with --out {self.out_dir}") from None
        return f

    def _unlock(self) -> None:
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    # ------------------------------------------------------------------ run
    def run(self) -> ScrapeSummary:
        started = time.monotonic()
        interrupted = False
        bar = None
        try:
            with self.state.transaction():
                self.state.set_meta("start_urls", self.start_urls)
                for u in self.new_start_urls:
                    self.state.add_url(u, "start", PRIO_START)
                if self.retry_failed:
                    n = self.state.requeue_failed()
                    if n:
                        log.info("retrying %d pages that failed before", n)
            if self.robots_sitemaps:
                self._add_robots_sitemaps()
            bar = tqdm(total=self.max_pages, initial=min(self.state.pages_fetched, self.max_pages),
                       unit="page", desc="scrape", file=sys.stderr, leave=True, dynamic_ncols=True,
                       disable=(None if self.progress is None else not self.progress))
            # While the bar is drawn, log records go through tqdm.write so they do not break it.
            with (logging_redirect_tqdm() if not bar.disable else contextlib.nullcontext()):
                while self.state.pages_fetched < self.max_pages:
                    nxt = self.state.next_url()
                    if nxt is None:
                        break
                    self._visit(*nxt)
                    bar.n = min(self.state.pages_fetched, self.max_pages)
                    bar.set_postfix(products=self.state.count_products(),
                                    images=self.state.count_products("ok"), refresh=False)
                    bar.refresh()
        except KeyboardInterrupt:
            interrupted = True
        finally:
            if bar is not None:
                bar.close()
            summary = self._finish(interrupted, time.monotonic() - started)
        if interrupted:
            raise ScrapeInterrupted(summary)
        return summary

    def _finish(self, interrupted: bool, elapsed: float) -> ScrapeSummary:
        try:
            catalog = write_catalog(self.out_dir, self.state.ok_products(), self.shop_name)
            return ScrapeSummary(
                out_dir=self.out_dir, catalog=catalog, pages=self.state.pages_fetched,
                pages_this_run=self.pages_this_run, products=self.state.count_products(),
                images=self.state.count_products("ok"), images_this_run=self.images_this_run,
                skipped=dict(self.state.skipped()), queued=self.state.queued(), max_pages=self.max_pages,
                interrupted=interrupted, elapsed=elapsed)
        finally:
            self.fetcher.close()
            self.state.close()
            self._unlock()

    def _add_robots_sitemaps(self) -> None:
        for start in self.new_start_urls:
            with self.state.transaction():
                for sm in self.fetcher.robots.sitemaps(start):
                    self._enqueue(normalize(sm), PRIO_START, kind="sitemap")

    # ------------------------------------------------------------------ pages
    def _enqueue(self, url: str | None, prio: int, kind: str = "page") -> None:
        if not url:
            return
        if not self.scope.allows(url):
            if self.state.skip(f"offsite {url}", "link to another host"):
                log.info("not following %s: another host", url)
            return
        if kind == "page" and is_asset(url):
            return
        self.state.add_url(url, kind, prio)

    def _skip_page(self, url: str, reason: str, *, fetched: bool) -> None:
        log.info("skipped %s: %s", url, reason)
        with self.state.transaction():
            if fetched:
                self.state.count_page()
            self.state.finish_url(url, "skipped", reason)

    def _visit(self, url: str, kind: str) -> None:
        if not self.scope.allows(url):
            self._skip_page(url, "link to another host", fetched=False)
            return
        robots = self.fetcher.robots
        if not robots.allows(url):
            self._skip_page(url, robots.reason(url), fetched=False)
            return
        self.pages_this_run += 1
        try:
            resp = self.fetcher.get(url, max_bytes=self.max_page_bytes, in_scope=self.scope.allows,
                                    seen=lambda u: self.state.url_status(u) in ("done", "skipped"))
        except AlreadySeen as e:
            log.info("%s", e)
            with self.state.transaction():
                self.state.count_page()
                self.state.finish_url(url, "done")
            return
        except FetchError as e:
            self._skip_page(url, "page too large" if e.reason == "too large" else e.reason, fetched=True)
            return
        final = normalize(resp.url) or url
        head = resp.body[:4096].lower()
        ctype = resp.content_type
        if ctype in HTML_TYPES or (ctype in ("", "text/plain") and (b"<html" in head or b"<!doctype html" in head)):
            self._html_page(url, final, resp)
        elif looks_like_sitemap(resp.body, ctype):
            self._sitemap(url, final, resp)
        else:
            self._skip_page(url, "not HTML", fetched=True)

    def _sitemap(self, url: str, final: str, resp: Response) -> None:
        try:
            sm = parse_sitemap(resp.body)
        except SitemapError as e:
            log.warning("cannot parse sitemap %s: %s", url, e)
            self._skip_page(url, "parse error (sitemap)", fetched=True)
            return
        with self.state.transaction():
            for loc in sm.urls:
                u = normalize(loc, final)
                if sm.kind == "sitemapindex":
                    self._enqueue(u, PRIO_START, kind="sitemap")
                else:
                    self._enqueue(u, PRIO_PRODUCT)
            self.state.count_page()
            self.state.finish_url(url, "done", kind="sitemap")
            if final != url:
                self.state.finish_url(final, "done", kind="sitemap")

    def _html_page(self, url: str, final: str, resp: Response) -> None:
        text = resp.text()
        recipe_result = None
        try:
            page = extract_page(text, final)
            if self.recipe is not None:
                recipe_result = self.recipe.apply(text, final, page.base)
        except PageParseError as e:
            log.warning("cannot parse %s: %s", url, e)
            self._skip_page(url, "parse error", fetched=True)
            return
        except Exception as e:  # markup no parser expected: lose this page, not the crawl
            log.warning("cannot parse %s: %s: %s", url, type(e).__name__, e, exc_info=True)
            self._skip_page(url, "parse error", fetched=True)
            return
        found: dict[str, ScrapedProduct] = {p.key: p for p in page.products}
        if recipe_result is not None:
            for p in recipe_result.products:
                if p.key in found:
                    found[p.key].merge(p)
                else:
                    found[p.key] = p
        for p in found.values():
            self._product(p, page)

        with self.state.transaction():
            for err in page.errors:
                syntax = err.split(":", 1)[0]
                self.state.skip(f"parse {final} {syntax}", f"parse error ({syntax})")
            if not page.nofollow:
                for link in page.next_links:
                    self._enqueue(link, PRIO_NEXT)
                if recipe_result is not None:
                    for where, reason in recipe_result.skipped:
                        self.state.skip(where, reason)
                    for link in recipe_result.next_links + recipe_result.follow_links:
                        self._enqueue(link, PRIO_NEXT)
                for link in page.product_links:
                    self._enqueue(link, PRIO_PRODUCT)
                if self.recipe is None and not page.is_product_page():
                    for link in page.links:
                        self._enqueue(link, PRIO_OTHER)
            self.state.count_page()
            self.state.finish_url(url, "done")
            if final != url:
                self.state.finish_url(final, "done")

    # ------------------------------------------------------------------ products
    def _product(self, p: ScrapedProduct, page: PageData) -> None:
        st = self.state
        existing = st.product(p.key)
        if existing is not None:
            status, data = existing
            with st.transaction():
                if data.get("page_url") != p.page_url:
                    st.skip(f"duplicate {p.key} on {p.page_url}", "duplicate product URL")
                if status == "ok":
                    self._merge(p, data)
            return
        record = p.to_dict()
        if not p.images:
            if p.url not in (page.url, page.canonical):
                return  # a list entry without a picture; its own page is queued as a product link
            self._skip_product(p, record, "no product image")
            return
        pid = p.id or url_id(p.url)
        record.update(id=pid, id_from_url=p.id is None, shop=host_label(page.url))
        if st.id_owner(pid) is not None:
            self._skip_product(p, record, "duplicate id")
            return
        reason = "no product image"
        for image_url in p.images[:MAX_IMAGE_TRIES]:
            if not self.scope.allows_image(image_url):
                reason = "image: on another host"
                continue
            if st.image_url_owner(image_url) is not None:
                self._skip_product(p, record, "duplicate image")
                return
            try:
                resp = self.fetcher.get(image_url, max_bytes=self.max_image_bytes, in_scope=self.scope.allows_image)
            except FetchError as e:
                reason = f"image: {e.reason}"
                log.info("image %s: %s", image_url, e)
                continue
            try:
                ext = verify_image(resp.body, self.max_pixels)
            except ValueError as e:
                reason = f"image: {e}"
                log.info("image %s: %s", image_url, e)
                continue
            sha = hashlib.sha256(resp.body).hexdigest()
            if st.sha_owner(sha) is not None:
                self._skip_product(p, record, "duplicate image")
                return
            rel, sha = save_image(self.out_dir, resp.body, ext)
            record.update(image=rel, sha256=sha, image_url=image_url, scraped_at=_now())
            with st.transaction():
                st.save_product(p.key, record)
            self.images_this_run += 1
            return
        self._skip_product(p, record, reason)

    def _skip_product(self, p: ScrapedProduct, record: dict, reason: str) -> None:
        log.info("skipped product %s: %s", p.url, reason)
        with self.state.transaction():
            self.state.save_product(p.key, record, status="skipped", reason=reason)

    def _merge(self, p: ScrapedProduct, data: dict) -> None:
        stored = ScrapedProduct.from_dict(data)
        changed = stored.merge(p)
        if data.get("id_from_url") and p.id and self.state.id_owner(p.id) is None:
            data.update(id=p.id, id_from_url=False)
            changed = True
        if changed:
            data.update({k: v for k, v in stored.to_dict().items() if k != "id"})
            self.state.save_product(p.key, data)


def scrape(start_urls: Iterable[str] | str, out_dir: str | Path, *,
           max_pages: int = DEFAULT_MAX_PAGES, delay: float = DEFAULT_DELAY,
           recipe: str | Path | dict | Recipe | None = None, user_agent: str = DEFAULT_USER_AGENT,
           shop_name: str | None = None, image_hosts: Iterable[str] = (),
           timeout: float = DEFAULT_TIMEOUT, retries: int = DEFAULT_RETRIES, backoff: float = DEFAULT_BACKOFF,
           max_redirects: int = DEFAULT_MAX_REDIRECTS, max_page_bytes: int = DEFAULT_MAX_PAGE_BYTES,
           max_image_bytes: int = DEFAULT_MAX_IMAGE_BYTES, max_pixels: int | None = DEFAULT_MAX_PIXELS,
           robots_sitemaps: bool = False, retry_failed: bool = False, progress: bool | None = None,
           transport=None) -> ScrapeSummary:
    """Scrape products from ``start_urls`` (category pages or sitemaps) into ``out_dir``.

    Writes ``out_dir/images/`` and ``out_dir/catalog.csv`` and keeps its state in
    ``out_dir/.scrape-state.sqlite``: calling again with the same ``out_dir`` resumes (a
    larger ``max_pages`` continues a crawl that hit the limit). Raises ``ScrapeError`` for
    bad arguments and ``ScrapeInterrupted`` (a ``KeyboardInterrupt`` carrying the summary)
    on Ctrl-C, after writing the state and the CSV. ``retry_failed``: queue again the pages
    an earlier run skipped for a passing reason (5xx, 429, timeout, connection error).
    """
    crawler = Crawler(start_urls, out_dir, max_pages=max_pages, delay=delay, recipe=recipe,
                      user_agent=user_agent, shop_name=shop_name, image_hosts=image_hosts,
                      timeout=timeout, retries=retries, backoff=backoff, max_redirects=max_redirects,
                      max_page_bytes=max_page_bytes, max_image_bytes=max_image_bytes,
                      max_pixels=max_pixels, robots_sitemaps=robots_sitemaps, retry_failed=retry_failed,
                      progress=progress, transport=transport)
    return crawler.run()
