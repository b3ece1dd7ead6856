"""Fetch an image from a URL a user gave, without letting that URL reach inside the network.

Rules (issue 6):

* ``http`` and ``https`` only; no user names or passwords in the URL.
* The host name is resolved with ``socket.getaddrinfo`` and *every* address it resolves to must
  be public (not loopback, private, link-local / cloud metadata, CGNAT, multicast, reserved or
  unspecified; IPv4-mapped, NAT64, 6to4 and Teredo IPv6 addresses are judged by the IPv4 address
  inside). The connection then goes to the address that was checked (the URL's host is kept for
  the ``Host`` header and for TLS SNI and certificate checks), so a second DNS answer cannot
  point somewhere else (DNS rebinding).
* Redirects are followed by hand, at most ``max_redirects`` of them, and every hop is checked
  the same way.
* A timeout for each step and a deadline for the whole fetch; the body is read in chunks and
  the fetch stops as soon as it passes ``max_bytes``.

``allow_private=True`` (``Settings.allow_private_urls``) lifts the address rule only (tests, or
a deployment that fetches from its own network on purpose).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from typing import Awaitable, Callable
from urllib.parse import urljoin

import httpx

from ..errors import DressfinderError, ImageTooLarge
from ..settings import human_bytes

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_EXTRA_BLOCKED = [ipaddress.ip_network(n) for n in (
    "0.0.0.0/8", "100.64.0.0/10", "192.0.0.0/24", "198.18.0.0/15", "255.255.255.255/32",
    "fd00:ec2::/32",   # AWS IPv6 metadata (also inside fc00::/7)
)]
USER_AGENT = "dressfinder/0.1 (image search; fetches one image a user asked for)"


class FetchError(DressfinderError):
    """The URL could not be fetched (refused, unreachable, bad answer): a client error."""

    status = 400


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped:
        return ip.ipv4_mapped
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.sixtofour:
        return ip.sixtofour
    if ip.teredo:
        return ip.teredo[1]
    return None


def is_public_address(ip: IPAddress | str) -> bool:
    """True for an address on the public internet; False for anything internal or special."""
    ip = ipaddress.ip_address(ip) if isinstance(ip, str) else ip
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id:
            return False
        inner = _embedded_ipv4(ip)
        if inner is not None:
            return is_public_address(inner)
    if any(ip in net for net in _EXTRA_BLOCKED if net.version == ip.version):
        return False
    return bool(ip.is_global) and not (ip.is_multicast or ip.is_private or ip.is_loopback or ip.is_link_local
                                       or ip.is_reserved or ip.is_unspecified)


async def system_resolver(host: str, port: int) -> list[str]:
    """All addresses ``host`` resolves to (``socket.getaddrinfo``, run off the event loop)."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.run_in_executor(
            None, lambda: socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
    except (socket.gaierror, UnicodeError) as e:
        raise FetchError(f"cannot resolve host {host!r}: {getattr(e, 'strerror', None) or e}") from None
    out: list[str] = []
    for family, _, _, _, sockaddr in infos:
        if family in (socket.AF_INET, socket.AF_INET6) and sockaddr[0] not in out:
            out.append(sockaddr[0])
    if not out:
        raise FetchError(f"host {host!r} has no IP address")
    return out


@dataclass
class Fetched:
    data: bytes
    url: str                  # the final URL, after redirects
    content_type: str | None  # what the server said (informational only: bytes are decoded, not trusted)


