"""robots.txt: fetched once per origin, parsed with `Protego <https://github.com/scrapy/protego>`_.

Protego (Scrapy's parser) follows RFC 9309: the group of the most specific ``User-agent``
that our product token matches, else ``*`` (groups naming the same agent are merged); in it
the longest matching ``Allow``/``Disallow`` path wins, ``Allow`` on a tie; ``*`` matches any
characters and a trailing ``$`` anchors the end of the URL (path and query). It also reads
``Crawl-delay`` (decimals too), ``Request-rate`` (``1/5s``, ``10/1m``) and ``Sitemap`` lines.

Rules follow RFC 9309 for unavailable files: a 4xx (404, 403...) means no restrictions;
a 5xx or an unreachable server (after retries) means *everything* is disallowed for that
origin during this run. ``Crawl-delay`` and ``Request-rate`` raise the per-host delay.
The file is read up to ``ROBOTS_MAX_BYTES`` (RFC 9309 asks for at least 500 KiB).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Callable

from protego import Protego

from .errors import FetchError
from .urls import Origin, origin, origin_url

log = logging.getLogger(__name__)

ROBOTS_MAX_BYTES = 512 * 1024


def product_token(user_agent: str) -> str:
    """The name robots.txt groups are matched against: ``dressfinder-scraper`` of
    ``dressfinder-scraper/0.1 (+https://...)`` (not the URL or comment after it)."""
    token = re.split(r"[/\s]", user_agent.strip(), maxsplit=1)[0]
    return token or user_agent.strip()


@dataclass
class RobotsRules:
    parser: Protego | None           # None: no file / no restrictions
    unreachable: bool = False        # 5xx or network failure: disallow everything
    sitemaps: list[str] = field(default_factory=list)

    def allows(self, user_agent: str, url: str) -> bool:
        if self.unreachable:
            return False
        if self.parser is None:
            return True
        return self.parser.can_fetch(url, product_token(user_agent))

    def delay(self, user_agent: str) -> float | None:
        """Seconds between two requests the group asks for: the larger of its ``Crawl-delay``
        and ``Request-rate`` (``1/5s`` is 5 s), None when it asks for neither."""
        if self.parser is None:
            return None
        token = product_token(user_agent)
        delays = []
        cd = self.parser.crawl_delay(token)
        if cd is not None:
            delays.append(cd)
        rr = self.parser.request_rate(token)
        if rr is not None and rr.requests > 0:
            delays.append(rr.seconds / rr.requests)
        return max(delays) if delays else None


def parse_robots(text: str) -> RobotsRules:
    parser = Protego.parse(text)
    return RobotsRules(parser, sitemaps=list(parser.sitemaps))


class Robots:
    """robots.txt rules per origin, fetched lazily with ``fetch_text(url) -> (status, text)``."""

    def __init__(self, user_agent: str, fetch_text: Callable[[str], tuple[int, str]]):
        self.user_agent = user_agent
        self._fetch_text = fetch_text
        self._rules: dict[Origin, RobotsRules] = {}

    def rules(self, url: str) -> RobotsRules:
        o = origin(url)
        rules = self._rules.get(o)
        if rules is None:
            rules = self._load(o)
            self._rules[o] = rules
        return rules

    def _load(self, o: Origin) -> RobotsRules:
        robots_url = origin_url(o) + "/robots.txt"
        # Placeholder while fetching, so that the fetch of robots.txt itself is not checked.
        self._rules[o] = RobotsRules(None)
        try:
            status, text = self._fetch_text(robots_url)
        except FetchError as e:
            if e.reason.startswith("HTTP 5") or e.reason in ("timeout", "connection error"):
                log.warning("%s unreachable (%s): not crawling %s", robots_url, e.reason, origin_url(o))
                return RobotsRules(None, unreachable=True)
            log.info("%s: %s; no restrictions", robots_url, e.reason)
            return RobotsRules(None)
        if 200 <= status < 300:
            return parse_robots(text)
        return RobotsRules(None)

    def allows(self, url: str) -> bool:
        return self.rules(url).allows(self.user_agent, url)

    def reason(self, url: str) -> str:
        """The skip reason for a URL that ``allows`` refused."""
        return "robots.txt unreachable" if self.rules(url).unreachable else "robots.txt"

    def delay(self, url: str) -> float | None:
        return self.rules(url).delay(self.user_agent)

    def sitemaps(self, url: str) -> list[str]:
        return list(self.rules(url).sitemaps)
