"""What the routes share: the app context (store, settings, worker pool, fetcher), the bounded
worker pool, the API-key check and reading an upload under the size limit."""

from __future__ import annotations

import asyncio
import hmac
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any, AsyncIterator, Callable, TypeVar

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from ..errors import DressfinderError, ImageError, ImageTooLarge, NotAnImage
from ..settings import Settings, default_threads, human_bytes
from .fetch import ImageFetcher

log = logging.getLogger(__name__)
T = TypeVar("T")

CHUNK = 64 * 1024
FORM_OVERHEAD = 256 * 1024   # room for multipart boundaries and the text fields beside the file


class Overloaded(DressfinderError):
    """More requests are waiting than the queue holds."""

    status = 503


class WorkerPool:
    """Runs CPU-heavy work (decode, encode, search, index updates) in threads, off the event loop.

    At most ``workers`` jobs run at once and at most ``max_queue`` more wait; a request beyond
    that is refused at once with 503 (``Overloaded``) instead of piling up. ``admit()`` holds a
    slot for a whole request (URL download included); ``run()`` runs one job in a thread.
    """

    def __init__(self, workers: int, max_queue: int):
        self.workers = max(1, int(workers))
        self.max_queue = max(0, int(max_queue))
        self.capacity = self.workers + self.max_queue
        self.active = 0          # admitted requests (running or waiting); only touched on the event loop
        self.refused = 0
        self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="dressfinder-web")

    @asynccontextmanager
    async def admit(self) -> AsyncIterator[None]:
        if self.active >= self.capacity:
            self.refused += 1
            raise Overloaded(f"the server is busy ({self.active} searches in progress); try again in a moment")
        self.active += 1
        try:
            yield
        finally:
            self.active -= 1

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, partial(fn, *args, **kwargs))

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``admit()`` + ``run()``: one bounded job."""
        async with self.admit():
            return await self.run(fn, *args, **kwargs)

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


@dataclass
class WebContext:
    """Everything a request needs, made once by ``create_app`` and kept on ``app.state.ctx``."""

    store: Any                     # dressfinder.store.Store (kept loose: heavy import)
    settings: Settings
    pool: WorkerPool
    fetcher: ImageFetcher
    write_lock: threading.Lock = field(default_factory=threading.Lock)
    reloads: int = 0
    events: Any = None             # events.EventLog in the store folder (None: a store with no folder)

    def reload(self) -> bool:
        """Pick up a store rebuilt or changed by another process (serialised with our own writes)."""
        with self.write_lock:
            changed = bool(self.store.reload())
        if changed:
            self.reloads += 1
            log.info("store reloaded: generation %s, %d products", self.store.generation, len(self.store))
        return changed


def default_workers(settings: Settings) -> int:
    if settings.workers and settings.workers > 0:
        return settings.workers
    return default_threads()


def get_ctx(request: Request) -> WebContext:
    return request.app.state.ctx


_bearer = HTTPBearer(auto_error=False, description="The server's DRESSFINDER_API_KEY")


def require_api_key(credentials: HTTPAuthorizationCredentials | None = Depends(_bearer),
                    ctx: WebContext = Depends(get_ctx)) -> None:
    """Changing the catalogue needs ``Authorization: Bearer KEY``; with no key configured it is off."""
    expected = ctx.settings.api_key
    if not expected:
        raise HTTPException(403, "changing the catalogue over the API is disabled on this server "
                                 "(start it with DRESSFINDER_API_KEY set to enable it)")
    given = credentials.credentials if credentials is not None else ""
    if not hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8")):
        raise HTTPException(401, "missing or wrong API key: send the header Authorization: Bearer KEY",
                            headers={"WWW-Authenticate": "Bearer"})


async def read_upload(upload: Any, limit: int, what: str = "file") -> bytes:
    """The bytes of an uploaded file, read in chunks and refused as soon as they pass ``limit``.

    (The request body as a whole is already capped while it arrives, by ``BodyLimitMiddleware``.)
    """
    if upload is None or upload == "":
        raise ImageError(f"no {what}: choose a photo to upload")
    if not isinstance(upload, UploadFile):
        raise ImageError(f"'{what}' must be a file upload (multipart/form-data), not a text field")
    too_large = ImageTooLarge(f"the {what} is larger than the {human_bytes(limit)} limit")
    if upload.size is not None and upload.size > limit:
        raise too_large
    buf = bytearray()
    while True:
        chunk = await upload.read(CHUNK)
        if not chunk:
            break
        buf += chunk
        if len(buf) > limit:
            raise too_large
    if not buf:
        raise NotAnImage(f"the {what} is empty (0 bytes)")
    return bytes(buf)
