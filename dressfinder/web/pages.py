"""HTML pages: home (upload / URL / crop box / filters), results, product page.

Pages work without JavaScript (a plain multipart form); ``static/app.js`` adds drag-and-drop,
paste, a preview and drawing the crop box.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from markupsafe import Markup, escape

from ..catalog import display_title
from ..search import Closeness, box_json, shown_scores
from ..errors import DressfinderError
from . import service
from .api import links, run_search
from .deps import WebContext, get_ctx, read_upload
from .middleware import validation_message
from .models import DEFAULT_K, FILTER_NAMES, MAX_K, SearchParams, safe_http_url

router = APIRouter(include_in_schema=False)

K_CHOICES = (6, 12, 24, 48)


def money(price: float | None, currency: str | None) -> str | None:
    if price is None:
        return None
    symbols = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "INR": "₹"}
    cur = (currency or "").upper()
    amount = f"{price:,.0f}" if cur == "JPY" else f"{price:,.2f}"
    if cur in symbols:
        return f"{symbols[cur]}{amount}"
    return f"{amount} {currency}" if currency else amount


#: How ``availability`` reads on a page.
AVAILABILITY_LABELS = {"in_stock": "In stock", "out_of_stock": "Sold out", "preorder": "Pre-order",
                       "backorder": "Back-order"}


def offer(p: Any) -> dict[str, Any]:
    """A product's price, sale price (when below it) and availability as the pages show them."""
    on_sale = p.sale_price is not None and (p.price is None or p.sale_price < p.price)
    return {"price": money(p.sale_price if on_sale else p.price, p.currency),
            "was_price": money(p.price, p.currency) if on_sale and p.price is not None else None,
            "availability": p.availability, "availability_label": AVAILABILITY_LABELS.get(p.availability or "")}


def breakable(text: str) -> Markup:
    """``text`` escaped, with a line-break opportunity (<wbr>) after each _ - / and . inside it, so
    a long file-like name wraps there rather than in the middle of a word."""
    return Markup("<wbr>").join(escape(piece) for piece in re.split(r"(?<=[_\-/.])(?=.)", text))


def _cards(hits: list, lk: service.Links, k: int, closeness: Closeness) -> list[dict[str, Any]]:
    """Result cards: what each shows is its :func:`search.shown_scores` score, named by ``closeness``."""
    return [_card(i, h, lk, k, shown, closeness) for i, (h, shown) in enumerate(zip(hits, shown_scores(hits)), 1)]


def _closeness(ctx: WebContext) -> Closeness:
    return service.closeness(ctx.store)


def _card(rank: int, hit: Any, lk: service.Links, k: int, shown: float, closeness: Closeness) -> dict[str, Any]:
    p = hit.product
    title = display_title(p)
    return {"rank": rank, "id": hit.id, "score": shown, "closeness": closeness.label(shown),
            "title": title, "title_html": breakable(title),
            **offer(p), "shop": p.shop, "category": p.category, "brand": p.brand,
            "shop_url": safe_http_url(p.url), "image": lk.image(hit.id, hit.file, getattr(hit, "image", 0)),
            "page": lk.page(hit.id), "like": lk.like(hit.id, k)}


def _home_context(ctx: WebContext, **extra: Any) -> dict[str, Any]:
    f = service.facets(ctx.store)
    values = {"k": DEFAULT_K, "image_url": "", "min_price": None, "max_price": None, "shop": None,
              "category": None, "availability": None, "brand": None}
    values.update(extra.pop("values", None) or {})
    return {"shops": f.get("shop", []), "categories": f.get("category", []), "brands": f.get("brand", []),
            "availabilities": [(a, AVAILABILITY_LABELS.get(a, a)) for a in f.get("availability", [])],
            "k_choices": K_CHOICES,
            "values": values, "products": len(ctx.store), **extra}


def _render(request: Request, name: str, context: dict[str, Any], status: int = 200,
            headers: dict[str, str] | None = None) -> Response:
    return request.app.state.templates.TemplateResponse(request, name, context, status_code=status,
                                                        headers=headers)


@router.get("/", response_class=HTMLResponse)
async def home(request: Request, ctx: WebContext = Depends(get_ctx)) -> Response:
    return _render(request, "home.html", _home_context(ctx))


