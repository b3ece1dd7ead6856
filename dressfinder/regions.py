"""Where the dress is in a bigger picture: candidate boxes on the query side, and the choice
between them and the whole photo.

Shoppers send screenshots (a social post, a shop page with a "you may also like" row), photos of
a screen, or a scene where the dress fills a third of the frame. Two cheap, general cues give
candidate boxes, as fractions ``(left, top, right, bottom)`` of the photo:

* **content boxes** (:func:`content_boxes`): on a small, box-filtered copy of the photo (noise,
  moiré and JPEG blocks average away) the flat parts (app backgrounds, bars, margins) are told from
  the busy parts; thin strokes (text, icons) are opened away, and each remaining blob of busy
  pixels big enough to be a photo gives a box: the post's photo, each product tile;
* **the box head's boxes** (``propose``, the shipped :mod:`dressfinder.boxhead`): where a small
  network trained on composed pictures sees a product's photo (a scene, a photo of a screen);
* **windows** (:func:`windows`): overlapping windows for pictures with no flat parts at all (a
  scene, a photo of a screen): a 3x3 grid of half-size windows, and a 5x3 grid of upright ones
  half the photo's height and three quarters of that wide in pixels (the shape of a dress photo).

The encoder and the index judge the candidates (:func:`locate`): the whole photo is encoded as
usual (with its mirror image); when its best match is not already sure (``Thresholds.sure``), the
content boxes are encoded once each (no flip), then, unless one of them clearly won
(``content_sure``), the box head's boxes; when none of those wins, the windows and smaller
boxes inside the best three (and inside the head's best box: when the head is fairly sure of it,
a window or content box far from it is not used). The head's boxes and the windows are cut from
the picture without a photographed screen's moiré (``images.descreen``: the picture itself when
it has none). A box is used instead of the whole photo only when its best score beats the whole
photo's by ``margin`` (bigger boxes need less: see :func:`needed`), so a small window never wins
by accident; except when the box head is sure of a photo framed in the picture and the whole
matches nothing (:func:`framed_photo`). Boxes whose best match is some *other* product, at a
score a real match gets (``other_min``), come back as the other regions found (collages, product
rows).

The cosine thresholds (:class:`Thresholds`) belong to the encoder's score scale: they were
calibrated by ``scripts/calibrate_regions.py`` on generated pictures (``dressfinder.tools.scenes``)
made from sources that the evaluation does not use (see that script's docstring for what it
measured), on the model shipped until 2026-12-05; another model's (the shipped one's too) are
carried to its scale by ``dressfinder.training.fit_thresholds`` and kept in its ``.json``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable, Sequence

import numpy as np
from PIL import Image

from .images import descreen
from .thresholds import Thresholds

Box = tuple[float, float, float, float]
WHOLE: Box = (0.0, 0.0, 1.0, 1.0)

#: Fixed windows (fractions): the centre, and overlapping quadrants (then refined, see locate).
WINDOWS: tuple[Box, ...] = tuple((x, y, x + 0.5, y + 0.5) for y in (0.0, 0.25, 0.5) for x in (0.0, 0.25, 0.5))
#: Upright windows: this share of the photo's height, ``UPRIGHT_ASPECT`` times that wide in pixels,
#: on a ``UPRIGHT_GRID`` (columns, rows) grid: a dress's photo in a scene or on a screen.
UPRIGHT_HEIGHT = 0.5
UPRIGHT_ASPECT = 0.75
UPRIGHT_GRID = (5, 3)
#: At most this many candidate boxes are encoded per query (each one forward pass).
MAX_CANDIDATES = 30
#: Boxes this share of a window's size inside it are tried too, inside each of the
#: ``REFINE_TOP`` best windows (the best one is often a look-alike elsewhere in the picture: in
#: the full evaluation, refining the best three instead of the best one, with the used box
#: re-encoded with its mirror image, took photos of a screen from 0.719 / 0.778 to 0.742 / 0.812
#: and scenes from 0.958 / 0.979 to 0.962 / 0.983, Recall@1 / @10; docs/regions.md), then inside
#: the best of those while the score rises, at most ``REFINE_STEPS`` times in all.
REFINE_SCALE = 0.7
REFINE_TOP = 3
REFINE_STEPS = 1
#: The box head's boxes (``propose``) are tried when their peak (0-1) is at least this; the best
#: one also at these scales about its centre (calibrated on 600 queries, see docs/regions.md).
HEAD_MIN_PEAK = 0.10
HEAD_SCALES = (0.85, 1.15)
#: When the box head's best box has a peak of at least ``ANCHOR_PEAK`` but none of its boxes won
#: by itself, the windows' round also tries the smaller boxes inside that box (:func:`refine_boxes`),
#: and a window or content box is used only when it and that box overlap by ``ANCHOR_OVERLAP`` of
#: the smaller one (:func:`overlap_of_smaller`; :func:`choose`'s ``anchor``).
#: On a photo of a screen the windows otherwise find a look-alike of something else in the room
#: (calibrated on 600 such photos apart from the evaluation's, 2026-12-05: 0.950 / 0.977 -> 0.957 /
#: 0.985, peaks 0.2-0.5 alike; 7 other kinds unchanged or better; docs/regions.md).
ANCHOR_PEAK = 0.4
ANCHOR_OVERLAP = 0.5
#: Another region found is a box apart from the used one and the others: at most this share of
#: the smaller of the two inside the other (:func:`choose`).
APART = 0.6
#: Photos with a shorter side below this many pixels are searched whole (no detail to find).
MIN_SIDE = 160
#: Content boxes: the small copy's longer side, and the least share of the photo a box covers.
SMALL_SIDE = 192
MIN_BOX_AREA = 0.03


@dataclass
class Region:
    """A searched box: where, how its best match scored, the vector searched, and what found it."""

    box: Box
    score: float
    vector: np.ndarray
    kind: str                  # "whole", "crop", "content", "head", "window"
    best_row: int = -1         # the row of its best match (to tell regions apart)

    def area(self) -> float:
        return (self.box[2] - self.box[0]) * (self.box[3] - self.box[1])


@dataclass
class Located:
    """The region used for the search, and the other regions found (best first)."""

    used: Region
    others: list[Region] = field(default_factory=list)
    whole: Region | None = None
    #: The box head's boxes with their peaks, best first, when the search looked at them (None: it
    #: did not: the whole photo was sure, or a content box clearly won).
    proposed: list[tuple[Box, float]] | None = None
    #: The box head's best box, judged (one pass), when the head was sure of it
    #: (:data:`ANCHOR_PEAK`) and another region was used (:func:`_seen_by_head`): a second opinion
    #: on where the product is, whose results ``search`` weaves in (``search.HEAD_WEIGHT``).
    head: Region | None = None

    @property
    def whole_score(self) -> float:
        """The whole photo's best match (the used region's when the whole was not recorded)."""
        return (self.whole if self.whole is not None else self.used).score


# --------------------------------------------------------------------------- boxes

def iou(a: Sequence[float], b: Sequence[float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def overlap_of_smaller(a: Sequence[float], b: Sequence[float]) -> float:
    """The share of the smaller box that lies inside the other."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    small = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return ix * iy / small if small > 0 else 0.0


