"""The report's pictures, drawn with Pillow alone: bar charts and histograms (PNG), thumbnails of
duplicates (JPEG) and one contact sheet per cluster (PNG)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

SHEET_COLUMNS = 6
THUMB = (120, 160)          # thumbnail of a duplicate (width, height): dresses are tall
SHEET_CELL = (88, 118)      # contact sheet cell: two sheets side by side on a laptop screen

BLUE = (58, 96, 172)
GREY = (120, 120, 120)
LIGHT = (225, 228, 235)


def _font(size: int = 12):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType sizes
        return ImageFont.load_default()


def _short(v: float) -> str:
    a = abs(v)
    if a >= 1e6:
        return f"{v / 1e6:.3g}M"
    if a >= 1e4:
        return f"{v / 1e3:.3g}k"
    if a >= 100 or float(v).is_integer():
        return f"{v:.0f}"
    return f"{v:.3g}"


def bar_chart(path: Path, labels: Sequence[str], counts: Sequence[int], title: str, *,
              xlabel: str = "", size: tuple[int, int] = (560, 260)) -> Path:
    """A plain bar chart as a PNG (Pillow only)."""
    from PIL import Image, ImageDraw

    w, h = size
    left, right, top, bottom = 48, 16, 46, 52
    im = Image.new("RGB", size, "white")
    d = ImageDraw.Draw(im)
    f, small = _font(14), _font(11)
    d.text((left, 8), title, fill=(20, 20, 20), font=f)
    n = max(1, len(counts))
    peak = max(counts) if counts and max(counts) > 0 else 1
    plot_w, plot_h = w - left - right, h - top - bottom
    d.line([(left, top), (left, top + plot_h), (left + plot_w, top + plot_h)], fill=GREY)
    for frac in (0.5, 1.0):
        y = top + plot_h - frac * plot_h
        d.line([(left - 3, y), (left + plot_w, y)], fill=LIGHT)
        d.text((4, y - 6), _short(peak * frac), fill=GREY, font=small)
    slot = min(plot_w / n, 90.0)                     # a few bars stay bars, not slabs
    x_start = left + (plot_w - slot * n) / 2
    every = max(1, math.ceil(n / (plot_w / 46)))   # label at most one bar in 46 px
    for i, (lab, c) in enumerate(zip(labels, counts)):
        x0 = x_start + i * slot + max(1, slot * 0.12)
        x1 = x_start + (i + 1) * slot - max(1, slot * 0.12)
        y0 = min(top + plot_h - (c / peak) * plot_h, top + plot_h - 2)   # a count of 1 still shows
        if c > 0:
            d.rectangle([x0, y0, max(x0 + 1, x1), top + plot_h - 1], fill=BLUE)
            if slot >= 22:
                t = _short(c)
                tw = d.textlength(t, font=small)
                d.text(((x0 + x1 - tw) / 2, y0 - 14), t, fill=(40, 40, 40), font=small)
        if i % every == 0:
            lab = str(lab)
            if len(lab) > 12:
                lab = lab[:11] + "…"
            tw = d.textlength(lab, font=small)
            d.text((max(0, (x0 + x1 - tw) / 2), top + plot_h + 5), lab, fill=(60, 60, 60), font=small)
    if xlabel:
        tw = d.textlength(xlabel, font=small)
        d.text((left + (plot_w - tw) / 2, h - 18), xlabel, fill=GREY, font=small)
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path, "PNG", optimize=True)
    return path


def histogram(path: Path, values: Sequence[float], title: str, *, xlabel: str = "", bins: int = 20) -> Path:
    """A histogram of ``values`` as a PNG; bars are labelled with their lower edge."""
    import numpy as np

    v = np.asarray(values, np.float64)
    lo, hi = float(v.min()), float(v.max())
    if hi <= lo:
        counts, edges = np.array([len(v)]), np.array([lo, lo])
    else:
        counts, edges = np.histogram(v, bins=min(bins, max(1, len(np.unique(v)))), range=(lo, hi))
    labels = [_short(e) for e in edges[:-1]] if len(edges) > 1 else [_short(lo)]
    return bar_chart(path, labels, counts.tolist(), title, xlabel=xlabel)


def _tile(path: str, cell: tuple[int, int]):
    """The picture at ``path`` fitted into ``cell`` on white (a grey box when it cannot be read)."""
    from PIL import Image, ImageOps

    from ...images import load_image

    canvas = Image.new("RGB", cell, "white")
    try:
        im = ImageOps.contain(load_image(path, draft=max(cell)), cell)
        canvas.paste(im, ((cell[0] - im.width) // 2, (cell[1] - im.height) // 2))
    except Exception:
        canvas.paste(LIGHT, (0, 0, *cell))
    return canvas


def contact_sheet(path: Path, images: Sequence[str], title: str, *, columns: int = SHEET_COLUMNS,
                  cell: tuple[int, int] = SHEET_CELL, marked: int = 0) -> Path:
    """Tile ``images`` into one PNG under a title; the first ``marked`` get a blue rule beneath."""
    from PIL import Image, ImageDraw

    pad, head = 6, 30
    rows = max(1, math.ceil(len(images) / columns))
    w = columns * (cell[0] + pad) + pad
    h = head + rows * (cell[1] + pad + 4) + pad
    sheet = Image.new("RGB", (w, h), (246, 247, 250))
    d = ImageDraw.Draw(sheet)
    d.text((pad, 8), title, fill=(20, 20, 20), font=_font(14))
    for n, src in enumerate(images):
        r, c = divmod(n, columns)
        x, y = pad + c * (cell[0] + pad), head + r * (cell[1] + pad + 4)
        sheet.paste(_tile(src, cell), (x, y))
        if n < marked:
            d.rectangle([x, y + cell[1] + 1, x + cell[0] - 1, y + cell[1] + 3], fill=BLUE)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path, "PNG", optimize=True)
    return path


def thumbnail(path: Path, src: str, size: tuple[int, int] = THUMB) -> Path:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        _tile(src, size).save(path, "JPEG", quality=82, optimize=True)
    return path
