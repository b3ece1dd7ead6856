"""Recipes: CSS selectors for sites without structured product data.

A recipe is a JSON object::

    {
      "tile":  ".product-card",          # required: one element per product on a listing page
      "link":  "a.product-link",         # required: the product page link, inside the tile
      "image": "img",                    # required: the product picture, inside the tile
      "title": ".name",                  # optional, inside the tile (text)
      "price": ".price",                 # optional, inside the tile ("$19.90", "1.299,00 EUR")
      "id":    "@data-sku",              # optional, inside the tile; default: hash of the URL
      "brand": ".brand",                 # optional, inside the tile
      "availability": ".stock",          # optional, inside the tile
      "next":  "a.next-page",            # optional, on the page: pagination link
      "follow": "nav.categories a",      # optional, on the page: more listing pages to crawl
      "category": "h1",                  # optional, on the page: category of its products
      "currency": "EUR",                 # optional: the shop's currency (wins over the text's sign)
      "locale": "de-DE"                  # optional: the shop's locale (decimal separator, country
    }                                    # for "$" / "kr"); default: the page's <html lang>

A selector takes the element's text, except ``link``/``next``/``follow`` (``href``) and
``image`` (``data-src``, ``data-original``, ``data-lazy-src``, ``src``, then the widest
``srcset`` candidate). Append ``@attr`` to read an attribute instead (``"span.price@content"``);
a bare ``"@attr"`` reads the tile element itself.

Selectors run on BeautifulSoup (soupsieve), which comes with extruct.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import soupsieve
from bs4 import BeautifulSoup

from ..prices import ISO_4217, locale_hints, parse_price
from .errors import ScrapeError
from .extract import availability as norm_availability
from .model import ScrapedProduct
from .urls import normalize

TILE_FIELDS = ("link", "image", "title", "price", "id", "brand", "availability")
PAGE_FIELDS = ("next", "follow", "category")
REQUIRED = ("tile", "link", "image")
KNOWN = frozenset(("tile", "currency", "locale") + TILE_FIELDS + PAGE_FIELDS)
_ATTR = re.compile(r"^(.*?)@([A-Za-z_:][-\w:.]*)$", re.S)
IMAGE_ATTRS = ("data-src", "data-original", "data-lazy-src", "src")


@dataclass(frozen=True)
class Selector:
    css: str           # "" = the context element itself
    attr: str | None   # None = text (or the field's default attribute)

    @classmethod
    def parse(cls, name: str, raw: Any) -> "Selector":
        if not isinstance(raw, str) or not raw.strip():
            raise ScrapeError(f"recipe: {name!r} must be a non-empty CSS selector string")
        raw = raw.strip()
        m = _ATTR.match(raw)
        css, attr = (m.group(1).strip(), m.group(2)) if m else (raw, None)
        if css:
            try:
                soupsieve.compile(css)
            except Exception as e:
                reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                raise ScrapeError(f"recipe: {name!r} is not a valid CSS selector: {css!r} ({reason})") from None
        elif name not in TILE_FIELDS:
            raise ScrapeError(f"recipe: {name!r} needs a CSS selector, not just {raw!r}")
        return cls(css, attr)


@dataclass
class RecipeResult:
    products: list[ScrapedProduct] = field(default_factory=list)
    next_links: list[str] = field(default_factory=list)
    follow_links: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)   # (key, reason)


@dataclass(frozen=True)
class Recipe:
    tile: Selector
    selectors: dict[str, Selector]
    currency: str | None = None
    locale: str | None = None

    @classmethod
    def from_dict(cls, data: Any) -> "Recipe":
        if not isinstance(data, dict):
            raise ScrapeError("recipe: must be a JSON object of CSS selectors")
        unknown = sorted(set(data) - KNOWN)
        if unknown:
            raise ScrapeError(f"recipe: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(KNOWN))}")
        missing = [k for k in REQUIRED if not data.get(k)]
        if missing:
            raise ScrapeError(f"recipe: missing required key(s) {', '.join(missing)}")
        currency = data.get("currency")
        if currency is not None and not (isinstance(currency, str) and currency.upper() in ISO_4217):
            raise ScrapeError(f"recipe: 'currency' must be a 3-letter code like EUR, got {currency!r}")
        locale = data.get("locale")
        if locale is not None and not (isinstance(locale, str) and locale_hints(locale)[0]):
            raise ScrapeError(f"recipe: 'locale' must be a language tag like de-DE, got {locale!r}")
        tile = Selector.parse("tile", data["tile"])
        if tile.attr or not tile.css:
            raise ScrapeError("recipe: 'tile' must be a plain CSS selector")
        sels = {k: Selector.parse(k, data[k]) for k in TILE_FIELDS + PAGE_FIELDS if data.get(k) is not None}
        return cls(tile, sels, currency.upper() if currency else None, locale)

    def apply(self, html_text: str, page_url: str, base: str | None = None) -> RecipeResult:
        base = base or page_url
        soup = BeautifulSoup(html_text, "lxml")
        result = RecipeResult()
        for name, target in (("next", result.next_links), ("follow", result.follow_links)):
            sel = self.selectors.get(name)
            if sel:
                for el in soup.select(sel.css):
                    u = normalize(el.get(sel.attr or "href") or "", base)
                    if u and u not in target:
                        target.append(u)
        category = self._value(soup, self.selectors.get("category"), "category") if "category" in self.selectors else None
        locale = self.locale or (soup.html.get("lang") if soup.html else None)
        seen: set[str] = set()
        for i, tile in enumerate(soup.select(self.tile.css)):
            where = f"{page_url}#tile{i + 1}"
            link = normalize(self._value(tile, self.selectors["link"], "link") or "", base)
            if not link:
                result.skipped.append((where, "recipe: tile without link"))
                continue
            if link in seen:
                continue
            seen.add(link)
            image = self._value(tile, self.selectors["image"], "image")
            image_url = normalize(image, base) if image else None
            price_text = self._value(tile, self.selectors.get("price"), "price")
            price, cur = parse_price(price_text, currency=self.currency, locale=locale)
            result.products.append(ScrapedProduct(
                key=link, url=link, page_url=page_url, source="recipe",
                id=self._value(tile, self.selectors.get("id"), "id"),
                title=self._value(tile, self.selectors.get("title"), "title"),
                price=price, currency=cur if price is not None else None,
                availability=norm_availability(self._value(tile, self.selectors.get("availability"), "availability")),
                brand=self._value(tile, self.selectors.get("brand"), "brand"),
                category=category, images=[image_url] if image_url else []))
        return result

    @staticmethod
    def _value(ctx, sel: Selector | None, name: str) -> str | None:
        if sel is None:
            return None
        el = ctx.select_one(sel.css) if sel.css else ctx
        if el is None:
            return None
        if sel.attr:
            value = el.get(sel.attr)
        elif name in ("link", "next", "follow"):
            value = el.get("href")
        elif name == "image":
            value = _image_attr(el)
        else:
            value = el.get_text(" ", strip=True)
        if isinstance(value, list):  # multi-valued attributes (class)
            value = " ".join(value)
        if value is None:
            return None
        value = re.sub(r"\s+", " ", str(value)).strip()
        return value or None


def _image_attr(el) -> str | None:
    for attr in IMAGE_ATTRS:
        v = (el.get(attr) or "").strip()
        if v and not v.startswith("data:"):
            return v
    for attr in ("srcset", "data-srcset"):
        v = widest_srcset(el.get(attr) or "")
        if v:
            return v
    return None


def widest_srcset(srcset: str) -> str | None:
    """The candidate with the largest width (or density) descriptor of a ``srcset``."""
    best, best_size = None, -1.0
    for cand in srcset.split(","):
        parts = cand.strip().split()
        if not parts or parts[0].startswith("data:"):
            continue
        size = 1.0
        if len(parts) > 1:
            m = re.fullmatch(r"(\d+(?:\.\d+)?)[wx]", parts[1])
            if m:
                size = float(m.group(1))
        if size > best_size:
            best, best_size = parts[0], size
    return best


def load_recipe(source: str | Path | dict | Recipe) -> Recipe:
    """A ``Recipe`` from a JSON file path, a dict, or a Recipe (returned as is)."""
    if isinstance(source, Recipe):
        return source
    if isinstance(source, dict):
        return Recipe.from_dict(source)
    path = Path(source)
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ScrapeError(f"recipe file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ScrapeError(f"cannot read recipe {path}: {e}") from None
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as e:
        raise ScrapeError(f"recipe {path} is not valid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    return Recipe.from_dict(data)
