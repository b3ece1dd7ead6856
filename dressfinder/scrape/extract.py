"""Products and links out of an HTML page.

Structured data first -- schema.org ``Product`` in JSON-LD, microdata and RDFa (read with
``extruct``) -- and OpenGraph (``og:type`` product or ``product:price:amount``) only when a
page has no schema.org product. A block that does not parse (broken JSON-LD) is reported in
``PageData.errors`` and the rest of the page is still used.
"""

from __future__ import annotations

import html
import logging
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

import extruct
from extruct.jsonld import JsonLdExtractor
from extruct.utils import parse_xmldom_html
from lxml import etree

from ..prices import currency_code, locale_hints, parse_price
from .model import ScrapedProduct
from .urls import normalize

log = logging.getLogger(__name__)

PRODUCT_TYPES = frozenset({"Product", "IndividualProduct", "ProductModel", "SomeProducts", "ProductGroup"})
#: Keys through which the page's own products are reached: a @graph, a page's main entity,
#: list entries. A Product under any other key (an Order's orderedItem...) is not the page's.
CONTAINER_KEYS = ("@graph", "mainEntity", "itemListElement", "item")
#: Types whose products (referenced by @id in a flat graph: RDFa, JSON-LD @graph) are theirs.
OWNER_TYPES = frozenset({"Order", "OrderItem", "Invoice", "ParcelDelivery", "OrderAction", "BuyAction",
                         "SellAction", "TradeAction", "RentAction", "ReturnAction"})
OG_CURRENCY = ("product:price:currency", "og:price:currency", "product:sale_price:currency")
ID_KEYS = ("sku", "productID", "gtin", "gtin13", "gtin14", "gtin12", "gtin8", "mpn")
SCHEMA_PREFIX = re.compile(r"^(?:https?://schema\.org/|schema:)")
AVAILABILITY = {
    "instock": "InStock", "outofstock": "OutOfStock", "preorder": "PreOrder", "presale": "PreSale",
    "backorder": "BackOrder", "availablefororder": "BackOrder", "discontinued": "Discontinued",
    "limitedavailability": "LimitedAvailability", "soldout": "SoldOut", "onlineonly": "OnlineOnly",
    "instoreonly": "InStoreOnly", "madetoorder": "MadeToOrder", "instock1": "InStock",
    "available": "InStock", "pending": "PreOrder",
}
MAX_DEPTH = 12


class PageParseError(Exception):
    """The document cannot be parsed as HTML at all."""


@dataclass
class PageData:
    url: str                                   # the page (final URL after redirects)
    base: str = ""                             # base URL for relative links (<base href>)
    canonical: str | None = None               # <link rel=canonical>
    products: list[ScrapedProduct] = field(default_factory=list)
    next_links: list[str] = field(default_factory=list)      # rel=next pagination
    product_links: list[str] = field(default_factory=list)   # ItemList entries, product urls
    links: list[str] = field(default_factory=list)           # every other <a href>
    nofollow: bool = False                     # <meta name=robots content=nofollow>
    errors: list[str] = field(default_factory=list)          # "json-ld: ..." per failed block

    def is_product_page(self) -> bool:
        """True when the page describes one product itself (not a list of products)."""
        own = {self.url, self.canonical}
        return any(p.url in own for p in self.products)


# ---------------------------------------------------------------------------- parsing

def parse_document(text: str):
    """An lxml tree (extruct's XML-DOM flavour, which RDFa needs) or ``PageParseError``."""
    if not text or not text.strip():
        raise PageParseError("empty document")
    try:
        return parse_xmldom_html(text.encode("utf-8"), encoding="utf-8")
    except Exception as e:  # lxml raises several types on hopeless input
        raise PageParseError(f"not parseable as HTML: {e}") from None


def base_url(tree, page_url: str) -> str:
    for href in tree.xpath("//base/@href"):
        resolved = normalize(str(href), page_url)
        if resolved:
            return resolved
    return page_url


