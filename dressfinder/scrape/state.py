"""Crawl state in ``DIR/.scrape-state.sqlite``: what makes a scrape resumable.

SQLite gives atomic, incremental commits: each page and each product is committed on its
own, and an interrupted transaction (Ctrl-C) is rolled back, never half-written.

Tables: ``urls`` (frontier and visited pages: queued / done / skipped with a reason),
``products`` (one row per product key: stored ``ok`` with its image, or ``skipped`` with
a reason), ``skips`` (other things skipped: links to other hosts, duplicate sightings,
broken structured data), ``meta`` (version, start URLs, pages fetched).
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from .errors import ScrapeError

STATE_FILE = ".scrape-state.sqlite"
VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS urls (
    url    TEXT PRIMARY KEY,
    kind   TEXT NOT NULL,              -- start, sitemap, page
    prio   INTEGER NOT NULL,           -- lower first
    seq    INTEGER NOT NULL,           -- discovery order
    status TEXT NOT NULL DEFAULT 'queued',
    reason TEXT
);
CREATE INDEX IF NOT EXISTS urls_frontier ON urls(status, prio, seq);
CREATE TABLE IF NOT EXISTS products (
    key       TEXT PRIMARY KEY,
    seq       INTEGER NOT NULL,
    status    TEXT NOT NULL,           -- ok, skipped
    reason    TEXT,
    id        TEXT,
    image_url TEXT,
    sha256    TEXT,
    data      TEXT NOT NULL            -- JSON: the product record and its stored image
);
CREATE INDEX IF NOT EXISTS products_id ON products(id);
CREATE INDEX IF NOT EXISTS products_image_url ON products(image_url);
CREATE INDEX IF NOT EXISTS products_sha ON products(sha256);
CREATE TABLE IF NOT EXISTS skips (key TEXT PRIMARY KEY, reason TEXT NOT NULL);
"""


