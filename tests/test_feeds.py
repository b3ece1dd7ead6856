"""Product feeds (Google Merchant Center text, RSS and Atom; Shopify's products.json; WooCommerce's
Store API) imported from fixture feeds generated here and served on 127.0.0.1, then indexed."""

from __future__ import annotations

import csv
import json
import time
import tracemalloc
from collections import Counter
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
import pytest

from dressfinder.catalog import read_catalog
from dressfinder.encoders import Encoder, l2_normalize
from dressfinder.scrape.errors import FeedError
from dressfinder.scrape.feed_import import COLUMNS, import_feed
from dressfinder.scrape.feeds import FeedOptions, detect, is_feed_source, parse
from dressfinder.scrape import fetch
from dressfinder.scrape.fetch import Fetcher
from dressfinder.store import Store

from scrape_fixtures import Site, html, image_bytes

FAST = dict(delay=0, backoff=0, retries=1, timeout=5, progress=False, allow_private=True)
COLOURS = [(200, 0, 0), (0, 0, 200), (0, 160, 0), (255, 150, 200), (250, 220, 120), (90, 60, 30)]
G = "http://base.google.com/ns/1.0"


@pytest.fixture
def site():
    s = Site()
    for i, colour in enumerate(COLOURS):
        s.routes[f"/img/{i}.png"] = (200, {"Content-Type": "image/png"}, image_bytes(colour))
    s.routes["/img/broken.png"] = (200, {"Content-Type": "image/png"}, b"\x89PNG not really")
    yield s
    s.close()


def img(site: Site, i: int | str) -> str:
    return site.url(f"/img/{i}.png")


def rows_of(out: Path) -> dict[str, dict]:
    with open(out / "catalog.csv", newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames[:len(COLUMNS)]) == COLUMNS
        return {r["id"]: r for r in reader}


def products_of(out: Path) -> dict:
    report = read_catalog(out / "catalog.csv")
    assert report.skipped == []
    return {p.id: p for p in report.products}


def tsv(columns: list[str], rows: list[list[str]]) -> bytes:
    return ("\t".join(columns) + "\n" + "".join("\t".join(r) + "\n" for r in rows)).encode("utf-8")


def tsv_reply(body: bytes):
    return 200, {"Content-Type": "text/tab-separated-values; charset=utf-8"}, body


def xml_items(items: list[list[tuple[str, str]]], atom: bool) -> bytes:
    """An RSS 2.0 (or Atom 1.0) feed; each item a list of (tag, text): g:x for Google's attributes,
    title/link/description for the feed's own (a link is an href in Atom)."""
    out = []
    for item in items:
        parts = []
        for tag, value in item:
            if atom and tag == "link":
                parts.append(f'<link rel="alternate" href="{escape(value)}"/>')
            elif atom and tag == "description":
                parts.append(f"<summary>{escape(value)}</summary>")
            else:
                parts.append(f"<{tag}>{escape(value)}</{tag}>")
        out.append(("<entry>" if atom else "<item>") + "".join(parts) + ("</entry>" if atom else "</item>"))
    if atom:
        doc = (f'<?xml version="1.0" encoding="UTF-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom" xmlns:g="{G}">'
               f'<title>Atelier</title><link rel="self" href="https://atelier.example/feed.atom"/>{"".join(out)}</feed>')
    else:
        doc = (f'<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0" xmlns:g="{G}"><channel><title>Atelier'
               f'</title><link>https://atelier.example</link><description>d</description>{"".join(out)}</channel></rss>')
    return doc.encode("utf-8")


# --------------------------------------------------------------------------- Google, text

GOOGLE_COLUMNS = ["id", "title", "description", "link", "image_link", "additional_image_link", "price", "sale_price",
                  "availability", "brand", "color", "size", "gender", "google_product_category", "product_type",
                  "item_group_id"]


def google_tsv(site: Site) -> bytes:
    def row(pid, image, *, more="", price="49.99 USD", sale="", avail="in_stock", group="", color="red", size="M",
            link=None, title=None):
        return [pid, title or f"Dress {pid}", "A dress, with commas; and semicolons", link or f"https://atelier.example/p/{pid}",
                image, more, price, sale, avail, "Atelier", color, size, "female", "Apparel > Dresses",
                "Dresses > Maxi", group]

    good = [
        row("d1-red", img(site, 0), more=f"{img(site, 1)},{img(site, 2)}", sale="39.99 USD", group="d1"),
        row("d1-blue", img(site, 1), more=f"{img(site, 0)}, {img(site, 'broken')}", avail="out_of_stock", group="d1",
            color="blue"),
        row("d2", img(site, 3), price="5000 JPY", avail="preorder", size="", color=""),
        row("d3", img(site, 4), price="1,299.00 EUR", avail="backorder"),
        row("d4", img(site, 5), price="", avail="in stock"),                   # no price: kept, Google's old word
    ]
    bad = [
        row("", img(site, 0)),                                                  # no id
        row("b1", ""),                                                          # no image_link
        row("b2", "ftp://x/y.png"),                                             # not an http(s) URL
        row("b3", img(site, 0), price="lots USD"),                              # price not understood
        row("b4", img(site, 0), price="12.00"),                                 # no currency
        row("b5", img(site, 0), sale="10 EUR"),                                 # sale in another currency
        row("d2", img(site, 0)),                                                # duplicate id
        row("b6", site.url("/img/missing.png")),                                # its only picture: HTTP 404
        row("b7", img(site, 0)) + ["one cell too many"],
    ]
    return tsv(GOOGLE_COLUMNS, good + bad)