class ImageFetcher:
    """Downloads an image URL under the rules above. One instance per app; safe to share."""

    def __init__(self, *, max_bytes: int, timeout: float = 10.0, max_redirects: int = 5,
                 allow_private: bool = False, resolver: Resolver | None = None,
                 ip_allowed: Callable[[IPAddress], bool] | None = None,
                 transport: httpx.AsyncBaseTransport | None = None):
        self.max_bytes = int(max_bytes)
        self.timeout = float(timeout)
        self.max_redirects = int(max_redirects)
        self.allow_private = allow_private
        self.resolver: Resolver = resolver or system_resolver
        self.ip_allowed = ip_allowed or is_public_address
        self.transport = transport

    # ------------------------------------------------------------------ checks
    @staticmethod
    def parse(url: str) -> httpx.URL:
        if not isinstance(url, str) or not url.strip():
            raise FetchError("no image URL given")
        if len(url) > 2048:
            raise FetchError("image URL is too long (at most 2048 characters)")
        try:
            u = httpx.URL(url.strip())
        except (httpx.InvalidURL, ValueError, TypeError) as e:
            raise FetchError(f"not a valid URL: {e}") from None
        if u.scheme not in ("http", "https"):
            raise FetchError("only http:// and https:// image URLs can be fetched")
        if not u.host:
            raise FetchError("the URL has no host name")
        if u.userinfo:
            raise FetchError("URLs with a user name or password are not accepted")
        return u

    async def check_host(self, u: httpx.URL) -> str:
        """Resolve the URL's host, check every address, return the one to connect to."""
        host = u.raw_host.decode("ascii").strip("[]")
        port = u.port or (443 if u.scheme == "https" else 80)
        try:
            literal = ipaddress.ip_address(host)
        except ValueError:
            literal = None
        addresses = [str(literal)] if literal is not None else await self.resolver(host, port)
        if not self.allow_private:
            for a in addresses:
                ip = ipaddress.ip_address(a.split("%")[0])
                if not self.ip_allowed(ip):
                    raise FetchError(f"refused to fetch {u.host}: it resolves to a private or reserved "
                                     f"address ({ip}); only public image URLs can be searched")
        return addresses[0]

    # ------------------------------------------------------------------ fetching
    async def fetch(self, url: str) -> Fetched:
        try:
            return await asyncio.wait_for(self._fetch(url), timeout=self.timeout * 2)
        except asyncio.TimeoutError:
            raise FetchError(f"fetching the image URL took longer than {self.timeout * 2:g} s") from None

    async def _fetch(self, url: str) -> Fetched:
        u = self.parse(url)
        timeout = httpx.Timeout(self.timeout, connect=min(self.timeout, 5.0))
        async with httpx.AsyncClient(follow_redirects=False, trust_env=False, timeout=timeout,
                                     transport=self.transport, max_redirects=0) as client:
            for hop in range(self.max_redirects + 1):
                ip = await self.check_host(u)
                target = u.copy_with(host=ip)
                headers = {"Host": u.netloc.decode("ascii"), "User-Agent": USER_AGENT,
                           "Accept": "image/avif,image/webp,image/png,image/jpeg,image/*;q=0.8"}
                extensions = {"sni_hostname": u.raw_host.decode("ascii")} if u.scheme == "https" else {}
                request = client.build_request("GET", target, headers=headers, extensions=extensions)
                try:
                    response = await client.send(request, stream=True)
                except httpx.TimeoutException:
                    raise FetchError(f"{u.host} did not answer within {self.timeout:g} s") from None
                except httpx.HTTPError as e:
                    raise FetchError(f"cannot fetch the image URL: {type(e).__name__}"
                                     + (f": {e}" if str(e) else "")) from None
                try:
                    if response.is_redirect:
                        location = response.headers.get("location")
                        if not location:
                            raise FetchError("the URL redirects without saying where")
                        if hop == self.max_redirects:
                            raise FetchError(f"the image URL redirects more than {self.max_redirects} times")
                        u = self.parse(urljoin(str(u), location))
                        continue
                    if response.status_code != 200:
                        raise FetchError(f"the image URL answered HTTP {response.status_code}")
                    declared = response.headers.get("content-length")
                    if declared and declared.isdigit() and int(declared) > self.max_bytes:
                        raise ImageTooLarge(f"the image at that URL is larger than {human_bytes(self.max_bytes)}")
                    buf = bytearray()
                    try:
                        async for chunk in response.aiter_bytes():
                            buf += chunk
                            if len(buf) > self.max_bytes:
                                raise ImageTooLarge(f"the image at that URL is larger than {human_bytes(self.max_bytes)}")
                    except httpx.TimeoutException:
                        raise FetchError(f"{u.host} stopped sending the image") from None
                    except httpx.HTTPError as e:
                        raise FetchError(f"the download broke off: {type(e).__name__}") from None
                    return Fetched(bytes(buf), str(u), response.headers.get("content-type"))
                finally:
                    await response.aclose()
        raise AssertionError("unreachable")
