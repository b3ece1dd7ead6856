"""A drop-in "similar dresses" block for a shop's own product pages, and its numbers.

* ``GET /embed/similar/{id}``: a small HTML fragment (no ``<html>``; its stylesheet is linked from
  inside it, its links and images are absolute), cacheable like the similar-items JSON (``ETag`` per
  store generation and parameters, ``Cache-Control``, 304). Each card links to the product's own
  ``url`` at the shop; products without an http(s) ``url`` and, where the catalogue says so,
  products out of stock (:func:`in_stock`) are left out. CORS from the configured origins
  (``DRESSFINDER_EMBED_ORIGINS`` and ``DRESSFINDER_CORS_ORIGINS``).
* ``GET /embed/frame/similar/{id}``: the same block as a whole page for an ``<iframe>``, which only
  the embed origins may frame (``Content-Security-Policy: frame-ancestors ...`` on this page only;
  without embed origins it is framed by nobody, as every other page).
* ``/static/embed.js``: what a shop pastes under its product template,
  ``<div data-dressfinder-similar="SKU"></div><script src="https://HOST/static/embed.js" async></script>``:
  fetches the fragment, inserts it, reports the view once the block is on screen and each click.
* ``POST /api/events``: the beacon, ``{"type": "view"|"click", "query": QID, "product": ID,
  "item": ID}`` (JSON, sent as text/plain by ``navigator.sendBeacon``); 204. Stored by
  :class:`events.EventLog`, nothing about the visitor.
"""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from ..catalog import display_title
from ..errors import DressfinderError
from .. import schema
from ..schema import MAX_ID_LENGTH
from . import service
from .api import public_base
from .caching import cache_headers, matches, not_modified, store_etag
from .deps import WebContext, get_ctx
from .events import KINDS
from .middleware import CSP
from .models import MAX_K, safe_http_url
from .pages import offer

log = logging.getLogger(__name__)
router = APIRouter()

EMBED_K = 6
MAX_EVENT_BYTES = 4096


def in_stock(product: Any) -> bool:
    """False only when the catalogue says the product cannot be bought now (``schema.availability``
    reads it as out_of_stock); unknown counts as in stock, preorder and backorder can be ordered."""
    return schema.availability(getattr(product, "availability", None)) != "out_of_stock"


def _block_hits(store: Any, pid: str, k: int, all_stock: bool) -> list:
    """The first ``k`` similar products a shop can link to: with an http(s) url and, unless
    ``all_stock``, in stock. Asks the ranking for more and keeps its order."""
    want = min(MAX_K, max(k * 3, k + 12))
    hits = service.similar_to(store, pid, k=want, in_stock=not all_stock).hits   # the ranking leaves sold-out out
    keep = [h for h in hits if safe_http_url(h.product.url) and (all_stock or in_stock(h.product))]
    return keep[:k]


def _frame_csp(origins: tuple[str, ...]) -> str:
    ancestors = " ".join(origins) if origins else "'none'"
    return CSP.replace("frame-ancestors 'none'", f"frame-ancestors {ancestors}")


async def _block(request: Request, ctx: WebContext, pid: str, k: int, all_stock: bool, template: str,
                 headers: dict[str, str] | None = None) -> Response:
    product, _ = service.product_record(ctx.store, pid)
    base = public_base(request)
    etag = store_etag(ctx.store, template, pid, k, all_stock, base)
    if matches(request, etag):
        return not_modified(etag)
    hits = await ctx.pool.call(_block_hits, ctx.store, pid, k, all_stock)
    lk = service.Links(base)
    cards = [{"rank": i, "id": h.id, "title": display_title(h.product), **offer(h.product),
              "url": safe_http_url(h.product.url), "image": lk.image(h.id, h.file, h.image)} for i, h in enumerate(hits, 1)]
    context = {"product": product, "cards": cards, "base": base, "query_id": etag.strip('"'),
               "title": f"Similar to {display_title(product)}"}
    return request.app.state.templates.TemplateResponse(
        request, template, context, headers={**cache_headers(etag), **(headers or {})})


