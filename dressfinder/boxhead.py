"""The box head: where a product's photo is in a bigger picture, from one small forward pass.

A frozen EfficientNet-Lite0 trunk (ImageNet weights) with a small convolutional head trained on
pictures composed from product photos (``dressfinder.training.boxhead``; shipped as
``dressfinder/models/boxhead.onnx``, made by ``scripts/train_box_head.py``). For each cell of a
20x20 grid over the picture (longer side 320, padded square) it gives how central the cell lies in
a product photo's box, and the distances from the cell to that box's four edges. Each local peak
of the first map gives a box (:func:`decode`), its edges voted by the cells around the peak that
agree with it; :class:`BoxHead` returns them as fractions of the picture, best first.
``regions.locate`` encodes them as candidate boxes beside its own.
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from .images import fit_square

MODEL = Path(__file__).parent / "models" / "boxhead.onnx"
Box = tuple[float, float, float, float]
#: A peak must be at least this high (the head's centre-ness, 0-1) to give a box.
MIN_PEAK = 0.15
#: A peak's box is the vote of the cells whose centre-ness is at least ``VOTE_SHARE`` of the peak's
#: and whose own box overlaps the peak cell's by ``VOTE_AGREE`` (IoU), each edge weighted by the
#: cell's centre-ness over its distance to that edge (no less than ``VOTE_NEAR``): a cell near an
#: edge sees it best. On 400 photos of a screen and 400 scenes composed apart from the evaluation's
#: (seed + 7, ``scripts/box_iou.py``), the previous head's peak cell alone gave the true box at mean
#: IoU 0.725 and 0.705, its vote 0.764 and 0.734; the shipped head's 0.788 and 0.736, voted 0.816 and
#: 0.766 (docs/regions.md).
VOTE_SHARE = 0.1
VOTE_AGREE = 0.5
VOTE_NEAR = 0.02


def _iou(a: Sequence[float], b: Sequence[float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def decode(centre: np.ndarray, edges: np.ndarray, *, min_peak: float = MIN_PEAK, limit: int = 3,
           overlap: float = 0.5, voted: bool = True) -> list[tuple[Box, float]]:
    """Boxes (fractions of the square) from the head's maps: one per local peak of ``centre`` (G, G)
    at least ``min_peak``, from that cell's ``edges`` (4, G, G), overlapping ones dropped, then voted
    by the cells that agree with it (:func:`vote`; ``voted=False``: the peak cell's box); best first."""
    g = centre.shape[0]
    padded = np.pad(centre, 1, constant_values=-1.0)
    peak = np.max([padded[dy:dy + g, dx:dx + g] for dy in range(3) for dx in range(3)], axis=0)
    ys, xs = np.nonzero((centre >= peak) & (centre >= min_peak))
    cells = cell_boxes(edges)
    out: list[tuple[Box, float]] = []
    for i in np.argsort(-centre[ys, xs]):
        y, x = int(ys[i]), int(xs[i])
        l, t, r, b = cells[:, y, x].tolist()
        box = (max(0.0, l), max(0.0, t), min(1.0, r), min(1.0, b))
        if box[2] - box[0] < 1e-3 or box[3] - box[1] < 1e-3:
            continue
        if all(_iou(box, o) < overlap for o, _ in out):
            out.append((box, float(centre[y, x])))
        if len(out) >= limit:
            break
    return [(vote(centre, edges, cells, box, p), p) for box, p in out] if voted else out


def cell_boxes(edges: np.ndarray) -> np.ndarray:
    """Each cell's box (4, G, G: left, top, right, bottom, fractions of the square) from its ``edges``."""
    g = edges.shape[1]
    c = (np.arange(g, dtype=np.float64) + 0.5) / g
    return np.stack([c[None, :] - edges[0], c[:, None] - edges[1], c[None, :] + edges[2], c[:, None] + edges[3]])


def vote(centre: np.ndarray, edges: np.ndarray, cells: np.ndarray, box: Sequence[float], peak: float) -> Box:
    """``box`` (a peak's) with each edge the weighted mean of the agreeing cells' (:data:`VOTE_SHARE`);
    ``cells``: every cell's own box (:func:`cell_boxes`)."""
    ix = np.clip(np.minimum(cells[2], box[2]) - np.maximum(cells[0], box[0]), 0, None)
    iy = np.clip(np.minimum(cells[3], box[3]) - np.maximum(cells[1], box[1]), 0, None)
    union = (cells[2] - cells[0]) * (cells[3] - cells[1]) + (box[2] - box[0]) * (box[3] - box[1]) - ix * iy
    agree = (centre >= VOTE_SHARE * peak) & (ix * iy >= VOTE_AGREE * np.maximum(union, 1e-9))
    weight = np.where(agree, centre, 0.0)
    if weight.sum() <= 0:
        return tuple(box)
    w = weight[None] / np.maximum(edges, VOTE_NEAR)
    l, t, r, b = ((cells * w).sum(axis=(1, 2)) / w.sum(axis=(1, 2))).tolist()
    return (max(0.0, l), max(0.0, t), min(1.0, r), min(1.0, b))


def from_square(size: tuple[int, int], box: Sequence[float]) -> Box:
    """A box in fractions of a picture's padded square -> fractions of the picture (clipped)."""
    w, h = size
    s = max(w, h)
    ox, oy = (s - w) / 2, (s - h) / 2
    fx = lambda v: min(1.0, max(0.0, (v * s - ox) / w))   # noqa: E731
    fy = lambda v: min(1.0, max(0.0, (v * s - oy) / h))   # noqa: E731
    return (fx(box[0]), fy(box[1]), fx(box[2]), fy(box[3]))


class BoxHead:
    """``BoxHead()(image)``: the product photos' boxes in a picture, best first (a ``regions.ProposeFn``)."""

    def __init__(self, path: str | Path = MODEL, threads: int | None = None):
        from .encoders.onnx_runtime import OnnxModel

        self.path = Path(path)
        self.model = OnnxModel(self.path, threads)
        info = self.path.with_suffix(".json")
        self.size = int(json.loads(info.read_text())["size"]) if info.exists() else 320
        self.digest = hashlib.sha256(self.path.read_bytes()).hexdigest()[:16]

    def maps(self, im: Image.Image) -> tuple[np.ndarray, np.ndarray]:
        """The head's two maps for a picture: centre-ness (G, G) and edges (4, G, G), of its square."""
        arr = np.asarray(fit_square(im.convert("RGB"), self.size), np.float32)
        centre, edges = self.model.run_all(((arr - 127.0) / 128.0).transpose(2, 0, 1)[None])
        return centre[0], edges[0]

    def boxes(self, im: Image.Image, *, min_peak: float = MIN_PEAK, limit: int = 3) -> list[tuple[Box, float]]:
        """Up to ``limit`` boxes (fractions ``l, t, r, b`` of the picture) with their peak, best first."""
        centre, edges = self.maps(im)
        found = decode(centre, edges, min_peak=min_peak, limit=limit)
        return [(from_square(im.size, b), p) for b, p in found]

    __call__ = boxes


@functools.cache
def shipped() -> BoxHead | None:
    """The shipped box head, loaded on first use (None when its file is missing)."""
    return BoxHead(MODEL) if MODEL.exists() else None
