"""A fixture shop served on 127.0.0.1 for the scraper tests (no real site is ever contacted).

``Site`` is a tiny HTTP server on a free port that serves a dict of routes and records every
request (path, headers, time). ``build_shop`` fills one with a dress shop that exercises
every code path of the scraper; ``build_recipe_shop`` is a site with no structured data.
Images are generated here with Pillow.
"""

from __future__ import annotations

import gzip
import io
import json
import random
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Union

from PIL import Image

Reply = tuple[int, dict, bytes]
Route = Union[Reply, Callable[["Request"], Reply]]


@dataclass
class Request:
    path: str            # path with query, as sent
    headers: dict
    at: float = field(default_factory=time.monotonic)


def image_bytes(color, fmt="PNG", size=(24, 36)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format=fmt)
    return buf.getvalue()


def noise_png(size=(160, 160), seed=0) -> bytes:
    rnd = random.Random(seed)
    im = Image.frombytes("RGB", size, bytes(rnd.getrandbits(8) for _ in range(size[0] * size[1] * 3)))
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def html(body: str, status: int = 200, headers: dict | None = None) -> Reply:
    return status, {"Content-Type": "text/html; charset=utf-8", **(headers or {})}, body.encode("utf-8")


def redirect(location: str, status: int = 302) -> Reply:
    return status, {"Location": location}, b""


def jsonld(data) -> str:
    return f'<script type="application/ld+json">{json.dumps(data)}</script>'


class Site:
    """An HTTP server on 127.0.0.1:<free port> serving ``routes`` (path+query -> reply)."""

    def __init__(self):
        self.routes: dict[str, Route] = {}
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        site = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):  # noqa: N802
                req = Request(self.path, dict(self.headers))
                with site._lock:
                    site.requests.append(req)
                route = site.routes.get(self.path)
                if route is None:
                    reply = html("<h1>not found</h1>", 404)
                elif callable(route):
                    reply = route(req)
                else:
                    reply = route
                status, headers, body = reply
                try:
                    self.send_response(status)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args):
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):
                pass  # a client that timed out and left is expected in these tests

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    def url(self, path: str = "/") -> str:
        return self.base + path

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def paths(self) -> list[str]:
        with self._lock:
            return [r.path for r in self.requests]

    def count(self, path: str) -> int:
        return self.paths().count(path)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Flaky:
    """Fails ``failures`` times (with ``status``, or with ``hold``: no answer), then serves ``reply``.

    ``hold``: a failing request gets no answer until the client asks for the page again (so it
    has given up on this one: its timeout), or 60 s have passed. No delay races the client's
    timeout: however busy the machine, the answer cannot come before the client gave up."""

    def __init__(self, reply: Reply, failures: int = 1, status: int = 500, hold: bool = False):
        self.reply, self.left, self.status, self.hold = reply, failures, status, hold
        self.asked_again = threading.Event()

    def __call__(self, req: Request) -> Reply:
        if self.left > 0:
            self.left -= 1
            if not self.hold:
                return html("<h1>server error</h1>", self.status)
            self.asked_again.wait(60)
            return self.reply
        self.asked_again.set()
        return self.reply


def _page(title: str, head: str = "", body: str = "") -> str:
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{title}</title>{head}</head>"
            f"<body>{body}</body></html>")


# ----------------------------------------------------------------------------- the main shop

@dataclass
class Shop:
    site: Site
    other: Site
    images: dict[str, bytes]           # path -> bytes served
    expected: dict[str, dict]          # product path -> expected catalogue row (see build_shop)
    user_agent: str = "testbot/1.0 (+http://example.test/bot)"


