"""URL normalisation and the crawl's scope ("same site").

Same site means the same *origin* -- scheme, host and port -- as one of the start URLs.
One exception: the ``https`` origin of an ``http`` start URL on the default port is in scope
too, since shops commonly redirect http to https. ``localhost`` and ``127.0.0.1`` are
different hosts, and two ports of one host are two sites.
"""

from __future__ import annotations

import posixpath
import re
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

from w3lib.url import safe_url_string

DEFAULT_PORTS = {"http": 80, "https": 443}
#: Links whose path ends like this are never pages (and never fetched as pages).
ASSET_EXTENSIONS = frozenset(
    ".jpg .jpeg .png .gif .webp .avif .svg .ico .bmp .tif .tiff .css .js .mjs .json .pdf .zip .gz"
    " .rar .7z .mp3 .mp4 .m4v .mov .avi .webm .woff .woff2 .ttf .otf .eot .exe .dmg .apk".split())
TRACKING_PARAMS = re.compile(r"^(utm_[a-z]+|gclid|fbclid|mc_cid|mc_eid|_ga)$", re.I)

Origin = tuple[str, str, int]


def normalize(url: str, base: str | None = None) -> str | None:
    """Absolute, canonical form of ``url`` (resolved against ``base``), or None if not http(s).

    Lower-case scheme and host, no default port, no fragment, no tracking parameters
    (``utm_*``, ``gclid``...), percent-encoding made safe; the rest of the query is kept as is.
    """
    if not url:
        return None
    url = url.strip()
    if base:
        try:
            url = urljoin(base, url)
        except ValueError:
            return None
    try:
        url = safe_url_string(url)
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in DEFAULT_PORTS or not parts.hostname:
            return None
        host = parts.hostname.lower()
        port = parts.port
    except ValueError:
        return None
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    netloc = host if port in (None, DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    path = parts.path or "/"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        kept = [(k, v) for k, v in pairs if not TRACKING_PARAMS.match(k)]
        if len(kept) != len(pairs):
            query = urlencode(kept)
    return urlunsplit((scheme, netloc, path, query, ""))


def origin(url: str) -> Origin:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or DEFAULT_PORTS.get(scheme, 0)


def origin_url(o: Origin) -> str:
    scheme, host, port = o
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}" if port == DEFAULT_PORTS.get(scheme) else f"{scheme}://{host}:{port}"


def host_label(url: str) -> str:
    """The store name derived from a URL: host, plus ``:port`` when not the default one."""
    scheme, host, port = origin(url)
    return host if port == DEFAULT_PORTS.get(scheme) else f"{host}:{port}"


def is_asset(url: str) -> bool:
    ext = posixpath.splitext(urlsplit(url).path)[1].lower()
    return ext in ASSET_EXTENSIONS


class Scope:
    """The set of origins the crawler may request."""

    def __init__(self, start_urls, extra_hosts=()):
        self.origins: set[Origin] = set()
        for u in start_urls:
            o = origin(u)
            self.origins.add(o)
            if o[0] == "http" and o[2] == 80:
                self.origins.add(("https", o[1], 443))
        #: hosts (any scheme and port) allowed for images only, e.g. a CDN
        self.image_hosts = {h.lower().strip() for h in extra_hosts if h.strip()}

    def allows(self, url: str) -> bool:
        return origin(url) in self.origins

    def allows_image(self, url: str) -> bool:
        if self.allows(url):
            return True
        o = origin(url)
        return o[1] in self.image_hosts or f"{o[1]}:{o[2]}" in self.image_hosts
