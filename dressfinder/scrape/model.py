"""The product record the extractors produce."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field, fields
from typing import Any

#: Fields a later sighting of the same product may fill when the first one left them empty.
MERGEABLE = ("id", "title", "price", "currency", "availability", "brand", "category")


@dataclass
class ScrapedProduct:
    key: str                           # dedup key: canonical URL (URL#n for URL-less list items)
    url: str                           # canonical product URL
    page_url: str                      # page it was found on
    source: str                        # json-ld, microdata, rdfa, opengraph or recipe
    id: str | None = None              # sku / productID / gtin... from the data; None: URL hash
    title: str | None = None
    price: float | None = None
    currency: str | None = None
    availability: str | None = None    # schema.org name: InStock, OutOfStock, PreOrder...
    brand: str | None = None
    category: str | None = None
    images: list[str] = field(default_factory=list)

    def merge(self, other: "ScrapedProduct") -> bool:
        """Fill this record's empty fields from ``other``; True if anything changed."""
        changed = False
        for name in MERGEABLE:
            if getattr(self, name) is None and getattr(other, name) is not None:
                setattr(self, name, getattr(other, name))
                changed = True
        for img in other.images:
            if img not in self.images:
                self.images.append(img)
                changed = True
        return changed

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ScrapedProduct":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def url_id(url: str) -> str:
    """The id of a product whose data has none: a stable hash of its canonical URL."""
    return hashlib.sha256(url.encode("utf-8")).hexdigest()[:16]
