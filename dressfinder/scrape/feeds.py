"""Product feeds a shop already publishes, read into product rows. Parsing only (bytes in, rows
out); ``feed_import`` fetches them, follows the paging, downloads the pictures and writes the
catalogue.

* **Google Merchant Center** (``google-tsv``, ``google-rss``, ``google-atom``): tab-separated text
  with the attribute names as its header, or RSS 2.0 / Atom 1.0 with the ``g:`` namespace
  (``http://base.google.com/ns/1.0``). One row an item; variants share ``item_group_id``.
  XML is read by defusedxml: a document that declares entities (an entity-expansion "bomb",
  external entities) is refused before anything is expanded.
* **Shopify** (``shopify``): a store's public ``/products.json``; each variant is a row (its own
  price, compare-at price, availability, options), ``item_group_id`` the product's id. It names no
  currency: the importer is given one or reads it from the shop's pages.
* **WooCommerce** (``woocommerce``): the Store API's ``/wp-json/wc/store/v1/products``; prices
  in minor units as strings (``"1105"`` with ``currency_minor_unit`` 2 is 11.05), read with
  ``Decimal``; a variable product's variations are rows (their own prices and stock when the
  importer fetched them).

Each row is a ``FeedRow``: a ``schema.Product`` whose ``image`` is its main picture's URL, and the
URLs of all its pictures (``images``, the main one first). A row that cannot be used is skipped
with a short reason (``FeedPage.skipped``), never dropped silently. Prices go through
``prices.parse_price``; availability through ``schema.availability``.
"""

from __future__ import annotations

import csv
import html
import io
import json
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Iterable
from urllib.parse import urljoin, urlsplit

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import ParseError
from defusedxml.ElementTree import fromstring as xml_fromstring

from ..prices import currency_code, parse_price
from ..schema import MAX_ID_LENGTH, Product, availability, field_named
from .errors import FeedError
from .urls import host_label

KINDS = ("google-tsv", "google-rss", "google-atom", "shopify", "woocommerce")
GOOGLE_NS = "http://base.google.com/ns/1.0"
ATOM_NS = "http://www.w3.org/2005/Atom"
#: Google's limit on additional_image_link; more are not read.
MAX_ADDITIONAL_IMAGES = 10
#: The Store API's products route (``/wp-json/wc/store/v1/products``; v1 is also its unversioned path).
WOO_PATH = re.compile(r"/wp-json/wc/store(?:/v1)?/products/?$")
SHOPIFY_PATH = re.compile(r"/products\.json$")
#: Google attributes that have a field of their own (the others are kept as extras).
_GOOGLE_MAPPED = frozenset({"id", "title", "link", "image_link", "additional_image_link", "price", "sale_price",
                            "availability", "brand", "color", "size", "item_group_id", "product_type"})
_SHOPIFY_DEFAULT_TITLE = "Default Title"
_OPTION_FIELDS = {"color": "color", "colour": "color", "size": "size", "pa_color": "color", "pa_colour": "color",
                  "pa_size": "size"}


@dataclass
class FeedOptions:
    currency: str | None = None      # the shop's currency where the feed names none (Shopify; a bare Google price)
    shop: str | None = None          # the shop column (default: the host of the product's link, or of the feed)
    base_url: str | None = None      # the feed's URL: relative links are read against it


@dataclass
class FeedRow:
    product: Product
    images: list[str]                # every picture's URL, the main one (product.image) first


@dataclass
class FeedPage:
    kind: str
    rows: list[FeedRow] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)     # (where, reason)
    items: int = 0                   # items the page held (Shopify's products, Woo's products, the feed's rows)
    item_ids: list[str] = field(default_factory=list)                  # their ids (paging stops on a repeat)


class RowSkipped(Exception):
    """A row that cannot be used; the message is the reason."""


# --------------------------------------------------------------------------- helpers

def _text(value: Any) -> str | None:
    if value is None or isinstance(value, (dict, list)):
        return None
    s = str(value).strip()
    return s or None


