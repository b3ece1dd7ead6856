"""What is measured on the ranked results: hits at k (the source, or a byte-identical copy, among the first k), the rank of the first hit, the same-style and same-colour shares."""

from __future__ import annotations
from pathlib import Path
from typing import Sequence
import numpy as np
from PIL import Image

from .variants import foreground_mask


def hits_at(ranked: np.ndarray, targets: Sequence[set[int]], k: int) -> np.ndarray:
    """Per query: 1.0 when any of its target ids is among the first ``k`` results."""
    out = np.zeros(len(ranked), np.float32)
    for i, (row, t) in enumerate(zip(ranked, targets)):
        out[i] = float(any(int(r) in t for r in row[:k]))
    return out


def first_rank(ranked: np.ndarray, targets: Sequence[set[int]]) -> np.ndarray:
    """Per query: 1-based rank of the first target among the results, 0 when absent."""
    out = np.zeros(len(ranked), np.int64)
    for i, (row, t) in enumerate(zip(ranked, targets)):
        for j, r in enumerate(row):
            if int(r) in t:
                out[i] = j + 1
                break
    return out


def style_share(ranked: np.ndarray, targets: Sequence[set[int]], styles: Sequence[str | None],
                query_style: Sequence[str | None], k: int = 10) -> np.ndarray:
    """Per query: share of the top ``k`` results other than the source that have the query's style
    (NaN for queries without a style)."""
    out = np.full(len(ranked), np.nan, np.float32)
    for i, (row, t, qs) in enumerate(zip(ranked, targets, query_style)):
        if qs is None:
            continue
        others = [int(r) for r in row if int(r) >= 0 and int(r) not in t][:k]
        out[i] = sum(styles[r] == qs for r in others) / k
    return out


COLOURS = ("black", "white", "gray", "red", "orange", "yellow", "green", "blue", "purple", "pink")


def dominant_colour(im: Image.Image) -> int:
    """Index into COLOURS of the most common colour name among the product's pixels (the
    foreground when the backdrop is plain, else the central half of the picture)."""
    small = im.convert("RGB")
    small.thumbnail((96, 96))
    mask = foreground_mask(small)
    hsv = np.asarray(small.convert("HSV"), np.int16)
    if mask is None:
        h, w = hsv.shape[:2]
        mask = np.zeros((h, w), bool)
        mask[h // 4:h - h // 4, w // 4:w - w // 4] = True
    px = hsv[mask]
    if not len(px):
        px = hsv.reshape(-1, 3)
    hue, sat, val = px[:, 0].astype(np.float32) * (360 / 256), px[:, 1], px[:, 2]
    cls = np.full(len(px), 2)                                  # gray
    cls[(sat < 40) & (val > 190)] = 1                          # white
    chroma = (sat >= 40) & (val >= 60)
    bins = np.digitize(hue, [15, 40, 70, 160, 260, 290, 340])  # red orange yellow green blue purple pink red
    cls[chroma] = np.array([3, 4, 5, 6, 7, 8, 9, 3])[bins[chroma]]
    cls[val < 60] = 0                                          # black
    return int(np.bincount(cls, minlength=len(COLOURS)).argmax())


def colour_share(ranked: np.ndarray, targets: Sequence[set[int]], colours: np.ndarray,
                 query_colour: np.ndarray, use: np.ndarray, k: int = 10) -> np.ndarray:
    """Per query: share of the top ``k`` results other than the source with the source's dominant
    colour (NaN where ``use`` is False, e.g. grayscale photos, which carry no colour to match)."""
    out = np.full(len(ranked), np.nan, np.float32)
    for i, (row, t) in enumerate(zip(ranked, targets)):
        if not use[i]:
            continue
        others = [int(r) for r in row if int(r) >= 0 and int(r) not in t][:k]
        out[i] = sum(colours[r] == query_colour[i] for r in others) / k
    return out


def catalog_colours(images: Sequence[str], cat_key: str, cache: Path | None, progress: bool) -> np.ndarray:
    from concurrent.futures import ThreadPoolExecutor

    from tqdm import tqdm

    from ...images import load_image

    path = cache / f"colours-{cat_key}.npy" if cache else None
    if path is not None and path.exists():
        return np.load(path)

    def one(p):
        try:
            return dominant_colour(load_image(p, draft=128))
        except Exception:  # noqa: BLE001 - unreadable: no colour
            return -1

    with ThreadPoolExecutor(2) as ex:
        out = np.array(list(tqdm(ex.map(one, images), total=len(images), desc="colours", unit="img",
                                 disable=not progress, dynamic_ncols=True)), np.int64)
    if path is not None:
        np.save(path, out)
    return out
