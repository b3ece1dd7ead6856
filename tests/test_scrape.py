"""The store scraper against fixture shops served on 127.0.0.1 by the tests themselves."""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from dressfinder.catalog import read_catalog
from dressfinder.schema import AVAILABILITY, availability
from dressfinder.scrape import (COLUMNS, DEFAULT_USER_AGENT, STATE_FILE, Crawler, ScrapeError,
                                ScrapeInterrupted, load_recipe, scrape)
from dressfinder.scrape import command, crawler, fetch
from dressfinder.scrape.extract import extract_page
from dressfinder.scrape.sitemap import SitemapError, parse_sitemap
from dressfinder.scrape.urls import Scope, normalize

from price_cases import PRICE_CASES
from scrape_fixtures import (PRICE_RECIPE, RECIPE, Flaky, Site, build_price_shop, build_recipe_shop, build_shop,
                             build_structured_shop, html, image_bytes, jsonld, redirect)

FAST = dict(delay=0, backoff=0, progress=False)
SHOP = dict(FAST, max_page_bytes=50_000, max_image_bytes=50_000, timeout=1.0)
ALL_SHOP_PAGES = {"/dresses", "/dresses?page=2", "/", "/p/red", "/p/blue", "/p/green", "/p/flaky", "/loop",
                  "/loop2", "/p/broken", "/p/slow", "/go-elsewhere", "/p/pink", "/p/red-copy", "/p/red-alias",
                  "/p/bad-json", "/p/empty", "/p/down", "/p/gone", "/p/huge", "/p/huge-image", "/p/cdn",
                  "/p/noimage", "/old-blue"}
RETRIED = {"/p/flaky": 2, "/p/slow": 2, "/p/down": 3}   # 500 once, timeout once, 503 for ever
SHOP_SKIPS = {
    "robots.txt": 1, "link to another host": 1, "redirect to another host": 1, "redirect loop": 1,
    "HTTP 503": 1, "HTTP 404": 1, "page too large": 1, "parse error": 1, "parse error (json-ld)": 1,
    "image: not an image": 1, "image: too large": 1, "image: on another host": 1, "duplicate image": 1,
    "duplicate product URL": 1, "no product image": 1,
}


@pytest.fixture
def sites():
    made: list[Site] = []

    def make() -> Site:
        s = Site()
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()


@pytest.fixture
def shop(sites):
    return build_shop(sites(), sites())


def rows_by_url(out: Path) -> dict[str, dict]:
    with open(out / "catalog.csv", newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames) == COLUMNS
        rows = list(reader)
    urls = [r["url"] for r in rows]
    ids = [r["id"] for r in rows]
    assert len(set(urls)) == len(urls), "duplicate product URL in the catalogue"
    assert len(set(ids)) == len(ids), "duplicate id in the catalogue"
    return {r["url"]: r for r in rows}