def _limit(name: str, value: str | None) -> str | None:
    """A text field cut to its declared size (``schema``), at a character."""
    limit = field_named(name).max_length
    if value is None or limit is None or len(value.encode("utf-8")) <= limit:
        return value
    return value.encode("utf-8")[:limit].decode("utf-8", "ignore")


def http_url(value: Any, base: str | None = None) -> str | None:
    """An absolute http(s) URL (``//cdn...`` gets https), or None."""
    s = _text(value)
    if not s:
        return None
    if s.startswith("//"):
        s = "https:" + s
    elif base and not re.match(r"^[a-z][a-z0-9+.-]*:", s, re.I):
        s = urljoin(base, s)
    parts = urlsplit(s)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname or any(c in s for c in " \t\r\n"):
        return None
    return s


def _shop(opts: FeedOptions, url: str | None) -> str | None:
    if opts.shop:
        return opts.shop
    for u in (url, opts.base_url):
        if u and urlsplit(u).hostname:
            return host_label(u)
    return None


def _short(value: Any, n: int = 40) -> str:
    s = str(value)
    return repr(s if len(s) <= n else s[:n] + "...")


def _money(text: str | None, default_currency: str | None, what: str) -> tuple[float | None, str | None]:
    """A feed's price text ("49.99 USD") -> (amount, ISO code); raises RowSkipped."""
    if not text:
        return None, None
    amount, code = parse_price(text)
    if code is None and default_currency:
        amount, code = parse_price(text, default_currency)
    if amount is None:
        raise RowSkipped(f"{what} not understood: {_short(text)}")
    if code is None:
        raise RowSkipped(f"{what} names no currency: {_short(text)} (give --currency)")
    return amount, code


def _plain_money(value: Any, currency: str, what: str) -> float | None:
    """A number a program wrote (Shopify's "49.99"), in ``currency``; raises RowSkipped."""
    if value is None or value == "":
        return None
    plain = isinstance(value, (int, float)) and not isinstance(value, bool) or \
        isinstance(value, str) and re.fullmatch(r"\s*\d+(?:\.\d+)?\s*", value)
    amount, _ = parse_price(value if isinstance(value, (int, float)) else str(value), currency,
                            decimal=".", plain_numbers=True) if plain else (None, None)
    if amount is None:
        raise RowSkipped(f"{what} not understood: {_short(value)}")
    return amount


def _check_id(pid: str | None, what: str = "id") -> str:
    if not pid:
        raise RowSkipped(f"no {what}")
    if len(pid) > MAX_ID_LENGTH:
        raise RowSkipped(f"{what} longer than {MAX_ID_LENGTH} characters")
    return pid


def _row(values: dict[str, Any], images: list[str], extra: dict[str, Any]) -> FeedRow:
    images = list(dict.fromkeys(u for u in images if u))
    text_fields = ("title", "url", "shop", "category", "brand", "color", "size", "item_group_id")
    values = {**values, **{k: _limit(k, _text(values.get(k))) for k in text_fields}}
    extra = {k: v for k, v in extra.items() if v not in (None, "", [], {})}
    product = Product(id=values["id"], image=images[0], title=values.get("title"), price=values.get("price"),
                      currency=values.get("currency"), url=values.get("url"), shop=values.get("shop"),
                      category=values.get("category"), availability=values.get("availability"),
                      sale_price=values.get("sale_price"), brand=values.get("brand"), color=values.get("color"),
                      size=values.get("size"), item_group_id=values.get("item_group_id"),
                      more_images=" ".join(images[1:]) or None, extra=extra)
    return FeedRow(product, images)


# --------------------------------------------------------------------------- detection

