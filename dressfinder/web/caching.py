"""HTTP caching of answers that depend only on the store and the request: the similar-items JSON
and the embed block. Their ``ETag`` names the store's generation (and its manifest token, which a
rebuild to the same generation number still changes), the route, the request's parameters and the
public base URL the links are made from; a matching ``If-None-Match`` is answered 304 before any
search runs."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from .. import __version__

#: Shared caches (a CDN, the shop's visitors' browsers) may keep an answer this long; after that
#: they revalidate with If-None-Match, which is cheap (no search) and answers 304 while the store
#: has not changed. The server checks for a rebuilt store every few seconds (reload_interval).
MAX_AGE = 300
CACHE_CONTROL = f"public, max-age={MAX_AGE}"


def store_etag(store: Any, *parts: Any) -> str:
    """A strong ETag for an answer made from ``store``'s current generation and ``parts`` (the
    route and its parameters, JSON-serialisable): ``"g<generation>-<hash>"``."""
    manifest = store.manifest
    key = json.dumps([__version__, manifest.get("token"), *parts], sort_keys=True, default=str)
    return f'"g{store.generation}-{hashlib.sha256(key.encode()).hexdigest()[:20]}"'


def matches(request: Request, etag: str) -> bool:
    """Whether the request's ``If-None-Match`` names ``etag`` (weak or strong, or ``*``)."""
    inm = request.headers.get("if-none-match")
    if not inm:
        return False
    tags = [t.strip().removeprefix("W/") for t in inm.split(",")]
    return "*" in tags or etag in tags


def cache_headers(etag: str) -> dict[str, str]:
    return {"ETag": etag, "Cache-Control": CACHE_CONTROL}


def not_modified(etag: str) -> Response:
    return Response(status_code=304, headers=cache_headers(etag))