def _rel(el) -> set[str]:
    return {t.lower() for t in (el.get("rel") or "").split()}


@dataclass(frozen=True)
class PriceHints:
    """What a page says about its prices besides the offers: OpenGraph's currency and the locale."""

    currency: str | None = None    # ISO code from product:price:currency
    locale: str | None = None      # og:locale or <html lang>: decimal separator, country for "$"


def extract_page(text: str, page_url: str) -> PageData:
    """Everything the crawler needs from one HTML page. Raises ``PageParseError``."""
    tree = parse_document(text)
    base = base_url(tree, page_url)
    page = PageData(url=page_url, base=base)
    for el in tree.xpath("//link[@href]"):
        if "canonical" in _rel(el) and page.canonical is None:
            page.canonical = normalize(el.get("href"), base)
    for el in tree.xpath("//meta[@name][@content]"):
        if el.get("name", "").strip().lower() == "robots" and "nofollow" in el.get("content", "").lower():
            page.nofollow = True

    og_props = _opengraph_props(tree, base, page)
    og_product = product_from_opengraph(og_props, base, page, PriceHints(locale=page_locale(tree, og_props)))
    hints = PriceHints(currency_code(_first(og_props, *OG_CURRENCY)) if og_product else None,
                       page_locale(tree, og_props))
    found, category = _schema_products(tree, base, page, hints)
    if not found and og_product is not None:
        found.append(og_product)

    # One record per product: JSON-LD, then microdata, RDFa, OpenGraph fill the gaps.
    merged: dict[str, ScrapedProduct] = {}
    for p in found:
        if p.key in merged:
            merged[p.key].merge(p)
        else:
            merged[p.key] = p
    page.products = list(merged.values())
    if len(page.products) == 1:
        only = page.products[0]
        only.category = only.category or category
        if only.id is None and og_product is not None:   # OpenGraph's retailer_item_id
            only.id = og_product.id
    for p in page.products:
        if p.url not in (page.url, page.canonical):
            page.product_links.append(p.url)
    page.product_links = _unique(page.product_links)
    _read_links(tree, base, page)
    return page


def _schema_products(tree, base: str, page: PageData,
                     hints: PriceHints) -> tuple[list[ScrapedProduct], str | None]:
    """schema.org products of JSON-LD, microdata and RDFa (in that order), and the
    breadcrumb category; ItemList entries go to ``page.product_links``."""
    found: list[ScrapedProduct] = []
    crumbs: list[str | None] = []
    for syntax, getter in (("json-ld", _jsonld_nodes), ("microdata", _microdata_nodes), ("rdfa", _rdfa_nodes)):
        try:
            nodes, errors = getter(tree, base)
        except Exception as e:  # extruct raises arbitrary errors on odd markup
            nodes, errors = [], [str(e) or type(e).__name__]
        for err in errors:
            page.errors.append(f"{syntax}: {err}")
            log.warning("%s: cannot parse %s: %s", page.url, syntax, err)
        products = _page_products(nodes)
        for i, node in enumerate(products):
            p = product_from_schema(node, base, syntax, page, index=i, count=len(products), hints=hints)
            if p is not None:
                found.append(p)
        crumbs.append(_breadcrumb_category(nodes, page))
        page.product_links.extend(_itemlist_urls(nodes, base))
    return found, next((c for c in crumbs if c), None)


def _opengraph_props(tree, base: str, page: PageData) -> list[tuple[str, str]]:
    try:
        items = extruct.extract(tree, base_url=base, syntaxes=["opengraph"], errors="strict")["opengraph"]
    except Exception as e:
        items = []
        page.errors.append(f"opengraph: {e}")
        log.warning("%s: cannot parse opengraph: %s", page.url, e)
    props: list[tuple[str, str]] = []
    for item in items:
        props.extend((str(k).lower(), str(v)) for k, v in item.get("properties", []))
    return props


