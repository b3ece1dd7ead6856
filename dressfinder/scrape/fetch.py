"""HTTP fetching, politely: robots.txt, per-host delay, retries with backoff, redirect and
size limits. One request at a time (the crawler is sequential), so at most one per host.

Redirects are followed by hand so that every hop is checked against the crawl's scope and
robots.txt, and a loop is reported as such.

``public_only=True`` (product feeds, whose image links are anyone's): every request's host is
resolved and each of its addresses must be public (``web.fetch.is_public_address``, the rule the
web app's URL fetcher keeps), and the connection goes to the address that was checked, so a
second DNS answer cannot point inside the network.
"""

from __future__ import annotations

import email.utils
import ipaddress
import logging
import socket
import time
from dataclasses import dataclass
from typing import Callable

import httpx
from w3lib.encoding import html_to_unicode

from .defaults import DEFAULT_BACKOFF, DEFAULT_DELAY, DEFAULT_MAX_REDIRECTS, DEFAULT_RETRIES, DEFAULT_TIMEOUT
from ..web.fetch import is_public_address
from .defaults import DEFAULT_USER_AGENT
from .errors import AlreadySeen, FetchError
from .robots import ROBOTS_MAX_BYTES, Robots
from .urls import Origin, normalize, origin

log = logging.getLogger(__name__)

REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})
RETRY_CODES = frozenset({429})        # plus every 5xx
MAX_RETRY_AFTER = 60.0

# Indirections so tests can observe or speed up waiting.
_sleep = time.sleep
_clock = time.monotonic


@dataclass
class Response:
    url: str                 # final URL, after redirects
    status: int
    headers: httpx.Headers
    body: bytes

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()

    def text(self) -> str:
        """The body decoded as HTML is: BOM, then HTTP charset, then <meta charset>, then UTF-8."""
        return html_to_unicode(self.headers.get("content-type"), self.body)[1]


