"""The product record, declared once.

``Product`` below is the only place a catalogue field is named. Everything else is made from it:
the SQLite table (``catalog.CatalogDB``), the Milvus collection (``backends.milvus``), the API's
pydantic models (``web.models``), the JSON a search prints, and the CSV column synonyms. A new
field is one line here (plus its meaning in the docs).

Each field's metadata says what it means (``doc``), its longest length in bytes where it is text
(``max_length``: Milvus' VARCHAR size; longer values are cut there, the API refuses them), the CSV
column names that mean it (``aliases``), and whether searches can be filtered by it exactly
(``facet``, case-insensitive; ``price`` is filtered by range).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any

MAX_ID_LENGTH = 512


def _meta(doc: str, *, max_length: int | None = None, aliases: tuple[str, ...] = (),
          facet: bool = False) -> dict[str, Any]:
    return {"doc": doc, "max_length": max_length, "aliases": aliases, "facet": facet}


@dataclass
class Product:
    """One catalogue product. ``extra`` keeps the catalogue's other columns, as given."""

    id: str = field(metadata=_meta("product id, unique in a catalogue", max_length=MAX_ID_LENGTH,
                                   aliases=("product_id", "sku", "item_id")))
    image: str = field(default="", metadata=_meta(
        "where the picture came from (a path, as resolved when indexed)", max_length=4096,
        aliases=("image_path", "image_file", "img", "file", "image_link")))
    title: str | None = field(default=None, metadata=_meta("the product's name", max_length=2048,
                                                           aliases=("name", "product_name")))
    price: float | None = field(default=None, metadata=_meta("price in its currency"))
    currency: str | None = field(default=None, metadata=_meta("ISO 4217 code, e.g. EUR", max_length=16))
    url: str | None = field(default=None, metadata=_meta("the product's page at its shop", max_length=4096,
                                                         aliases=("product_url", "link", "href")))
    shop: str | None = field(default=None, metadata=_meta(
        "the retailer that sells it", max_length=512, aliases=("store", "brand_store", "retailer"), facet=True))
    category: str | None = field(default=None, metadata=_meta("the shop's category", max_length=512,
                                                              facet=True))
    availability: str | None = field(default=None, metadata=_meta(
        "in_stock, out_of_stock, preorder or backorder (schema.org's InStock..., a shop's true/false and "
        "other words for these are read as these: schema.availability)", max_length=16,
        aliases=("stock_status",), facet=True))
    sale_price: float | None = field(default=None, metadata=_meta(
        "the price while on sale (price is then the regular one), in the same currency",
        aliases=("special_price",)))
    brand: str | None = field(default=None, metadata=_meta("the maker's brand (a Shopify shop's vendor)",
                                                           max_length=512, aliases=("vendor", "manufacturer"),
                                                           facet=True))
    color: str | None = field(default=None, metadata=_meta("colour, as the shop names it", max_length=256,
                                                           aliases=("colour",)))
    size: str | None = field(default=None, metadata=_meta("size, as the shop names it", max_length=256))
    item_group_id: str | None = field(default=None, metadata=_meta(
        "the product this one is a variant of (a colour, a size): variants share it", max_length=MAX_ID_LENGTH,
        aliases=("group_id", "parent_id")))
    more_images: str | None = field(default=None, metadata=_meta(
        "the product's other pictures, separated by spaces: paths (resolved when indexed, as image) or URLs "
        "not downloaded", max_length=16384, aliases=("additional_image_link", "additional_image_links")))
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        if not d["extra"]:
            d.pop("extra")
        return d

    def fields(self) -> dict[str, Any]:
        """The declared fields' values (no ``extra``), in declaration order."""
        return {f.name: getattr(self, f.name) for f in FIELDS}


@dataclass(frozen=True)
class Field:
    name: str
    kind: type          # str or float
    doc: str
    max_length: int | None
    aliases: tuple[str, ...]
    facet: bool


def _fields() -> tuple[Field, ...]:
    out = []
    for f in dataclasses.fields(Product):
        if f.name == "extra":
            continue
        kind = float if "float" in str(f.type) else str
        m = f.metadata
        out.append(Field(f.name, kind, m["doc"], m["max_length"], m["aliases"], m["facet"]))
    return tuple(out)


#: The declared fields, in order (``extra`` is not one: it holds the other columns).
FIELDS: tuple[Field, ...] = _fields()
NAMES: tuple[str, ...] = tuple(f.name for f in FIELDS)
TEXT_FIELDS: tuple[str, ...] = tuple(f.name for f in FIELDS if f.kind is str)
FACETS: tuple[str, ...] = tuple(f.name for f in FIELDS if f.facet)
#: CSV column synonyms -> field name
ALIASES: dict[str, str] = {a: f.name for f in FIELDS for a in f.aliases}
#: Old names still read (CSV headers, API filters) -> the field's name
RENAMED: dict[str, str] = {"store": "shop"}


#: What ``availability`` holds (Google Merchant Center's words).
AVAILABILITY: tuple[str, ...] = ("in_stock", "out_of_stock", "preorder", "backorder")
_AVAILABILITY_WORDS = {
    **{w.replace("_", ""): w for w in AVAILABILITY},
    # schema.org ItemAvailability names (and their URLs' last part)
    "presale": "preorder", "discontinued": "out_of_stock", "soldout": "out_of_stock",
    "limitedavailability": "in_stock", "onlineonly": "in_stock", "instoreonly": "in_stock",
    "madetoorder": "backorder", "availablefororder": "backorder",
    # shops' words: Shopify's and WooCommerce's booleans, Woo's stock_status and its CSS class
    "true": "in_stock", "1": "in_stock", "yes": "in_stock", "available": "in_stock", "instock1": "in_stock",
    "false": "out_of_stock", "0": "out_of_stock", "no": "out_of_stock", "unavailable": "out_of_stock",
    "onbackorder": "backorder", "availableonbackorder": "backorder", "pending": "preorder",
}


def availability(value: Any) -> str | None:
    """``value`` as one of ``AVAILABILITY``: ``https://schema.org/InStock``, ``InStock``, ``in stock``,
    ``True``, ``"false"``, ``onbackorder``, ``available-on-backorder``... None: empty or not understood."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "in_stock" if value else "out_of_stock"
    text = str(value).strip()
    if not text:
        return None
    last = re.split(r"[/#:]", text.rstrip("/"))[-1]
    return _AVAILABILITY_WORDS.get(re.sub(r"[^a-z0-9]", "", last.lower()))


def field_named(name: str) -> Field:
    return next(f for f in FIELDS if f.name == name)


def product_from(values: dict[str, Any], extra: dict[str, Any] | None = None) -> Product:
    """A ``Product`` from a mapping with (some of) the declared names; other keys are ignored."""
    return Product(**{n: values.get(n) for n in NAMES if values.get(n) is not None}, extra=extra or {})