@router.post("/search", response_class=HTMLResponse)
async def search_page(request: Request, ctx: WebContext = Depends(get_ctx)) -> Response:
    """The home page's form: a photo (file or URL), k, crop box and filters."""
    values: dict[str, Any] = {}
    try:
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype not in ("multipart/form-data", "application/x-www-form-urlencoded"):
            raise DressfinderError("send the search form (multipart/form-data)")
        form = await request.form(max_files=1, max_fields=32)
        values = {k: v for k, v in form.items() if isinstance(v, str)}
        upload = form.get("file")
        has_file = isinstance(upload, UploadFile) and (upload.filename or (upload.size or 0) > 0)
        fields = {k: v for k, v in values.items() if k != "like"}
        if has_file:
            fields.pop("image_url", None)   # a chosen photo wins over a pasted URL
        try:
            params = service.params_from_form(fields, SearchParams)
        except ValidationError as e:
            raise DressfinderError(validation_message(RequestValidationError(service.validation_errors(e))))
        data = await read_upload(upload, ctx.settings.max_upload_bytes) if has_file else None
        if data is None and not params.image_url:
            raise DressfinderError("choose a photo, drop one here, or paste an image URL")
        async with ctx.pool.admit():
            outcome, source = await run_search(ctx, params, data, preview=True)
    except DressfinderError as e:
        status = int(getattr(e, "status", 400) or 400)
        headers = {"Retry-After": "1"} if status == 503 else None
        return _render(request, "home.html", _home_context(ctx, error=str(e), values=values), status, headers)
    lk = links(request)
    closeness = _closeness(ctx)
    query = {"source": source, "preview": outcome.preview, "image_url": params.image_url if source == "url" else None,
             **_region_context(outcome, lk, params.k, closeness)}
    return _render(request, "results.html", {
        "query": query, "cards": _cards(outcome.hits, lk, params.k, closeness),
        "nothing_close": not closeness.anything_close(shown_scores(outcome.hits)[:1]),
        "k": params.k, "took_ms": outcome.seconds * 1000, "filters": params.filters(), "title": "Your matches",
        "refine_filters": params.model_dump(include=set(FILTER_NAMES), exclude_none=True)})


def _region_context(outcome: service.SearchOutcome, lk: service.Links, k: int, closeness: Closeness) -> dict[str, Any]:
    """The box searched (drawn unless it is the whole photo), the other regions found, each with its
    first results as cards, and the other dresses the box head saw (``detected``: no results until
    one is tapped, which searches its box)."""
    box = box_json(outcome.region) if outcome.region is not None else None
    whole = box is None or box == [0.0, 0.0, 1.0, 1.0]
    others = [{"box": box_json(r.box), "score": r.score,
               "cards": _cards(r.hits[:6], lk, k, closeness)} for r in outcome.others]
    detected = [{"box": box_json(b), "peak": p} for b, p in outcome.detected]
    return {"crop": None if whole else box, "region": box, "region_kind": outcome.region_kind, "others": others,
            "detected": detected,
            "closeup": bool(outcome.found is not None and outcome.found.closeup)}


@router.get("/search", response_class=HTMLResponse)
async def like_page(request: Request, like: str | None = Query(None, max_length=512),
                    k: int = Query(DEFAULT_K, ge=1, le=MAX_K), ctx: WebContext = Depends(get_ctx)) -> Response:
    """"More like this": search with a catalogue product's picture, nothing uploaded."""
    if not like:
        return RedirectResponse(str(request.url_for("home")), status_code=303)
    product, file = service.product_record(ctx.store, like)
    outcome = await ctx.pool.call(service.similar_to, ctx.store, like, k=k)
    lk = links(request)
    closeness = _closeness(ctx)
    query = {"source": "product", "preview": lk.image(like, file), "crop": None, "others": [], "product": product,
             "page": lk.page(like), "title": display_title(product)}
    return _render(request, "results.html", {
        "query": query, "cards": _cards(outcome.hits, lk, k, closeness), "k": k,
        "nothing_close": not closeness.anything_close(shown_scores(outcome.hits)[:1]),
        "took_ms": outcome.seconds * 1000, "filters": None, "title": f"More like {display_title(product)}"})


@router.get("/products/{pid:path}", response_class=HTMLResponse)
async def product_page(pid: str, request: Request, ctx: WebContext = Depends(get_ctx)) -> Response:
    """A catalogue product and its similar items ("you may also like")."""
    product, file = service.product_record(ctx.store, pid)
    outcome = await ctx.pool.call(service.similar_to, ctx.store, pid, k=DEFAULT_K)
    lk = links(request)
    return _render(request, "product.html", {
        "product": product, "image": lk.image(pid, file), **offer(product),
        "shop_url": safe_http_url(product.url), "like": lk.like(pid, DEFAULT_K),
        "cards": _cards(outcome.hits, lk, DEFAULT_K, _closeness(ctx)),
        "title": display_title(product)})