def build_shop(site: Site, other: Site) -> Shop:
    """A shop with every kind of page the scraper must handle.

    /dresses (page 1) and /dresses?page=2 (rel=next) link to product pages in JSON-LD,
    microdata, RDFa and OpenGraph, and to every failure the scraper must survive.
    """
    b, o = site.base, other.base
    imgs = {
        "/img/red.png": image_bytes((200, 0, 0)),
        "/img/red-back.png": image_bytes((150, 0, 0)),
        "/img/blue.jpg": image_bytes((0, 0, 200), "JPEG"),
        "/img/green.webp": image_bytes((0, 160, 0), "WEBP"),
        "/img/pink.png": image_bytes((255, 150, 200)),
        "/img/floral.png": image_bytes((250, 220, 120)),
        "/img/silk.gif": image_bytes((240, 240, 230), "GIF"),
        "/img/broken.jpg": b"\xff\xd8\xff\xe0 this is not really a jpeg",
        "/img/huge.png": noise_png(),
    }
    imgs["/img/red-copy.png"] = imgs["/img/red.png"]  # same bytes, other URL
    for path, data in imgs.items():
        ctype = "image/jpeg" if path.endswith(".jpg") else "image/png"  # lies for webp and gif
        site.routes[path] = (200, {"Content-Type": ctype}, data)
    other.routes["/img/cdn.png"] = (200, {"Content-Type": "image/png"}, image_bytes((10, 10, 10)))

    site.routes["/robots.txt"] = (200, {"Content-Type": "text/plain"}, (
        "# test robots\n"
        "User-agent: testbot\n"
        "Disallow: /private/\n"
        "\n"
        "User-agent: *\n"
        "Disallow: /\n"
        f"\nSitemap: {b}/sitemap.xml\n").encode())

    listing_head = ('<meta property="og:type" content="website">'
                    '<meta property="og:image" content="/img/logo.png">')
    site.routes["/"] = html(_page("Home", "", '<a href="/dresses">Dresses</a>'))
    site.routes["/dresses"] = html(_page("Dresses", listing_head + '<link rel="next" href="/dresses?page=2">', f"""
        <nav><a href="/">Home</a> <a href="{o}/p/elsewhere">Partner shop</a>
             <a href="/private/secret">Staff only</a> <a href="/go-elsewhere">Outlet</a></nav>
        <h1>Dresses</h1>
        <a href="/p/red">Red</a> <a href="/p/red?utm_source=nav#reviews">Red again</a>
        <a href="/p/blue">Blue</a> <a href="/p/green">Green</a> <a href="/p/flaky">Flaky</a>
        <a href="/loop">Loop</a> <a href="/p/broken">Broken</a> <a href="/p/slow">Slow</a>
        <a href="/files/lookbook.pdf">Lookbook (PDF)</a> <a href="/p/ignored" rel="nofollow">ad</a>
        <a href="mailto:shop@example.test">mail</a>"""))
    site.routes["/dresses?page=2"] = html(_page("Dresses, page 2", '<link rel="prev" href="/dresses">', """
        <a href="/p/pink">Pink</a> <a href="/p/red-copy">Red copy</a> <a href="/p/red-alias">Red alias</a>
        <a href="/p/bad-json">Bad JSON</a> <a href="/p/empty">Empty</a> <a href="/p/down">Down</a>
        <a href="/p/gone">Gone</a> <a href="/p/huge">Huge</a> <a href="/p/huge-image">Huge image</a>
        <a href="/p/cdn">CDN</a> <a href="/p/noimage">No image</a> <a href="/old-blue">Old blue</a>"""))

    # JSON-LD, in a @graph with references, two images, a product url and a category.
    red = {"@context": "https://schema.org", "@graph": [
        {"@type": "Product", "@id": "#product", "name": "Red Satin Dress", "sku": "RED-1",
         "url": "/p/red", "image": ["/img/red.png", {"@type": "ImageObject", "url": "/img/red-back.png"}],
         "brand": {"@type": "Brand", "name": "Acme"}, "category": "Dresses > Evening",
         "offers": {"@id": "#offer"}},
        {"@type": "Offer", "@id": "#offer", "price": "129.90", "priceCurrency": "EUR",
         "availability": "https://schema.org/InStock"},
    ]}
    site.routes["/p/red"] = html(_page("Red", '<link rel="canonical" href="/p/red">' + jsonld(red),
                                       '<a href="/p/related-shoes">You may also like</a>'))
    # The same product under another URL (canonical and data point at /p/red): kept once.
    alias = {"@context": "https://schema.org", "@type": "Product", "name": "Red Satin Dress",
             "sku": "RED-1", "image": "/img/red.png",
             "offers": {"@type": "Offer", "price": 129.9, "priceCurrency": "EUR"}}
    site.routes["/p/red-alias"] = html(_page("Red", f'<link rel="canonical" href="{b}/p/red">' + jsonld(alias)))
    # Another product whose picture is byte-for-byte the red one: kept once.
    copy = {"@context": "https://schema.org", "@type": "Product", "name": "Red Satin Dress (copy)",
            "sku": "RED-COPY", "image": "/img/red-copy.png",
            "offers": {"@type": "Offer", "price": "99", "priceCurrency": "EUR"}}
    site.routes["/p/red-copy"] = html(_page("Red copy", jsonld(copy)))

    # Microdata, productID, no url (canonical link), price in content=, category from breadcrumbs.
    site.routes["/p/blue"] = html(_page("Blue", '<link rel="canonical" href="/p/blue">', """
        <ol itemscope itemtype="https://schema.org/BreadcrumbList">
          <li itemprop="itemListElement" itemscope itemtype="https://schema.org/ListItem">
            <a itemprop="item" href="/"><span itemprop="name">Home</span></a><meta itemprop="position" content="1"></li>
          <li itemprop="itemListElement" itemscope itemtype="https://schema.org/ListItem">
            <a itemprop="item" href="/dresses/day"><span itemprop="name">Day dresses</span></a>
            <meta itemprop="position" content="2"></li>
          <li itemprop="itemListElement" itemscope itemtype="https://schema.org/ListItem">
            <span itemprop="name">Blue Midi Dress</span><meta itemprop="position" content="3"></li>
        </ol>
        <div itemscope itemtype="https://schema.org/Product">
          <h1 itemprop="name">Blue   Midi
             Dress</h1>
          <img itemprop="image" src="/img/blue.jpg" alt="">
          <meta itemprop="productID" content="BLUE-2">
          <div itemprop="brand" itemscope itemtype="https://schema.org/Brand"><span itemprop="name">Bleu</span></div>
          <div itemprop="offers" itemscope itemtype="https://schema.org/Offer">
            <span itemprop="price" content="59.00">$59.00</span><meta itemprop="priceCurrency" content="USD">
            <link itemprop="availability" href="https://schema.org/OutOfStock">Sold out</div>
        </div>"""))
    site.routes["/old-blue"] = redirect("/p/blue", 301)

    # OpenGraph only (no schema.org), relative image, comma decimal price.
    site.routes["/p/green"] = html(_page("Green", """
        <meta property="og:type" content="product">
        <meta property="og:title" content="Green Wrap Dress">
        <meta property="og:image" content="/img/green.webp">
        <meta property="og:url" content="/p/green">
        <meta property="product:price:amount" content="45,50">
        <meta property="product:price:currency" content="gbp">
        <meta property="product:availability" content="in stock">
        <meta property="product:brand" content="Verde">
        <meta property="product:retailer_item_id" content="GRN-3">
        <meta property="product:category" content="Wrap dresses">"""))

    # RDFa, offers and brand as nested resources, availability as a link.
    site.routes["/p/pink"] = html(_page("Pink", "", """
        <div vocab="https://schema.org/" typeof="Product">
          <h1 property="name">Pink Slip Dress</h1>
          <img property="image" src="/img/pink.png" alt="">
          <span property="sku">PNK-4</span>
          <span property="category">Slip dresses</span>
          <div property="brand" typeof="Brand"><span property="name">Rosa</span></div>
          <div property="offers" typeof="Offer">
            <span property="price" content="75">75 $</span><meta property="priceCurrency" content="USD">
            <link property="availability" href="https://schema.org/PreOrder">
          </div>
        </div>"""))

    # 500 once, then a JSON-LD product without any id: its id is a hash of the URL.
    floral = {"@context": "http://schema.org", "@type": "Product", "name": "Floral Tea Dress",
              "image": {"@type": "ImageObject", "contentUrl": "/img/floral.png"},
              "offers": [{"@type": "AggregateOffer", "lowPrice": 80, "highPrice": 95, "priceCurrency": "USD"}]}
    site.routes["/p/flaky"] = Flaky(html(_page("Floral", jsonld(floral))), failures=1, status=500)
    # Times out once (the client gives up), then answers; gtin13 as id, price specification.
    silk = {"@context": "https://schema.org", "@type": "Product", "name": "Silk Slip &amp; Shawl",
            "gtin13": "4006381333931", "image": "/img/silk.gif",
            "offers": {"@type": "Offer", "priceSpecification": {"@type": "UnitPriceSpecification",
                                                                "price": 210, "priceCurrency": "CHF"},
                       "availability": "http://schema.org/LimitedAvailability"}}
    site.routes["/p/slow"] = Flaky(html(_page("Silk", jsonld(silk))), failures=1, hold=True)

    # Failures the crawl must log, count and go past.
    site.routes["/loop"] = redirect("/loop2")
    site.routes["/loop2"] = redirect("/loop")
    site.routes["/go-elsewhere"] = redirect(f"{o}/sale")
    site.routes["/p/down"] = lambda req: html("<h1>down</h1>", 503)
    site.routes["/p/huge"] = html(_page("Huge", "", "<p>" + "x" * 70_000 + "</p>"))
    site.routes["/p/empty"] = (200, {"Content-Type": "text/html"}, b"   ")
    site.routes["/p/bad-json"] = html(_page("Bad", '<script type="application/ld+json">{"@type": "Product", '
                                                   '"name": "Broken" "image": }</script>'))
    site.routes["/p/broken"] = html(_page("Broken", jsonld(
        {"@context": "https://schema.org", "@type": "Product", "name": "Broken Image Dress",
         "sku": "BRK-1", "image": "/img/broken.jpg"})))
    site.routes["/p/huge-image"] = html(_page("Huge image", jsonld(
        {"@context": "https://schema.org", "@type": "Product", "name": "Huge Image Dress",
         "sku": "HUGE-1", "image": "/img/huge.png"})))
    site.routes["/p/cdn"] = html(_page("CDN", jsonld(
        {"@context": "https://schema.org", "@type": "Product", "name": "CDN Dress",
         "sku": "CDN-1", "image": f"{o}/img/cdn.png"})))
    site.routes["/p/noimage"] = html(_page("No image", jsonld(
        {"@context": "https://schema.org", "@type": "Product", "name": "Invisible Dress", "sku": "NOIMG"})))
    site.routes["/private/secret"] = html(_page("Secret", jsonld(
        {"@type": "Product", "name": "Secret", "sku": "SECRET", "image": "/img/red.png"})))

    # Sitemaps: an index -> a plain urlset and a gzipped one.
    site.routes["/sitemap.xml"] = (200, {"Content-Type": "application/xml"}, f"""<?xml version="1.0" encoding="UTF-8"?>
<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
  <sitemap><loc>{b}/sitemap-products.xml</loc></sitemap>
  <sitemap><loc>{b}/sitemap-more.xml.gz</loc></sitemap>
  <sitemap><loc>{o}/sitemap.xml</loc></sitemap>
</sitemapindex>""".encode())
    site.routes["/sitemap-products.xml"] = (200, {"Content-Type": "text/xml"}, f"""<?xml version="1.0"?>
<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
  <url><loc>{b}/p/red</loc></url><url><loc>{b}/p/blue</loc></url>
  <url><loc>{b}/p/sitemap-only</loc><lastmod>2024-01-01</lastmod></url>
</urlset>""".encode())
    site.routes["/sitemap-more.xml.gz"] = (200, {"Content-Type": "application/gzip"}, gzip.compress(
        f"""<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"><url><loc>{b}/p/green</loc></url></urlset>""".encode()))
    imgs["/img/only.png"] = image_bytes((90, 30, 120))
    site.routes["/img/only.png"] = (200, {"Content-Type": "image/png"}, imgs["/img/only.png"])
    site.routes["/p/sitemap-only"] = html(_page("Only", jsonld(
        {"@context": "https://schema.org", "@type": "Product", "name": "Sitemap Dress", "sku": "SM-1",
         "image": "/img/only.png", "offers": {"@type": "Offer", "price": "10", "priceCurrency": "USD"}})))

    store = site.host
    expected = {
        "/p/red": dict(id="RED-1", title="Red Satin Dress", price=129.9, currency="EUR", url=b + "/p/red",
                       shop=store, category="Dresses > Evening", brand="Acme", availability="InStock",
                       image_path="/img/red.png", more_images=b + "/img/red-back.png", source="json-ld",
                       ext=".png"),
        "/p/blue": dict(id="BLUE-2", title="Blue Midi Dress", price=59.0, currency="USD", url=b + "/p/blue",
                        shop=store, category="Day dresses", brand="Bleu", availability="OutOfStock",
                        image_path="/img/blue.jpg", more_images="", source="microdata", ext=".jpg"),
        "/p/green": dict(id="GRN-3", title="Green Wrap Dress", price=45.5, currency="GBP", url=b + "/p/green",
                         shop=store, category="Wrap dresses", brand="Verde", availability="InStock",
                         image_path="/img/green.webp", more_images="", source="opengraph", ext=".webp"),
        "/p/pink": dict(id="PNK-4", title="Pink Slip Dress", price=75.0, currency="USD", url=b + "/p/pink",
                        shop=store, category="Slip dresses", brand="Rosa", availability="PreOrder",
                        image_path="/img/pink.png", more_images="", source="rdfa", ext=".png"),
        "/p/flaky": dict(id=None, title="Floral Tea Dress", price=80.0, currency="USD", url=b + "/p/flaky",
                         shop=store, category="", brand="", availability="", image_path="/img/floral.png",
                         more_images="", source="json-ld", ext=".png"),
        "/p/slow": dict(id="4006381333931", title="Silk Slip & Shawl", price=210.0, currency="CHF",
                        url=b + "/p/slow", shop=store, category="", brand="", availability="LimitedAvailability",
                        image_path="/img/silk.gif", more_images="", source="json-ld", ext=".gif"),
    }
    return Shop(site, other, imgs, expected)


