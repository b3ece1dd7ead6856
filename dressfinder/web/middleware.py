"""Error responses and the ASGI middleware around the app.

Every failure answers with the right 4xx/5xx status and a one-line message, never a traceback:
JSON ``{"error": {"status": 413, "message": "..."}}`` for the API, a friendly HTML page for the
web pages. Middleware: a request-body cap enforced while the body arrives, a last-resort catch
for unexpected exceptions (logged, answered 500), and security headers (CSP on our pages).
"""

from __future__ import annotations

import logging
import re
from typing import Any, Mapping

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import DressfinderError

log = logging.getLogger(__name__)

API_PREFIXES = ("/api/", "/upload", "/healthz", "/images/", "/static/", "/docs", "/redoc", "/openapi.json",
                "/embed/similar/")
PAGE_PREFIXES = ("/search", "/products/", "/embed/frame/", "/stats")
CSP = ("default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
       "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


def _route_path(scope: Scope) -> str:
    path = scope.get("path", "")
    root = scope.get("root_path", "")
    return path[len(root):] if root and path.startswith(root) else path


def wants_html(scope: Scope) -> bool:
    """API routes answer JSON; pages (and unknown paths asked for by a browser) answer HTML."""
    path = _route_path(scope)
    if path == "/api" or path.startswith(API_PREFIXES):
        return False
    if path == "/" or path.startswith(PAGE_PREFIXES):
        return True
    accept = dict(scope.get("headers") or []).get(b"accept", b"").decode("latin-1")
    return "text/html" in accept


#: Technical lines from the image decoder, said the way a shopper reads them (the status is kept).
_PLAIN = [(re.compile(r"^(not an image|cannot read image|corrupt or truncated image|unsupported image format|"
                      r"image has no pixels|cannot convert image)\b", re.I),
           "This file is not an image we can read; choose a JPEG, PNG or WebP photo."),
          (re.compile(r"^(empty file\b|the file is empty)", re.I), "The file is empty; choose a photo."),
          (re.compile(r"^no file: choose a photo", re.I), "No file was sent; choose a photo to upload.")]


def sentence(message: str) -> str:
    """An error message as a shopper reads it: the decoder's technical lines replaced by a plain
    sentence (:data:`_PLAIN`), and every message capitalised and ending with a full stop."""
    text = (message or "").strip() or "That did not work"
    for pattern, plain in _PLAIN:
        if pattern.search(text):
            return plain
    text = text[0].upper() + text[1:]
    return text if text[-1] in ".!?" else text + "."


def error_response(request: Request, status: int, message: str,
                   headers: Mapping[str, str] | None = None) -> Response:
    message = sentence(message)
    headers = dict(headers or {})
    if status == 503:
        headers.setdefault("Retry-After", "1")
    templates = getattr(request.app.state, "templates", None) if "app" in request.scope else None
    if templates is not None and wants_html(request.scope):
        try:
            return templates.TemplateResponse(request, "error.html", {"status": status, "message": message},
                                              status_code=status, headers=headers)
        except Exception:  # never fail while failing
            log.exception("cannot render the error page")
    return JSONResponse({"error": {"status": status, "message": message}}, status_code=status, headers=headers)


def validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = [str(x) for x in err.get("loc", ()) if x not in ("body", "query", "path", "header", "form")]
        msg = err.get("msg", "invalid value")
        parts.append(f"{'.'.join(loc)}: {msg}" if loc else msg)
    return "; ".join(parts) or "invalid request"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> Response:
        message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 404 and message == "Not Found":
            message = f"nothing here: {request.url.path}"
        elif exc.status_code == 405 and message == "Method Not Allowed":
            message = f"{request.method} is not allowed on {request.url.path}"
        return error_response(request, exc.status_code, message, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        return error_response(request, 422, validation_message(exc))

    @app.exception_handler(DressfinderError)
    async def _dressfinder(request: Request, exc: DressfinderError) -> Response:
        status = int(getattr(exc, "status", 400) or 400)
        if status >= 500:
            log.error("%s %s: %s", request.method, request.url.path, exc)
        return error_response(request, status, str(exc))


# --------------------------------------------------------------------------- ASGI middleware

class BodyTooLarge(HTTPException):
    def __init__(self, limit: int):
        from ..settings import human_bytes

        # Connection: close: the rest of an oversized body is never read on this connection
        super().__init__(413, f"the request is larger than the {human_bytes(limit)} limit",
                         headers={"Connection": "close"})


def _declared_length(scope: Scope) -> int | None:
    raw = dict(scope.get("headers") or []).get(b"content-length")
    try:
        return int(raw) if raw is not None else None
    except ValueError:
        return None


class BodyLimitMiddleware:
    """Caps every request body at ``max_bytes``: refused from ``Content-Length`` before the app
    reads anything, and counted while it streams in (chunked uploads).

    A client that sends its whole body before reading the answer (Python's urllib, ``curl -H
    'Expect:'``, a browser's form post) would get a connection reset if we answered and closed
    while its body is still arriving; so the rest of the body, up to ``drain_bytes``, is read and
    thrown away first, then the 413 is sent. A client that asked ``Expect: 100-continue`` is
    answered at once (it has not sent the body), and so is one that declares more than
    ``drain_bytes``."""

    def __init__(self, app: ASGIApp, max_bytes: int, drain_bytes: int = 0):
        self.app = app
        self.max_bytes = int(max_bytes)
        self.drain_bytes = max(int(drain_bytes), self.max_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _declared_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._refuse(scope, receive, send, 0)
            return
        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if started:
                raise
            await self._refuse(scope, receive, send, seen)

    async def _drain(self, receive: Receive, seen: int) -> None:
        """Read and drop the rest of the body, up to ``drain_bytes`` in all."""
        while seen <= self.drain_bytes:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            seen += len(message.get("body", b""))
            if not message.get("more_body", False):
                return

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, seen: int) -> None:
        headers = dict(scope.get("headers") or [])
        declared = _declared_length(scope)
        waits = headers.get(b"expect", b"").lower() == b"100-continue" and seen == 0
        if not waits and (declared is None or declared <= self.drain_bytes):
            await self._drain(receive, seen)
        exc = BodyTooLarge(self.max_bytes)
        response = error_response(Request(scope, receive), 413, exc.detail, exc.headers)
        await response(scope, receive, send)


class CatchAllMiddleware:
    """An unexpected exception is logged with its traceback and answered 500 with one line."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            log.exception("unexpected error on %s %s", scope.get("method"), scope.get("path"))
            if started:
                raise
            response = error_response(Request(scope, receive), 500,
                                      "internal error: the server could not answer this request")
            await response(scope, receive, send)


class SecurityHeadersMiddleware:
    """nosniff, no framing, a referrer policy; a strict Content-Security-Policy on our HTML pages."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = _route_path(scope)
        docs = path.startswith(("/docs", "/redoc"))

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers: list[Any] = list(message.get("headers") or [])
                names = {k.lower() for k, _ in headers}
                extra = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"same-origin")]
                own_csp = next((v for k, v in headers if k.lower() == b"content-security-policy"), b"")
                # a page that names who may frame it (the embed frame, for the shop's origins) has
                # no X-Frame-Options: DENY, which would override it; every other page keeps it
                framable = b"frame-ancestors" in own_csp and b"frame-ancestors 'none'" not in own_csp
                if not docs and not framable:
                    extra.append((b"x-frame-options", b"DENY"))
                ctype = next((v for k, v in headers if k.lower() == b"content-type"), b"")
                if ctype.startswith(b"text/html") and not docs:
                    extra.append((b"content-security-policy", CSP.encode()))
                headers += [(k, v) for k, v in extra if k not in names]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