def detect(body: bytes, source: str = "") -> str:
    """The feed's kind, from its bytes (and its name or URL); FeedError when it is none of them."""
    head = body[:4096].lstrip(b"\xef\xbb\xbf \t\r\n")
    if not head:
        raise FeedError(f"{source or 'the feed'} is empty")
    if head[:1] == b"<":
        low = head.lower()
        if b"<rss" in low or b"<rdf" in low:
            return "google-rss"
        if b"<feed" in low:
            return "google-atom"
        if b"<html" in low or b"<!doctype html" in low:
            raise FeedError(f"{source or 'the feed'} is an HTML page, not a product feed (crawl it with dressfinder scrape)")
        return "google-rss" if b"<channel" in low else "google-atom" if b"<entry" in low else _xml_kind(body, source)
    if head[:1] in (b"{", b"["):
        path = urlsplit(source).path if "://" in source else source
        if WOO_PATH.search(path):
            return "woocommerce"
        if head[:1] == b"{":
            return "shopify"
        return "woocommerce"
    first = head.split(b"\n", 1)[0].decode("utf-8", "replace")
    names = {_google_name(c) for c in first.split("\t")}
    if "\t" in first and "id" in names:
        return "google-tsv"
    raise FeedError(f"{source or 'the feed'} is not a product feed: not Google Merchant Center text (a tab-separated "
                    "header with id and image_link) or XML, nor Shopify's or WooCommerce's JSON")


def _xml_kind(body: bytes, source: str) -> str:
    root = _xml(body, source)
    tag = root.tag.rsplit("}", 1)[-1]
    if tag in ("rss", "RDF"):
        return "google-rss"
    if tag == "feed":
        return "google-atom"
    raise FeedError(f"{source or 'the feed'}: XML whose root is <{tag}>, not an RSS 2.0 or Atom 1.0 product feed")


def is_feed_source(source: str | Path) -> bool:
    """Whether ``dressfinder index`` should import ``source`` as a feed: an http(s) URL, a .xml,
    .rss, .atom or .json file, or a .tsv/.txt/.csv file whose header has ``image_link``."""
    s = str(source)
    if re.match(r"^https?://", s, re.I):
        return True
    path = Path(s)
    if not path.is_file():
        return False
    suffix = path.suffix.lower()
    if suffix in (".xml", ".rss", ".atom", ".json"):
        return True
    if suffix in (".tsv", ".txt", ".csv"):
        try:
            with open(path, "rb") as f:
                first = f.readline(65536).decode("utf-8-sig", "replace")
        except OSError:
            return False
        return "image_link" in {_google_name(c) for c in re.split(r"[\t,;]", first)}
    return False


# --------------------------------------------------------------------------- Google Merchant Center

def _google_name(header: str) -> str:
    """A Google attribute name as a header or tag writes it: "Image Link", "g:image_link" -> image_link."""
    name = header.strip().strip('"').lower()
    name = name.removeprefix("g:")
    return re.sub(r"[\s\-]+", "_", name)


def _split_images(value: str) -> list[str]:
    """additional_image_link: several URLs separated by commas (text feeds)."""
    return [v.strip() for v in re.split(r",\s*(?=(?:https?:)?//)", value) if v.strip()]


def google_row(attrs: dict[str, list[str]], opts: FeedOptions) -> FeedRow:
    """One Google item (attribute -> its values) -> a row; raises RowSkipped."""

    def one(name: str) -> str | None:
        return next((v.strip() for v in attrs.get(name, []) if v and v.strip()), None)

    pid = _check_id(one("id"))
    raw_image = one("image_link")
    if not raw_image:
        raise RowSkipped("no image_link")
    image = http_url(raw_image, opts.base_url)
    if image is None:
        raise RowSkipped(f"image_link is not an http(s) URL: {_short(raw_image)}")
    more: list[str] = []
    for value in attrs.get("additional_image_link", []):
        for u in _split_images(value):
            url = http_url(u, opts.base_url)
            if url and url != image and url not in more:
                more.append(url)
    price, currency = _money(one("price"), opts.currency, "price")
    sale, sale_currency = _money(one("sale_price"), currency or opts.currency, "sale_price")
    if sale is not None and currency and sale_currency != currency:
        raise RowSkipped(f"sale_price in {sale_currency}, price in {currency}")
    raw_avail = one("availability")
    avail = availability(raw_avail)
    url = http_url(one("link"), opts.base_url)
    group = one("item_group_id")
    if group:
        _check_id(group, "item_group_id")
    extra = {name: (" ".join(values) if len(values) > 1 else values[0]).strip()
             for name, values in attrs.items() if name not in _GOOGLE_MAPPED and values}
    if raw_avail and avail is None:
        extra["availability_given"] = raw_avail    # a word we do not know: kept as given
    if len(more) > MAX_ADDITIONAL_IMAGES:
        extra["more_images_left_out"] = str(len(more) - MAX_ADDITIONAL_IMAGES)
    return _row({"id": pid, "title": one("title"), "price": price, "currency": currency or sale_currency,
                 "sale_price": sale, "availability": avail, "url": url, "shop": _shop(opts, url),
                 "category": one("product_type") or one("google_product_category"), "brand": one("brand"),
                 "color": one("color"), "size": one("size"), "item_group_id": group},
                [image, *more[:MAX_ADDITIONAL_IMAGES]], extra)