def check_row(row: dict, exp: dict, out: Path, served: bytes, base: str, since: datetime) -> None:
    for key in ("title", "currency", "url", "shop", "category", "brand", "availability", "source"):
        assert row[key] == (exp[key] or ""), (key, row)
    assert float(row["price"]) == pytest.approx(exp["price"])
    assert row["image_url"] == base + exp["image_path"]
    assert row.get("more_images", "") == exp.get("more_images", "")
    sha = hashlib.sha256(served).hexdigest()
    assert row["image"] == f"images/{sha[:20]}{exp['ext']}"
    assert (out / row["image"]).read_bytes() == served
    at = datetime.strptime(row["scraped_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    assert since - timedelta(seconds=1) <= at <= datetime.now(timezone.utc) + timedelta(seconds=1)


def check_shop_output(shop, out: Path, since: datetime) -> None:
    rows = rows_by_url(out)
    b = shop.site.base
    assert set(rows) == {e["url"] for e in shop.expected.values()}
    for path, exp in shop.expected.items():
        row = rows[b + path]
        exp_id = exp["id"] or hashlib.sha256((b + path).encode()).hexdigest()[:16]
        assert row["id"] == exp_id
        check_row(row, exp, out, shop.images[exp["image_path"]], b, since)
    # The index reads it: every product, absolute image paths, nothing skipped.
    report = read_catalog(out / "catalog.csv")
    assert report.skipped == []
    assert {p.id for p in report.products} == {r["id"] for r in rows.values()}
    for p in report.products:
        assert Path(p.image).is_file() and p.shop == shop.site.host
        assert p.price == pytest.approx(float(rows[p.url]["price"]))
        # the schema.org availability the scraper read lands in the product, as one of schema.AVAILABILITY
        assert p.availability == availability(rows[p.url]["availability"])
        assert p.availability in (*AVAILABILITY, None) and (p.availability is None) == (not rows[p.url]["availability"])
        assert p.brand == (rows[p.url]["brand"] or None)
        assert p.extra["scraped_at"] == rows[p.url]["scraped_at"]
    assert sorted(f.name for f in (out / "images").iterdir()) == sorted(Path(r["image"]).name for r in rows.values())


# ----------------------------------------------------------------------------- the whole shop

def test_shop_crawl_checks_every_field_and_every_rule(shop, tmp_path):
    out = tmp_path / "out"
    since = datetime.now(timezone.utc)
    summary = scrape([shop.site.url("/dresses")], out, user_agent=shop.user_agent, max_pages=100, **SHOP)
    check_shop_output(shop, out, since)

    assert summary.pages == len(ALL_SHOP_PAGES) - 1          # /loop2 is a hop of /loop, not a page
    assert summary.images == summary.images_this_run == 6
    assert summary.products == 11                             # 6 saved + 5 skipped
    assert summary.skipped == SHOP_SKIPS
    assert summary.queued == 0 and summary.complete
    text = summary.format()
    assert "pages fetched: 23" in text and "images saved: 6" in text and "\n  redirect loop: 1\n" in text

    paths = shop.site.paths()
    pages = [p for p in paths if not p.startswith("/img/") and p != "/robots.txt"]
    assert set(pages) == ALL_SHOP_PAGES
    for p in ALL_SHOP_PAGES:
        assert pages.count(p) == RETRIED.get(p, 1), p
    # robots.txt read once; disallowed, nofollow, asset, other-host and product-page links never fetched
    assert paths.count("/robots.txt") == 1
    for never in ("/private/secret", "/p/ignored", "/files/lookbook.pdf", "/p/related-shoes",
                  "/dresses/day", "/img/logo.png", "/img/red-back.png", "/p/sitemap-only", "/sitemap.xml"):
        assert never not in paths, never
    assert shop.other.requests == []                          # never left the start host
    assert {r.headers.get("User-Agent") for r in shop.site.requests} == {shop.user_agent}
    # only the first image of a product is needed; the byte-duplicate had to be fetched to be known
    assert paths.count("/img/red.png") == 1 and paths.count("/img/red-copy.png") == 1
    assert (out / STATE_FILE).is_file()

    # Rerunning a finished crawl sends nothing and rewrites the same catalogue.
    before, csv_before = len(shop.site.requests), (out / "catalog.csv").read_text()
    again = scrape([shop.site.url("/dresses")], out, user_agent=shop.user_agent, max_pages=100, **SHOP)
    assert len(shop.site.requests) == before
    assert again.pages_this_run == 0 and again.images == 6 and again.skipped == SHOP_SKIPS
    assert (out / "catalog.csv").read_text() == csv_before


def test_robots_disallow_for_our_user_agent(shop, tmp_path, capsys):
    # The shop's robots.txt disallows everything to any agent but "testbot".
    summary = scrape(shop.site.url("/dresses"), tmp_path, **SHOP)
    assert summary.pages == 0 and summary.images == 0
    assert summary.skipped == {"robots.txt": 1}
    assert shop.site.paths() == ["/robots.txt"]
    assert shop.site.requests[0].headers["User-Agent"] == DEFAULT_USER_AGENT
    assert (tmp_path / "catalog.csv").read_text().strip() == ",".join(COLUMNS)


def test_resume_after_max_pages_gives_the_union_without_duplicates(shop, tmp_path):
    out = tmp_path / "out"
    since = datetime.now(timezone.utc)
    first = scrape(shop.site.url("/dresses"), out, user_agent=shop.user_agent, max_pages=5, **SHOP)
    assert first.pages == 5 and first.queued > 0 and not first.complete
    assert "rerun with a larger --max-pages" in first.format()
    part = rows_by_url(out)
    assert 0 < len(part) < 6
    assert len(read_catalog(out / "catalog.csv").products) == len(part)

    second = scrape(shop.site.url("/dresses"), out, user_agent=shop.user_agent, max_pages=100, **SHOP)
    assert second.complete and second.pages == 23 and second.pages_this_run == 18
    assert second.images == 6 and second.images_this_run == 6 - len(part)
    assert second.skipped == SHOP_SKIPS
    check_shop_output(shop, out, since)
    pages = [p for p in shop.site.paths() if not p.startswith("/img/") and p != "/robots.txt"]
    for p in ALL_SHOP_PAGES:  # nothing fetched twice across the two runs
        assert pages.count(p) == RETRIED.get(p, 1), p


def test_ctrl_c_leaves_a_valid_catalogue_and_resumes(shop, tmp_path, monkeypatch):
    out = tmp_path / "out"
    since = datetime.now(timezone.utc)
    calls = []
    real = crawler.extract_page

    def interrupting(text, url):
        calls.append(url)
        if len(calls) == 6:
            raise KeyboardInterrupt
        return real(text, url)

    monkeypatch.setattr(crawler, "extract_page", interrupting)
    with pytest.raises(ScrapeInterrupted) as info:
        scrape(shop.site.url("/dresses"), out, user_agent=shop.user_agent, max_pages=100, **SHOP)
    assert isinstance(info.value, KeyboardInterrupt)
    summary = info.value.summary
    assert summary.interrupted and "rerun the same command to resume" in summary.format()
    rows = rows_by_url(out)
    assert len(rows) == summary.images > 0
    assert len(read_catalog(out / "catalog.csv").products) == len(rows)
    assert not [f for f in out.iterdir() if f.name.endswith(".tmp")]
    interrupted_page = calls[-1].replace(shop.site.base, "")

    monkeypatch.setattr(crawler, "extract_page", real)
    done = scrape(shop.site.url("/dresses"), out, user_agent=shop.user_agent, max_pages=100, **SHOP)
    assert done.complete and done.images == 6 and done.skipped == SHOP_SKIPS
    check_shop_output(shop, out, since)
    pages = [p for p in shop.site.paths() if not p.startswith("/img/") and p != "/robots.txt"]
    for p in ALL_SHOP_PAGES:
        assert pages.count(p) == RETRIED.get(p, 1) + (p == interrupted_page), p


def test_a_later_run_can_add_start_urls(shop, tmp_path):
    first = scrape(shop.site.url("/p/red"), tmp_path, user_agent=shop.user_agent, **SHOP)
    assert first.images == 1
    second = scrape([shop.site.url("/p/red"), shop.site.url("/p/blue")], tmp_path,
                    user_agent=shop.user_agent, **SHOP)
    assert second.pages == 2 and second.pages_this_run == 1 and second.images == 2
    assert {r["id"] for r in rows_by_url(tmp_path).values()} == {"RED-1", "BLUE-2"}
    assert shop.site.count("/p/red") == 1 and shop.site.count("/p/blue") == 1


# ----------------------------------------------------------------------------- sitemaps, hosts

def test_sitemap_index_with_gzip_and_foreign_sitemap(shop, tmp_path):
    summary = scrape(shop.site.url("/sitemap.xml"), tmp_path, user_agent=shop.user_agent, **SHOP)
    rows = rows_by_url(tmp_path)
    b = shop.site.base
    assert set(rows) == {b + "/p/red", b + "/p/blue", b + "/p/sitemap-only", b + "/p/green"}
    sm = rows[b + "/p/sitemap-only"]
    assert (sm["id"], sm["title"], sm["price"], sm["currency"]) == ("SM-1", "Sitemap Dress", "10.0", "USD")
    assert summary.pages == 7 and summary.skipped == {"link to another host": 1}
    assert "/dresses" not in shop.site.paths()
    assert shop.other.requests == []


def test_sitemaps_listed_in_robots_txt(shop, tmp_path):
    summary = scrape(shop.site.url("/p/red"), tmp_path, user_agent=shop.user_agent, robots_sitemaps=True, **SHOP)
    assert {r["id"] for r in rows_by_url(tmp_path).values()} == {"RED-1", "BLUE-2", "GRN-3", "SM-1"}
    paths = shop.site.paths()
    assert paths[:2] == ["/robots.txt", "/p/red"]           # the start URL, then the sitemaps
    assert "/sitemap.xml" in paths and "/sitemap-products.xml" in paths and "/dresses" not in paths
    assert summary.complete and shop.other.requests == []


def test_image_host_opt_in(shop, tmp_path):
    summary = scrape(shop.site.url("/p/cdn"), tmp_path, user_agent=shop.user_agent,
                     image_hosts=[shop.other.host], **SHOP)
    (row,) = rows_by_url(tmp_path).values()
    assert row["id"] == "CDN-1" and row["image_url"] == shop.other.url("/img/cdn.png")
    assert (tmp_path / row["image"]).read_bytes() == image_bytes((10, 10, 10))
    assert shop.other.paths() == ["/robots.txt", "/img/cdn.png"]   # its robots.txt is obeyed too
    assert summary.images == 1 and summary.skipped == {}


def test_same_site_is_scheme_host_and_port(sites, tmp_path):
    site = sites()
    body = f'<a href="http://localhost:{site.port}/b">b</a> <a href="/c">c</a>'
    site.routes["/a"] = html(f"<html><body>{body}</body></html>")
    site.routes["/c"] = html("<html><body>c</body></html>")
    summary = scrape(site.url("/a"), tmp_path, **FAST)
    assert site.paths() == ["/robots.txt", "/a", "/c"]
    assert summary.skipped == {"link to another host": 1}
    scope = Scope(["http://shop.test/x", "https://cdn.test:8443/"], ["img.test"])
    assert scope.allows("http://shop.test/y") and scope.allows("https://shop.test/y")   # http -> https upgrade
    assert not scope.allows("http://shop.test:8080/y") and not scope.allows("http://www.shop.test/")
    assert scope.allows("https://cdn.test:8443/a") and not scope.allows("http://cdn.test:8443/a")
    assert not scope.allows("http://img.test/a.png") and scope.allows_image("https://img.test/a.png")


def test_normalize():
    assert normalize("/P/x?utm_source=a&b=1#frag", "HTTP://Shop.Test:80/dir/") == "http://shop.test/P/x?b=1"
    assert normalize("https://shop.test:443") == "https://shop.test/"
    assert normalize("mailto:a@b.c") is None and normalize("javascript:void(0)") is None
    assert normalize("../a b.html", "http://s.test/x/y/") == "http://s.test/x/a%20b.html"


# ----------------------------------------------------------------------------- politeness, failures

def _chain(site: Site, n: int) -> None:
    for i in range(n):
        nxt = f'<link rel="next" href="/list{i + 1}">' if i + 1 < n else ""
        site.routes[f"/list{i}"] = html(f"<html><head>{nxt}</head><body>page {i}</body></html>")


class FakeTime:
    """Stands in for the fetcher's clock and sleep: time passes only when it sleeps."""

    def __init__(self, monkeypatch):
        self.now, self.sleeps = 1000.0, []
        monkeypatch.setattr(fetch, "_clock", lambda: self.now)
        monkeypatch.setattr(fetch, "_sleep", self.sleep)

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(round(seconds, 6))
        self.now += seconds


def test_crawl_delay_from_robots_and_the_delay_option(sites, tmp_path, monkeypatch):
    polite = sites()
    _chain(polite, 3)
    polite.routes["/robots.txt"] = (200, {"Content-Type": "text/plain"},
                                    b"User-agent: otherbot\nCrawl-delay: 5\n\nUser-agent: *\nCrawl-delay: 0.3\n")
    clock = FakeTime(monkeypatch)
    scrape(polite.url("/list0"), tmp_path / "a", **FAST)
    # robots.txt, then each of the 3 pages waits the Crawl-delay of the "*" group
    assert polite.paths() == ["/robots.txt", "/list0", "/list1", "/list2"]
    assert clock.sleeps == [0.3, 0.3, 0.3]

    plain = sites()
    _chain(plain, 3)
    clock.sleeps.clear()
    scrape(plain.url("/list0"), tmp_path / "b", **dict(FAST, delay=0.25))
    assert clock.sleeps == [0.25, 0.25, 0.25]

    fast = sites()
    _chain(fast, 3)
    clock.sleeps.clear()
    scrape(fast.url("/list0"), tmp_path / "c", **FAST)
    assert clock.sleeps == []


def test_retries_give_up_and_redirect_limit(sites, tmp_path):
    site = sites()
    site.routes["/start"] = html('<html><body><a href="/r0">r</a> <a href="/unreachable">u</a>'
                                 '<a href="/ok">ok</a> <a href="/busy">b</a></body></html>')
    for i in range(8):
        site.routes[f"/r{i}"] = redirect(f"/r{i + 1}")
    site.routes["/unreachable"] = lambda req: html("busy", 500)
    site.routes["/ok"] = html("<html><body>fine</body></html>")
    site.routes["/busy"] = Flaky(html("<html><body>served</body></html>"), failures=1, status=429)
    summary = scrape(site.url("/start"), tmp_path, max_redirects=3, retries=2, **FAST)
    assert summary.skipped == {"too many redirects": 1, "HTTP 500": 1}
    assert summary.pages == 5   # start, r0 (and its hops), unreachable, ok, busy
    paths = site.paths()
    assert paths.count("/unreachable") == 2 and "/r4" not in paths and paths.count("/ok") == 1
    assert paths.count("/busy") == 2   # 429 is retried


def test_robots_txt_server_error_means_disallow_all_and_retry_failed(sites, tmp_path):
    site = sites()
    site.routes["/robots.txt"] = lambda req: html("oops", 500)
    site.routes["/a"] = html("<html><body>a</body></html>")
    summary = scrape(site.url("/a"), tmp_path, retries=2, **FAST)
    assert summary.skipped == {"robots.txt unreachable": 1}
    assert site.paths() == ["/robots.txt", "/robots.txt"]
    # The server is fixed (no robots.txt now): a plain rerun keeps the skip, --retry-failed retries.
    del site.routes["/robots.txt"]
    assert scrape(site.url("/a"), tmp_path, **FAST).skipped == {"robots.txt unreachable": 1}
    assert site.paths() == ["/robots.txt"] * 2
    summary = scrape(site.url("/a"), tmp_path, retry_failed=True, **FAST)
    assert summary.skipped == {} and summary.pages == 1
    assert site.paths() == ["/robots.txt"] * 3 + ["/a"]


# ----------------------------------------------------------------------------- robots.txt rules
# Shopify's default robots.txt (robots.txt.liquid as shipped), for a shop at shop.example.
SHOPIFY_ROBOTS = """\
# we use Shopify as our ecommerce platform

User-agent: *
Disallow: /a/downloads/-/*
Disallow: /admin
Disallow: /cart
Disallow: /orders
Disallow: /checkouts/
Disallow: /checkout
Disallow: /58738364582/checkouts
Disallow: /58738364582/orders
Disallow: /carts
Disallow: /account
Disallow: /collections/*sort_by*
Disallow: /*/collections/*sort_by*
Disallow: /collections/*+*
Disallow: /collections/*%2B*
Disallow: /collections/*%2b*
Disallow: /*/collections/*+*
Disallow: /*/collections/*%2B*
Disallow: /*/collections/*%2b*
Disallow: */collections/*filter*&*filter*
Disallow: /blogs/*+*
Disallow: /blogs/*%2B*
Disallow: /blogs/*%2b*
Disallow: /*/blogs/*+*
Disallow: /*/blogs/*%2B*
Disallow: /*/blogs/*%2b*
Disallow: /*?*oseid=*
Disallow: /*preview_theme_id*
Disallow: /*preview_script_id*
Disallow: /policies/
Disallow: /*/policies/
Disallow: /*/*?*ls=*&ls=*
Disallow: /*/*?*ls%3D*%3Fls%3D*
Disallow: /*/*?*ls%3d*%3fls%3d*
Disallow: /search
Allow: /search/
Disallow: /search/?*
Disallow: /apple-app-site-association
Disallow: /.well-known/shopify/monorail
Disallow: /cdn/wpm/*.js
Disallow: /recommendations/products
Disallow: /*/recommendations/products
Sitemap: https://shop.example/sitemap.xml

# Google adsbot ignores robots.txt unless specifically named!
User-agent: adsbot-google
Disallow: /checkouts/
Disallow: /checkout
Disallow: /carts
Disallow: /orders
Disallow: /58738364582/checkouts
Disallow: /58738364582/orders
Disallow: /*?*oseid=*
Disallow: /*preview_theme_id*
Disallow: /*preview_script_id*
Disallow: /cdn/wpm/*.js

User-agent: Nutch
Disallow: /

User-agent: AhrefsBot
Crawl-delay: 10
Disallow: /a/downloads/-/*
Disallow: /admin
Disallow: /cart
Disallow: /orders
Disallow: /checkouts/
Disallow: /checkout
Disallow: /collections/*sort_by*
Disallow: /collections/*+*
Disallow: /blogs/*+*
Disallow: /search
Sitemap: https://shop.example/sitemap.xml

User-agent: MJ12bot
Crawl-Delay: 10

User-agent: Pinterest
Crawl-delay: 1
"""


@pytest.mark.parametrize("path,allowed", [
    ("/", True),
    ("/collections/dresses", True),
    ("/collections/dresses/products/red-midi", True),
    ("/products/red-midi?variant=4211", True),
    ("/collections/dresses?page=2", True),
    ("/collections/dresses?filter.v.color=red", True),              # one filter is fine...
    ("/collections/dresses?filter.v.color=red&filter.v.size=m", False),   # ... two are not
    ("/collections/dresses?sort_by=price-ascending", False),        # /collections/*sort_by*
    ("/en-gb/collections/dresses?sort_by=price-ascending", False),  # /*/collections/*sort_by*
    ("/collections/dresses/red+silk", False),                       # /collections/*+*
    ("/collections/dresses/red%2Bsilk", False),
    ("/fr/collections/robes/rouge+soie", False),                    # /*/collections/*+*
    ("/blogs/news/summer-dresses", True),
    ("/blogs/news/tagged/linen+summer", False),
    ("/products/red-midi?preview_theme_id=1234", False),
    ("/cart", False), ("/cart/add.js", False), ("/carts/abc", False), ("/checkout", False),
    ("/checkouts/cn/abc", False), ("/account/login", False), ("/policies/refund-policy", False),
    ("/de/policies/refund-policy", False),
    ("/search", False),                  # Disallow: /search
    ("/search/", True),                  # Allow: /search/ is the longer match
    ("/search/?q=dress", False),         # Disallow: /search/?* longer still
    ("/search?q=dress", False),
    ("/cdn/wpm/abc123.js", False), ("/cdn/shop/files/red.jpg", True),
    ("/robots.txt", True),
])
def test_robots_shopify_default_for_any_agent(path, allowed):
    from dressfinder.scrape.robots import parse_robots
    rules = parse_robots(SHOPIFY_ROBOTS)
    assert rules.allows(DEFAULT_USER_AGENT, "https://shop.example" + path) is allowed
    assert rules.allows("testbot/1.0 (+http://example.test/bot)", "https://shop.example" + path) is allowed


def test_robots_shopify_default_groups_delays_and_sitemaps():
    from dressfinder.scrape.robots import parse_robots
    rules = parse_robots(SHOPIFY_ROBOTS)
    url = "https://shop.example/collections/dresses?sort_by=price-ascending"
    # the group naming the agent replaces the "*" group; its Crawl-delay is its own
    assert rules.allows("AdsBot-Google (+http://www.google.com/adsbot.html)", url)
    assert not rules.allows("AdsBot-Google (+http://www.google.com/adsbot.html)", "https://shop.example/checkout")
    assert not rules.allows("Nutch/1.19", "https://shop.example/collections/dresses")
    # groups are matched against the product token: "Mozilla" here, so the "*" group
    assert not rules.allows("Mozilla/5.0 (compatible; AhrefsBot/7.0)", "https://shop.example/policies/x")
    assert rules.allows("AhrefsBot/7.0 (+http://ahrefs.com/robot/)", "https://shop.example/policies/x")
    assert rules.delay("AhrefsBot/7.0 (+http://ahrefs.com/robot/)") == 10.0
    assert rules.delay("Pinterest/0.2 (+http://www.pinterest.com/bot.html)") == 1.0
    assert rules.delay(DEFAULT_USER_AGENT) is None          # the "*" group has no Crawl-delay
    assert rules.sitemaps == ["https://shop.example/sitemap.xml"] * 2   # as listed; queued once


def test_robots_longest_match_wildcards_end_anchor_and_our_group():
    from dressfinder.scrape.robots import Robots
    text = """\
User-agent: *
Disallow: /

User-agent: scraper          # not ours: "dressfinder-scraper" names a product, not "scraper"
Disallow: /lookbook

User-agent: github           # only in our User-Agent's URL, which is no product token
Disallow: /lookbook

User-agent: dressfinder
Crawl-delay: 2.5
Request-rate: 1/4s
Disallow: /account
Allow: /account/wishlist
Disallow: /*.json$
Disallow: /*?*variant=
Allow: /shop
Disallow: /shop
Sitemap: https://shop.example/sitemap_products_1.xml?from=1&to=99
"""
    fetched = []

    def fetch_text(url):
        fetched.append(url)
        return 200, text

    robots = Robots(DEFAULT_USER_AGENT, fetch_text)
    base = "https://shop.example"
    expect = {
        "/lookbook/summer": True,                # the "scraper" and "github" groups are not ours
        "/account/orders": False,
        "/account/wishlist": True,               # the longer Allow wins, though written later
        "/collections/all.json": False,          # "$": ends in .json
        "/collections/all.json?page=2": True,    # ... this one does not
        "/collections/all": True,
        "/products/red?variant=42": False,       # wildcards in the path and the query
        "/products/red?color=red": True,
        "/shop/dresses": True,                   # Allow and Disallow of the same length: Allow
    }
    assert {p: robots.allows(base + p) for p in expect} == expect
    assert robots.delay(base + "/") == 4.0       # Request-rate 1/4s is slower than Crawl-delay 2.5
    assert robots.sitemaps(base + "/x") == ["https://shop.example/sitemap_products_1.xml?from=1&to=99"]
    assert fetched == [base + "/robots.txt"]     # read once per origin
    assert not Robots("otherbot/2.0", fetch_text).allows(base + "/shop")    # "*": Disallow: /

    plain = Robots(DEFAULT_USER_AGENT, lambda url: (200, "User-agent: *\nCrawl-delay: 0.75\nRequest-rate: 1/1m\n"))
    assert plain.delay(base + "/") == 60.0
    decimal = Robots(DEFAULT_USER_AGENT, lambda url: (200, "User-agent: *\nCrawl-delay: 0.75\nCrawl-delay: x\n"))
    assert decimal.delay(base + "/") == 0.75 and decimal.allows(base + "/any")
    missing = Robots(DEFAULT_USER_AGENT, lambda url: (404, ""))
    assert missing.allows(base + "/a") and missing.delay(base + "/a") is None and missing.sitemaps(base) == []


# ----------------------------------------------------------------------------- recipes

@pytest.fixture
def recipe_shop(sites, tmp_path):
    site = sites()
    expected = build_recipe_shop(site)
    path = tmp_path / "recipe.json"
    path.write_text(json.dumps(RECIPE))
    return site, expected, path


def test_recipe_only_site_every_field(recipe_shop, tmp_path):
    site, expected, recipe = recipe_shop
    out = tmp_path / "out"
    since = datetime.now(timezone.utc)
    summary = scrape(site.url("/shop/dresses"), out, recipe=recipe, **FAST)
    rows = {r["id"]: r for r in rows_by_url(out).values()}
    assert set(rows) == set(expected)
    for sku, exp in expected.items():
        served = site.routes[exp["image_path"]][2]
        check_row(rows[sku], exp, out, served, site.base, since)
    assert summary.pages == 2 and summary.images == 3
    assert summary.skipped == {"recipe: tile without link": 1}
    assert site.paths() == ["/robots.txt", "/shop/dresses", "/pics/1.jpg", "/pics/2.png",
                            "/shop/dresses?p=2", "/pics/3.png"]
    assert len(read_catalog(out / "catalog.csv").products) == 3


def test_interrupt_between_products_of_one_page(recipe_shop, tmp_path, monkeypatch):
    site, expected, recipe = recipe_shop
    out = tmp_path / "out"
    real = crawler.verify_image
    calls = []

    def interrupting(data, max_pixels):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(data, max_pixels)

    monkeypatch.setattr(crawler, "verify_image", interrupting)
    with pytest.raises(ScrapeInterrupted) as info:
        scrape(site.url("/shop/dresses"), out, recipe=recipe, **FAST)
    assert info.value.summary.images == 1
    assert [r["id"] for r in rows_by_url(out).values()] == ["S-1"]
    monkeypatch.setattr(crawler, "verify_image", real)
    summary = scrape(site.url("/shop/dresses"), out, recipe=recipe, **FAST)
    assert {r["id"] for r in rows_by_url(out).values()} == set(expected)
    assert summary.skipped == {"recipe: tile without link": 1}      # no false "duplicate"
    assert site.count("/shop/dresses") == 2 and site.count("/pics/1.jpg") == 1


@pytest.mark.parametrize("content, message", [
    (None, "recipe file not found"),
    ("{not json", "is not valid JSON"),
    ('["tile"]', "must be a JSON object"),
    ('{"tile": "li", "link": "a"}', "missing required key(s) image"),
    ('{"tile": "li", "link": "a", "image": "img", "colour": ".c"}', "unknown key(s) colour"),
    ('{"tile": "li[", "link": "a", "image": "img"}', "'tile' is not a valid CSS selector"),
    ('{"tile": "li", "link": "a", "image": "img", "currency": "euro"}', "'currency' must be a 3-letter code"),
    ('{"tile": "li", "link": "a", "image": "img", "next": "@href"}', "'next' needs a CSS selector"),
])
def test_recipe_errors(tmp_path, content, message):
    path = tmp_path / "r.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ScrapeError, match=None) as info:
        load_recipe(path)
    assert message in str(info.value) and "\n" not in str(info.value)


# ----------------------------------------------------------------------------- prices, structured data

def test_real_world_price_strings_through_a_recipe_scrape(sites, tmp_path):
    site = sites()
    expected = build_price_shop(site, PRICE_CASES)
    summary = scrape(site.url("/prices/0"), tmp_path, recipe=PRICE_RECIPE, **FAST)
    assert summary.skipped == {} and summary.images == len(PRICE_CASES)
    rows = {r["id"]: r for r in rows_by_url(tmp_path).values()}
    assert set(rows) == set(expected)
    for sku, (text, amount, currency) in expected.items():
        got = (float(rows[sku]["price"]) if rows[sku]["price"] else None, rows[sku]["currency"] or None)
        assert got == (amount, currency), (text, rows[sku])
    # and the catalogue reads them back unchanged
    products = {p.id: p for p in read_catalog(tmp_path / "catalog.csv").products}
    assert {k: (p.price, p.currency) for k, p in products.items()} == {k: v[1:] for k, v in expected.items()}


def test_recipe_currency_and_locale_win_over_the_text(sites, tmp_path):
    site = sites()
    # "12.500" in Australian dollars (two decimals at most): a thousands separator
    cases = [("$19.90", None, 19.9, "AUD"), ("€ 10", None, 10.0, "AUD"), ("12.500", None, 12500.0, "AUD")]
    expected = build_price_shop(site, cases)
    scrape(site.url("/prices/0"), tmp_path / "a", recipe=dict(PRICE_RECIPE, currency="aud", locale="en-AU"), **FAST)
    rows = {r["id"]: (float(r["price"]), r["currency"]) for r in rows_by_url(tmp_path / "a").values()}
    assert rows == {sku: (amount, cur) for sku, (_, amount, cur) in expected.items()}
    # the recipe's locale alone: "$" is the country's dollar, "12.500" (no currency) a decimal price
    scrape(site.url("/prices/0"), tmp_path / "b", recipe=dict(PRICE_RECIPE, locale="es-MX"), **FAST)
    rows = {r["id"]: (float(r["price"]), r["currency"]) for r in rows_by_url(tmp_path / "b").values()}
    assert rows == {"C0": (19.9, "MXN"), "C1": (10.0, "EUR"), "C2": (12.5, "")}
    with pytest.raises(ScrapeError, match="'locale' must be a language tag"):
        load_recipe(dict(PRICE_RECIPE, locale="German!"))
    with pytest.raises(ScrapeError, match="'currency' must be a 3-letter code"):
        load_recipe(dict(PRICE_RECIPE, currency="OFF"))


def test_structured_data_that_shops_get_slightly_wrong(sites, tmp_path):
    site = sites()
    expected = build_structured_shop(site)
    summary = scrape([site.url(p) for p in expected], tmp_path, **FAST)
    assert summary.skipped == {} and summary.images == len(expected)
    rows = rows_by_url(tmp_path)
    assert set(rows) == {site.url(p) for p in expected}      # one product a page, none from the Order
    for path, exp in expected.items():
        row = rows[site.url(path)]
        assert (row["id"], row["title"], float(row["price"]), row["currency"], row["source"]) == (
            exp["id"], exp["title"], exp["price"], exp["currency"], exp["source"]), path
        assert row["image_url"] == exp["image"] and row.get("more_images", "") == exp.get("more_images", "")
    assert "/img/in-order.png" not in site.paths()


def test_products_of_a_flat_graph_that_an_order_or_invoice_refers_to_are_not_the_pages():
    graph = jsonld({"@context": "https://schema.org", "@graph": [
        {"@type": "Invoice", "referencesOrder": {"@id": "#order"}},
        {"@type": "Order", "@id": "#order", "orderedItem": {"@id": "#bought"}},
        {"@type": "Product", "@id": "#bought", "name": "Bought before", "image": "/b.png"},
        {"@type": "WebPage", "mainEntity": {"@id": "#main"}},
        {"@type": "Product", "@id": "#main", "name": "This page's dress", "image": "/m.png",
         "offers": {"@type": "Offer", "price": "39.90", "priceCurrency": "EUR", "itemOffered": {"@id": "#main"}}},
        {"@type": "Review", "itemReviewed": {"@id": "#main"}, "reviewBody": "nice"},
    ]})
    rdfa = """<div vocab="https://schema.org/" typeof="Order" resource="#o2">
        <div property="orderedItem" typeof="Product" resource="#p2"><span property="name">RDFa bought</span></div>
        </div>"""
    page = extract_page(f"<html><head>{graph}</head><body>{rdfa}</body></html>", "http://s.test/p/main")
    assert [(p.title, p.price, p.currency) for p in page.products] == [("This page's dress", 39.9, "EUR")]
    assert page.is_product_page()


def test_page_locale_and_opengraph_currency_hints():
    head = '<meta property="og:locale" content="es_CL"><meta name="x" content="y">'
    body = """<div itemscope itemtype="https://schema.org/Product"><span itemprop="name">Vestido</span>
        <div itemprop="offers" itemscope itemtype="https://schema.org/Offer">
        <span itemprop="price">$ 1.144.000</span></div></div>"""
    page = extract_page(f'<html lang="es"><head>{head}</head><body>{body}</body></html>', "http://s.test/p/1")
    assert [(p.price, p.currency) for p in page.products] == [(1144000.0, "CLP")]
    page = extract_page(f"<html><body>{body}</body></html>", "http://s.test/p/1")
    assert [(p.price, p.currency) for p in page.products] == [(1144000.0, None)]   # "$" alone: unknown


# ----------------------------------------------------------------------------- extraction details

def test_extract_itemlist_links_pagination_and_nofollow():
    page = extract_page("""<html><head><base href="/shop/">
        <link rel="next" href="?page=3"><meta name="robots" content="noindex, nofollow">
        <script type="application/ld+json">
        {"@context": "https://schema.org", "@type": "ItemList", "itemListElement": [
          {"@type": "ListItem", "position": 1, "url": "p/1"},
          {"@type": "ListItem", "position": 2, "item": {"@type": "Product", "name": "Two",
           "url": "p/2", "image": "i/2.png"}}]}
        </script></head><body><a href="p/3">3</a></body></html>""", "http://s.test/shop/list?page=2")
    assert page.base == "http://s.test/shop/"
    assert page.next_links == ["http://s.test/shop/?page=3"]
    assert page.product_links == ["http://s.test/shop/p/1", "http://s.test/shop/p/2"]
    assert [(p.title, p.url, p.images) for p in page.products] == [
        ("Two", "http://s.test/shop/p/2", ["http://s.test/shop/i/2.png"])]
    assert page.nofollow and not page.is_product_page()
    assert page.links == ["http://s.test/shop/p/3"]


def test_sitemap_parser_rejects_other_xml():
    with pytest.raises(SitemapError, match="not a sitemap"):
        parse_sitemap(b"<rss><channel/></rss>")
    with pytest.raises(SitemapError, match="invalid XML"):
        parse_sitemap(b"<urlset><url><loc>x</loc></url>")


# ----------------------------------------------------------------------------- CLI and API misuse

def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="dressfinder scrape")
    command.add_arguments(parser)
    return command.run(parser.parse_args(argv))


def test_cli_scrape(recipe_shop, tmp_path, capsys):
    site, expected, recipe = recipe_shop
    out = tmp_path / "out"
    rc = _cli([site.url("/shop/dresses"), "--out", str(out), "--delay", "0", "--recipe", str(recipe),
               "--user-agent", "clibot/2.0", "--store-name", "Summer Shop", "--no-progress", "--max-pages", "10"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "pages fetched: 2 (2 this run)" in captured.out and "images saved: 3 (3 this run)" in captured.out
    assert "skipped: 1\n  recipe: tile without link: 1\n" in captured.out
    rows = rows_by_url(out)
    assert {r["shop"] for r in rows.values()} == {"Summer Shop"}
    assert {r.headers["User-Agent"] for r in site.requests} == {"clibot/2.0"}


@pytest.mark.parametrize("argv, message", [
    (["ftp://shop.test/", "--out", "{out}"], "not an http(s) URL: 'ftp://shop.test/'"),
    (["http://127.0.0.1:9/", "--out", "{out}", "--max-pages", "0"], "max-pages must be >= 1"),
    (["http://127.0.0.1:9/", "--out", "{out}", "--delay", "-1"], "delay must be >= 0"),
    (["http://127.0.0.1:9/", "--out", "{out}", "--recipe", "{out}/nope.json"], "recipe file not found"),
    (["http://127.0.0.1:9/", "--out", "{file}"], "must be a folder"),
])
def test_cli_user_errors_are_one_line(tmp_path, capsys, argv, message):
    file = tmp_path / "file.txt"
    file.write_text("x")
    argv = [a.format(out=tmp_path / "o", file=file) for a in argv]
    assert _cli(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("dressfinder scrape: error: ") and message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_cli_exit_codes_for_nothing_found_and_ctrl_c(shop, tmp_path, capsys, monkeypatch):
    assert _cli([shop.site.url("/dresses"), "--out", str(tmp_path / "a"), "--delay", "0", "--no-progress"]) == 1
    captured = capsys.readouterr()
    assert "skipped: 1\n  robots.txt: 1\n" in captured.out and "no products with images found" in captured.err

    def interrupt(text, url):
        raise KeyboardInterrupt

    monkeypatch.setattr(crawler, "extract_page", interrupt)
    rc = _cli([shop.site.url("/p/red"), "--out", str(tmp_path / "b"), "--delay", "0", "--no-progress",
               "--user-agent", shop.user_agent])
    assert rc == 130
    assert "interrupted: rerun the same command to resume" in capsys.readouterr().out
    assert (tmp_path / "b" / "catalog.csv").is_file()


def test_one_scrape_per_output_folder(tmp_path):
    first = Crawler(["http://127.0.0.1:9/"], tmp_path, **FAST)
    with pytest.raises(ScrapeError, match="another scrape is running"):
        Crawler(["http://127.0.0.1:9/"], tmp_path, **FAST)
    first._finish(False, 0.0)  # releases the lock without crawling
    Crawler(["http://127.0.0.1:9/"], tmp_path, **FAST)._finish(False, 0.0)


def test_state_from_elsewhere_is_a_user_error(tmp_path):
    (tmp_path / STATE_FILE).write_bytes(b"this is not sqlite, just text" * 10)
    with pytest.raises(ScrapeError, match="not a scrape state"):
        scrape("http://127.0.0.1:9/", tmp_path, **FAST)