# ----------------------------------------------------------------------------- the recipe shop

RECIPE = {
    "tile": "li.tile", "link": "a.tile-link", "image": "img", "title": ".name", "price": ".price",
    "id": "@data-sku", "brand": ".brand", "availability": ".stock@data-state", "next": "a.next",
    "category": "h1.cat", "currency": "EUR",
}


def build_recipe_shop(site: Site) -> dict[str, dict]:
    """A shop with no structured data at all: the recipe above reads its product tiles."""
    site.routes["/pics/1.jpg"] = (200, {"Content-Type": "image/jpeg"}, image_bytes((20, 120, 220), "JPEG"))
    site.routes["/pics/2.png"] = (200, {"Content-Type": "image/png"}, image_bytes((220, 120, 20)))
    site.routes["/pics/2-small.png"] = (200, {"Content-Type": "image/png"}, image_bytes((1, 2, 3)))
    site.routes["/pics/3.png"] = (200, {"Content-Type": "image/png"}, image_bytes((120, 20, 220)))
    site.routes["/shop/dresses"] = html(_page("Summer", "", """
        <h1 class="cat">Summer  dresses</h1>
        <ul class="grid">
          <li class="tile" data-sku="S-1"><a class="tile-link" href="/item/1">
              <img data-src="/pics/1.jpg" src="data:image/gif;base64,R0lGODlhAQABAAAAACw="></a>
            <span class="name">Linen Sundress</span> <span class="price">&euro; 39,95</span>
            <span class="brand">Sol</span> <span class="stock" data-state="in stock">In stock</span></li>
          <li class="tile" data-sku="S-2"><a class="tile-link" href="/item/2?utm_campaign=grid">
              <img srcset="/pics/2-small.png 200w, /pics/2.png 800w"></a>
            <span class="name">Cotton Maxi</span> <span class="price">49.00</span></li>
          <li class="tile"><span class="name">A tile without a link</span></li>
        </ul>
        <a class="next" href="/shop/dresses?p=2">Next</a>"""))
    site.routes["/shop/dresses?p=2"] = html(_page("Summer 2", "", """
        <h1 class="cat">Summer dresses</h1>
        <ul><li class="tile" data-sku="S-3"><a class="tile-link" href="/item/3"><img src="/pics/3.png"></a>
            <span class="name">Lace Midi</span><span class="price">1.299,00 &euro;</span></li></ul>"""))
    b, store = site.base, site.host
    return {
        "S-1": dict(title="Linen Sundress", price=39.95, currency="EUR", url=b + "/item/1", shop=store,
                    category="Summer dresses", brand="Sol", availability="InStock", image_path="/pics/1.jpg",
                    source="recipe", ext=".jpg"),
        "S-2": dict(title="Cotton Maxi", price=49.0, currency="EUR", url=b + "/item/2", shop=store,
                    category="Summer dresses", brand="", availability="", image_path="/pics/2.png",
                    source="recipe", ext=".png"),
        "S-3": dict(title="Lace Midi", price=1299.0, currency="EUR", url=b + "/item/3", shop=store,
                    category="Summer dresses", brand="", availability="", image_path="/pics/3.png",
                    source="recipe", ext=".png"),
    }