def _google_rows(items: Iterable[tuple[str, dict[str, list[str]]]], kind: str, opts: FeedOptions) -> FeedPage:
    page = FeedPage(kind)
    for where, attrs in items:
        page.items += 1
        try:
            page.rows.append(google_row(attrs, opts))
        except RowSkipped as e:
            page.skipped.append((where, str(e)))
    return page


def parse_google_tsv(body: bytes, opts: FeedOptions, source: str = "") -> FeedPage:
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise FeedError(f"{source or 'the feed'}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    reader = csv.reader(io.StringIO(text, newline=""), delimiter="\t")
    try:
        header = [_google_name(h) for h in next(reader, [])]
    except csv.Error as e:
        raise FeedError(f"{source or 'the feed'}: unreadable header: {e}") from None
    missing = [n for n in ("id", "image_link") if n not in header]
    if missing:
        raise FeedError(f"{source or 'the feed'}: a Google Merchant Center text feed needs the attributes "
                        f"id and image_link in its header; missing {', '.join(missing)}")

    page = FeedPage("google-tsv")
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return page
        except csv.Error as e:
            raise FeedError(f"{source or 'the feed'}: line {reader.line_num}: {e}") from None
        if not any(c.strip() for c in cells):
            continue
        page.items += 1
        where = f"line {reader.line_num}"
        if len(cells) > len(header):
            page.skipped.append((where, f"{len(cells)} cells, the header has {len(header)}"))
            continue
        attrs: dict[str, list[str]] = {}
        for name, cell in zip(header, cells):
            if name and cell.strip():
                attrs.setdefault(name, []).append(cell)
        try:
            page.rows.append(google_row(attrs, opts))
        except RowSkipped as e:
            page.skipped.append((where, str(e)))


def _xml(body: bytes, source: str):
    """The document's root, read by defusedxml: entities and external references are refused."""
    try:
        return xml_fromstring(body, forbid_dtd=False, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as e:
        raise FeedError(f"{source or 'the feed'}: refused: the XML declares entities or external references "
                        f"({type(e).__name__}); an entity-expansion bomb is never expanded and a product feed "
                        "needs none") from None
    except ParseError as e:
        raise FeedError(f"{source or 'the feed'}: invalid XML: {e}") from None


_PLAIN_RSS = {"title": "title", "link": "link", "description": "description"}
_PLAIN_ATOM = {f"{{{ATOM_NS}}}title": "title", f"{{{ATOM_NS}}}summary": "description",
               f"{{{ATOM_NS}}}content": "description"}


def parse_google_xml(body: bytes, opts: FeedOptions, source: str = "") -> FeedPage:
    root = _xml(body, source)
    tag = root.tag.rsplit("}", 1)[-1]
    if tag == "feed":
        kind, items = "google-atom", root.findall(f"{{{ATOM_NS}}}entry") or root.findall("entry")
    elif tag in ("rss", "RDF"):
        kind, items = "google-rss", root.findall("./channel/item") or list(root.iter("item"))
    else:
        raise FeedError(f"{source or 'the feed'}: XML whose root is <{tag}>, not an RSS 2.0 or Atom 1.0 product feed")
    prefix = f"{{{GOOGLE_NS}}}"
    if items and not any(el.tag.startswith(prefix) for item in items[:50] for el in item):
        raise FeedError(f"{source or 'the feed'}: an {kind[7:].upper()} feed without Google's g: namespace "
                        f"({GOOGLE_NS}): not a product feed")

    def attributes(item) -> dict[str, list[str]]:
        google: dict[str, list[str]] = {}
        plain: dict[str, list[str]] = {}
        for el in item:
            if len(el):           # g:shipping, g:tax... (nested attributes) are not read
                continue
            if el.tag.startswith(prefix):
                google.setdefault(_google_name(el.tag[len(prefix):]), []).append(el.text or "")
            elif el.tag in _PLAIN_RSS or el.tag in _PLAIN_ATOM:
                plain.setdefault(_PLAIN_RSS.get(el.tag) or _PLAIN_ATOM[el.tag], []).append(el.text or "")
            elif el.tag == f"{{{ATOM_NS}}}link" and el.get("rel", "alternate") == "alternate" and el.get("href"):
                plain.setdefault("link", []).append(el.get("href"))
        return {**plain, **google}

    return _google_rows(((f"{'entry' if kind == 'google-atom' else 'item'} {n}", attributes(item))
                         for n, item in enumerate(items, 1)), kind, opts)


# --------------------------------------------------------------------------- Shopify

def _json(body: bytes, source: str) -> Any:
    try:
        return json.loads(body.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError) as e:
        raise FeedError(f"{source or 'the feed'}: not JSON ({str(e).splitlines()[0][:80]})") from None


def shopify_products(body: bytes, source: str = "") -> list[Any]:
    data = _json(body, source)
    if not isinstance(data, dict) or not isinstance(data.get("products"), list):
        raise FeedError(f"{source or 'the feed'}: JSON without a products list: not a Shopify products.json")
    return data["products"]


def _options(names: list[str | None], values: list[Any]) -> tuple[dict[str, str], dict[str, str]]:
    """Variant option values by their option's name -> (fields color/size, other options)."""
    fields, others = {}, {}
    for name, value in zip(names, values):
        v = _text(value)
        if not v:
            continue
        key = (name or "").strip().lower()
        if key in _OPTION_FIELDS:
            fields.setdefault(_OPTION_FIELDS[key], v)
        else:
            others[name or f"option{len(others) + 1}"] = v
    return fields, others


def shopify_rows(product: Any, currency: str, opts: FeedOptions) -> tuple[list[FeedRow], list[tuple[str, str]]]:
    """One Shopify product -> a row per variant, and the variants skipped with reasons."""
    if not isinstance(product, dict):
        return [], [("product ?", "not a JSON object")]
    pid = _text(product.get("id"))
    where = f"product {pid or '?'}"
    if not pid:
        return [], [(where, "no id")]
    images_by_id: dict[str, str] = {}
    images: list[str] = []
    for img in sorted((i for i in product.get("images") or [] if isinstance(i, dict)),
                      key=lambda i: i.get("position") or 0):
        url = http_url(img.get("src"), opts.base_url)
        if url:
            images.append(url)
            images_by_id[str(img.get("id"))] = url
            for vid in img.get("variant_ids") or []:
                images_by_id.setdefault(f"variant:{vid}", url)
    variants = [v for v in product.get("variants") or [] if isinstance(v, dict)]
    if not images:
        return [], [(where, "no image")]
    if not variants:
        return [], [(where, "no variants")]
    names = [o.get("name") if isinstance(o, dict) else None
             for o in sorted((o for o in product.get("options") or [] if isinstance(o, dict)),
                             key=lambda o: o.get("position") or 0)]
    handle = _text(product.get("handle"))
    base = urljoin(opts.base_url, "/") if opts.base_url and urlsplit(opts.base_url).hostname else None
    tags = product.get("tags")
    tags = ", ".join(str(t) for t in tags) if isinstance(tags, list) else _text(tags)
    title = _text(product.get("title"))
    rows, skipped = [], []
    for n, v in enumerate(variants, 1):
        vid = _text(v.get("id"))
        try:
            vid = _check_id(vid, "variant id")
            price = _plain_money(v.get("price"), currency, "price")
            compare = _plain_money(v.get("compare_at_price"), currency, "compare_at_price")
        except RowSkipped as e:
            skipped.append((f"{where} variant {vid or n}", str(e)))
            continue
        regular, sale = (compare, price) if compare is not None and price is not None and compare > price else (price, None)
        fields, others = _options(names, [v.get(f"option{i}") for i in (1, 2, 3)])
        featured = v.get("featured_image")
        main = (http_url(featured.get("src"), opts.base_url) if isinstance(featured, dict) else None) \
            or images_by_id.get(str(v.get("image_id"))) or images_by_id.get(f"variant:{vid}") or images[0]
        vtitle = _text(v.get("title"))
        url = f"{base}products/{handle}?variant={vid}" if base and handle else None
        rows.append(_row({"id": vid, "title": f"{title} - {vtitle}" if title and vtitle and vtitle != _SHOPIFY_DEFAULT_TITLE
                          else title, "price": regular, "currency": currency, "sale_price": sale,
                          "availability": availability(v["available"]) if "available" in v else None, "url": url,
                          "shop": _shop(opts, url), "category": _text(product.get("product_type")),
                          "brand": _text(product.get("vendor")), "item_group_id": pid, **fields},
                         [main, *images], {"handle": handle, "sku": _text(v.get("sku")), "tags": tags, **others}))
    return rows, skipped


def parse_shopify(products: list[Any], currency: str, opts: FeedOptions) -> FeedPage:
    """A products.json page's products (``shopify_products``) -> rows, a variant a row."""
    return _paged("shopify", products, lambda product: shopify_rows(product, currency, opts))


def _paged(kind: str, items: list[Any], rows_of: Any) -> FeedPage:
    """A page of a paged JSON feed: each item's rows (``rows_of(item) -> (rows, skipped)``), the
    items counted and their ids kept (the importer stops when a page only repeats ids)."""
    page = FeedPage(kind)
    for item in items:
        page.items += 1
        if isinstance(item, dict) and item.get("id") is not None:
            page.item_ids.append(str(item["id"]))
        rows, skipped = rows_of(item)
        page.rows += rows
        page.skipped += skipped
    return page


# --------------------------------------------------------------------------- WooCommerce

def woo_products(body: bytes, source: str = "") -> list[Any]:
    data = _json(body, source)
    if isinstance(data, dict) and ("code" in data or "message" in data) and not isinstance(data.get("products"), list):
        raise FeedError(f"{source or 'the feed'}: the Store API answered an error: "
                        f"{_text(data.get('message')) or _text(data.get('code'))}")
    if not isinstance(data, list):
        raise FeedError(f"{source or 'the feed'}: JSON that is not a list of products: not WooCommerce's Store API")
    return data


def _woo_money(prices: dict, key: str, fallback_currency: str | None) -> tuple[float | None, str | None]:
    """A Store API amount in minor units ("1105", minor unit 2) -> (11.05, ISO code); raises RowSkipped."""
    raw = prices.get(key)
    code_text = _text(prices.get("currency_code")) or fallback_currency
    code = currency_code(code_text) if code_text else None
    if code_text and code is None:
        raise RowSkipped(f"currency not understood: {_short(code_text)}")
    if raw is None or raw == "":
        return None, code
    s = str(raw).strip()
    unit = prices.get("currency_minor_unit", 2)
    try:
        if not re.fullmatch(r"\d+", s):
            raise InvalidOperation
        minor = int(unit)
        if not 0 <= minor <= 6:
            raise InvalidOperation
        amount = Decimal(int(s)).scaleb(-minor)
    except (InvalidOperation, TypeError, ValueError):
        raise RowSkipped(f"{key} not in minor units: {_short(raw)} (currency_minor_unit {unit})") from None
    if code is None:
        raise RowSkipped("price names no currency (give --currency)")
    value, code = parse_price(float(amount), code)
    if value is None:
        raise RowSkipped(f"{key} not understood: {_short(raw)}")
    return value, code


def _woo_offer(item: dict, fallback_currency: str | None) -> dict[str, Any]:
    prices = item.get("prices") if isinstance(item.get("prices"), dict) else {}
    price, currency = _woo_money(prices, "price", fallback_currency)
    regular, _ = _woo_money(prices, "regular_price", fallback_currency)
    sale, _ = _woo_money(prices, "sale_price", fallback_currency)
    on_sale = bool(item.get("on_sale")) and sale is not None and regular is not None and sale < regular
    return {"price": regular if regular is not None else price, "sale_price": sale if on_sale else None,
            "currency": currency}


def _woo_availability(item: dict) -> str | None:
    if item.get("is_on_backorder"):
        return "backorder"
    if "is_in_stock" in item:
        return availability(bool(item["is_in_stock"]))
    stock = item.get("stock_availability")
    return availability(stock.get("class")) if isinstance(stock, dict) else None


def _woo_images(item: dict, base: str | None) -> list[str]:
    return [u for u in (http_url(i.get("src"), base) for i in item.get("images") or [] if isinstance(i, dict)) if u]


def _names(values: Any) -> str | None:
    names = [html.unescape(_text(v.get("name")) or "") for v in values or [] if isinstance(v, dict)]
    return ", ".join(n for n in names if n) or None


def _woo_attributes(item: dict) -> tuple[dict[str, str], dict[str, str], dict[str, dict[str, str]]]:
    """(color/size fields, other attributes, slug -> term name per attribute name) of a product."""
    fields, others, terms = {}, {}, {}
    for a in item.get("attributes") or []:
        if not isinstance(a, dict):
            continue
        name = html.unescape(_text(a.get("name")) or "")
        key = (_text(a.get("taxonomy")) or name).lower()
        values = _names(a.get("terms"))
        terms[name.lower()] = {str(t.get("slug")): html.unescape(_text(t.get("name")) or "")
                               for t in a.get("terms") or [] if isinstance(t, dict)}
        field_name = _OPTION_FIELDS.get(key) or _OPTION_FIELDS.get(name.lower())
        if not values:
            continue
        if field_name:
            fields.setdefault(field_name, values)
        elif name.lower() == "brand":
            fields.setdefault("brand", values)
        else:
            others[name] = values
    return fields, others, terms


def woo_rows(item: Any, opts: FeedOptions, details: dict[str, dict] | None = None
             ) -> tuple[list[FeedRow], list[tuple[str, str]]]:
    """One Store API product -> its row (a simple product) or a row per variation, and the skipped.
    ``details``: variation id -> the variation's own record (its prices, stock, picture), when fetched."""
    if not isinstance(item, dict):
        return [], [("product ?", "not a JSON object")]
    pid = _text(item.get("id"))
    where = f"product {pid or '?'}"
    if not pid:
        return [], [(where, "no id")]
    images = _woo_images(item, opts.base_url)
    if not images:
        return [], [(where, "no image")]
    try:
        offer = _woo_offer(item, opts.currency)
    except RowSkipped as e:
        return [], [(where, str(e))]
    url = http_url(item.get("permalink"), opts.base_url)
    title = html.unescape(_text(item.get("name")) or "") or None
    category = _names((item.get("categories") or [])[:1])
    fields, others, terms = _woo_attributes(item)
    brand = _names(item.get("brands")) or fields.pop("brand", None)
    fields.pop("brand", None)
    common = {"url": url, "shop": _shop(opts, url), "category": category, "brand": brand}
    extra = {"sku": _text(item.get("sku")), "slug": _text(item.get("slug")), "type": _text(item.get("type")), **others}
    variations = [v for v in item.get("variations") or [] if isinstance(v, dict) and v.get("id") is not None]
    if not variations:
        return [_row({"id": pid, "title": title, **offer, "availability": _woo_availability(item), **common, **fields},
                     images, extra)], []
    rows, skipped = [], []
    for v in variations:
        try:
            rows.append(_woo_variation_row(item, v, (details or {}).get(str(v["id"])), opts, offer, common,
                                           fields, terms, images, extra))
        except RowSkipped as e:
            skipped.append((f"{where} variation {v['id']}", str(e)))
    return rows, skipped


def _woo_variation_row(item: dict, v: dict, detail: dict | None, opts: FeedOptions, offer: dict[str, Any],
                       common: dict[str, Any], fields: dict[str, Any], terms: dict[str, dict[str, str]],
                       images: list[str], extra: dict[str, Any]) -> FeedRow:
    """One variation's row: its options named, its own record's prices, stock and picture when
    fetched (``detail``), else what the product says of all its variations. RowSkipped: a bad id or price."""
    vid = str(v["id"])
    values: dict[str, str] = {}
    for a in v.get("attributes") or []:
        if isinstance(a, dict) and _text(a.get("value")):
            name = html.unescape(_text(a.get("name")) or "")
            slug = _text(a.get("value"))
            values[name] = terms.get(name.lower(), {}).get(slug) or slug
    vfields, vothers = _options(list(values), list(values.values()))
    _check_id(vid, "variation id")
    if detail is not None:
        voffer, vavail = _woo_offer(detail, opts.currency), _woo_availability(detail)
    else:
        # the list gives a variation no price or stock of its own: the product's price when
        # all its variations share it (no price_range), its stock only when it has none at all
        same = not (isinstance(item.get("prices"), dict) and item["prices"].get("price_range"))
        voffer = offer if same else {**offer, "price": None, "sale_price": None}
        parent_avail = _woo_availability(item)
        vavail = parent_avail if parent_avail == "out_of_stock" else None
    own = _woo_images(detail, opts.base_url) if detail else []
    title = html.unescape(_text(item.get("name")) or "") or None
    vtitle = " / ".join(values.values())
    return _row({"id": vid, "title": f"{title} - {vtitle}" if title and vtitle else title, **voffer,
                 "availability": vavail, **common,
                 "url": (http_url(detail.get("permalink"), opts.base_url) if detail else None) or common["url"],
                 **fields, **vfields, "item_group_id": _text(item.get("id"))},
                [*own[:1], *images], {**extra, "type": "variation", **vothers,
                                      "sku": _text(detail.get("sku")) if detail else None})


def woo_variation_ids(items: list[Any]) -> list[str]:
    """The ids of the variations the products list names (the importer fetches their records)."""
    return [str(v["id"]) for item in items if isinstance(item, dict)
            for v in item.get("variations") or [] if isinstance(v, dict) and v.get("id") is not None]


def parse_woo(items: list[Any], opts: FeedOptions, details: dict[str, dict] | None = None) -> FeedPage:
    """A Store API page's products (``woo_rows``) -> rows, a variation a row."""
    return _paged("woocommerce", items, lambda item: woo_rows(item, opts, details))


# --------------------------------------------------------------------------- one document

def parse(body: bytes, kind: str, opts: FeedOptions, source: str = "") -> FeedPage:
    """A Google feed's rows (the other kinds need their paging and currency: ``feed_import``)."""
    if kind == "google-tsv":
        return parse_google_tsv(body, opts, source)
    if kind in ("google-rss", "google-atom"):
        return parse_google_xml(body, opts, source)
    if kind == "shopify":
        if not opts.currency:
            raise FeedError("a Shopify products.json names no currency: give --currency (e.g. --currency EUR)")
        return parse_shopify(shopify_products(body, source), opts.currency, opts)
    if kind == "woocommerce":
        return parse_woo(woo_products(body, source), opts)
    raise FeedError(f"unknown feed kind {kind!r}; one of {', '.join(KINDS)}")
