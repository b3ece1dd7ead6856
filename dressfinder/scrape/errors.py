"""Errors of the scraper.

``ScrapeError`` is a user error (bad option, unreadable recipe, state from another version):
the CLI prints its one-line message. ``FetchError`` is internal: a URL that could not be
fetched, with a short *reason* that the summary counts. ``ScrapeInterrupted`` is what
``scrape()`` raises on Ctrl-C once the state and the CSV are safely written.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import DressfinderError

if TYPE_CHECKING:  # pragma: no cover
    from .crawler import ScrapeSummary


class ScrapeError(DressfinderError):
    """A scrape that cannot start: bad option, bad recipe, unusable output folder."""


class FeedError(ScrapeError):
    """A product feed that cannot be read at all (not a feed, broken, refused XML): one line."""


class FetchError(Exception):
    """A URL that could not be fetched; ``reason`` is short and categorical ("HTTP 404")."""

    retry_after: float | None = None   # seconds a 429/503 asked us to wait

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


class AlreadySeen(FetchError):
    """A redirect to a page the crawl has already visited: not fetched again, not a failure."""


class ScrapeInterrupted(KeyboardInterrupt):
    """Ctrl-C during a scrape; the state and catalog.csv were written, rerun to resume."""

    def __init__(self, summary: "ScrapeSummary"):
        super().__init__("scrape interrupted; rerun the same command to resume")
        self.summary = summary
