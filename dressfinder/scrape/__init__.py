"""``dressfinder scrape``: crawl a store's category pages or sitemap into a catalogue.

>>> from dressfinder.scrape import scrape
>>> summary = scrape(["https://shop.example/dresses"], "out/shop", max_pages=200)  # doctest: +SKIP
>>> print(summary.format())                                                        # doctest: +SKIP

Output: ``out/shop/catalog.csv`` (id,image,title,price,currency,url,store,category,scraped_at
and extras brand,availability,image_url,more_images,source) and ``out/shop/images/``; rerun
to resume. See docs/scraping.md.

Names are imported on first use, so that ``dressfinder --help`` does not load extruct.
"""

from __future__ import annotations

import importlib

from .defaults import (DEFAULT_BACKOFF, DEFAULT_DELAY, DEFAULT_MAX_IMAGE_BYTES, DEFAULT_MAX_PAGE_BYTES,
                       DEFAULT_MAX_PAGES, DEFAULT_MAX_REDIRECTS, DEFAULT_RETRIES, DEFAULT_TIMEOUT,
                       DEFAULT_USER_AGENT)

_LAZY = {
    "scrape": ".crawler", "Crawler": ".crawler", "ScrapeSummary": ".crawler",
    "ScrapeError": ".errors", "ScrapeInterrupted": ".errors",
    "ScrapedProduct": ".model",
    "Recipe": ".recipe", "load_recipe": ".recipe",
    "CATALOG_FILE": ".output", "COLUMNS": ".output", "IMAGES_DIR": ".output",
    "STATE_FILE": ".state",
}

__all__ = sorted(_LAZY) + [
    "DEFAULT_USER_AGENT", "DEFAULT_DELAY", "DEFAULT_MAX_PAGES", "DEFAULT_TIMEOUT", "DEFAULT_RETRIES",
    "DEFAULT_BACKOFF", "DEFAULT_MAX_REDIRECTS", "DEFAULT_MAX_PAGE_BYTES", "DEFAULT_MAX_IMAGE_BYTES",
]


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
