"""The search work behind both the API and the pages: parameters, decoding a query photo under
the configured limits, cropping, encoding, searching, and turning hits into JSON with links.

Everything here is synchronous and CPU-bound: routes run it through ``WorkerPool``.
"""

from __future__ import annotations

import base64
import io
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence
from urllib.parse import quote

from PIL import Image
from pydantic import BaseModel, ValidationError

from ..catalog import Filters, display_title
from ..schema import Product
from ..errors import DressfinderError, ImageError, NotFound
from ..images import CONTENT_TYPES, EXTENSIONS, load_image, sniff_format
from ..search import Closeness, FoundRegion, RegionSearch, query_draft, shown_scores
from ..thresholds import Thresholds

PREVIEW_SIZE = 960      # big enough to search a region of it again from the results page
_MEDIA_BY_EXT = {ext: CONTENT_TYPES[fmt] for fmt, ext in EXTENSIONS.items()}


# --------------------------------------------------------------------------- parameters

def params_from_form(form: Mapping[str, Any], model: type[BaseModel], skip: Sequence[str] = ("file",)) -> Any:
    """Validate a multipart/urlencoded form's text fields with ``model`` (empty fields = not given)."""
    values = {}
    for key, value in form.items():
        if key in skip:
            continue
        if not isinstance(value, str):
            raise DressfinderError(f"form field {key!r} must be text, not a file")
        if value.strip() != "":
            values[key] = value
    return model.model_validate(values)


def validation_errors(e: ValidationError) -> list[dict[str, Any]]:
    """Pydantic errors in the shape FastAPI's RequestValidationError takes (JSON-safe)."""
    out = []
    for err in e.errors(include_url=False):
        err = dict(err)
        if "ctx" in err:
            err["ctx"] = {k: str(v) for k, v in err["ctx"].items()}
        out.append(err)
    return out


# --------------------------------------------------------------------------- links

def _quote_id(pid: str) -> str:
    # Keep slashes readable, unless a segment is "." or ".." (a browser would resolve it away):
    # then encode the slashes too (the server decodes %2F back before routing).
    segments = pid.split("/")
    safe = "" if any(s in (".", "..") for s in segments) else "/"
    return quote(pid, safe=safe)


@dataclass(frozen=True)
class Links:
    """URLs of our own routes, under the app's root path."""

    root: str = ""

    def image(self, pid: str, file: str | None = None, n: int = 0) -> str:
        query = ([f"v={Path(file).stem[:16]}"] if file else []) + ([f"n={int(n)}"] if n else [])
        return f"{self.root}/images/{_quote_id(pid)}" + ("?" + "&".join(query) if query else "")

    def page(self, pid: str) -> str:
        return f"{self.root}/products/{_quote_id(pid)}"

    def like(self, pid: str, k: int | None = None) -> str:
        return f"{self.root}/search?like={quote(pid, safe='')}" + (f"&k={k}" if k else "")

    def api_product(self, pid: str) -> str:
        return f"{self.root}/api/products/{_quote_id(pid)}"


def _fields(p: Product, file: str | None, links: Links) -> dict[str, Any]:
    """The product's schema fields, with ``image`` the URL of its stored picture on this server."""
    return {**p.fields(), "display_title": display_title(p), "image": links.image(p.id, file)}


def product_json(p: Product, file: str | None, links: Links) -> dict[str, Any]:
    return {**_fields(p, file, links), "extra": p.extra or {},
            "links": {"self": links.api_product(p.id), "similar": links.api_product(p.id) + "/similar",
                      "page": links.page(p.id)}}


def closeness(store: Any) -> Closeness:
    """The store's encoder's lines between the words a shopper reads (``search.Closeness``)."""
    return Closeness.of(Thresholds.of(store.encoder))


def hit_json(rank: int, hit: Any, links: Links, word: str | None = None) -> dict[str, Any]:
    out = {"rank": rank, "score": round(float(hit.score), 6)}
    if word is not None:
        out["closeness"] = word
    return {**out, **_fields(hit.product, hit.file, links),
            "image": links.image(hit.id, hit.file, getattr(hit, "image", 0)), "matched_image": getattr(hit, "image", 0),
            "links": {"product": links.api_product(hit.id), "similar": links.api_product(hit.id) + "/similar",
                      "page": links.page(hit.id)}}


def hits_json(hits: Sequence[Any], links: Links, lines: Closeness) -> dict[str, Any]:
    """A ranked list as the API gives it: ``count``, ``nothing_close`` (even the first result is
    below ``similar``) and ``results``, each with the word the pages show beside it (the word of its
    :func:`search.shown_scores` score: never closer than a result ranked above it)."""
    shown = shown_scores(hits)
    return {"count": len(hits), "nothing_close": not lines.anything_close(shown[:1]),
            "results": [hit_json(i, h, links, lines.label(s)) for i, (h, s) in enumerate(zip(hits, shown), 1)]}


# --------------------------------------------------------------------------- the work

