"""The API's request and response models, made from the product schema (``schema.Product``), so
``/openapi.json`` documents every field a response carries and a new field needs no edit here."""

from __future__ import annotations

import math
import re
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, create_model, field_validator, model_validator

from ..catalog import Filters
from ..prices import parse_price
from ..schema import AVAILABILITY, FACETS, FIELDS, MAX_ID_LENGTH, RENAMED, availability

MAX_K = 100
DEFAULT_K = 12
FACET_MAX = 200     # longest facet value a filter takes
_OLD_NAME = {new: old for old, new in RENAMED.items()}


def parse_crop(value: Any) -> tuple[float, float, float, float] | None:
    """``"l,t,r,b"`` or a list of four fractions of width/height -> a checked tuple (or None)."""
    if value is None or value == "" or value == []:
        return None
    what = "crop must be four numbers: left,top,right,bottom (fractions 0..1)"
    if isinstance(value, str):
        parts = [p for p in re.split(r"[,\s]+", value.strip()) if p]
    elif isinstance(value, (list, tuple)):
        parts = list(value)
    else:
        raise ValueError(what)
    if len(parts) != 4:
        raise ValueError(what)
    try:
        box = tuple(float(p) for p in parts)
    except (TypeError, ValueError):
        raise ValueError(what) from None
    if not all(math.isfinite(v) and -1e-6 <= v <= 1 + 1e-6 for v in box):
        raise ValueError("crop values are fractions of the width and height, between 0 and 1")
    left, top, right, bottom = (min(max(v, 0.0), 1.0) for v in box)
    if right - left < 0.01 or bottom - top < 0.01:
        raise ValueError("crop box must have left < right and top < bottom")
    return (left, top, right, bottom)


# --------------------------------------------------------------------------- requests

def _facet_fields() -> dict[str, Any]:
    """One optional filter per facet; a renamed facet also takes its old name (``store``)."""
    out = {}
    for name in FACETS:
        names = (name, _OLD_NAME[name]) if name in _OLD_NAME else (name,)
        out[name] = (str | None, Field(None, max_length=FACET_MAX, validation_alias=AliasChoices(*names),
                                       description=f"only products of this {name} (exact, any case)"))
    return out


class _Filters(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, populate_by_name=True)

    min_price: float | None = Field(None, ge=0, allow_inf_nan=False, description="lowest price")
    max_price: float | None = Field(None, ge=0, allow_inf_nan=False, description="highest price")
    in_stock: bool | None = Field(None, description="only products that can be bought (availability not "
                                                    "out_of_stock; preorder and backorder can)")

    @model_validator(mode="after")
    def _order(self):
        if self.min_price is not None and self.max_price is not None and self.min_price > self.max_price:
            raise ValueError("min_price is above max_price")
        return self

    def filters(self) -> Filters | None:
        f = Filters(self.min_price, self.max_price, **{n: getattr(self, n) or None for n in FACETS},
                    in_stock=bool(self.in_stock))
        return None if f.is_empty() else f


FilterParams = create_model("FilterParams", __base__=_Filters, **_facet_fields())
FILTER_NAMES = ("min_price", "max_price", *FACETS)


class SearchParams(FilterParams):  # type: ignore[misc, valid-type]
    """``POST /api/search`` parameters (JSON body, or the text fields of a multipart form)."""

    image_url: str | None = Field(None, max_length=2048, description="http(s) URL of a photo to search with")
    like: str | None = Field(None, max_length=MAX_ID_LENGTH,
                             description="search with this catalogue product's picture instead of a photo")
    k: int = Field(DEFAULT_K, ge=1, le=MAX_K, description="number of results")
    crop: tuple[float, float, float, float] | None = Field(
        None, description="search only this box of the photo: [left, top, right, bottom] as fractions "
                          "(a form field takes \"l,t,r,b\"); it always overrides the region found")
    variants: bool = Field(False, description="keep variants apart (default: one result per item_group_id, "
                                              "its best-matching variant)")
    detect: bool = Field(True, description="find the dress in the photo (a screenshot, a photo of a screen, "
                                           "a scene) and search that region; false: search the whole photo")

    @field_validator("crop", mode="before")
    @classmethod
    def _crop(cls, v):
        return parse_crop(v)


