"""The embed block's numbers for the shop: ``GET /stats`` (a page: views, clicks and click-through
per day, with a chart, and per product; ``?format=json`` for the same as JSON) and
``dressfinder stats --store S`` (the same in a terminal).

The page needs the server's API key, as the write routes do: ``Authorization: Bearer KEY``, or
HTTP Basic with the key as the password (any user name), which a browser asks for. Without a key
configured the page is off (403).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hmac
import json
from pathlib import Path

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from .deps import WebContext, get_ctx
from .events import FILE, EventLog, Row, Stats, chart_svg

router = APIRouter(include_in_schema=False)
REALM = 'Basic realm="dressfinder stats", charset="UTF-8"'


def _given_key(request: Request) -> str:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        return value.strip()
    if scheme.lower() == "basic":
        try:
            return base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")[2]
        except (binascii.Error, UnicodeDecodeError):
            return ""
    return ""


def require_stats_key(request: Request, ctx: WebContext = Depends(get_ctx)) -> None:
    expected = ctx.settings.api_key
    if not expected:
        raise HTTPException(403, "The statistics page is off on this server. Start it with DRESSFINDER_API_KEY "
                                 "set to turn it on.")
    if not hmac.compare_digest(_given_key(request).encode("utf-8"), expected.encode("utf-8")):
        raise HTTPException(401, "The statistics page needs the server's API key: give it as the password "
                                 "(any user name), or send Authorization: Bearer KEY.",
                            headers={"WWW-Authenticate": REALM})


def percent(r: Row) -> str:
    return "–" if r.ctr is None else f"{100 * r.ctr:.1f} %"


@router.get("/stats", response_class=HTMLResponse, dependencies=[Depends(require_stats_key)])
async def stats_page(request: Request, days: int = Query(30, ge=1, le=366), format: str = Query("html"),
                     ctx: WebContext = Depends(get_ctx)) -> Response:
    """Views, clicks and click-through of the embed block, per day and per product."""
    if ctx.events is None:
        stats = Stats()
    else:
        stats = await run_in_threadpool(ctx.events.stats, days)
    headers = {"Cache-Control": "no-store"}
    if format == "json":
        return JSONResponse(stats.to_dict(), headers=headers)
    return request.app.state.templates.TemplateResponse(request, "stats.html", {
        "stats": stats, "days": days, "chart": chart_svg(stats.days) if stats.days else "", "percent": percent,
        "title": "Similar-dresses block: views and clicks"}, headers=headers)


# --------------------------------------------------------------------------- dressfinder stats

def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--store", default=None, help="store folder (else DRESSFINDER_STORE); its events.sqlite is read")
    p.add_argument("--days", type=int, default=30, help="the last N days, today (UTC) included (default 30)")
    p.add_argument("--top", type=int, default=20, help="products listed (default 20)")
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    line = lambda cells: "  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w)  # noqa: E731
                                   for i, (c, w) in enumerate(zip(cells, widths)))
    return "\n".join([line(header), *(line(r) for r in rows)])


def run(args: argparse.Namespace) -> int:
    from ..errors import DressfinderError
    from ..settings import Settings

    settings = Settings.from_env(store=args.store)
    if not settings.store:
        raise DressfinderError("no store given: use --store DIR or set DRESSFINDER_STORE")
    folder = Path(settings.store)
    if not folder.is_dir():
        raise DressfinderError(f"no store folder at {folder}")
    stats = EventLog(folder / FILE).stats(max(1, args.days), top=max(1, args.top))
    if args.json:
        print(json.dumps(stats.to_dict(), indent=2))
        return 0
    t = stats.total
    print(f"{folder}: {stats.since} to {stats.until} (UTC): {t.views} views, {t.clicks} clicks, "
          f"click-through {percent(t)}")
    print()
    print(_table([[r.key, r.views, r.clicks, percent(r)] for r in stats.days], ["day", "views", "clicks", "CTR"]))
    if stats.products:
        print()
        print(_table([[r.key, r.views, r.clicks, percent(r)] for r in stats.products],
                     ["shown for product", "views", "clicks", "CTR"]))
    if stats.clicked:
        print()
        print(_table([[r.key, r.clicks] for r in stats.clicked], ["clicked product", "clicks"]))
    return 0


__all__ = ["router", "add_arguments", "run", "require_stats_key"]
