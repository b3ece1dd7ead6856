"""JSON API routes: /api/*, the seed's POST /upload, /healthz and /images/{id}.

Routes only parse, check and answer; the work is in ``service`` (run in the worker pool) and the
data access in ``Store``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, File, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException

from .. import __version__
from ..errors import Conflict, DressfinderError, NotAnImage, NotFound
from ..images import EXTENSIONS, load_image, sniff_format
from ..schema import FACETS, Product
from . import service
from .caching import cache_headers, matches, not_modified, store_etag
from .deps import WebContext, get_ctx, read_upload, require_api_key
from .models import (DEFAULT_K, FACET_MAX, FILTER_NAMES, MAX_K, AddedOut, ErrorOut, FacetsOut, FilterParams,
                     HealthOut, NewProduct, ProductOut, ReloadOut, RemovedOut, SearchOut, SearchParams, SimilarOut,
                     plural)
from .service import Links

router = APIRouter()


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {c: {"model": ErrorOut} for c in codes}


# --------------------------------------------------------------------------- request bodies (docs)

_FILTER_PROPS = {"min_price": {"type": "number", "minimum": 0}, "max_price": {"type": "number", "minimum": 0},
                 **{n: {"type": "string"} for n in FACETS}}
SEARCH_BODY = {"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": {"type": "object", "properties": {
        "file": {"type": "string", "format": "binary", "description": "the photo"},
        "k": {"type": "integer", "default": DEFAULT_K, "minimum": 1, "maximum": MAX_K},
        "crop": {"type": "string", "description": "left,top,right,bottom as fractions, e.g. 0.2,0.1,0.8,0.9"},
        "detect": {"type": "boolean", "default": True,
                   "description": "find the dress in the photo; false: search the whole photo"},
        "image_url": {"type": "string", "description": "instead of file: an http(s) image URL"},
        "like": {"type": "string", "description": "instead of file: a catalogue product id"},
        **_FILTER_PROPS}}},
    "application/json": {"schema": SearchParams.model_json_schema(),
                         "example": {"image_url": "https://example.com/dress.jpg", "k": 10,
                                     "crop": [0.2, 0.1, 0.8, 0.9], "max_price": 50}},
}}}


ADD_BODY = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["file", "id"], "properties": {
        "file": {"type": "string", "format": "binary", "description": "the product's image"},
        **NewProduct.model_json_schema()["properties"]}}}}}}


# --------------------------------------------------------------------------- helpers

def links(request: Request) -> Links:
    """Links for our own pages: paths under the app's root path."""
    return Links(request.scope.get("root_path", "").rstrip("/"))


def public_base(request: Request) -> str:
    """The base of absolute links: ``DRESSFINDER_PUBLIC_URL``, else the request's own base URL
    (scheme, host and root path as the request reached us)."""
    configured = request.app.state.settings.public_url
    return configured or str(request.base_url).rstrip("/")


def absolute_links(request: Request) -> Links:
    """Links for the JSON API and the embed block: absolute URLs from :func:`public_base`."""
    return Links(public_base(request))


async def parse_form(request: Request, model: type[BaseModel]):
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype not in ("multipart/form-data", "application/x-www-form-urlencoded"):
        raise HTTPException(415, "send the fields as multipart/form-data")
    form = await request.form(max_files=1, max_fields=32)
    try:
        return form, service.params_from_form(form, model)
    except ValidationError as e:
        raise RequestValidationError(service.validation_errors(e)) from None