def test_google_text_feed_over_http(site, tmp_path):
    site.routes["/feeds/google.tsv"] = tsv_reply(google_tsv(site))
    out = tmp_path / "out"
    s = import_feed(site.url("/feeds/google.tsv"), out, **FAST)
    assert (s.kind, s.items, s.products, s.variants, s.groups) == ("google-tsv", 14, 5, 2, 1)
    assert s.reasons() == {"no id": 1, "no image_link": 1, "image_link is not an http(s) URL": 1,
                           "price not understood": 1, "price names no currency": 1, "sale_price in EUR, price in USD": 1,
                           "duplicate id": 1, "image": 1, "17 cells, the header has 16": 1}
    assert ("id b6", "image: HTTP 404") in s.skipped
    assert s.image_failures == {"image: not an image": 1, "image: HTTP 404": 1}
    assert s.files == 6 and s.pictures == 5 + 2 + 1      # d1-red: 3 pictures, d1-blue: 2 (broken one left out)
    assert "skipped 9 rows" in s.format() and "variants: 2 rows of 1 products" in s.format()
    rows = rows_of(out)
    assert rows["d1-red"]["image_url"] == img(site, 0)
    assert rows["d1-red"]["more_image_urls"] == f"{img(site, 1)} {img(site, 2)}"
    assert rows["d1-red"]["gender"] == "female" and rows["d1-red"]["source"] == "google-tsv"
    p = products_of(out)
    red, blue = p["d1-red"], p["d1-blue"]
    assert (red.price, red.sale_price, red.currency, red.availability) == (49.99, 39.99, "USD", "in_stock")
    assert (red.brand, red.color, red.size, red.item_group_id, red.category) == ("Atelier", "red", "M", "d1", "Dresses > Maxi")
    assert (red.shop, red.url, red.title) == ("atelier.example", "https://atelier.example/p/d1-red", "Dress d1-red")
    assert red.extra["google_product_category"] == "Apparel > Dresses"
    assert red.extra["description"] == "A dress, with commas; and semicolons"
    assert len(red.more_images.split()) == 2 and all(Path(m).is_file() for m in red.more_images.split())
    assert Path(red.image).read_bytes() == image_bytes(COLOURS[0])
    assert (blue.availability, blue.sale_price, blue.item_group_id, blue.color) == ("out_of_stock", None, "d1", "blue")
    assert len(blue.more_images.split()) == 1                            # the broken picture is not listed
    assert (p["d2"].price, p["d2"].currency, p["d2"].availability, p["d2"].size) == (5000.0, "JPY", "preorder", None)
    assert (p["d3"].price, p["d3"].currency, p["d3"].availability) == (1299.0, "EUR", "backorder")
    assert (p["d4"].price, p["d4"].availability) == (None, "in_stock")
    assert site.count("/img/0.png") == 1                                  # each URL downloaded once


# --------------------------------------------------------------------------- Google, XML

def google_items(site: Site) -> list[list[tuple[str, str]]]:
    def item(pid, image, *more, **kw):
        fields = [("title", kw.get("title", f"Dress {pid}")), ("link", f"https://atelier.example/p/{pid}"),
                  ("description", "Silk & lace <b>bold</b>"), ("g:id", pid), ("g:image_link", image)]
        fields += [("g:additional_image_link", u) for u in more]
        fields += [(f"g:{k}", v) for k, v in kw.items() if k != "title"]
        return fields

    return [
        item("x1-s", img(site, 0), img(site, 1), img(site, 2), price="129.90 EUR", sale_price="99.00 EUR",
             availability="in_stock", item_group_id="x1", size="S", color="Navy", brand="Maison"),
        item("x1-m", img(site, 0), img(site, 1), price="129.90 EUR", availability="out_of_stock", item_group_id="x1",
             size="M", color="Navy", brand="Maison"),
        item("x2", img(site, 3), price="89 GBP", availability="backorder"),
        item("x3", img(site, 4), price="25.00 USD", availability="preorder", title="Robe d'été"),
        item("x4", "", price="1 USD"),                                          # no image_link
        item("x5", img(site, 5), price="abc EUR"),                               # price not understood
    ]