@router.get("/embed/frame/similar/{pid:path}", response_class=HTMLResponse, tags=["embed"],
            summary="The similar-products block as a page for an iframe (framed by the embed origins only)")
async def embed_frame(pid: str, request: Request, k: int = Query(EMBED_K, ge=1, le=24),
                      all_stock: bool = Query(False, alias="all", description="include products out of stock"),
                      ctx: WebContext = Depends(get_ctx)) -> Response:
    return await _block(request, ctx, pid, k, all_stock, "embed_frame.html",
                        {"Content-Security-Policy": _frame_csp(ctx.settings.embed_origins)})


@router.get("/embed/similar/{pid:path}", response_class=HTMLResponse, tags=["embed"],
            summary="The similar-products block: an HTML fragment for a shop's product page",
            responses={304: {"description": "If-None-Match named the current ETag"}})
async def embed_similar(pid: str, request: Request, k: int = Query(EMBED_K, ge=1, le=24),
                        all_stock: bool = Query(False, alias="all", description="include products out of stock"),
                        ctx: WebContext = Depends(get_ctx)) -> Response:
    """Cards of the `k` most similar products that link to the shop (`url`), in stock unless `all=true`."""
    return await _block(request, ctx, pid, k, all_stock, "embed_block.html")


def _allowed_origin(request: Request, ctx: WebContext) -> bool:
    """No Origin (not a browser's cross-site call), our own, or one the settings allow."""
    origin = request.headers.get("origin")
    if origin is None:
        return True
    own = urlsplit(public_base(request))
    return origin in (f"{own.scheme}://{own.netloc}", *ctx.settings.embed_origins, *ctx.settings.cors_origins)


@router.post("/api/events", status_code=204, response_class=Response, tags=["embed"],
             summary="Count a view of the embed block or a click in it (its beacon)",
             responses={204: {"description": "counted"}})
async def api_events(request: Request, ctx: WebContext = Depends(get_ctx)) -> Response:
    """JSON `{"type": "view"|"click", "query": "...", "product": "ID", "item": "ID"}` (any content
    type: `navigator.sendBeacon` sends text/plain). Nothing about the visitor is stored."""
    if not _allowed_origin(request, ctx):
        raise HTTPException(403, "This site may not report views and clicks here.")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_EVENT_BYTES:
            raise HTTPException(413, "An event is a few hundred bytes; this one is too large.")
    try:
        event = json.loads(body or b"null")
    except (ValueError, UnicodeDecodeError):
        raise DressfinderError("The event is not valid JSON.") from None
    if not isinstance(event, dict):
        raise DressfinderError('Send an event as a JSON object, e.g. {"type": "view", "product": "ID"}.')
    kind, product, item, query = (event.get(n) for n in ("type", "product", "item", "query"))
    if kind not in KINDS:
        raise DressfinderError("The event's type must be view or click.")
    for name, value in (("product", product), ("item", item), ("query", query)):
        if value is not None and (not isinstance(value, str) or len(value) > MAX_ID_LENGTH):
            raise DressfinderError(f"The event's {name} must be a product id (text).")
    if not product or (kind == "click" and not item):
        raise DressfinderError("A view names its product; a click names its product and the item clicked.")
    for pid in (product, item):
        if pid is not None:
            ctx.store.product(pid)    # 404 for a product this store does not have
    if ctx.events is None:
        return Response(status_code=204, headers={"Cache-Control": "no-store"})
    try:
        await run_in_threadpool(ctx.events.record, kind, product, query=query, item=item)
    except Exception as e:  # a read-only store folder, a full disk: the shop's page must not care
        log.warning("cannot record an event in %s: %s", ctx.events.path, e)
    return Response(status_code=204, headers={"Cache-Control": "no-store"})


__all__ = ["router", "in_stock", "availability"]