class CrawlState:
    def __init__(self, out_dir: Path):
        self.path = Path(out_dir) / STATE_FILE
        try:
            self.conn = sqlite3.connect(self.path)
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.executescript(SCHEMA)
            version = self.get_meta("version")
        except sqlite3.DatabaseError as e:
            raise ScrapeError(f"{self.path} is not a scrape state ({e}); delete it to start over") from None
        if version is None:
            with self.conn:
                self.set_meta("version", VERSION)
                self.set_meta("pages_fetched", 0)
        elif int(version) != VERSION:
            raise ScrapeError(f"{self.path} is from another version of the scraper ({version}); "
                              "use a new output folder")
        self._seq = int(self.conn.execute(
            "SELECT MAX(m) FROM (SELECT MAX(seq) AS m FROM urls UNION ALL SELECT MAX(seq) FROM products)"
        ).fetchone()[0] or 0)

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self.conn:
            yield

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    # ------------------------------------------------------------------ meta
    def get_meta(self, key: str, default: Any = None) -> Any:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    def set_meta(self, key: str, value: Any) -> None:
        self.conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, json.dumps(value)))

    @property
    def pages_fetched(self) -> int:
        return int(self.get_meta("pages_fetched", 0))

    def count_page(self) -> None:
        self.set_meta("pages_fetched", self.pages_fetched + 1)

    # ------------------------------------------------------------------ urls
    def add_url(self, url: str, kind: str, prio: int) -> bool:
        """Queue a URL unless it is known already; True if it was new."""
        cur = self.conn.execute("INSERT OR IGNORE INTO urls (url, kind, prio, seq) VALUES (?, ?, ?, ?)",
                                (url, kind, prio, self._seq + 1))
        if cur.rowcount:
            self._seq += 1
            return True
        if prio < 3:  # known but waiting with a lower priority: promote it
            self.conn.execute("UPDATE urls SET prio = ? WHERE url = ? AND status = 'queued' AND prio > ?",
                              (prio, url, prio))
        return False

    def next_url(self) -> tuple[str, str] | None:
        row = self.conn.execute(
            "SELECT url, kind FROM urls WHERE status = 'queued' ORDER BY prio, seq LIMIT 1").fetchone()
        return (row[0], row[1]) if row else None

    def url_status(self, url: str) -> str | None:
        row = self.conn.execute("SELECT status FROM urls WHERE url = ?", (url,)).fetchone()
        return row[0] if row else None

    def finish_url(self, url: str, status: str = "done", reason: str | None = None, kind: str = "page") -> None:
        self.conn.execute(
            "INSERT INTO urls (url, kind, prio, seq, status, reason) VALUES (?, ?, 9, ?, ?, ?)"
            " ON CONFLICT(url) DO UPDATE SET status = excluded.status, reason = excluded.reason",
            (url, kind, self._next_seq(), status, reason))

    def requeue_failed(self) -> int:
        """Queue again the pages skipped for a reason that may pass (5xx, 429, timeouts...)."""
        cur = self.conn.execute(
            "UPDATE urls SET status = 'queued', reason = NULL WHERE status = 'skipped' AND "
            "(reason LIKE 'HTTP 5%' OR reason IN ('HTTP 429', 'timeout', 'connection error', "
            "'robots.txt unreachable'))")
        return cur.rowcount

    def queued(self) -> int:
        return int(self.conn.execute("SELECT COUNT(*) FROM urls WHERE status = 'queued'").fetchone()[0])

    # ------------------------------------------------------------------ products
    def product(self, key: str) -> tuple[str, dict] | None:
        row = self.conn.execute("SELECT status, data FROM products WHERE key = ?", (key,)).fetchone()
        return (row[0], json.loads(row[1])) if row else None

    def id_owner(self, pid: str) -> str | None:
        row = self.conn.execute("SELECT key FROM products WHERE id = ? AND status = 'ok'", (pid,)).fetchone()
        return row[0] if row else None

    def image_url_owner(self, image_url: str) -> str | None:
        row = self.conn.execute("SELECT key FROM products WHERE image_url = ? AND status = 'ok'",
                                (image_url,)).fetchone()
        return row[0] if row else None

    def sha_owner(self, sha: str) -> str | None:
        row = self.conn.execute("SELECT key FROM products WHERE sha256 = ? AND status = 'ok'", (sha,)).fetchone()
        return row[0] if row else None

    def save_product(self, key: str, data: dict, *, status: str = "ok", reason: str | None = None) -> None:
        existing = self.conn.execute("SELECT seq FROM products WHERE key = ?", (key,)).fetchone()
        seq = existing[0] if existing else self._next_seq()
        self.conn.execute(
            "INSERT OR REPLACE INTO products (key, seq, status, reason, id, image_url, sha256, data)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (key, seq, status, reason, data.get("id") if status == "ok" else None, data.get("image_url"),
             data.get("sha256"), json.dumps(data, ensure_ascii=False)))

    def ok_products(self) -> list[dict]:
        return [json.loads(r[0]) for r in
                self.conn.execute("SELECT data FROM products WHERE status = 'ok' ORDER BY seq")]

    def count_products(self, status: str | None = None) -> int:
        if status is None:
            return int(self.conn.execute("SELECT COUNT(*) FROM products").fetchone()[0])
        return int(self.conn.execute("SELECT COUNT(*) FROM products WHERE status = ?", (status,)).fetchone()[0])

    # ------------------------------------------------------------------ skips
    def skip(self, key: str, reason: str) -> bool:
        return bool(self.conn.execute("INSERT OR IGNORE INTO skips (key, reason) VALUES (?, ?)",
                                      (key, reason)).rowcount)

    def skipped(self) -> Counter:
        counts: Counter = Counter()
        for table in ("urls", "products", "skips"):
            where = "WHERE status = 'skipped'" if table != "skips" else ""
            for reason, n in self.conn.execute(f"SELECT reason, COUNT(*) FROM {table} {where} GROUP BY reason"):
                counts[reason] += n
        return counts