@pytest.mark.parametrize("atom", [False, True], ids=["rss", "atom"])
def test_google_xml_feeds(site, tmp_path, atom):
    path = "/feed.atom" if atom else "/feed.xml"
    site.routes[path] = (200, {"Content-Type": "application/xml"}, xml_items(google_items(site), atom))
    out = tmp_path / "out"
    s = import_feed(site.url(path), out, **FAST)
    assert s.kind == ("google-atom" if atom else "google-rss")
    assert (s.items, s.products, s.variants, s.groups) == (6, 4, 2, 1)
    assert s.reasons() == {"no image_link": 1, "price not understood": 1}
    assert [w for w, _ in s.skipped] == [f"{'entry' if atom else 'item'} 5", f"{'entry' if atom else 'item'} 6"]
    p = products_of(out)
    s_, m = p["x1-s"], p["x1-m"]
    assert (s_.price, s_.sale_price, s_.currency, s_.availability, s_.size, s_.color, s_.brand) == (
        129.9, 99.0, "EUR", "in_stock", "S", "Navy", "Maison")
    assert len(s_.more_images.split()) == 2 and len(m.more_images.split()) == 1    # repeated elements: every one
    assert s_.item_group_id == m.item_group_id == "x1" and m.availability == "out_of_stock"
    assert (p["x2"].price, p["x2"].currency, p["x2"].availability) == (89.0, "GBP", "backorder")
    assert (p["x3"].availability, p["x3"].title) == ("preorder", "Robe d'été")
    assert s_.url == "https://atelier.example/p/x1-s" and s_.extra["description"] == "Silk & lace <b>bold</b>"


def test_rss_without_the_google_namespace_is_not_a_product_feed(tmp_path):
    f = tmp_path / "blog.xml"
    f.write_text('<?xml version="1.0"?><rss version="2.0"><channel><title>Blog</title>'
                 '<item><title>Post</title><link>https://x/1</link></item></channel></rss>')
    with pytest.raises(FeedError, match="without Google's g: namespace"):
        import_feed(f, tmp_path / "out", **FAST)


# --------------------------------------------------------------------------- Shopify

def shopify_product(site: Site, pid: int, *, n_variants: int = 2, images: int = 2) -> dict:
    imgs = [{"id": pid * 10 + j, "position": j + 1, "src": img(site, (pid + j) % len(COLOURS)),
             "variant_ids": [pid * 100 + 1] if j == 1 else []} for j in range(images)]
    variants = []
    for v in range(n_variants):
        variants.append({"id": pid * 100 + v, "title": f"Red / {'SML'[v % 3]}", "option1": "Red",
                         "option2": "SML"[v % 3], "option3": None, "sku": f"SKU-{pid}-{v}",
                         "price": "80.00" if v == 0 else "100.00", "compare_at_price": "100.00" if v == 0 else None,
                         "available": v != 1, "featured_image": None})
    return {"id": pid, "title": f"Wrap dress {pid}", "handle": f"wrap-dress-{pid}", "vendor": "Maison",
            "product_type": "Dresses", "tags": ["summer", "silk"], "body_html": "<p>Silk</p>",
            "options": [{"name": "Color", "position": 1}, {"name": "Size", "position": 2}],
            "images": imgs, "variants": variants}


def serve_shopify(site: Site, path: str, pages: list[list[dict]]) -> None:
    for n, products in enumerate(pages + [[]], 1):
        site.routes[f"{path}?limit=250&page={n}"] = (200, {"Content-Type": "application/json"},
                                                     json.dumps({"products": products}).encode())


def test_shopify_pages_until_an_empty_list_with_variants_and_the_shops_currency(site, tmp_path):
    broken = {"id": 9, "title": "No picture", "handle": "none", "images": [], "variants": [{"id": 901, "price": "1"}]}
    bad_price = shopify_product(site, 8, n_variants=2)
    bad_price["variants"][1]["price"] = "ten euros"
    serve_shopify(site, "/products.json", [[shopify_product(site, 1), shopify_product(site, 2, n_variants=3)],
                                           [shopify_product(site, 3, n_variants=1, images=1), broken, bad_price]])
    site.routes["/"] = html('<html><head><script>window.Shopify = {};Shopify.shop = "x.myshopify.com";'
                            'Shopify.currency = {"active":"EUR","rate":"1.0"};</script></head><body></body></html>')
    out = tmp_path / "out"
    s = import_feed(site.url("/products.json"), out, **FAST)
    assert (s.kind, s.pages, s.items) == ("shopify", 3, 5)
    assert [p for p in site.paths() if "products.json" in p] == [f"/products.json?limit=250&page={n}" for n in (1, 2, 3)]
    assert s.products == 2 + 3 + 1 + 1 and s.groups == 4 and s.variants == 7
    assert s.reasons() == {"no image": 1, "price not understood": 1}
    assert ("page 2 product 8 variant 801", "price not understood: 'ten euros'") in s.skipped
    assert any("currency EUR read from" in n for n in s.notes)
    p = products_of(out)
    first, second, third = p["100"], p["101"], p["202"]
    # compare_at_price above the price: a sale (price the regular one, sale_price what it costs now)
    assert (first.price, first.sale_price, first.currency, first.availability) == (100.0, 80.0, "EUR", "in_stock")
    assert (second.price, second.sale_price, second.availability) == (100.0, None, "out_of_stock")   # available false
    assert (first.title, first.color, first.size, first.item_group_id, first.brand) == (
        "Wrap dress 1 - Red / S", "Red", "S", "1", "Maison")
    assert first.category == "Dresses" and first.extra["tags"] == "summer, silk" and first.extra["sku"] == "SKU-1-0"
    assert first.url == site.url("/products/wrap-dress-1?variant=100")
    # a variant's picture: its own (variant_ids), the product's first otherwise; all the product's pictures listed
    assert Path(second.image).read_bytes() == image_bytes(COLOURS[2]) and Path(first.image).read_bytes() == image_bytes(COLOURS[1])
    assert len(first.more_images.split()) == 1 and len(second.more_images.split()) == 1
    assert third.title == "Wrap dress 2 - Red / L" and p["300"].more_images is None


