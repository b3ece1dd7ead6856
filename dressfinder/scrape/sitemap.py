"""sitemap.xml: ``<urlset>`` (pages) and ``<sitemapindex>`` (more sitemaps), gzipped or not."""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

from lxml import etree

GZIP_MAGIC = b"\x1f\x8b"


class SitemapError(Exception):
    pass


@dataclass
class Sitemap:
    kind: str                                  # "urlset" or "sitemapindex"
    urls: list[str] = field(default_factory=list)


def looks_like_sitemap(body: bytes, content_type: str) -> bool:
    if body[:2] == GZIP_MAGIC:
        return True
    head = body[:2048].lstrip().lower()
    if b"<urlset" in head or b"<sitemapindex" in head:
        return True
    return content_type in ("application/xml", "text/xml") and b"<html" not in head


def _gunzip(body: bytes, max_bytes: int) -> bytes:
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = d.decompress(body, max_bytes + 1)
    except zlib.error as e:
        raise SitemapError(f"bad gzip data: {e}") from None
    if len(out) > max_bytes:
        raise SitemapError(f"sitemap over {max_bytes} bytes once decompressed")
    return out


def parse_sitemap(body: bytes, *, max_bytes: int = 50 * 1024 * 1024) -> Sitemap:
    if body[:2] == GZIP_MAGIC:
        body = _gunzip(body, max_bytes)
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, recover=False)
    try:
        root = etree.fromstring(body, parser=parser)
    except etree.XMLSyntaxError as e:
        raise SitemapError(f"invalid XML: {e}") from None
    if root is None:
        raise SitemapError("empty XML document")
    kind = etree.QName(root).localname
    if kind not in ("urlset", "sitemapindex"):
        raise SitemapError(f"not a sitemap: root element <{kind}>")
    child = "url" if kind == "urlset" else "sitemap"
    locs = root.xpath(f"./*[local-name()='{child}']/*[local-name()='loc']/text()")
    return Sitemap(kind, [str(u).strip() for u in locs if str(u).strip()])
