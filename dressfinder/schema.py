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
        aliases=("image_path", "image_file", "img", "file")))
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


def field_named(name: str) -> Field:
    return next(f for f in FIELDS if f.name == name)


def product_from(values: dict[str, Any], extra: dict[str, Any] | None = None) -> Product:
    """A ``Product`` from a mapping with (some of) the declared names; other keys are ignored."""
    return Product(**{n: values.get(n) for n in NAMES if values.get(n) is not None}, extra=extra or {})