def test_shopify_collection_with_the_currency_given_and_a_file_without_one(site, tmp_path):
    serve_shopify(site, "/collections/summer/products.json", [[shopify_product(site, 4)]])
    s = import_feed(site.url("/collections/summer/products.json"), tmp_path / "out", currency="gbp", **FAST)
    assert s.products == 2 and products_of(tmp_path / "out")["400"].currency == "GBP"
    assert "/" not in site.paths()                                      # the currency was given: no page read
    f = tmp_path / "products.json"
    f.write_text(json.dumps({"products": [shopify_product(site, 5)]}))
    with pytest.raises(FeedError, match="names no currency: give --currency"):
        import_feed(f, tmp_path / "out2", **FAST)
    assert import_feed(f, tmp_path / "out2", currency="USD", **FAST).products == 2
    with pytest.raises(FeedError, match="not an ISO 4217"):
        import_feed(f, tmp_path / "out2", currency="dollars", **FAST)


def test_shopify_without_a_currency_anywhere_is_refused(site, tmp_path):
    serve_shopify(site, "/products.json", [[shopify_product(site, 1)]])
    site.routes["/"] = html("<html><body>no currency here</body></html>")
    with pytest.raises(FeedError, match="give --currency"):
        import_feed(site.url("/products.json"), tmp_path / "out", **FAST)


# --------------------------------------------------------------------------- WooCommerce

WOO = "/wp-json/wc/store/v1/products"


def woo_prices(price: str, regular: str, sale: str, code: str = "EUR", unit: int = 2, price_range=None) -> dict:
    return {"price": price, "regular_price": regular, "sale_price": sale, "price_range": price_range,
            "currency_code": code, "currency_symbol": "x", "currency_minor_unit": unit,
            "currency_decimal_separator": ".", "currency_thousand_separator": ","}


def woo_product(site: Site, pid: int, **kw) -> dict:
    p = {"id": pid, "name": f"Dress &#8211; {pid}", "slug": f"dress-{pid}", "type": "simple",
         "permalink": f"https://woo.example/product/dress-{pid}/", "sku": f"W{pid}", "on_sale": False,
         "prices": woo_prices("1105", "1105", "1105"), "images": [{"id": 1, "src": img(site, pid % 6)},
                                                                  {"id": 2, "src": img(site, (pid + 1) % 6)}],
         "categories": [{"id": 3, "name": "Maxi &amp; midi", "slug": "maxi"}], "attributes": [], "variations": [],
         "is_in_stock": True, "is_on_backorder": False}
    p.update(kw)
    return p


def serve_woo(site: Site, pages: list[list[dict]], query: str = "", total: int | None = None) -> None:
    total = len(pages) if total is None else total
    for n, items in enumerate(pages, 1):
        site.routes[f"{WOO}?{query}per_page=100&page={n}"] = (
            200, {"Content-Type": "application/json", "X-WP-Total": str(sum(map(len, pages))),
                  "X-WP-TotalPages": str(total)}, json.dumps(items).encode())


