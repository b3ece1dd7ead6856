"""The web app and JSON API of one store: ``create_app(store, settings) -> FastAPI``.

Nothing is created at import time: settings are read from the environment when an app is made
(``Settings.from_env()``), and everything a request needs (store, settings, worker pool, URL
fetcher, templates) lives on ``app.state``.

    from dressfinder.web import create_app
    app = create_app("stores/shop")                  # or a Store; settings from DRESSFINDER_* variables
    # uvicorn.run(app, host="127.0.0.1", port=2000)   # what `dressfinder serve` / `python api.py` do
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, AsyncIterator

from .. import __version__

if TYPE_CHECKING:  # pragma: no cover
    from fastapi import FastAPI

    from ..search import Searchable
    from ..settings import Settings

log = logging.getLogger(__name__)
HERE = Path(__file__).resolve().parent


def create_app(store: "Searchable | str | Path | None" = None, settings: "Settings | None" = None) -> "FastAPI":
    """A FastAPI app serving ``store`` (a ``Store`` or ``MilvusStore``, or the folder of one;
    default: settings.store)."""
    from fastapi import FastAPI
    from fastapi.staticfiles import StaticFiles
    from fastapi.templating import Jinja2Templates

    from ..backends import open_store
    from ..errors import DressfinderError
    from ..search import Searchable
    from ..settings import Settings, human_bytes
    from . import api, embed, pages, stats
    from .deps import WebContext, WorkerPool, default_workers
    from .events import FILE as EVENTS_FILE, EventLog
    from .fetch import ImageFetcher
    from .middleware import install_error_handlers

    settings = settings or Settings.from_env()
    if store is None:
        if not settings.store:
            raise DressfinderError("no store given: use --store DIR or set DRESSFINDER_STORE")
        store = settings.store
    folder = getattr(store, "root", None)
    if not isinstance(store, Searchable):
        folder = Path(store)
        store = open_store(store, milvus_token=settings.milvus_token)

    ctx = WebContext(
        store=store, settings=settings,
        pool=WorkerPool(default_workers(settings), settings.max_queue),
        fetcher=ImageFetcher(max_bytes=settings.max_upload_bytes, timeout=settings.url_timeout,
                             max_redirects=settings.url_max_redirects, allow_private=settings.allow_private_urls),
        events=EventLog(Path(folder) / EVENTS_FILE) if folder is not None else None)

    app = FastAPI(
        title="dressfinder", version=__version__, lifespan=_lifespan(ctx),
        summary="Visual search for dresses: send a photo, get the most similar dresses stores sell.",
        description=(f"Serving a store of {len(store)} products. Errors are JSON "
                     "`{\"error\": {\"status\": 4xx, \"message\": \"...\"}}`. Uploads up to "
                     f"{human_bytes(settings.max_upload_bytes)}. Adding and removing products needs "
                     "`Authorization: Bearer KEY` (the server's `DRESSFINDER_API_KEY`)."),
    )
    app.state.ctx = ctx
    app.state.settings = settings
    app.state.store = store
    templates = Jinja2Templates(directory=str(HERE / "templates"), context_processors=[_template_globals])
    templates.env.globals.update(version=__version__)
    app.state.templates = templates

    install_error_handlers(app)
    app.include_router(api.router)
    app.include_router(embed.router)
    app.include_router(stats.router)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    _add_middleware(app, settings)
    return app


def _lifespan(ctx: Any):
    """Load the model at start-up; check for a changed store every ``reload_interval`` seconds and on
    SIGHUP; stop the worker pool at shutdown."""
    from ..errors import DressfinderError

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        try:
            await ctx.pool.run(lambda: ctx.store.encoder)   # load the model now, not on the first search
        except DressfinderError as e:
            log.error("cannot load the store's encoder: %s", e)
        interval = ctx.settings.reload_interval
        tasks = [asyncio.create_task(_reload_loop(ctx, interval))] if interval and interval > 0 else []
        sighup = _install_sighup(loop, ctx)
        try:
            yield
        finally:
            for t in tasks:
                t.cancel()
            for t in tasks:
                try:
                    await t
                except (asyncio.CancelledError, Exception):
                    pass
            if sighup:
                loop.remove_signal_handler(signal.SIGHUP)
            ctx.pool.shutdown()

    return lifespan


def _add_middleware(app: Any, settings: Any) -> None:
    """Middleware, innermost first (each add_middleware wraps the ones before it)."""
    from starlette.middleware.cors import CORSMiddleware

    from .deps import FORM_OVERHEAD
    from .middleware import BodyLimitMiddleware, CatchAllMiddleware, SecurityHeadersMiddleware

    # the embed origins may fetch the embed block (and, like the CORS origins, call the JSON API)
    origins = list(dict.fromkeys((*settings.cors_origins, *settings.embed_origins)))
    if origins:
        app.add_middleware(CORSMiddleware, allow_origins=origins,
                           allow_methods=["GET", "POST", "DELETE"], allow_headers=["Authorization", "Content-Type"],
                           expose_headers=["X-Dressfinder-Id", "X-Dressfinder-Score", "ETag"])
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_upload_bytes + FORM_OVERHEAD, drain_bytes=settings.drain_bytes)
    app.add_middleware(CatchAllMiddleware)


def create_app_from_env() -> "FastAPI":
    """App factory for ``uvicorn --factory dressfinder.web:create_app_from_env`` (store from DRESSFINDER_STORE)."""
    return create_app()


def _template_globals(request: Any) -> dict[str, Any]:
    from ..settings import human_bytes
    from .service import Links

    ctx = request.app.state.ctx
    root = request.scope.get("root_path", "").rstrip("/")
    return {"links": Links(root), "root": root, "max_upload_bytes": ctx.settings.max_upload_bytes,
            "max_upload_text": human_bytes(ctx.settings.max_upload_bytes)}


async def _reload_loop(ctx: Any, interval: float) -> None:
    """Check the store folder for a rebuild every ``interval`` seconds (reading store.json is cheap)."""
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(interval)
        try:
            await loop.run_in_executor(None, ctx.reload)
        except Exception as e:  # a half-written rebuild, a full disk...: keep serving the old one
            log.warning("store reload failed, still serving generation %s: %s", ctx.store.generation, e)


def _install_sighup(loop: asyncio.AbstractEventLoop, ctx: Any) -> bool:
    """``kill -HUP PID`` reloads the store now (only where the server runs in the main thread)."""
    if not hasattr(signal, "SIGHUP") or threading.current_thread() is not threading.main_thread():
        return False

    def done(fut: "asyncio.Future[bool]") -> None:
        if not fut.cancelled() and fut.exception() is not None:
            log.warning("reload on SIGHUP failed: %s", fut.exception())

    def on_hup() -> None:
        loop.run_in_executor(None, ctx.reload).add_done_callback(done)

    try:
        loop.add_signal_handler(signal.SIGHUP, on_hup)
    except (NotImplementedError, RuntimeError, ValueError):
        return False
    return True


__all__ = ["create_app", "create_app_from_env"]