def _small_copy(im: Image.Image, side: int = SMALL_SIDE) -> np.ndarray:
    """The photo box-reduced by a whole factor, to a longer side between ``side`` and twice that."""
    factor = max(1, max(im.size) // side)
    im = im if im.mode == "RGB" else im.convert("RGB")
    small = im.reduce(factor) if factor > 1 else im
    return np.asarray(small, np.int16)


def busy_mask(arr: np.ndarray, flat: float = 8.0) -> np.ndarray:
    """True where the small copy is not flat: a 3x3 neighbourhood's colour spread above ``flat``."""
    from scipy import ndimage

    spread = ndimage.maximum_filter(arr, (3, 3, 1)) - ndimage.minimum_filter(arr, (3, 3, 1))
    return spread.max(axis=2) > flat


def page_colour(arr: np.ndarray, busy: np.ndarray, tol: int = 10) -> np.ndarray:
    """True where the small copy has the page's colour: the commonest colour of its flat parts
    (a photo with a smooth backdrop is not flat page, unless it is the page's very colour)."""
    flat = arr[~busy]
    codes = (flat[:, 0] // 16) * 256 + (flat[:, 1] // 16) * 16 + flat[:, 2] // 16
    top = np.bincount(codes.astype(np.int64)).argmax()
    colour = flat[codes == top].mean(axis=0)
    return np.abs(arr - colour).max(axis=2) <= tol


def _runs(profile: np.ndarray, thr: float, min_len: int, gap: int = 2) -> list[tuple[int, int]]:
    """Runs of ``profile > thr`` (gaps up to ``gap`` bridged), at least ``min_len`` long."""
    on = np.flatnonzero(profile > thr)
    if not len(on):
        return []
    runs, a, b = [], on[0], on[0]
    for i in on[1:]:
        if i - b > gap + 1:
            runs.append((a, b + 1))
            a = i
        b = i
    runs.append((a, b + 1))
    return [(a, b) for a, b in runs if b - a >= min_len]


def _cut(solid: np.ndarray) -> list[tuple[int, int, int, int]]:
    """XY-cut: bands of busy rows, in each the runs of busy columns, each tightened to its rows."""
    h, w = solid.shape
    out = []
    for y0, y1 in _runs(solid.mean(axis=1), 0.04, max(3, h // 25), gap=1):
        for x0, x1 in _runs(solid[y0:y1].mean(axis=0), 0.15, max(3, w // 12), gap=0):
            for a, b in _runs(solid[y0:y1, x0:x1].mean(axis=1), 0.3, max(3, h // 25), gap=1):
                out.append((x0, y0 + a, x1, y0 + b))
    return out


def content_boxes(im: Image.Image, limit: int = 6) -> list[Box]:
    """Boxes around the blocks of a picture with flat parts (screenshots, pages, collages, a
    screen's page inside a busy room), biggest first; none when the picture has no flat parts."""
    from scipy import ndimage

    arr = _small_copy(im)
    smooth = ndimage.uniform_filter(arr.astype(np.float32), (3, 3, 1))   # moiré and noise average away
    busy = busy_mask(smooth, 6.0)
    h, w = busy.shape
    if busy.mean() > 0.93:          # a photo edge to edge: no flat layout to read
        return []
    solid = ndimage.binary_opening(~page_colour(arr, busy), structure=np.ones((5, 5), bool))
    blocks = _cut(solid)
    page = _page_box(busy)          # the page's own box, when a busy surround frames it (a screen):
    # inside it, what is not the page's flat area (glare makes its colour drift, so not by colour)
    if page is not None:
        x0, y0, x1, y1 = page
        inner = ndimage.binary_opening(~biggest_flat(busy[y0:y1, x0:x1]), np.ones((5, 5), bool))
        blocks += [(a + x0, b + y0, c + x0, d + y0) for a, b, c, d in _cut(inner)]
    boxes: list[tuple[float, Box]] = []
    for x0, y0, x1, y1 in blocks:
        bw, bh = (x1 - x0) / w, (y1 - y0) / h
        if not MIN_BOX_AREA <= bw * bh <= 0.9 or min(bw * w / max(bh * h, 1), bh * h / max(bw * w, 1)) < 0.2:
            continue
        if solid[y0:y1, x0:x1].mean() < 0.3:
            continue
        box = (float(x0 / w), float(y0 / h), float(x1 / w), float(y1 / h))
        if all(iou(box, b) < 0.8 for _, b in boxes):
            boxes.append((bw * bh, box))
    boxes.sort(key=lambda t: -t[0])
    return [b for _, b in boxes[:limit]]


def biggest_flat(busy: np.ndarray) -> np.ndarray:
    """True on the biggest connected flat area (a page, even under a screen's glare, whose colour
    drifts smoothly), False elsewhere."""
    from scipy import ndimage

    flat = ndimage.binary_opening(~busy, structure=np.ones((3, 3), bool))
    labels, n = ndimage.label(flat)
    if n == 0:
        return np.zeros_like(busy)
    return labels == int(np.bincount(labels.ravel())[1:].argmax()) + 1


def _page_box(busy: np.ndarray) -> tuple[int, int, int, int] | None:
    """The bounding box of the biggest flat area, when it is a page framed by busy parts."""
    from scipy import ndimage

    page = biggest_flat(busy)
    if not page.any():
        return None
    sl = ndimage.find_objects(page.astype(np.int32))[0]
    h, w = busy.shape
    y0, y1, x0, x1 = sl[0].start, sl[0].stop, sl[1].start, sl[1].stop
    share = (y1 - y0) * (x1 - x0) / (h * w)
    return (x0, y0, x1, y1) if 0.15 < share < 0.85 else None


def windows(width: int, height: int) -> list[Box]:
    """The fixed windows of a ``width`` x ``height`` photo: :data:`WINDOWS`, then the upright ones."""
    bh = UPRIGHT_HEIGHT
    bw = min(1.0, UPRIGHT_ASPECT * bh * height / max(width, 1))
    nx, ny = UPRIGHT_GRID
    upright = [(float(x), float(y), float(x + bw), float(y + bh))
               for y in np.linspace(0.0, 1.0 - bh, ny) for x in np.linspace(0.0, 1.0 - bw, nx)]
    return list(WINDOWS) + upright


def candidate_boxes(im: Image.Image, limit: int = MAX_CANDIDATES) -> list[tuple[Box, str]]:
    """The boxes worth encoding: content boxes first, then the fixed windows, near-repeats dropped."""
    out: list[tuple[Box, str]] = []
    for box, kind in [(b, "content") for b in content_boxes(im)] + [(b, "window") for b in windows(*im.size)]:
        if len(out) >= limit:
            break
        if all(iou(box, o) < 0.8 for o, _ in out) and iou(box, WHOLE) < 0.9:
            out.append((box, kind))
    return out


def crop_box(im: Image.Image, box: Sequence[float]) -> Image.Image:
    w, h = im.size
    x0, y0 = int(round(box[0] * w)), int(round(box[1] * h))
    x1, y1 = max(x0 + 1, int(round(box[2] * w))), max(y0 + 1, int(round(box[3] * h)))
    return im.crop((x0, y0, x1, y1))


#: :func:`closeup_views`: a close-up of the fabric is compared with views of a candidate's catalogue
#: image of these heights (fractions of the image's height), of the close-up's own shape, centred on
#: the grid :data:`CLOSEUP_VIEW_X` x :data:`CLOSEUP_VIEW_Y` (fractions): down the middle of a product
#: photo, where its fabric is (docs/regions.md, "Close-ups looked at closer": on 150 close-ups, 48
#: views of four heights on a 3 x 4 grid found first no more than these four, nor than 8 of two heights).
CLOSEUP_VIEW_HEIGHTS = (0.45,)
CLOSEUP_VIEW_X = (0.5,)
CLOSEUP_VIEW_Y = (0.3, 0.45, 0.6, 0.75)


def closeup_views(size: tuple[int, int], aspect: float) -> list[Box]:
    """Boxes (fractions) of an image of ``size`` (w, h) where a close-up whose shape is ``aspect``
    (width / height) may have been taken: :data:`CLOSEUP_VIEW_HEIGHTS` high, as wide as the shape
    says (at most the image's width), centred on the grid, moved inside the image where they would
    stick out. Duplicates (a narrow image) are left out."""
    w, h = size
    if w < 1 or h < 1 or not aspect > 0:
        return []
    out: dict[tuple[float, ...], Box] = {}
    for hf in CLOSEUP_VIEW_HEIGHTS:
        bh = min(1.0, hf)
        bw = min(1.0, hf * h * float(aspect) / w)
        for cx in CLOSEUP_VIEW_X:
            for cy in CLOSEUP_VIEW_Y:
                l, t = min(max(0.0, cx - bw / 2), 1.0 - bw), min(max(0.0, cy - bh / 2), 1.0 - bh)
                box = (l, t, l + bw, t + bh)
                out.setdefault(tuple(round(v, 4) for v in box), box)
    return list(out.values())


# --------------------------------------------------------------------------- the choice

def needed(area: float, th: Thresholds) -> float:
    """How much a box of this area (share of the photo) must beat the whole photo's best score by."""
    return th.margin * (1.0 - min(max(area, 0.0), 1.0))


BestFn = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


def refine_boxes(box: Box, scale: float = REFINE_SCALE) -> list[Box]:
    """Smaller boxes inside ``box``: its four corners and its centre, each ``scale`` of its size."""
    l, t, r, b = box
    w, h = (r - l) * scale, (b - t) * scale
    cx, cy = (l + r - w) / 2, (t + b - h) / 2
    return [(x, y, x + w, y + h) for x, y in ((l, t), (r - w, t), (l, b - h), (r - w, b - h), (cx, cy))]


def _encode_boxes(encoder, im: Image.Image, boxes: list[tuple[Box, str]], best: BestFn) -> list[Region]:
    if not boxes:
        return []
    batch = np.stack([encoder.preprocess(crop_box(im, b)) for b, _ in boxes])
    vectors = np.asarray(encoder.encode_arrays(batch), np.float32)
    scores, rows = best(vectors)
    return [Region(b, float(s), v, kind, int(r)) for (b, kind), s, v, r in zip(boxes, scores, vectors, rows)]


ProposeFn = Callable[[Image.Image], Sequence[tuple[Box, float]]]


def locate(encoder, im: Image.Image, best: BestFn, *, limit: int = MAX_CANDIDATES,
           whole_vector: np.ndarray | None = None, propose: ProposeFn | None = None,
           thresholds: Thresholds | None = None) -> Located:
    """Search the whole photo and, unless its best match is already sure, the content boxes; when
    none of those wins, the windows (and smaller boxes inside the best three). Pick the region to use
    and the others. ``best(vectors)`` gives each vector's best match: (cosines, rows), each (n,).
    A box used instead of the whole photo is then encoded as query photos are (with its mirror
    image, ``encode_query_arrays``): the candidates were judged on one pass each, the search uses
    the steadier vector (and the used region's ``score`` is then its best match's). ``thresholds``:
    default the encoder's (:meth:`Thresholds.of`)."""
    th = Thresholds.of(encoder) if thresholds is None else thresholds
    if whole_vector is None:
        whole_vector = _query_vector(encoder, im)
    scores, rows = best(whole_vector[None])
    whole = Region(WHOLE, float(scores[0]), whole_vector, "whole", int(rows[0]))
    if min(im.size) < MIN_SIDE or whole.score >= th.sure:
        return Located(whole, [], whole)
    located, seen = _pick(encoder, im, best, whole, limit, propose, th)
    used = located.used
    if used is not whole:   # the steadier vector, and its best match's score (the one searched)
        used.vector = _query_vector(encoder, crop_box(seen if used.kind != "content" else im, used.box))
        used.score = float(best(used.vector[None])[0][0])
    return located


def _query_vector(encoder, im: Image.Image) -> np.ndarray:
    """A picture's vector as query photos get it: with its mirror image (``encode_query_arrays``)."""
    return np.asarray(encoder.encode_query_arrays(encoder.preprocess(im)[None]), np.float32)[0]


def _pick(encoder, im: Image.Image, best: BestFn, whole: Region, limit: int,
          propose: ProposeFn | None, th: Thresholds) -> tuple[Located, Image.Image]:
    """:func:`locate`'s search for a photo whose whole is not sure: content boxes, then the box
    head's boxes (``propose``) and the windows, these on the picture without a photographed
    screen's moiré (``images.descreen``; a laid-out screenshot has none); when the whole photo is
    kept, the head's boxes over a framed photo may still be used (:func:`framed_photo`). Returns
    the choice and the picture the head's boxes and the windows were cut from."""
    cands = candidate_boxes(im, limit)
    found = _encode_boxes(encoder, im, [c for c in cands if c[1] == "content"], best)
    located = choose(whole, found, th)
    if located.used.kind == "content" and located.used.score >= th.content_sure:
        return located, im                  # a laid-out picture: its block is the answer
    seen = descreen(im) or im
    proposed = proposals(seen, propose)
    heads = _encode_boxes(encoder, seen, [(b, "head") for b in head_boxes(proposed)], best)
    found += heads
    anchor = sure_box(proposed)
    second = heads[0] if anchor is not None else None       # the head's sure box (head_boxes: best first)
    located = choose(whole, found, th)
    if located.used.kind == "head":         # the box head found the photo: no windows
        return _seen_by_head(located, proposed, second), seen
    if anchor is not None:
        found += _encode_boxes(encoder, seen, [(b, "head") for b in refine_boxes(anchor)], best)
    windows = _encode_boxes(encoder, seen, [c for c in cands if c[1] == "window"], best)
    if windows:
        tops = sorted(windows, key=lambda r: -r.score)[:REFINE_TOP]
        top_score = tops[0].score
        for _ in range(REFINE_STEPS):       # coarse to fine, while it helps
            finer = _encode_boxes(encoder, seen, [(b, "window") for t in tops for b in refine_boxes(t.box)], best)
            windows += finer
            step = max(finer, key=lambda r: r.score)
            if step.score <= top_score:
                break
            tops, top_score = [step], step.score
    located = choose(whole, found + windows, th, anchor)
    located = framed_photo(located, [r for r in found if r.kind == "head"], proposed, th)
    return _seen_by_head(located, proposed, second), seen


def framed_photo(located: Located, heads: list[Region], proposed: Sequence[tuple[Box, float]],
                 th: Thresholds) -> Located:
    """``located``, or, when it kept the whole photo in a picture that frames a product's photo
    (the box head's ``proposed`` boxes: :func:`framed`) and the whole matches nothing in the
    catalogue (its best match at least ``th.framed_gap`` below ``th.sure``), the best of the box
    head's ``heads`` over its sure box used instead (its box, rescaled, the boxes inside it: those
    overlapping it by :data:`ANCHOR_OVERLAP` of the smaller). The photo's box is then a better
    query than the whole picture even when it does not beat the whole's score by the margin (a
    photo of a screen: its whole a room and a page). The search still weaves the whole's results in."""
    whole = located.whole
    if located.used is not whole or whole.score > th.sure - th.framed_gap or not framed(proposed):
        return located
    anchor = sure_box(proposed)
    near = [r for r in heads if overlap_of_smaller(r.box, anchor) >= ANCHOR_OVERLAP]
    if not near:
        return located
    used = max(near, key=lambda r: r.score)
    others = [o for o in located.others if o is not used and overlap_of_smaller(o.box, used.box) <= APART]
    return Located(used, others, whole)


def _seen_by_head(located: Located, proposed: list[tuple[Box, float]], second: Region | None) -> Located:
    """``located`` with what the box head saw: its boxes, and its sure box as a second opinion
    when another region was used (a window, a content box, or another of the head's: its box
    rescaled, a box inside it), not when that box itself was used or the whole photo was kept."""
    other = located.used.kind != "whole" and located.used is not second
    return replace(located, proposed=proposed, head=second if other else None)


def scaled(box: Sequence[float], scale: float) -> Box:
    """``box`` grown or shrunk about its centre by ``scale``, clipped to the photo."""
    cx, cy, w, h = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2, (box[2] - box[0]) * scale, (box[3] - box[1]) * scale
    return (max(0.0, cx - w / 2), max(0.0, cy - h / 2), min(1.0, cx + w / 2), min(1.0, cy + h / 2))


def proposals(im: Image.Image, propose: ProposeFn | None) -> list[tuple[Box, float]]:
    """The box head's boxes for ``im`` (``propose``; None: none) as float tuples, with their peaks,
    best first."""
    return [(tuple(float(v) for v in b), float(p)) for b, p in (propose(im) if propose else [])]


def sure_box(proposed: Sequence[tuple[Box, float]]) -> Box | None:
    """The best of the box head's ``proposed`` boxes (with their peaks, best first) when the head
    is fairly sure of it (a peak of at least :data:`ANCHOR_PEAK`), else None: the anchor of the
    windows' round, the second opinion, the frame :func:`framed` looks at."""
    return proposed[0][0] if proposed and proposed[0][1] >= ANCHOR_PEAK else None


def head_boxes(proposed: Sequence[tuple[Box, float]]) -> list[Box]:
    """Of the box head's ``proposed`` boxes (with their peaks, best first), those with a peak of at
    least :data:`HEAD_MIN_PEAK`, and the best one also :data:`HEAD_SCALES` of its size (its edges
    are a guess, its centre is good)."""
    found = [b for b, p in proposed if p >= HEAD_MIN_PEAK]
    return found + [scaled(found[0], s) for s in HEAD_SCALES] if found else []


#: Bump when which photos are read as close-ups changes (cached evaluation close-ups key on it).
CLOSEUP_VERSION = "4"
#: A picture in which the box head sees a product's photo (its best box's peak at least
#: :data:`ANCHOR_PEAK`) covering less than this share of it is a photo framed in a bigger picture
#: (a screen, a scene, a page), not a close-up of the fabric (:func:`framed`). Calibrated on
#: generated pictures apart from the evaluation's (``scripts/calibrate_closeups.py --check``, two
#: seeds, 600 sources; docs/regions.md): 0.3 took screens from 0.925 / 0.950 to 0.930 / 0.955 and
#: from 0.948 / 0.973 to 0.950 / 0.980, no other kind moved; 0.4 cost 2 of 400 close-ups their
#: first place (and in the full evaluation 3 of 1,203).
FRAMED_AREA = 0.3


def framed(proposed: Sequence[tuple[Box, float]], most: float | None = None) -> bool:
    """Whether the box head's ``proposed`` boxes (with their peaks, best first) show a product's
    photo framed in the picture: the best one sure enough (:data:`ANCHOR_PEAK`) and smaller than
    ``most`` (default :data:`FRAMED_AREA`) of the picture. On a close-up of the fabric the head's
    best box, when it has one, covers most of the picture."""
    box = sure_box(proposed)
    if box is None:
        return False
    l, t, r, b = box
    return (r - l) * (b - t) < (FRAMED_AREA if most is None else float(most))


def detected(located: Located) -> list[tuple[Box, float]]:
    """The dresses the box head saw in the picture besides the one searched, to offer the shopper
    as boxes to tap (each is searched, as a crop, only when tapped; nothing is encoded here). Of
    its ``located.proposed`` boxes (best first; none when the head did not run: the whole photo
    was sure, or a content box clearly won), those

    * it is fairly sure of: a peak of at least :data:`ANCHOR_PEAK`, its line for a sure box;
    * framed in the picture: under :data:`FRAMED_AREA` of it, the line :func:`framed` draws between
      a product's photo in a bigger picture and the big box the head sees in a close-up of the
      fabric (the whole picture, searched already);
    * apart from the region searched (unless that is the whole photo), from the other regions
      found, and from each other: at most :data:`APART` of the smaller of two inside the other,
      as :func:`choose` tells its other regions apart.

    Chosen from the picture alone, whatever the catalogue holds (the other regions found are the
    boxes whose best match is another product)."""
    if not located.proposed:
        return []
    taken = [o.box for o in located.others] + ([] if located.used.kind == "whole" else [located.used.box])
    out: list[tuple[Box, float]] = []
    for box, peak in located.proposed:
        if peak < ANCHOR_PEAK or (box[2] - box[0]) * (box[3] - box[1]) >= FRAMED_AREA:
            continue
        if all(overlap_of_smaller(box, t) <= APART for t in taken + [b for b, _ in out]):
            out.append((box, peak))
    return out


def wants_closeup(located: Located, im: Image.Image, th: Thresholds, propose: ProposeFn | None = None) -> bool:
    """Whether the photo should also be read as a close-up of the fabric (``search.closeup_hits``,
    whose gate then decides): the whole photo's best match is not sure, no region explains the
    picture much better (``th.closeup_max_gain``), and the box head does not see a product's photo
    framed in it (:func:`framed`: its boxes from ``located``, or, when the search did not look at
    them, from ``propose`` on the picture without moiré). A region may have been used: on a close-up
    the box head often finds a big box that wins by little (19 of 150 close-ups in calibration; see
    docs/regions.md); on a photo of a screen the dress's box may win by little too, but it is small."""
    whole = located.whole_score
    if not (whole < th.sure and located.used.score - whole < th.closeup_max_gain and min(im.size) >= MIN_SIDE):
        return False
    proposed = located.proposed if located.proposed is not None else proposals(descreen(im) or im, propose)
    return not framed(proposed)


def choose(whole: Region, regions: list[Region], th: Thresholds, anchor: Box | None = None,
           anchor_overlap: float | None = None) -> Located:
    """The rule: the best box wins over the whole photo only by :func:`needed` (with an ``anchor``,
    the box head's best box, a window or content box only if it overlaps the anchor by
    ``anchor_overlap``, default :data:`ANCHOR_OVERLAP`); others are boxes apart from the used one
    whose best match is another product, scored like a real match (in a laid-out picture, only its
    content boxes)."""
    used = whole
    least = ANCHOR_OVERLAP if anchor_overlap is None else float(anchor_overlap)
    winners = [r for r in regions if r.score >= whole.score + needed(r.area(), th)
               and (anchor is None or r.kind == "head" or overlap_of_smaller(r.box, anchor) >= least)]
    if winners:
        used = max(winners, key=lambda r: (r.score, r.area()))
        if used.kind == "content":
            used = max((r for r in winners if r.kind == "content" and r.score >= used.score - th.tie),
                       key=lambda r: (r.area(), r.score))
    others: list[Region] = []
    seen = {used.best_row}
    laid_out = any(r.kind == "content" for r in regions)   # then windows are not regions of their own
    for r in sorted(regions, key=lambda r: -r.score):
        if r.score < th.other_min or r.best_row in seen or r is used or (laid_out and r.kind == "window"):
            continue
        if r.kind == "whole" or overlap_of_smaller(r.box, used.box) > APART and used.kind != "whole":
            continue
        if any(overlap_of_smaller(r.box, o.box) > APART for o in others):
            continue
        seen.add(r.best_row)
        others.append(r)
    return Located(used, others, whole)


# --------------------------------------------------------------------------- many queries at once

#: Bump when the choice would come out different (cached evaluation vectors key on it).
VERSION = "15"


def located_vectors(encoder, photos: Sequence[bytes], whole_vectors: np.ndarray, catalogue: np.ndarray,
                    progress: bool = False, propose: ProposeFn | None = None) -> tuple[np.ndarray, np.ndarray]:
    """For each query photo, the vector of the region :func:`locate` uses, and that of the box
    head's box the search weaves in as a second opinion (``Located.head``; zeros where there is
    none): the evaluation's path. ``whole_vectors`` are the photos' usual query vectors,
    ``catalogue`` the vectors searched."""
    from tqdm import tqdm

    from .images import load_image

    cat = np.asarray(catalogue, np.float32)
    norms = np.linalg.norm(cat, axis=1)

    def best(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        sims = (vectors @ cat.T) / np.where(norms > 0, norms, 1.0)[None, :]
        rows = sims.argmax(axis=1)
        return sims[np.arange(len(rows)), rows] / np.maximum(np.linalg.norm(vectors, axis=1), 1e-12), rows

    out = np.array(whole_vectors, np.float32, copy=True)
    heads = np.zeros_like(out)
    th = Thresholds.of(encoder)
    size = getattr(encoder, "input_size", 224)
    for i, data in enumerate(tqdm(photos, desc="regions", unit="img", disable=not progress, dynamic_ncols=True)):
        im = load_image(data, draft=2 * size)
        found = locate(encoder, im, best, whole_vector=out[i], propose=propose, thresholds=th)
        out[i] = found.used.vector
        if found.head is not None:
            heads[i] = found.head.vector
    return out, heads