def test_woocommerce_pages_minor_units_and_variations(site, tmp_path):
    variable = woo_product(
        site, 20, type="variable", prices=woo_prices("5000", "5000", "5000", "JPY", 0,
                                                     {"min_amount": "5000", "max_amount": "6500"}),
        attributes=[{"id": 1, "name": "Size", "taxonomy": "pa_size", "has_variations": True,
                     "terms": [{"id": 7, "name": "Small", "slug": "s"}, {"id": 8, "name": "Large", "slug": "l"}]},
                    {"id": 0, "name": "Colour", "taxonomy": None, "has_variations": False,
                     "terms": [{"id": 0, "name": "Green", "slug": "green"}]}],
        variations=[{"id": 21, "attributes": [{"name": "Size", "value": "s"}]},
                    {"id": 22, "attributes": [{"name": "Size", "value": "l"}]}])
    serve_woo(site, [
        [woo_product(site, 10, on_sale=True, prices=woo_prices("899", "1105", "899")),    # 11.05, on sale 8.99
         woo_product(site, 11, is_in_stock=False), variable],
        [woo_product(site, 12, is_in_stock=False, is_on_backorder=True),
         woo_product(site, 13, prices=woo_prices("12.50", "12.50", "12.50")),             # not minor units
         woo_product(site, 14, images=[])],
    ])
    serve_woo(site, [[{"id": 21, "parent": 20, "type": "variation", "prices": woo_prices("5000", "5000", "5000", "JPY", 0),
                       "images": [{"src": img(site, 5)}], "is_in_stock": True, "permalink": "https://woo.example/p/20?s"},
                      {"id": 22, "parent": 20, "type": "variation", "prices": woo_prices("6500", "6500", "6500", "JPY", 0),
                       "images": [], "is_in_stock": False}]], query="type=variation&")
    out = tmp_path / "out"
    s = import_feed(site.url(WOO), out, **FAST)
    assert (s.kind, s.pages, s.items, s.products, s.variants, s.groups) == ("woocommerce", 2, 6, 5, 2, 1)
    asked = [p for p in site.paths() if p.startswith(WOO)]
    assert asked == [f"{WOO}?per_page=100&page=1", f"{WOO}?per_page=100&page=2",
                     f"{WOO}?type=variation&per_page=100&page=1"]               # X-WP-TotalPages: no page 3
    assert s.reasons() == {"price not in minor units": 1, "no image": 1}
    assert ("product 13", "price not in minor units: '12.50' (currency_minor_unit 2)") in s.skipped
    p = products_of(out)
    assert (p["10"].price, p["10"].sale_price, p["10"].currency, p["10"].availability) == (11.05, 8.99, "EUR", "in_stock")
    assert (p["10"].title, p["10"].category, p["10"].url) == ("Dress – 10", "Maxi & midi", "https://woo.example/product/dress-10/")
    assert (p["11"].price, p["11"].sale_price, p["11"].availability) == (11.05, None, "out_of_stock")
    assert p["12"].availability == "backorder"
    small, large = p["21"], p["22"]
    assert (small.price, small.currency, small.availability, small.size, small.color) == (5000.0, "JPY", "in_stock", "Small", "Green")
    assert (large.price, large.availability, large.size, large.item_group_id) == (6500.0, "out_of_stock", "Large", "20")
    assert small.title == "Dress – 20 - Small" and small.url == "https://woo.example/p/20?s"
    assert Path(small.image).read_bytes() == image_bytes(COLOURS[5])             # the variation's own picture
    assert Path(large.image).read_bytes() == image_bytes(COLOURS[20 % 6])        # else the product's first
    assert len(small.more_images.split()) == 2                                    # and all the product's pictures


def test_woocommerce_file_minor_unit_arithmetic():
    """Amounts in minor units are integers scaled by a power of ten (Decimal), never float arithmetic."""
    items = [{"id": i, "name": "d", "images": [{"src": "https://x/a.png"}], "is_in_stock": True,
              "prices": woo_prices(str(cents), str(cents), str(cents), code, unit)}
             for i, (cents, code, unit) in enumerate([("1105", "EUR", 2), ("19999", "USD", 2), ("7", "USD", 2),
                                                       ("123456", "KWD", 3), ("5000", "JPY", 0), ("0", "EUR", 2)])]
    page = parse(json.dumps(items).encode(), "woocommerce", FeedOptions())
    assert [(r.product.price, r.product.currency) for r in page.rows] == [
        (11.05, "EUR"), (199.99, "USD"), (0.07, "USD"), (123.456, "KWD"), (5000.0, "JPY"), (0.0, "EUR")]


# --------------------------------------------------------------------------- malformed feeds

@pytest.mark.parametrize("name,body,message", [
    ("a.tsv", b"sku\ttitle\nx\ty\n", "not a product feed"),
    ("b.tsv", b"id\ttitle\tprice\nx\ty\t1 USD\n", "needs the attributes id and image_link"),
    ("c.xml", b'<?xml version="1.0"?><rss><channel><item><g:id xmlns:g="x">1</item></rss>', "invalid XML"),
    ("d.xml", b"<?xml version='1.0'?><sitemap><loc>x</loc></sitemap>", "not an RSS 2.0 or Atom 1.0 product feed"),
    ("e.json", b'{"products": [ {"id": 1, ', "not JSON"),
    ("f.json", b'{"items": []}', "not a Shopify products.json"),
    ("g.json", b'"just a string"', "not a product feed"),
    ("h.html", b"<!DOCTYPE html><html><body>shop</body></html>", "HTML page"),
    ("i.bin", b"\x00\x01\x02garbage", "not a product feed"),
    ("j.tsv", b"", "is empty"),
])
def test_a_feed_that_cannot_be_read_is_one_clear_error(tmp_path, name, body, message):
    f = tmp_path / name
    f.write_bytes(body)
    with pytest.raises(FeedError, match=message) as e:
        import_feed(f, tmp_path / "out", currency="EUR", **FAST)
    assert "\n" not in str(e.value)
    assert not (tmp_path / "out" / "catalog.csv").exists()