# ----------------------------------------------------------------------------- prices and structured data

PRICE_RECIPE = {"tile": "li.tile", "link": "a", "image": "img", "title": ".name", "price": ".price",
                "id": "@data-sku", "next": "a.next"}


def _tile(site: Site, sku: str, n: int, price: str) -> str:
    path = f"/pics/{sku}.png"
    site.routes[path] = (200, {"Content-Type": "image/png"}, image_bytes((n * 37 % 256, n * 11 % 256, 200 - n)))
    return (f'<li class="tile" data-sku="{sku}"><a href="/item/{sku}"><img src="{path}"></a>'
            f'<span class="name">Dress {sku}</span> <span class="price">{price}</span></li>')


def build_price_shop(site: Site, cases: list[tuple]) -> dict[str, tuple]:
    """Listing pages read with ``PRICE_RECIPE``: a page per locale (``<html lang>``, none on the
    first), a tile per price case. Returns sku -> (price text, amount, currency)."""
    locales = list(dict.fromkeys(c[1] for c in cases))
    expected = {}
    for page_no, locale in enumerate(locales):
        tiles = []
        for n, (text, loc, amount, currency) in enumerate(cases):
            if loc == locale:
                sku = f"C{n}"
                tiles.append(_tile(site, sku, n, html_escape(text)))
                expected[sku] = (text, amount, currency)
        nxt = f'<a class="next" href="/prices/{page_no + 1}">next</a>' if page_no + 1 < len(locales) else ""
        lang = f' lang="{locale}"' if locale else ""
        site.routes[f"/prices/{page_no}"] = html(f"<!DOCTYPE html><html{lang}><head><meta charset='utf-8'>"
                                                 f"<title>Prices</title></head><body><ul>{''.join(tiles)}</ul>"
                                                 f"{nxt}</body></html>")
    return expected


