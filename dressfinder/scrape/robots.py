"""robots.txt: fetched once per origin, parsed with ``urllib.robotparser``.

Rules follow RFC 9309 for unavailable files: a 4xx (404, 403...) means no restrictions;
a 5xx or an unreachable server (after retries) means *everything* is disallowed for that
origin during this run. ``Crawl-delay`` and ``Request-rate`` raise the per-host delay.

Limitation of ``urllib.robotparser``: the first matching Allow/Disallow line wins (not the
longest match as in RFC 9309), and ``*``/``$`` wildcards in paths are not understood.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable
from urllib.robotparser import RobotFileParser

from .errors import FetchError
from .urls import Origin, origin, origin_url

log = logging.getLogger(__name__)

ROBOTS_MAX_BYTES = 512 * 1024


@dataclass
class RobotsRules:
    parser: RobotFileParser | None   # None: no file / no restrictions
    unreachable: bool = False        # 5xx or network failure: disallow everything
    sitemaps: list[str] = field(default_factory=list)
    crawl_delays: list[tuple[list[str], float | None]] = field(default_factory=list)  # (agents, s)

    def allows(self, user_agent: str, url: str) -> bool:
        if self.unreachable:
            return False
        if self.parser is None:
            return True
        return self.parser.can_fetch(user_agent, url)

    def delay(self, user_agent: str) -> float | None:
        if self.parser is None:
            return None
        delays = []
        cd = _group_delay(self.crawl_delays, user_agent)
        if cd is not None:
            delays.append(cd)
        rr = self.parser.request_rate(user_agent)
        if rr is not None and rr.requests > 0:
            delays.append(rr.seconds / rr.requests)
        return max(delays) if delays else None


def parse_robots(text: str) -> RobotsRules:
    lines = text.splitlines()
    rp = RobotFileParser()
    rp.parse(lines)
    return RobotsRules(rp, sitemaps=list(rp.site_maps() or []), crawl_delays=_crawl_delays(lines))


def _crawl_delays(lines: list[str]) -> list[tuple[list[str], float | None]]:
    """Crawl-delay per group, decimals included (``urllib.robotparser`` only reads integers)."""
    groups: list[tuple[list[str], float]] = []
    agents: list[str] = []
    in_rules = False
    delay: float | None = None
    for raw in lines:
        line = raw.split("#", 1)[0].strip()
        if ":" not in line:
            continue
        key, value = (part.strip() for part in line.split(":", 1))
        key = key.lower()
        if key == "user-agent":
            if in_rules:
                groups.append((agents, delay))
                agents, delay, in_rules = [], None, False
            agents.append(value.lower())
        elif agents:
            in_rules = True
            if key == "crawl-delay":
                try:
                    d = float(value)
                except ValueError:
                    continue
                if d >= 0 and d == d and d != float("inf"):
                    delay = d
    if agents:
        groups.append((agents, delay))
    return groups


def _group_delay(groups: list[tuple[list[str], float | None]], user_agent: str) -> float | None:
    """The delay of the group naming our agent (as ``urllib.robotparser`` matches), else of ``*``."""
    token = user_agent.split("/")[0].lower()
    default = None
    seen_default = False
    for agents, delay in groups:
        for agent in agents:
            if agent == "*":
                if not seen_default:
                    default, seen_default = delay, True
            elif agent.split("/")[0] in token:
                return delay
    return default


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