def _new_product_fields() -> dict[str, Any]:
    out: dict[str, Any] = {"id": (str, Field(min_length=1, max_length=MAX_ID_LENGTH, pattern=r"^[^\x00-\x1f\x7f]+$",
                                             description="a new, unique product id"))}
    for f in FIELDS:
        if f.name in ("id", "image"):
            continue
        if f.kind is float:
            out[f.name] = (float | None, Field(None, ge=0, allow_inf_nan=False, description=f.doc))
        else:
            out[f.name] = (str | None, Field(None, max_length=f.max_length, description=f.doc))
    return out


class _NewProduct(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    @model_validator(mode="before")
    @classmethod
    def _currency_from_price(cls, values):
        """"19,90 €" with no currency field: the currency is the price text's."""
        if isinstance(values, dict) and isinstance(values.get("price"), str) and not values.get("currency"):
            amount, currency = parse_price(values["price"])
            if amount is not None and currency:
                values = {**values, "currency": currency}
        return values

    @field_validator("price", "sale_price", mode="before", check_fields=False)
    @classmethod
    def _price(cls, v):
        if isinstance(v, str):
            try:
                return float(v)
            except ValueError:
                pass
            value, _ = parse_price(v)      # "$19.90", "19,90 €"
            if value is None:
                raise ValueError("price must be a number, e.g. 19.90")
            return value
        return v

    @field_validator("availability", mode="before", check_fields=False)
    @classmethod
    def _availability(cls, v):
        """One of ``schema.AVAILABILITY`` (``InStock``, a schema.org URL, true/false read as these)."""
        if v is None or (isinstance(v, str) and not v.strip()):
            return None
        value = availability(v)
        if value is None:
            raise ValueError("availability must be one of " + ", ".join(AVAILABILITY))
        return value

    @field_validator("url", check_fields=False)
    @classmethod
    def _url(cls, v):
        if v is not None and safe_http_url(v) is None:
            raise ValueError("url must be an http:// or https:// address")
        return v


#: Form fields of ``POST /api/products`` (the image is the ``file`` field).
NewProduct = create_model("NewProduct", __base__=_NewProduct, **_new_product_fields())


def safe_http_url(url: str | None) -> str | None:
    """A catalogue link we may put in an ``href``: http(s) only (no ``javascript:``)."""
    if not url or not isinstance(url, str):
        return None
    return url if re.match(r"^https?://[^\s]+$", url.strip(), re.I) else None


# --------------------------------------------------------------------------- responses

class ErrorBody(BaseModel):
    status: int = Field(examples=[415])
    message: str = Field(examples=["not an image (or an image format we do not read)"])


class ErrorOut(BaseModel):
    error: ErrorBody


class LinksOut(BaseModel):
    product: str
    similar: str
    page: str


class ProductLinks(BaseModel):
    self: str
    similar: str
    page: str


def _described_fields() -> dict[str, Any]:
    """The schema's fields but ``id`` and ``image`` (which responses give as a URL of ours), and
    ``display_title``."""
    fields = {f.name: ((float if f.kind is float else str) | None, Field(None, description=f.doc))
              for f in FIELDS if f.name not in ("id", "image")}
    fields["display_title"] = (str | None, Field(None, description="the title to show: the product's own, "
                                                                   "else one read from its file or folder name"))
    return fields


#: The words a result's score reads as (``search.Closeness.label``).
Closeness = Literal["very close", "close", "similar", "not close"]
CLOSENESS_DOC = ("what the score means, as the pages say it: very close, close, similar or not close (the "
                 "encoder's own lines, search.Closeness); the word of the lower of this score and every score "
                 "ranked above it, so it never gets closer down the list")
NOTHING_CLOSE_DOC = "even the first result is below 'similar': nothing in the store is close to the photo"

HitOut = create_model(
    "HitOut", rank=(int, ...), id=(str, ...),
    score=(float, Field(description="similarity, higher is more alike (cosine for the default encoder; for a "
                                    "close-up, the photo's and the fabric's cosines averaged)")),
    closeness=(Closeness, Field(description=CLOSENESS_DOC)),
    **_described_fields(), image=(str, Field(description="URL of the product's image on this server: the "
                                                         "picture of it that matched")),
    matched_image=(int, Field(0, description="which picture of the product matched: 0 its main image, n the "
                                             "n-th of more_images")),
    links=(LinksOut, ...))

ProductOut = create_model(
    "ProductOut", id=(str, ...), **_described_fields(),
    image=(str, Field(description="URL of the product's image on this server")),
    extra=(dict[str, Any], Field(default_factory=dict, description="the catalogue's other columns")),
    links=(ProductLinks, ...))


BOX_DOC = "[left, top, right, bottom] as fractions of the photo's width and height"
KIND_DOC = ("whole: the whole photo; crop: the box you sent; content: a block of a screenshot or page "
            "(a post's photo, a product tile); head: where the box head (a small trained network) saw a "
            "product's photo; window: a part of a photo with no layout")


class RegionOut(BaseModel):
    """The region of the photo that was searched."""

    box: tuple[float, float, float, float] = Field(description=BOX_DOC, examples=[[0.05, 0.12, 0.95, 0.7]])
    kind: str = Field(description=KIND_DOC, examples=["content"])
    score: float | None = Field(None, description="cosine of its best match, when regions were compared")
    closeup: bool = Field(False, description="nothing matched the whole photo surely and the fabric did: the "
                                             "photo was also read as a close-up (the catalogue's patch vectors)")


class FoundRegionOut(BaseModel):
    """Another region found in the photo (another dress), with its own results."""

    box: tuple[float, float, float, float] = Field(description=BOX_DOC)
    kind: str = Field(description=KIND_DOC)
    score: float = Field(description="cosine of its best match")
    count: int
    nothing_close: bool = Field(description=NOTHING_CLOSE_DOC)
    results: list[HitOut]  # type: ignore[valid-type]


class DetectedOut(BaseModel):
    """Another dress the box head saw in the photo, not searched: send its box as `crop` to search it."""

    box: tuple[float, float, float, float] = Field(description=BOX_DOC, examples=[[0.56, 0.21, 0.89, 0.83]])
    peak: float = Field(description="how sure the box head is of it (its peak, 0-1; offered from 0.4, its "
                                    "line for a sure box), from the picture alone, not a match's cosine",
                        examples=[0.55])


class SearchOut(BaseModel):
    query: dict[str, Any]
    count: int
    nothing_close: bool = Field(description=NOTHING_CLOSE_DOC)
    took_ms: float
    results: list[HitOut]  # type: ignore[valid-type]
    region: RegionOut | None = Field(None, description="the region searched; null when searching with a "
                                                         "catalogue product (like=)")
    regions: list[FoundRegionOut] = Field(
        default_factory=list, description="other regions found (other dresses: a collage, a 'you may also "
                                          "like' row), each with its own results, best first")
    detected: list[DetectedOut] = Field(
        default_factory=list, description="other dresses the box head saw in the photo, whatever the catalogue "
                                          "holds, apart from the region searched and the other regions: not "
                                          "searched (no results), best first; empty when the box head did not "
                                          "run (the whole photo matched surely, a screenshot's block won, crop, "
                                          "detect=false)")


class SimilarOut(BaseModel):
    product: ProductOut  # type: ignore[valid-type]
    count: int
    nothing_close: bool = Field(description=NOTHING_CLOSE_DOC)
    results: list[HitOut]  # type: ignore[valid-type]


class AddedOut(BaseModel):
    added: ProductOut  # type: ignore[valid-type]
    products: int


class RemovedOut(BaseModel):
    removed: str
    products: int


class ReloadOut(BaseModel):
    reloaded: bool
    generation: int
    products: int


#: ``GET /api/facets``: the distinct values of each facet, named in the plural (``shops``, ``categories``,
#: ``availabilities``, ``brands``).
def plural(name: str) -> str:
    return name[:-1] + "ies" if name.endswith("y") else name + "s"


FacetsOut = create_model("FacetsOut", **{plural(n): (list[str], ...) for n in FACETS})


class HealthOut(BaseModel):
    status: str
    version: str
    products: int
    generation: int
    encoder: str
    index: str
    busy: int
    capacity: int