def _first(props: list[tuple[str, str]], *keys: str) -> str | None:
    for key in keys:
        for k, v in props:
            if k == key and v.strip():
                return re.sub(r"\s+", " ", v).strip()
    return None


def page_locale(tree, og_props: list[tuple[str, str]]) -> str | None:
    """The page's locale (``og:locale``, ``<html lang>``, Content-Language), one with a
    country first: it gives prices their decimal separator and ``$`` its currency."""
    found = [_first(og_props, "og:locale")] + [str(v) for v in tree.xpath("//html/@lang | //html/@xml:lang")]
    found += [str(el.get("content")) for el in tree.xpath("//meta[@http-equiv][@content]")
              if el.get("http-equiv", "").lower() == "content-language"]
    found = [f.strip() for f in found if f and locale_hints(f)[0]]
    return next((f for f in found if locale_hints(f)[1]), found[0] if found else None)


def _read_links(tree, base: str, page: PageData) -> None:
    for el in tree.xpath("//a[@href] | //link[@href]"):
        rel = _rel(el)
        href = normalize(el.get("href"), base)
        if href is None:
            continue
        if "next" in rel:
            page.next_links.append(href)
        elif el.tag == "a" and "nofollow" not in rel:
            page.links.append(href)
    for el in tree.xpath("//area[@href]"):
        href = normalize(el.get("href"), base)
        if href and "nofollow" not in _rel(el):
            page.links.append(href)
    page.next_links = _unique(page.next_links)
    page.links = _unique(page.links)


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(i for i in items if i))


# ---------------------------------------------------------------------------- syntaxes

def _strip_script(text: str) -> str:
    text = text.strip()
    text = re.sub(r"^\s*(<!--|//\s*<!\[CDATA\[|<!\[CDATA\[)", "", text)
    text = re.sub(r"(-->|//\s*\]\]>|\]\]>)\s*$", "", text)
    return text.strip()


def _jsonld_nodes(tree, base: str) -> tuple[list[dict], list[str]]:
    """JSON-LD blocks, each read by extruct's own parser (which tolerates a leading comment
    line and trailing commas), each on its own so that one broken block spoils nothing else."""
    nodes: list[dict] = []
    errors: list[str] = []
    for script in tree.xpath("//script[@type]"):
        if script.get("type", "").split(";")[0].strip().lower() != "application/ld+json":
            continue
        raw = _strip_script(script.xpath("string()"))
        if not raw:
            continue
        block = etree.Element("script", type="application/ld+json")
        try:
            block.text = raw
            items = JsonLdExtractor().extract_items(block)
        except (ValueError, TypeError, RecursionError) as e:
            errors.append(f"invalid JSON-LD ({e})")
            continue
        nodes.extend(_compact(item) for item in items if isinstance(item, dict))
    return _resolve_all(nodes), errors


def _microdata_nodes(tree, base: str) -> tuple[list[dict], list[str]]:
    """Top-level microdata items: not an item that is some item's property (``itemprop``),
    nor an ``itemref`` target (its properties belong to the item that refers to it)."""
    items = extruct.extract(tree, base_url=base, syntaxes=["microdata"], uniform=True,
                            return_html_node=True, errors="strict")["microdata"]
    referenced = {ref for refs in tree.xpath("//*[@itemscope]/@itemref") for ref in str(refs).split()}
    nodes = []
    for item in items:
        el = item.get("htmlNode") if isinstance(item, dict) else None
        if el is None or el.get("itemprop") is not None:
            continue
        if referenced.intersection(str(i) for i in el.xpath("ancestor-or-self::*/@id")):
            continue
        nodes.append(_compact(item))
    return _resolve_all(nodes), []