def test_woocommerce_error_answer_is_one_line(site, tmp_path):
    site.routes[f"{WOO}?per_page=100&page=1"] = (200, {"Content-Type": "application/json"}, json.dumps(
        {"code": "rest_no_route", "message": "No route was found matching the URL and request method.",
         "data": {"status": 404}}).encode())
    with pytest.raises(FeedError, match="the Store API answered an error: No route was found"):
        import_feed(site.url(WOO), tmp_path / "out", **FAST)


def test_malformed_rows_of_each_kind_are_skipped_and_counted(tmp_path):
    opts = FeedOptions(currency="EUR")
    shopify = {"products": [
        "not an object", {"title": "no id", "images": [{"src": "https://x/1.png"}], "variants": [{"id": 1}]},
        {"id": 2, "images": [{"src": "https://x/1.png"}], "variants": []},
        {"id": 3, "images": [{"src": "javascript:alert(1)"}], "variants": [{"id": 31, "price": "1"}]},
        {"id": 4, "images": [{"src": "https://x/4.png"}], "variants": [{"price": "1"}, {"id": 42, "price": "-3"},
                                                                       {"id": 43, "price": "2.5", "available": True}]},
    ]}
    page = parse(json.dumps(shopify).encode(), "shopify", opts)
    assert [r.product.id for r in page.rows] == ["43"]
    assert Counter(r for _, r in page.skipped) == {"not a JSON object": 1, "no id": 1, "no variants": 1, "no image": 1,
                                                   "no variant id": 1, "price not understood: '-3'": 1}
    woo = ["x", {"name": "no id"}, {"id": 5, "images": [{"src": "https://x/5.png"}], "prices": {"price": "10",
                                                                                                "currency_code": "ZZZ"}},
           {"id": 6, "images": [{"src": "https://x/6.png"}], "prices": woo_prices("10", "10", "10", unit="two")},
           {"id": 7, "images": [{"src": "https://x/7.png"}], "prices": woo_prices("1000", "1000", "1000")}]
    page = parse(json.dumps(woo).encode(), "woocommerce", opts)
    assert [r.product.id for r in page.rows] == ["7"] and page.rows[0].product.price == 10.0
    assert [r.split(":")[0].split(" ")[0] for _, r in page.skipped] == ["not", "no", "currency", "price"]
    rss = xml_items([[("g:id", "1"), ("g:image_link", "https://x/1.png"), ("g:price", "5 EUR")],
                     [("g:id", "2")], [("g:image_link", "https://x/3.png")],
                     [("g:id", "4"), ("g:image_link", "https://x/4.png"), ("g:price", "5 EUR"),
                      ("g:sale_price", "lots")]], atom=False)
    page = parse(rss, "google-rss", opts)
    assert [r.product.id for r in page.rows] == ["1"]
    assert page.skipped == [("item 2", "no image_link"), ("item 3", "no id"), ("item 4", "sale_price not understood: 'lots'")]


# --------------------------------------------------------------------------- XML that attacks the reader

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<rss version="2.0" xmlns:g="http://base.google.com/ns/1.0"><channel><item>
<g:id>1</g:id><g:title>&lol9;</g:title><g:image_link>https://x/1.png</g:image_link></item></channel></rss>
"""

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE rss [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<rss version="2.0" xmlns:g="http://base.google.com/ns/1.0"><channel><item>
<g:id>1</g:id><g:title>&secret;</g:title><g:image_link>https://x/1.png</g:image_link></item></channel></rss>
"""


@pytest.mark.parametrize("body", [BILLION_LAUGHS, XXE], ids=["billion-laughs", "external-entity"])
def test_xml_bomb_is_refused_quickly_in_bounded_memory(site, tmp_path, body):
    site.routes["/bomb.xml"] = (200, {"Content-Type": "application/rss+xml"}, body)
    tracemalloc.start()
    t0 = time.monotonic()
    try:
        with pytest.raises(FeedError, match="refused: the XML declares entities") as e:
            import_feed(site.url("/bomb.xml"), tmp_path / "out", **FAST)
        seconds = time.monotonic() - t0
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert seconds < 10 and peak < 50 * 1024 * 1024      # expanded, lol9 alone would be 3 GB
    assert "\n" not in str(e.value) and not (tmp_path / "out" / "catalog.csv").exists()
    f = tmp_path / "bomb.xml"                             # the same from a file, and parsed directly
    f.write_bytes(body)
    with pytest.raises(FeedError, match="refused"):
        import_feed(f, tmp_path / "out", **FAST)
    with pytest.raises(FeedError, match="refused"):
        parse(body, "google-rss", FeedOptions())


