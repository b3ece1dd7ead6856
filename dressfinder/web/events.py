"""The embed block's numbers: views and clicks, kept in ``events.sqlite`` in the store folder.

One row per event, appended and never changed: when (UTC day and second), what (``view``: the
block was shown; ``click``: a product in it was followed), the block's query id (which list of
recommendations was shown: the same store generation, product and parameters give the same id),
the product the block was shown for and, for a click, the product clicked. Nothing about the
visitor: no IP address, no cookie, no user agent, no referrer.

The file sits beside the store's own files but belongs to no generation: a rebuild (``index``
into the same folder), ``add`` and ``remove`` leave it alone, so the numbers outlive them. SQLite
in WAL mode with a busy timeout makes concurrent writers (threads, workers, processes) safe; each
write is one short transaction of its own.

``EventLog(path).stats(days)`` sums them per day and per product; ``chart_svg`` draws the days as
an inline SVG (made here, no script, no inline style: CSP-safe); ``dressfinder stats --store S``
prints the same.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import time
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any

FILE = "events.sqlite"
KINDS = ("view", "click")
MAX_FIELD = 512            # query ids and product ids are cut to this (ids are at most this long)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    day TEXT NOT NULL,           -- UTC, YYYY-MM-DD
    at INTEGER NOT NULL,         -- UTC seconds
    kind TEXT NOT NULL CHECK (kind IN ('view', 'click')),
    query TEXT,                  -- the block's query id
    product TEXT NOT NULL,       -- the product the block was shown for
    item TEXT                    -- the product clicked (clicks only)
);
CREATE INDEX IF NOT EXISTS events_day ON events (day);
"""


@dataclass
class Row:
    key: str            # a day (YYYY-MM-DD) or a product id
    views: int = 0
    clicks: int = 0

    @property
    def ctr(self) -> float | None:
        """Click-through: clicks per view (None with no views)."""
        return self.clicks / self.views if self.views else None

    def to_dict(self) -> dict[str, Any]:
        return {"views": self.views, "clicks": self.clicks,
                "ctr": None if self.ctr is None else round(self.ctr, 4)}


@dataclass
class Stats:
    days: list[Row] = field(default_factory=list)        # every day of the period, oldest first
    products: list[Row] = field(default_factory=list)    # products the block was shown for, most viewed first
    clicked: list[Row] = field(default_factory=list)     # products clicked in blocks, most clicked first
    total: Row = field(default_factory=lambda: Row("total"))
    since: str = ""
    until: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"since": self.since, "until": self.until, "total": self.total.to_dict(),
                "days": [{"day": r.key, **r.to_dict()} for r in self.days],
                "products": [{"product": r.key, **r.to_dict()} for r in self.products],
                "clicked": [{"product": r.key, "clicks": r.clicks} for r in self.clicked]}