def _rdfa_nodes(tree, base: str) -> tuple[list[dict], list[str]]:
    """RDFa comes out of extruct flattened and expanded; rebuild nested, compact nodes."""
    items = extruct.extract(tree, base_url=base, syntaxes=["rdfa"], errors="strict")["rdfa"]
    nodes = []
    for item in items:
        if not isinstance(item, dict):
            continue
        node: dict[str, Any] = {}
        for key, value in item.items():
            if key == "@id":
                node["@id"] = value
            elif key == "@type":
                node["@type"] = value
            elif SCHEMA_PREFIX.match(key):
                vals = []
                for v in value if isinstance(value, list) else [value]:
                    if isinstance(v, dict) and "@value" in v:
                        vals.append(v["@value"])
                    elif isinstance(v, dict) and "@id" in v:
                        vals.append({"@id": v["@id"]})
                    else:
                        vals.append(v)
                node[SCHEMA_PREFIX.sub("", key)] = vals[0] if len(vals) == 1 else vals
        nodes.append(node)
    return _resolve_all(nodes), []


def _compact(value: Any, depth: int = 0) -> Any:
    """Strip ``schema:`` / ``https://schema.org/`` prefixes from keys, recursively."""
    if depth > MAX_DEPTH:
        return value
    if isinstance(value, dict):
        return {SCHEMA_PREFIX.sub("", k) if isinstance(k, str) else k: _compact(v, depth + 1)
                for k, v in value.items() if k != "htmlNode"}
    if isinstance(value, list):
        return [_compact(v, depth + 1) for v in value]
    return value


def _resolve_all(nodes: list[dict]) -> list[dict]:
    """Replace ``{"@id": x}`` references by the node with that id (JSON-LD @graph, RDFa)."""
    by_id: dict[str, dict] = {}
    for node in _iter_dicts(nodes):
        nid = node.get("@id")
        if isinstance(nid, str) and len(node) > 1:
            by_id.setdefault(nid, node)
    if not by_id:
        return nodes
    return [_resolve(n, by_id, 0) for n in nodes]


def _resolve(value: Any, by_id: dict[str, dict], depth: int) -> Any:
    if depth > MAX_DEPTH:
        return value
    if isinstance(value, list):
        return [_resolve(v, by_id, depth + 1) for v in value]
    if isinstance(value, dict):
        if set(value) == {"@id"} and isinstance(value["@id"], str):
            target = by_id.get(value["@id"])
            return _resolve(target, by_id, depth + 1) if target is not None else value["@id"]
        return {k: _resolve(v, by_id, depth + 1) for k, v in value.items()}
    return value


def _iter_dicts(value: Any, depth: int = 0) -> Iterator[dict]:
    if depth > MAX_DEPTH:
        return
    if isinstance(value, dict):
        yield value
        for v in value.values():
            yield from _iter_dicts(v, depth + 1)
    elif isinstance(value, list):
        for v in value:
            yield from _iter_dicts(v, depth + 1)


def _types(node: dict) -> set[str]:
    raw = node.get("@type")
    out = set()
    for t in raw if isinstance(raw, list) else [raw]:
        if isinstance(t, str) and t:
            out.add(re.split(r"[/#:]", t.rstrip("/"))[-1])
    return out


def _page_products(nodes: list[dict]) -> list[dict]:
    """The page's products: top-level nodes, or reached through ``CONTAINER_KEYS`` only, and
    not one that an Order, Invoice... of the same graph refers to; each @id once."""
    owned = {ref for node in _iter_dicts(nodes) if _types(node) & OWNER_TYPES
             for key, value in node.items() if key not in CONTAINER_KEYS and not str(key).startswith("@")
             for ref in _ids_of(value)}
    out, seen = [], set()
    for node in _walk_products(nodes):
        nid = node.get("@id")
        if isinstance(nid, str) and (nid in owned or nid in seen):
            continue
        seen.add(nid)
        out.append(node)
    return out


def _ids_of(value: Any) -> Iterator[str]:
    for v in _listify(value):
        if isinstance(v, dict) and isinstance(v.get("@id"), str):
            yield v["@id"]


