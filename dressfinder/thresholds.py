"""The cosine thresholds of the region search and the close-up reading, one encoder's facts.

Which score means "this is the product", how much a region must beat the whole photo by, when a
photo is read as a close-up of the fabric: these lines sit on an encoder's cosine scale, and two
encoders spread their cosines differently (the encoder trained with photos of screens, shipped since
2026-12-05, puts its median best match of a fabric close-up at 0.43 where the one before put it at
0.70; docs/regions.md). So
they are kept with the model: a model's ``.json`` may bring its own under ``"thresholds"``
(``training/fit_thresholds.py`` fits them; the shipped model's were fitted so, its
``closeup_min_patch`` then re-calibrated for the close-ups' closer look by
``scripts/calibrate_closeups.py --check``), and the encoder
carries them (``Encoder.thresholds``); ``regions`` and ``search`` use them. The defaults, for a
model without any, are the ones calibrated by ``scripts/calibrate_regions.py`` and
``scripts/calibrate_closeups.py`` on the model shipped until 2026-12-05 (trained without photos
of screens among its views), the reference the fit carries over from.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields


@dataclass(frozen=True)
class Thresholds:
    """The cosine thresholds of the region choice (``regions.locate``, ``regions.choose``) and of
    the close-up reading (``regions.wants_closeup``, ``search.closeup_hits``). Defaults: see the
    module doc. An encoder whose cosines spread wider needs lower lines and wider differences."""

    #: A whole photo whose best match scores this is that product: no regions are looked for.
    sure: float = 0.80
    #: A content box chosen with a best match at least this ends the search: no windows.
    content_sure: float = 0.75
    #: Another region is reported when its best match scores at least this.
    other_min: float = 0.80
    #: A box replaces the whole photo when its best match scores this much higher, for a box of
    #: area 0; a box of area ``a`` needs ``margin * (1 - a)`` (:func:`needed`).
    margin: float = 0.05
    #: Content boxes whose best matches are within this of the best one count as tied: the biggest
    #: wins (a shop page's big photo over the "you may also like" tiles).
    tie: float = 0.05
    #: A photo is not read as a close-up when the region used beats the whole photo's best match by
    #: this much: that region explains the picture (:func:`wants_closeup`).
    closeup_max_gain: float = 0.10
    #: The patch vectors weigh most for a photo whose whole is this far or more below :attr:`sure`,
    #: less the surer it is, nothing at sure (``search.closeup_weight``).
    closeup_ramp: float = 0.15
    #: The least cosine of a close-up's best patch match for the photo to be read as a close-up at
    #: all (below it nothing in the catalogue has that fabric; ``search.reads_as_closeup``).
    closeup_min_patch: float = 0.55
    #: A picture that frames a product's photo (``regions.framed``) is searched by the box head's
    #: box over it, though no box beat the whole photo by the margin, when the whole photo's best
    #: match is this far or more below :attr:`sure`: the whole picture then matches nothing
    #: (``regions.framed_photo``). Calibrated on the shipped model's scale (0.3029 there: a whole
    #: below 0.33; docs/regions.md); this default is that carried back by the shipped model's stretch.
    framed_gap: float = 0.19

    @classmethod
    def from_dict(cls, values: dict | None) -> "Thresholds":
        """Thresholds from a model's ``.json`` (missing keys keep their defaults); ValueError for an
        unknown key or a value that is not a finite number."""
        if values is not None and not isinstance(values, dict):
            raise ValueError(f"thresholds must be an object of numbers, not {values!r}")
        known = {f.name for f in fields(cls)}
        values = dict(values or {})
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown thresholds: {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        for name, v in values.items():
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ValueError(f"threshold {name} must be a number, not {v!r}")
        return cls(**{k: float(v) for k, v in values.items()})

    @classmethod
    def of(cls, encoder) -> "Thresholds":
        """The thresholds for ``encoder``'s cosines: its own (``encoder.thresholds``, read from its
        model's ``.json``) when it has them, else the defaults."""
        own = getattr(encoder, "thresholds", None)
        return own if isinstance(own, Thresholds) else DEFAULT_THRESHOLDS

    def to_dict(self) -> dict[str, float]:
        return {f.name: float(getattr(self, f.name)) for f in fields(self)}

    def key(self) -> str:
        """A short text naming these values (cache keys of work that depends on them)."""
        return ",".join(f"{v:.6g}" for v in self.to_dict().values())


#: The defaults: calibrated on the model shipped until 2026-12-05 (see the module doc).
DEFAULT_THRESHOLDS = Thresholds()