@dataclass
class SearchOutcome:
    hits: list
    seconds: float
    preview: str | None = None          # data: URL of a small copy of the query photo (pages)
    size: tuple[int, int] | None = None  # the query photo's width, height
    found: RegionSearch | None = None   # what an uploaded photo's search searched; None: a product's picture

    @property
    def region(self) -> tuple | None:
        return None if self.found is None else self.found.region

    @property
    def region_kind(self) -> str | None:
        return None if self.found is None else self.found.kind

    @property
    def others(self) -> list[FoundRegion]:
        return [] if self.found is None else self.found.others

    @property
    def detected(self) -> list[tuple[tuple[float, float, float, float], float]]:
        """The dresses the box head saw besides those searched (``RegionSearch.detected``): (box, peak)."""
        return [] if self.found is None else self.found.detected

    def region_json(self) -> dict[str, Any] | None:
        return None if self.found is None else self.found.region_dict()


def decode_query(data: bytes, *, max_pixels: int, crop: Sequence[float] | None, input_size: int,
                 max_decode_bytes: int | None = None, detect: bool = False) -> Image.Image:
    """Decode an uploaded photo under the pixel and memory budgets; at reduced scale when that
    still leaves the encoder (and the crop box, or the regions looked for) enough pixels."""
    return load_image(data, max_pixels=max_pixels, draft=query_draft(input_size, crop, detect),
                      max_decode_bytes=max_decode_bytes)


def preview_data_url(im: Image.Image, size: int = PREVIEW_SIZE) -> str:
    small = im.copy()
    small.thumbnail((size, size))
    buf = io.BytesIO()
    small.convert("RGB").save(buf, "JPEG", quality=80, optimize=True)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def search_bytes(store: Any, data: bytes, *, k: int, filters: Filters | None, crop: Sequence[float] | None,
                 max_pixels: int, preview: bool = False, max_decode_bytes: int | None = None,
                 detect: bool = True, variants: bool = False) -> SearchOutcome:
    """Search with an uploaded photo: the shopper's box (``crop``), else the region found in it
    (``detect``), else the whole photo; with the other regions found."""
    t0 = time.perf_counter()
    enc = store.encoder
    im = decode_query(data, max_pixels=max_pixels, crop=crop, input_size=getattr(enc, "input_size", 224),
                      max_decode_bytes=max_decode_bytes, detect=detect and crop is None)
    found = store.search_regions(im, k, filters=filters, crop=crop, detect=detect, variants=variants)
    seconds = time.perf_counter() - t0
    return SearchOutcome(found.hits, seconds, preview_data_url(im) if preview else None, im.size, found)


def found_regions_json(outcome: SearchOutcome, links: Links, lines: Closeness) -> list[dict[str, Any]]:
    """The other regions found, each with its results (:func:`hits_json`), best first."""
    return [{**r.region_dict(), **hits_json(r.hits, links, lines)} for r in outcome.others]


def detected_json(outcome: SearchOutcome) -> list[dict[str, Any]]:
    """The other dresses seen in the photo and not searched (``[{"box", "peak"}]``, best first): a
    client offers each to tap, and searches one by sending its box as ``crop``."""
    return [] if outcome.found is None else outcome.found.detected_dicts()


def best_match_image(store: Any, data: bytes, *, max_pixels: int,
                     max_decode_bytes: int | None = None) -> tuple[Any, bytes, str] | None:
    """The seed's call in one piece of worker time: the best match, its stored image's bytes and
    content type (``None`` when the store is empty)."""
    outcome = search_bytes(store, data, k=1, filters=None, crop=None, max_pixels=max_pixels,
                           max_decode_bytes=max_decode_bytes)
    if not outcome.hits:
        return None
    hit = outcome.hits[0]
    image, media = stored_image_bytes(store, hit.id)
    return hit, image, media


def similar_to(store: Any, pid: str, *, k: int, filters: Filters | None = None, variants: bool = False,
               in_stock: bool = True) -> SearchOutcome:
    """Products like ``pid``: in stock only unless ``in_stock`` is false (what a shop recommends)."""
    t0 = time.perf_counter()
    hits = store.similar(pid, k, filters=filters, variants=variants, in_stock=in_stock)
    return SearchOutcome(hits, time.perf_counter() - t0)


def product_record(store: Any, pid: str) -> tuple[Product, str | None]:
    """A product and its stored image's file name (for cache-busting image links)."""
    product = store.product(pid)
    try:
        file = store.image_file(pid).name
    except NotFound:
        file = None
    return product, file


def stored_image(store: Any, pid: str, n: int = 0) -> tuple[Path, str]:
    """The stored image file of a product (its n-th other picture with ``n``), by id only, and its content type."""
    path = store.image_file(pid, n) if n else store.image_file(pid)
    images = Path(store.images_dir or "").resolve()
    real = path.resolve()
    if not real.is_relative_to(images) or not real.is_file():
        raise NotFound(f"product {pid!r} has no stored image")
    media = _MEDIA_BY_EXT.get(real.suffix.lower())
    if media is None:
        media = CONTENT_TYPES.get(sniff_format(real.read_bytes()), "application/octet-stream")
    return real, media


def stored_image_bytes(store: Any, pid: str) -> tuple[bytes, str]:
    """The bytes of a product's stored image and their real content type (sniffed from the bytes)."""
    path, _ = stored_image(store, pid)
    data = path.read_bytes()
    try:
        media = CONTENT_TYPES[sniff_format(data)]
    except ImageError:
        media = _MEDIA_BY_EXT.get(path.suffix.lower(), "application/octet-stream")
    return data, media


def facets(store: Any) -> dict[str, list[str]]:
    """Distinct values of each facet (shops, categories) for the filter choices."""
    return store.facets()