def _walk_products(value: Any, depth: int = 0) -> Iterator[dict]:
    if depth > MAX_DEPTH:
        return
    if isinstance(value, list):
        for v in value:
            yield from _walk_products(v, depth + 1)
    elif isinstance(value, dict):
        if _types(value) & PRODUCT_TYPES:
            yield value
            return
        for key in CONTAINER_KEYS:
            if key in value:
                yield from _walk_products(value[key], depth + 1)


# ---------------------------------------------------------------------------- values

def _listify(value: Any) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def text(value: Any) -> str | None:
    """A clean one-line string from a scalar, a {"@value"} / {"name"} node or a list."""
    for v in _listify(value):
        if isinstance(v, dict):
            v = v.get("@value", v.get("name"))
            if isinstance(v, (dict, list)):
                v = text(v)
        if v is None or isinstance(v, bool):
            continue
        s = re.sub(r"\s+", " ", html.unescape(str(v))).strip()
        if s:
            return s
    return None


def urls(value: Any, base: str) -> list[str]:
    """Absolute http(s) URLs from a string, an ImageObject / node with url, or a list."""
    out = []
    for v in _listify(value):
        if isinstance(v, dict):
            v = v.get("url") or v.get("contentUrl") or v.get("@id") or v.get("@value")
            if isinstance(v, list):
                out.extend(urls(v, base))
                continue
        if isinstance(v, str):
            u = normalize(html.unescape(v), base)
            if u and u not in out:
                out.append(u)
    return out


def availability(value: Any) -> str | None:
    s = text(value)
    if not s:
        return None
    last = re.split(r"[/#:]", s.rstrip("/"))[-1]
    return AVAILABILITY.get(re.sub(r"[^a-z0-9]", "", last.lower()), last)


def _price(value: Any, currency: str | None, hints: PriceHints) -> tuple[float | None, str | None]:
    """A schema.org or OpenGraph price: '.' is its decimal separator (as both specs say) where
    the text fits that, except before exactly three digits in a currency with no third decimal
    (``"31.500"`` IDR is 31500: ``prices.parse_price``); ``currency`` (the data's own) wins over
    the text's sign."""
    if isinstance(value, list):
        value = value[0] if value else None
    if isinstance(value, dict):
        value = value.get("@value")
    if not (isinstance(value, (int, float)) and not isinstance(value, bool)):
        value = text(value)
    return parse_price(value, currency, locale=hints.locale, decimal=".")


def offer_fields(offers: Any, hints: PriceHints = PriceHints()) -> tuple[float | None, str | None, str | None]:
    """(price, currency, availability) of the first offer that has a price. Currency: the
    offer's ``priceCurrency``, else OpenGraph's (``hints``), else the price text's sign."""
    price = currency = avail = None
    country = locale_hints(hints.locale)[1]
    for offer in _listify(offers):
        if not isinstance(offer, dict):
            continue
        candidates = [offer.get("price")]
        if "AggregateOffer" in _types(offer):
            candidates.insert(0, offer.get("lowPrice"))
        cur = text(offer.get("priceCurrency"))
        for spec in _listify(offer.get("priceSpecification")):
            if isinstance(spec, dict):
                candidates.append(spec.get("price"))
                cur = cur or text(spec.get("priceCurrency"))
        avail = avail or availability(offer.get("availability"))
        hint = currency_code(cur, country) or hints.currency
        for cand in candidates:
            value, code = _price(cand, hint, hints)
            if value is not None:
                if price is None:
                    price, currency = value, code
                break
        if price is None and isinstance(offer.get("offers"), (dict, list)):  # AggregateOffer.offers
            p, c, a = offer_fields(offer.get("offers"), PriceHints(hint, hints.locale))
            if p is not None:
                price, currency = p, c
            avail = avail or a
        if price is not None and avail is not None:
            break
    return price, currency, avail


def _category(value: Any) -> str | None:
    items = [text(v) for v in _listify(value)]
    items = [i for i in items if i]
    return " > ".join(items) if items else None