async def read_search_request(request: Request, ctx: WebContext) -> tuple[SearchParams, bytes | None]:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    data = None
    if ctype in ("multipart/form-data", "application/x-www-form-urlencoded"):
        form, params = await parse_form(request, SearchParams)
        upload = form.get("file")
        if upload is not None and upload != "":
            data = await read_upload(upload, ctx.settings.max_upload_bytes)
    elif ctype == "application/json" or ctype.endswith("+json"):
        try:
            body = await request.json()
        except (ValueError, UnicodeDecodeError):
            raise DressfinderError("the request body is not valid JSON") from None
        if not isinstance(body, dict):
            raise DressfinderError("the JSON body must be an object, e.g. {\"image_url\": \"...\", \"k\": 10}")
        try:
            params = SearchParams.model_validate(body)
        except ValidationError as e:
            raise RequestValidationError(service.validation_errors(e)) from None
    else:
        raise HTTPException(415, "send multipart/form-data with a 'file' field, or JSON with 'image_url'")
    given = [name for name, v in (("file", data), ("image_url", params.image_url), ("like", params.like))
             if v is not None]
    if not given:
        raise DressfinderError("no photo given: send a 'file', an 'image_url' or 'like' (a product id)")
    if len(given) > 1:
        raise DressfinderError(f"give only one of file, image_url and like (got {', '.join(given)})")
    return params, data


async def fetch_image(ctx: WebContext, url: str) -> bytes:
    fetched = await ctx.fetcher.fetch(url)
    try:
        await ctx.pool.run(sniff_format, fetched.data)
    except NotAnImage:
        said = f" (it sent {fetched.content_type.split(';')[0]})" if fetched.content_type else ""
        raise NotAnImage(f"the URL did not give an image we can read{said}") from None
    return fetched.data


async def run_search(ctx: WebContext, params: SearchParams, data: bytes | None,
                     preview: bool = False) -> tuple[service.SearchOutcome, str]:
    """Run one search inside an admitted pool slot (the caller holds ``ctx.pool.admit()``)."""
    store, settings = ctx.store, ctx.settings
    if params.like is not None:
        return await ctx.pool.run(service.similar_to, store, params.like, k=params.k, filters=params.filters(),
                                  variants=bool(params.variants), in_stock=False), "product"
    source = "upload"
    if data is None:
        data = await fetch_image(ctx, params.image_url or "")
        source = "url"
    outcome = await ctx.pool.run(service.search_bytes, store, data, k=params.k, filters=params.filters(),
                                 crop=params.crop, max_pixels=settings.max_pixels, preview=preview,
                                 max_decode_bytes=settings.max_decode_bytes, detect=params.detect,
                                 variants=bool(params.variants))
    return outcome, source


def _add(ctx: WebContext, product: Product, data: bytes) -> tuple[Product, str | None]:
    load_image(data, max_pixels=ctx.settings.max_pixels, draft=64,   # 413/415 with the right message first
               max_decode_bytes=ctx.settings.max_decode_bytes)
    with ctx.write_lock:
        try:
            ctx.store.add_image(product, data)
        except Conflict as e:
            raise Conflict(f"{e} (DELETE it first to replace it)") from None
    return service.product_record(ctx.store, product.id)


def _remove(ctx: WebContext, pid: str) -> int:
    with ctx.write_lock:
        return ctx.store.remove([pid]).removed


# --------------------------------------------------------------------------- routes

@router.get("/healthz", response_model=HealthOut, tags=["service"], summary="Liveness and store summary")
async def healthz(ctx: WebContext = Depends(get_ctx)) -> dict[str, Any]:
    m = ctx.store.manifest
    return {"status": "ok", "version": __version__, "products": len(ctx.store), "generation": ctx.store.generation,
            "encoder": m["encoder"]["name"], "index": m["index"]["kind"], "busy": ctx.pool.active,
            "capacity": ctx.pool.capacity}


@router.post("/upload", tags=["search"], summary="The seed's call: the best match's image bytes",
             response_class=Response,
             responses={200: {"description": "the stored image of the best matching product, with its real "
                                             "content type; X-Dressfinder-Id and X-Dressfinder-Score headers",
                              "content": {"image/jpeg": {}, "image/png": {}, "image/webp": {}}},
                        **_errors(404, 413, 415, 422, 503)})