class EventLog:
    """Append-only views and clicks in one SQLite file (see the module doc)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def _connect(self, write: bool) -> sqlite3.Connection:
        if not write:
            if not self.path.exists():
                return None  # type: ignore[return-value]
            con = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=10)
            return con
        con = sqlite3.connect(self.path, timeout=10, isolation_level=None)
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=NORMAL")
        con.executescript(_SCHEMA)
        return con

    def record(self, kind: str, product: str, *, query: str | None = None, item: str | None = None,
               at: float | None = None) -> None:
        """Append one event (``kind`` is ``view`` or ``click``)."""
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}")
        now = time.time() if at is None else at
        day = dt.datetime.fromtimestamp(now, dt.timezone.utc).date().isoformat()
        con = self._connect(write=True)
        try:
            con.execute("INSERT INTO events (day, at, kind, query, product, item) VALUES (?, ?, ?, ?, ?, ?)",
                        (day, int(now), kind, (query or None) and query[:MAX_FIELD], product[:MAX_FIELD],
                         (item or None) and item[:MAX_FIELD]))
        finally:
            con.close()

    def stats(self, days: int = 30, *, today: dt.date | None = None, top: int = 50) -> Stats:
        """Views, clicks and click-through of the last ``days`` days (UTC, today included): per day
        (every day, zeros too), per product the block was shown for, and the products clicked."""
        days = max(1, int(days))
        until = today or dt.datetime.now(dt.timezone.utc).date()
        since = until - dt.timedelta(days=days - 1)
        out = Stats(since=since.isoformat(), until=until.isoformat())
        per_day = {(since + dt.timedelta(days=i)).isoformat(): Row((since + dt.timedelta(days=i)).isoformat())
                   for i in range(days)}
        con = self._connect(write=False)
        if con is not None:
            try:
                span = (out.since, out.until)
                for day, kind, n in con.execute(
                        "SELECT day, kind, COUNT(*) FROM events WHERE day BETWEEN ? AND ? GROUP BY day, kind", span):
                    if day in per_day:
                        setattr(per_day[day], kind + "s", n)
                products: dict[str, Row] = {}
                for pid, kind, n in con.execute(
                        "SELECT product, kind, COUNT(*) FROM events WHERE day BETWEEN ? AND ? GROUP BY product, kind",
                        span):
                    setattr(products.setdefault(pid, Row(pid)), kind + "s", n)
                out.products = sorted(products.values(), key=lambda r: (-r.views, -r.clicks, r.key))[:top]
                out.clicked = [Row(pid, clicks=n) for pid, n in con.execute(
                    "SELECT item, COUNT(*) AS n FROM events WHERE kind = 'click' AND item IS NOT NULL "
                    "AND day BETWEEN ? AND ? GROUP BY item ORDER BY n DESC, item LIMIT ?", (*span, top))]
            except sqlite3.OperationalError as e:   # an empty file another process is creating
                if "no such table" not in str(e):
                    raise
            finally:
                con.close()
        out.days = list(per_day.values())
        out.total = Row("total", sum(r.views for r in out.days), sum(r.clicks for r in out.days))
        return out


def chart_svg(days: list[Row], *, width: int = 720, height: int = 220, title: str = "Views and clicks per day") -> str:
    """Views (light bars) and clicks (dark bars) per day as an inline SVG: presentation attributes
    only (no style attribute, no script), a <title> and <desc> for screen readers."""
    pad_l, pad_r, pad_t, pad_b = 44, 8, 12, 28
    n = max(1, len(days))
    top = max([r.views for r in days] + [r.clicks for r in days] + [1])
    step = 10 ** max(0, len(str(top)) - 1)
    top = ((top + step - 1) // step) * step
    plot_w, plot_h = width - pad_l - pad_r, height - pad_t - pad_b
    slot = plot_w / n
    bar = max(1.0, slot * 0.4)

    def y(v: int) -> float:
        return pad_t + plot_h * (1 - v / top)

    total_v, total_c = sum(r.views for r in days), sum(r.clicks for r in days)
    parts = [f'<svg class="chart" role="img" aria-labelledby="chart-title chart-desc" viewBox="0 0 {width} {height}" '
             f'width="100%" xmlns="http://www.w3.org/2000/svg">',
             f'<title id="chart-title">{escape(title)}</title>',
             f'<desc id="chart-desc">{len(days)} days from {escape(days[0].key if days else "")} to '
             f'{escape(days[-1].key if days else "")}: {total_v} views, {total_c} clicks in all.</desc>']
    for frac in (0, 0.5, 1):
        v = int(top * frac)
        parts.append(f'<line x1="{pad_l}" x2="{width - pad_r}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#e4dfe8"/>')
        parts.append(f'<text x="{pad_l - 6}" y="{y(v) + 4:.1f}" text-anchor="end" font-size="11" fill="#5c5563">{v}</text>')
    label_every = max(1, n // 8)
    for i, r in enumerate(days):
        x = pad_l + i * slot + (slot - 2 * bar) / 2
        parts.append(f'<rect x="{x:.1f}" y="{y(r.views):.1f}" width="{bar:.1f}" height="{y(0) - y(r.views):.1f}" '
                     f'fill="#d9b8cf"><title>{escape(r.key)}: {r.views} views</title></rect>')
        parts.append(f'<rect x="{x + bar:.1f}" y="{y(r.clicks):.1f}" width="{bar:.1f}" height="{y(0) - y(r.clicks):.1f}" '
                     f'fill="#8a2d6b"><title>{escape(r.key)}: {r.clicks} clicks</title></rect>')
        if i % label_every == 0 or i == n - 1:
            parts.append(f'<text x="{pad_l + (i + 0.5) * slot:.1f}" y="{height - 8}" text-anchor="middle" '
                         f'font-size="11" fill="#5c5563">{escape(r.key[5:])}</text>')
    parts.append("</svg>")
    return "".join(parts)