def _product_id(node: dict) -> str | None:
    for key in ID_KEYS:
        v = text(node.get(key))
        if v:
            return v[:512]
    return None


def product_from_schema(node: dict, base: str, source: str, page: PageData, *,
                        index: int = 0, count: int = 1, hints: PriceHints = PriceHints()) -> ScrapedProduct | None:
    own = urls(node.get("url"), base)
    if own:
        url = own[0]
    elif count == 1:
        url = page.canonical or page.url
    else:
        url = page.url
    pid = _product_id(node)
    key = url
    if not own and count > 1:  # several URL-less products on one page: keep them apart
        key = f"{page.url}#{pid or index}"
    price, currency, avail = offer_fields(node.get("offers"), hints)
    brand = node.get("brand")
    return ScrapedProduct(
        key=key, url=url, page_url=page.url, source=source, id=pid,
        title=text(node.get("name")), price=price, currency=currency, availability=avail,
        brand=text(brand), category=_category(node.get("category")),
        images=urls(node.get("image"), base))


def product_from_opengraph(props: list[tuple[str, str]], base: str, page: PageData,
                           hints: PriceHints = PriceHints()) -> ScrapedProduct | None:
    """The product of OpenGraph (lower-case property, value) pairs, if they describe one."""
    def first(*keys: str) -> str | None:
        return _first(props, *keys)

    og_type = (first("og:type") or "").lower()
    amount = first("product:price:amount", "og:price:amount", "product:sale_price:amount")
    if "product" not in og_type and amount is None:
        return None
    images = []
    for k, v in props:
        if k in ("og:image", "og:image:url", "og:image:secure_url"):
            u = normalize(v, base)
            if u and u not in images:
                images.append(u)
    price, currency = _price(amount, first(*OG_CURRENCY), hints)
    url = normalize(first("og:url") or "", base) or page.canonical or page.url
    return ScrapedProduct(
        key=url, url=url, page_url=page.url, source="opengraph",
        id=first("product:retailer_item_id", "product:sku", "product:upc", "product:ean"),
        title=first("og:title"), price=price, currency=currency,
        availability=availability(first("product:availability", "og:availability")),
        brand=first("product:brand", "og:brand"), category=first("product:category"),
        images=images)


def _breadcrumb_category(nodes: list[dict], page: PageData) -> str | None:
    """The deepest BreadcrumbList entry that is not the page itself: the product's category.

    Entries linking to the page, and a last entry without a link (it names the page), are
    dropped; a lone "Home" is no category.
    """
    own = {page.url, page.canonical}
    for node in _iter_dicts(nodes):
        if "BreadcrumbList" not in _types(node):
            continue
        entries = [e for e in _listify(node.get("itemListElement")) if isinstance(e, dict)]
        entries.sort(key=lambda e: _position(e.get("position")))
        names = []
        for i, e in enumerate(entries):
            item = e.get("item")
            item_urls = urls(item if item is not None else e.get("url"), page.url)
            if (item_urls and item_urls[0] in own) or (not item_urls and i == len(entries) - 1):
                continue
            name = text(e.get("name")) or (text(item) if isinstance(item, dict) else None)
            if name:
                names.append(name)
        if names and not (len(names) == 1 and names[0].lower() in ("home", "homepage", "start")):
            return names[-1]
    return None


def _position(value: Any) -> float:
    try:
        return float(text(value) or 0)
    except ValueError:
        return 0.0


def _itemlist_urls(nodes: list[dict], base: str) -> list[str]:
    out = []
    for node in _iter_dicts(nodes):
        if not (_types(node) & {"ItemList", "OfferCatalog"}) or "BreadcrumbList" in _types(node):
            continue
        for e in _listify(node.get("itemListElement")):
            if isinstance(e, str):
                out.extend(urls(e, base))
            elif isinstance(e, dict):
                target = e.get("item") if e.get("item") is not None else e
                out.extend(urls(target.get("url") if isinstance(target, dict) else target, base))
    return out