# --------------------------------------------------------------------------- fetching rules

def test_private_addresses_robots_and_politeness(site, tmp_path, monkeypatch):
    site.routes["/feed.tsv"] = tsv_reply(tsv(["id", "image_link", "price"], [["a", img(site, 0), "1 EUR"]]))
    no_private = {**FAST, "allow_private": False}
    with pytest.raises(FeedError, match="private address"):
        import_feed(site.url("/feed.tsv"), tmp_path / "out", **no_private)
    with pytest.raises(Exception, match="private address"):
        Fetcher(public_only=True).get(f"http://localhost:{site.port}/feed.tsv", max_bytes=100, in_scope=lambda u: True)
    assert "/feed.tsv" not in site.paths()                 # refused before any request
    # an image link into the private network, in a feed read from a file: left out, counted
    f = tmp_path / "feed.tsv"
    f.write_bytes(tsv(["id", "image_link", "price"], [["a", img(site, 0), "1 EUR"]]))
    s = import_feed(f, tmp_path / "out", **no_private)
    assert s.products == 0 and s.skipped == [("id a", "image: private address")]
    # robots.txt is obeyed
    site.routes["/robots.txt"] = (200, {"Content-Type": "text/plain"}, b"User-agent: *\nDisallow: /private/\n")
    site.routes["/private/feed.tsv"] = site.routes["/feed.tsv"]
    with pytest.raises(FeedError, match="robots.txt"):
        import_feed(site.url("/private/feed.tsv"), tmp_path / "out", **FAST)
    # the delay between two requests to a host: pages and pictures wait their turn (the fetcher's
    # clock and sleep stood in for: time passes only when it sleeps)
    serve_shopify(site, "/products.json", [[shopify_product(site, 1)], [shopify_product(site, 2)]])
    now, sleeps = [1000.0], []
    monkeypatch.setattr(fetch, "_clock", lambda: now[0])
    monkeypatch.setattr(fetch, "_sleep", lambda t: (sleeps.append(round(t, 6)), now.__setitem__(0, now[0] + t)))
    before = len(site.requests)
    import_feed(site.url("/products.json"), tmp_path / "out", **{**FAST, "delay": 0.2, "currency": "EUR"})
    asked = site.paths()[before:]
    assert asked[:4] == ["/robots.txt"] + [f"/products.json?limit=250&page={n}" for n in (1, 2, 3)]
    assert len(asked) == 4 + 3 and sleeps == [0.2] * (len(asked) - 1)      # 3 pictures
    monkeypatch.undo()
    # too large a feed document
    with pytest.raises(FeedError, match="too large"):
        import_feed(site.url("/feed.tsv"), tmp_path / "out", **{**FAST, "max_feed_bytes": 10})


# --------------------------------------------------------------------------- 10,000 products, imported and indexed

class ColourEncoder(Encoder):
    """A tiny stand-in encoder (mean colour of 2x2 cells) so indexing 10,000 products takes seconds."""

    name, version, dim, metric, input_size, batch_size = "test-colour", "1", 12, "ip", 32, 512

    def preprocess(self, im):
        return np.asarray(im.convert("RGB").resize((2, 2)), np.float32).reshape(-1) / 255.0

    def encode_arrays(self, batch):
        return l2_normalize(np.asarray(batch, np.float32) + 1e-3)