async def upload(file: UploadFile = File(..., description="the photo to search with"),
                 ctx: WebContext = Depends(get_ctx)) -> Response:
    data = await read_upload(file, ctx.settings.max_upload_bytes)
    async with ctx.pool.admit():   # one trip through the worker queue, not two
        found = await ctx.pool.run(service.best_match_image, ctx.store, data, max_pixels=ctx.settings.max_pixels,
                                   max_decode_bytes=ctx.settings.max_decode_bytes)
    if found is None:
        raise NotFound("no match: the store has no products")
    hit, image, media = found
    ext = next((e for f, e in EXTENSIONS.items() if service.CONTENT_TYPES.get(f) == media), "")
    return Response(image, media_type=media, headers={
        "X-Dressfinder-Id": quote(hit.id, safe="/"), "X-Dressfinder-Score": f"{hit.score:.6f}",
        "Content-Disposition": f'inline; filename="retrieved_dress{ext}"', "Cache-Control": "no-store"})


@router.post("/api/search", response_model=SearchOut, tags=["search"], summary="Search with a photo",
             openapi_extra=SEARCH_BODY, responses=_errors(400, 404, 413, 415, 422, 503))
async def api_search(request: Request, ctx: WebContext = Depends(get_ctx)) -> dict[str, Any]:
    """Multipart with a `file` (or `image_url`, or `like`), or JSON with `image_url` (or `like`).
    Optional `k`, `crop`, `detect` and filters `min_price`, `max_price`, `shop` (or its old name `store`),
    `category`. The answer says which `region` of the photo was searched, the other `regions` found (each
    with its results) and the other dresses `detected` in the photo (not searched: send one's box as `crop`)."""
    params, data = await read_search_request(request, ctx)
    async with ctx.pool.admit():
        outcome, source = await run_search(ctx, params, data)
    lk = absolute_links(request)
    query = {"source": source, "k": params.k, "crop": list(params.crop) if params.crop else None,
             "detect": params.detect, "filters": params.model_dump(include=set(FILTER_NAMES), exclude_none=True)}
    if params.like is not None:
        query["like"] = params.like
    if source == "url":
        query["image_url"] = params.image_url
    lines = service.closeness(ctx.store)
    return {"query": query, **service.hits_json(outcome.hits, lk, lines), "took_ms": round(outcome.seconds * 1000, 2),
            "region": outcome.region_json(), "regions": service.found_regions_json(outcome, lk, lines),
            "detected": service.detected_json(outcome)}


@router.get("/api/facets", response_model=FacetsOut, tags=["catalogue"],
            summary="Shops and categories in the catalogue (filter choices)")
async def api_facets(ctx: WebContext = Depends(get_ctx)) -> dict[str, Any]:
    f = service.facets(ctx.store)
    return {plural(n): f.get(n, []) for n in FACETS}


@router.get("/api/products/{pid:path}/similar", response_model=SimilarOut, tags=["catalogue"],
            summary="Products similar to a catalogue product (cacheable: ETag, Cache-Control, 304)",
            responses={**_errors(404, 422, 503), 304: {"description": "If-None-Match named the current ETag"}})
async def api_similar(pid: str, request: Request, response: Response, k: int = Query(DEFAULT_K, ge=1, le=MAX_K),
                      min_price: float | None = Query(None, ge=0), max_price: float | None = Query(None, ge=0),
                      shop: str | None = Query(None, max_length=FACET_MAX),
                      store: str | None = Query(None, max_length=FACET_MAX, description="old name of shop"),
                      category: str | None = Query(None, max_length=FACET_MAX),
                      brand: str | None = Query(None, max_length=FACET_MAX),
                      variants: bool = Query(False, description="keep variants apart (default: one result per "
                                                                "item_group_id, and none of the product's own)"),
                      include_sold_out: bool = Query(False, description="also products out of stock (default: "
                                                                        "only what can be bought)"),
                      ctx: WebContext = Depends(get_ctx)) -> dict[str, Any]:
    try:
        filters = FilterParams(min_price=min_price, max_price=max_price, shop=shop or store,
                               category=category, brand=brand).filters()
    except ValidationError as e:
        raise RequestValidationError(service.validation_errors(e)) from None
    """The answer carries an `ETag` that changes with the store's generation (and the parameters);
    `If-None-Match` with it is answered 304 without searching."""
    product, file = service.product_record(ctx.store, pid)
    base = public_base(request)
    etag = store_etag(ctx.store, "similar", pid, k, filters, base, variants, include_sold_out)
    if matches(request, etag):
        return not_modified(etag)
    outcome = await ctx.pool.call(service.similar_to, ctx.store, pid, k=k, filters=filters, variants=variants,
                                  in_stock=not include_sold_out)
    response.headers.update(cache_headers(etag))
    lk = Links(base)
    return {"product": service.product_json(product, file, lk),
            **service.hits_json(outcome.hits, lk, service.closeness(ctx.store))}