class Fetcher:
    def __init__(self, *, user_agent: str = DEFAULT_USER_AGENT, delay: float = DEFAULT_DELAY,
                 timeout: float = DEFAULT_TIMEOUT, retries: int = DEFAULT_RETRIES,
                 backoff: float = DEFAULT_BACKOFF, max_redirects: int = DEFAULT_MAX_REDIRECTS,
                 transport: httpx.BaseTransport | None = None, public_only: bool = False,
                 accept: str | None = None):
        self.user_agent = user_agent
        self.public_only = bool(public_only)
        self.delay = float(delay)
        self.retries = max(1, int(retries))
        self.backoff = float(backoff)
        self.max_redirects = int(max_redirects)
        self.client = httpx.Client(
            headers={"User-Agent": user_agent,
                     "Accept": accept or "text/html,application/xhtml+xml,application/xml;q=0.9,image/*;q=0.8,*/*;q=0.5"},
            timeout=httpx.Timeout(timeout), follow_redirects=False, transport=transport)
        self._last: dict[Origin, float] = {}
        self.robots = Robots(user_agent, self._fetch_robots)
        self.requests = 0        # HTTP requests sent, retries and robots.txt included

    def close(self) -> None:
        self.client.close()

    # ------------------------------------------------------------------ politeness
    def host_delay(self, url: str) -> float:
        robots_delay = self.robots.delay(url)
        return max(self.delay, robots_delay or 0.0)

    def _wait_turn(self, url: str) -> None:
        o = origin(url)
        last = self._last.get(o)
        if last is not None:
            wait = self.host_delay(url) - (_clock() - last)
            if wait > 0:
                _sleep(wait)
        self._last[o] = _clock()

    # ------------------------------------------------------------------ requests
    def get(self, url: str, *, max_bytes: int, in_scope: Callable[[str], bool],
            check_robots: bool = True, truncate: bool = False,
            seen: Callable[[str], bool] | None = None) -> Response:
        """GET ``url`` following redirects within scope; raise ``FetchError`` on failure.

        ``seen(url)``: a redirect to a URL for which it is true is not followed
        (``AlreadySeen``), so a page reached twice is fetched once.
        """
        chain = {url}
        for _ in range(self.max_redirects + 1):
            if check_robots and not self.robots.allows(url):
                raise FetchError(self.robots.reason(url), url)
            resp = self._request(url, max_bytes, truncate)
            if resp.status in REDIRECT_CODES:
                location = resp.headers.get("location")
                target = normalize(location, url) if location else None
                if target is None:
                    raise FetchError("bad redirect", f"{url} -> {location!r}")
                if not in_scope(target):
                    raise FetchError("redirect to another host", f"{url} -> {target}")
                if target in chain:
                    raise FetchError("redirect loop", f"{url} -> {target}")
                if seen is not None and seen(target):
                    raise AlreadySeen("redirect to a page seen already", f"{url} -> {target}")
                chain.add(target)
                url = target
                continue
            if resp.status >= 400:
                raise FetchError(f"HTTP {resp.status}", url)
            return resp
        raise FetchError("too many redirects", url)

    def _pinned(self, url: str) -> tuple[httpx.URL | str, dict[str, str], dict[str, str]]:
        """(where to connect, headers, extensions) for ``url``: with ``public_only``, its host's
        checked address (the Host header and TLS name kept), else the URL as it is."""
        if not self.public_only:
            return url, {}, {}
        try:
            u = httpx.URL(url)
            host = u.raw_host.decode("ascii").strip("[]")
        except (httpx.InvalidURL, UnicodeError, ValueError) as e:
            raise FetchError("bad URL", f"{url}: {e}") from None
        try:
            addresses = [str(ipaddress.ip_address(host))]
        except ValueError:
            try:
                infos = socket.getaddrinfo(host, u.port or (443 if u.scheme == "https" else 80),
                                           type=socket.SOCK_STREAM)
            except (socket.gaierror, UnicodeError) as e:
                raise FetchError("cannot resolve host", f"{host}: {getattr(e, 'strerror', None) or e}") from None
            addresses = list(dict.fromkeys(i[4][0] for i in infos if i[0] in (socket.AF_INET, socket.AF_INET6)))
        if not addresses:
            raise FetchError("cannot resolve host", host)
        for a in addresses:
            if not is_public_address(a.split("%")[0]):
                raise FetchError("private address", f"{host} resolves to {a}; only public addresses are fetched "
                                                    "(allow private addresses to fetch from your own network)")
        ip = addresses[0]
        target = u.copy_with(host=ip)
        extensions = {"sni_hostname": host} if u.scheme == "https" else {}
        return target, {"Host": u.netloc.decode("ascii")}, extensions

    def _request(self, url: str, max_bytes: int, truncate: bool) -> Response:
        error: FetchError | None = None
        target, headers, extensions = self._pinned(url)
        for attempt in range(self.retries):
            if attempt:
                pause = self.backoff * (2 ** (attempt - 1))
                retry_after = getattr(error, "retry_after", None)
                if retry_after is not None:
                    pause = max(pause, retry_after)
                log.info("retrying %s in %.1fs (%s)", url, pause, error.reason if error else "")
                if pause > 0:
                    _sleep(pause)
            self._wait_turn(url)
            self.requests += 1
            try:
                with self.client.stream("GET", target, headers=headers, extensions=extensions) as r:
                    status = r.status_code
                    if status >= 500 or status in RETRY_CODES:
                        error = FetchError(f"HTTP {status}", url)
                        error.retry_after = _retry_after(r.headers.get("retry-after"))
                        continue
                    if status in REDIRECT_CODES or status >= 400:
                        return Response(url, status, r.headers, b"")
                    return Response(url, status, r.headers, _read_capped(r, max_bytes, truncate))
            except httpx.TimeoutException:
                error = FetchError("timeout", url)
            except httpx.TransportError as e:
                error = FetchError("connection error", f"{url}: {e}")
            except httpx.InvalidURL as e:
                raise FetchError("bad URL", f"{url}: {e}") from None
            except httpx.HTTPError as e:  # decoding errors and the like: not worth retrying
                raise FetchError("bad response", f"{url}: {e}") from None
        assert error is not None
        raise error

    def _fetch_robots(self, robots_url: str) -> tuple[int, str]:
        same = origin(robots_url)
        resp = self.get(robots_url, max_bytes=ROBOTS_MAX_BYTES, check_robots=False, truncate=True,
                        in_scope=lambda u: origin(u)[1] == same[1])
        return resp.status, resp.body.decode("utf-8", errors="replace")


def _read_capped(r: httpx.Response, max_bytes: int, truncate: bool) -> bytes:
    length = r.headers.get("content-length")
    if not truncate and length and length.isdigit() and int(length) > max_bytes:
        raise FetchError("too large", f"{r.url}: {length} bytes, the limit is {max_bytes}")
    buf = bytearray()
    for chunk in r.iter_bytes():  # decoded bytes: the cap holds for compressed bodies too
        buf += chunk
        if len(buf) > max_bytes:
            if truncate:
                return bytes(buf[:max_bytes])
            raise FetchError("too large", f"{r.url}: over {max_bytes} bytes")
    return bytes(buf)


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return min(max(when.timestamp() - time.time(), 0.0), MAX_RETRY_AFTER)