def html_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;")


def build_structured_shop(site: Site) -> dict[str, dict]:
    """Product pages whose structured data real shops get slightly wrong (issue 15): JSON-LD
    with a comment line or trailing commas, a microdata itemref target that is an item of its
    own, a Product inside an Order, an id only in OpenGraph. Returns path -> expected row."""
    for n, name in enumerate(("comment", "comma", "itemref", "itemref-part", "order", "in-order", "og")):
        site.routes[f"/img/{name}.png"] = (200, {"Content-Type": "image/png"}, image_bytes((30 * n, 90, 140)))
    site.routes["/p/comment"] = html(_page("Comment", """<script type="application/ld+json">
        // product data, written by the shop's template
        {"@context": "https://schema.org", "@type": "Product", "name": "Comment Dress", "sku": "LD-1",
         "image": "/img/comment.png",
         "offers": {"@type": "Offer", "price": "1.299,00", "priceCurrency": "EUR"}}
        </script>"""))
    site.routes["/p/comma"] = html(_page("Comma", """<script type="application/ld+json">
        {"@context": "https://schema.org", "@type": "Product", "name": "Comma Dress", "sku": "LD-2",
         "image": ["/img/comma.png",],
         "offers": {"@type": "Offer", "price": 59, "priceCurrency": "usd",},}
        </script>"""))
    site.routes["/p/itemref"] = html(_page("Itemref", "", """
        <div itemscope itemtype="https://schema.org/Product" itemref="itemref-more itemref-offer">
          <h1 itemprop="name">Itemref Dress</h1><meta itemprop="sku" content="MD-3">
          <img itemprop="image" src="/img/itemref.png" alt="">
        </div>
        <div id="itemref-more" itemscope itemtype="https://schema.org/Product">
          <img itemprop="image" src="/img/itemref-part.png" alt=""><span itemprop="color">red</span>
        </div>
        <div id="itemref-offer" itemprop="offers" itemscope itemtype="https://schema.org/Offer">
          <span itemprop="price">$89.00</span><meta itemprop="priceCurrency" content="NZD">
        </div>"""))
    order = {"@context": "https://schema.org", "@type": "Order", "orderNumber": "A-1",
             "orderedItem": {"@type": "Product", "name": "Dress in an old order", "sku": "OLD-9",
                             "image": "/img/in-order.png",
                             "offers": {"@type": "Offer", "price": 10, "priceCurrency": "GBP"}}}
    site.routes["/p/order"] = html(_page("Order", jsonld(order), """
        <div itemscope itemtype="https://schema.org/Product">
          <h1 itemprop="name">Order Page Dress</h1><meta itemprop="sku" content="MD-4">
          <img itemprop="image" src="/img/order.png" alt="">
          <div itemprop="offers" itemscope itemtype="https://schema.org/Offer">
            <meta itemprop="price" content="45.5"><meta itemprop="priceCurrency" content="GBP"></div>
        </div>"""))
    # No id in the microdata, no priceCurrency: OpenGraph gives both (its currency beats the
    # "$" of the text and the en-AU of the page).
    site.routes["/p/og"] = html("""<!DOCTYPE html><html lang="en-AU"><head><meta charset="utf-8">
        <title>OG</title><meta property="og:type" content="product">
        <meta property="product:retailer_item_id" content="OG-77">
        <meta property="product:price:amount" content="45.00">
        <meta property="product:price:currency" content="CAD"></head><body>
        <div itemscope itemtype="https://schema.org/Product"><h1 itemprop="name">OG Id Dress</h1>
          <img itemprop="image" src="/img/og.png" alt="">
          <div itemprop="offers" itemscope itemtype="https://schema.org/Offer">
            <span itemprop="price">$45.00</span></div></div></body></html>""")
    b = site.base
    return {
        "/p/comment": dict(id="LD-1", title="Comment Dress", price=1299.0, currency="EUR",
                           image=b + "/img/comment.png", source="json-ld"),
        "/p/comma": dict(id="LD-2", title="Comma Dress", price=59.0, currency="USD",
                         image=b + "/img/comma.png", source="json-ld"),
        "/p/itemref": dict(id="MD-3", title="Itemref Dress", price=89.0, currency="NZD",
                           image=b + "/img/itemref.png", more_images=b + "/img/itemref-part.png",
                           source="microdata"),
        "/p/order": dict(id="MD-4", title="Order Page Dress", price=45.5, currency="GBP",
                         image=b + "/img/order.png", source="microdata"),
        "/p/og": dict(id="OG-77", title="OG Id Dress", price=45.0, currency="CAD",
                      image=b + "/img/og.png", source="microdata"),
    }