@router.get("/api/products/{pid:path}", response_model=ProductOut, tags=["catalogue"],
            summary="One catalogue product", responses=_errors(404))
async def api_product(pid: str, request: Request, ctx: WebContext = Depends(get_ctx)) -> dict[str, Any]:
    product, file = service.product_record(ctx.store, pid)
    return service.product_json(product, file, absolute_links(request))


@router.post("/api/products", status_code=201, response_model=AddedOut, tags=["catalogue"],
             summary="Add a product to the live index (API key)", openapi_extra=ADD_BODY,
             dependencies=[Depends(require_api_key)], responses=_errors(401, 403, 409, 413, 415, 422, 503))
async def api_add(request: Request, ctx: WebContext = Depends(get_ctx)) -> dict[str, Any]:
    """Multipart: `file` (the image) and `id`, optional `title`, `price`, `currency`, `url`, `shop`,
    `category`. Needs `Authorization: Bearer KEY`."""
    form, meta = await parse_form(request, NewProduct)
    data = await read_upload(form.get("file"), ctx.settings.max_upload_bytes)
    product = Product(**{**meta.model_dump(), "image": "upload"})
    product, file = await ctx.pool.call(_add, ctx, product, data)
    return {"added": service.product_json(product, file, absolute_links(request)), "products": len(ctx.store)}


@router.delete("/api/products/{pid:path}", response_model=RemovedOut, tags=["catalogue"],
               summary="Remove a product from the live index (API key)",
               dependencies=[Depends(require_api_key)], responses=_errors(401, 403, 404, 503))
async def api_remove(pid: str, ctx: WebContext = Depends(get_ctx)) -> dict[str, Any]:
    removed = await ctx.pool.call(_remove, ctx, pid)
    if not removed:
        raise NotFound(f"no product with id {pid!r}")
    return {"removed": pid, "products": len(ctx.store)}


@router.post("/api/admin/reload", response_model=ReloadOut, tags=["service"],
             summary="Pick up a store rebuilt by another process now (API key)",
             dependencies=[Depends(require_api_key)], responses=_errors(401, 403))
async def api_reload(ctx: WebContext = Depends(get_ctx)) -> dict[str, Any]:
    changed = await ctx.pool.run(ctx.reload)
    return {"reloaded": changed, "generation": ctx.store.generation, "products": len(ctx.store)}


@router.get("/images/{pid:path}", tags=["catalogue"], summary="A product's image, by product id",
            response_class=FileResponse, responses={200: {"content": {"image/jpeg": {}, "image/png": {}}},
                                                    **_errors(404)})
async def image(pid: str, request: Request, v: str | None = Query(None, max_length=64),
                n: int = Query(0, ge=0, le=64, description="the product's n-th other picture (more_images); 0: its main one"),
                ctx: WebContext = Depends(get_ctx)) -> Response:
    path, media = service.stored_image(ctx.store, pid, n)
    digest = path.stem
    etag = f'"{digest}"'
    immutable = v is not None and len(v) >= 8 and digest.startswith(v)
    headers = {"ETag": etag,
               "Cache-Control": "public, max-age=31536000, immutable" if immutable else "public, max-age=300"}
    inm = request.headers.get("if-none-match")
    if inm and (inm.strip() == "*" or etag in [t.strip().removeprefix("W/") for t in inm.split(",")]):
        return Response(status_code=304, headers=headers)
    return FileResponse(path, media_type=media, headers=headers)