@pytest.mark.parametrize("fmt", ["tsv", "rss"])
def test_ten_thousand_products_imported_and_indexed(site, tmp_path, fmt):
    n = 10_000
    avail = ["in_stock", "out_of_stock", "preorder", "backorder"]
    columns = ["id", "title", "link", "image_link", "additional_image_link", "price", "sale_price", "availability",
               "item_group_id", "size"]
    rows = []
    for i in range(n):
        rows.append([f"sku-{i}", f"Dress {i}", f"https://big.example/p/{i}", img(site, i % 5),
                     f"{img(site, (i + 1) % 5)},{img(site, (i + 2) % 5)}", f"{10 + i % 90}.{i % 100:02d} EUR",
                     f"{5 + i % 5}.00 EUR" if i % 3 == 0 else "", avail[i % 4], f"g{i // 4}", "SMLX"[i % 4]])
    if fmt == "tsv":
        site.routes["/big"] = tsv_reply(tsv(columns, rows))
    else:   # additional_image_link as repeated elements
        items = [[(f"g:{c}", u) for c, v in zip(columns, r) if v for u in (v.split(",") if c.startswith("add") else [v])]
                 for r in rows]
        site.routes["/big"] = (200, {"Content-Type": "application/rss+xml"}, xml_items(items, atom=False))
    out = tmp_path / "big"
    t0 = time.monotonic()
    s = import_feed(site.url("/big"), out, **FAST)
    imported = time.monotonic() - t0
    assert s.kind == f"google-{fmt}"
    assert (s.products, s.variants, s.groups, s.files, s.pictures) == (n, n, n // 4, 5, 3 * n) and not s.skipped
    store = Store.build(out / "catalog.csv", tmp_path / "store", encoder=ColourEncoder(), index="flat",
                        progress=False, workers=1)
    took = time.monotonic() - t0
    assert len(store) == n and not store.last_report.skipped
    for i in (0, 1, 2, 3, 4321, 9999):
        p = store.product(f"sku-{i}")
        assert (p.price, p.currency, p.availability, p.item_group_id, p.size) == (
            float(f"{10 + i % 90}.{i % 100:02d}"), "EUR", avail[i % 4], f"g{i // 4}", "SMLX"[i % 4])
        assert p.sale_price == (5.0 + i % 5 if i % 3 == 0 else None)
        assert len(p.more_images.split()) == 2 and all(Path(m).is_file() for m in p.more_images.split())
    from dressfinder.catalog import Filters

    query = store.vector("sku-0")[None]
    hits = store.search_vectors(query, 20, filters=Filters(availability="in_stock"))[0]
    assert hits and all(h.product.availability == "in_stock" for h in hits)
    assert imported < 60 and took < 120, (imported, took)


# --------------------------------------------------------------------------- the command line

def test_cli_import_and_index_a_feed(site, tmp_path, capsys, monkeypatch):
    from dressfinder.cli import main

    monkeypatch.delenv("DRESSFINDER_ALLOW_PRIVATE_URLS", raising=False)
    site.routes["/feed.xml"] = (200, {"Content-Type": "application/xml"}, xml_items(google_items(site), atom=False))
    url = site.url("/feed.xml")
    assert main(["import", url, "--out", str(tmp_path / "cat"), "--delay", "0", "--allow-private", "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert "imported 4 products from a google-rss feed" in captured.out and "skipped 2 rows" in captured.out
    assert "skipped item 5: no image_link" in captured.err
    # without --allow-private, 127.0.0.1 is refused in one line
    assert main(["import", url, "--out", str(tmp_path / "x"), "--delay", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "private address" in err
    # errors: no such file, not a feed, a feed with no usable row
    assert main(["import", str(tmp_path / "absent.tsv"), "--out", str(tmp_path / "x")]) == 2
    assert "no such feed file" in capsys.readouterr().err
    (tmp_path / "notes.txt").write_text("just some notes\n")
    assert main(["import", str(tmp_path / "notes.txt"), "--out", str(tmp_path / "x")]) == 2
    assert "not a product feed" in capsys.readouterr().err
    (tmp_path / "empty.tsv").write_bytes(tsv(["id", "image_link"], [["a", ""]]))
    assert main(["import", str(tmp_path / "empty.tsv"), "--out", str(tmp_path / "x"), "--no-progress"]) == 1
    assert "no products with a picture" in capsys.readouterr().err
    # index FEED: imported beside the store, then indexed; the new fields reach the search's JSON
    store = tmp_path / "stores" / "shop"
    assert main(["index", url, "--store", str(store), "--delay", "0", "--allow-private", "-q"]) == 0
    err = capsys.readouterr().err
    assert "imported 4 products" in err and "indexed 4 products" in err
    assert (tmp_path / "stores" / "shop-feed" / "catalog.csv").is_file()
    query = str(next((tmp_path / "stores" / "shop-feed" / "images").iterdir()))
    assert main(["search", query, "--store", str(store), "--json", "-k", "4", "--availability", "out_of_stock"]) == 0
    res = json.loads(capsys.readouterr().out)["results"]
    assert [r["id"] for r in res] == ["x1-m"]
    assert (res[0]["availability"], res[0]["item_group_id"], res[0]["currency"], res[0]["brand"]) == (
        "out_of_stock", "x1", "EUR", "Maison")


def test_is_feed_source_and_detect(tmp_path):
    (tmp_path / "catalog.csv").write_text("id,image\na,a.jpg\n")
    (tmp_path / "google.txt").write_text("id\ttitle\timage_link\n")
    assert not is_feed_source(tmp_path / "catalog.csv") and not is_feed_source(tmp_path)
    assert is_feed_source(tmp_path / "google.txt") and is_feed_source("https://shop.example/products.json")
    assert detect(b"[]", "https://w.example/wp-json/wc/store/v1/products") == "woocommerce"
    assert detect(b'{"products": []}', "x.json") == "shopify"
    assert detect(b"\xef\xbb\xbfid\timage_link\n", "g.tsv") == "google-tsv"
