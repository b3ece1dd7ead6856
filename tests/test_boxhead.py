"""The box head (boxhead.py): decoding its maps, and the shipped model on pictures it never saw."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image, ImageDraw, ImageFilter

from dressfinder import boxhead, regions


def maps_for(boxes_peaks, g: int = 20):
    """Head-like maps: for each (box, peak), the box's centre cell gets ``peak`` and its edges."""
    centre = np.zeros((g, g), np.float32)
    edges = np.zeros((4, g, g), np.float32)
    for (l, t, r, b), peak in boxes_peaks:
        x, y = int((l + r) / 2 * g), int((t + b) / 2 * g)
        cx, cy = (x + 0.5) / g, (y + 0.5) / g
        centre[y, x] = peak
        edges[:, y, x] = (cx - l, cy - t, r - cx, b - cy)
    return centre, edges


def test_decode_gives_each_peak_its_box_best_first():
    a, b = (0.1, 0.1, 0.4, 0.6), (0.55, 0.3, 0.95, 0.9)
    centre, edges = maps_for([(a, 0.5), (b, 0.9)])
    got = boxhead.decode(centre, edges)
    assert [p for _, p in got] == pytest.approx([0.9, 0.5])
    assert got[0][0] == pytest.approx(b, abs=1e-6) and got[1][0] == pytest.approx(a, abs=1e-6)


def test_decode_drops_low_peaks_and_boxes_that_repeat_a_better_one():
    a = (0.2, 0.2, 0.8, 0.8)
    centre, edges = maps_for([(a, 0.8), ((0.1, 0.1, 0.3, 0.3), boxhead.MIN_PEAK / 2)])
    # a second peak two cells away from the first, with nearly the same box
    centre[12, 12] = 0.7
    edges[:, 12, 12] = (12.5 / 20 - 0.21, 12.5 / 20 - 0.2, 0.8 - 12.5 / 20, 0.79 - 12.5 / 20)
    got = boxhead.decode(centre, edges)
    assert len(got) == 1 and got[0][0] == pytest.approx(a, abs=0.01)   # the second peak votes for it too
    assert boxhead.decode(np.zeros((20, 20), np.float32), edges) == []


def test_decode_votes_each_edge_by_the_cells_that_agree_nearest_that_edge_first():
    truth = (0.2, 0.2, 0.6, 0.8)
    centre, edges = maps_for([((0.14, 0.2, 0.66, 0.8), 0.9)])    # the peak cell's box: too wide
    g = 20
    for x, wrong in ((5, (0.2, 0.2, 0.7, 0.8)), (10, (0.1, 0.2, 0.6, 0.8))):
        # a cell near the left edge sees it right and guesses the far right edge wrong; and the other way
        cx, cy = (x + 0.5) / g, 10.5 / g
        box = (truth[0], truth[1], wrong[2], truth[3]) if x == 5 else (wrong[0], truth[1], truth[2], truth[3])
        centre[10, x] = 0.5
        edges[:, 10, x] = (cx - box[0], cy - box[1], box[2] - cx, box[3] - cy)
    elsewhere = (0.7, 0.1, 0.95, 0.4)            # another photo's cell: it does not vote
    centre[5, 16], edges[:, 5, 16] = 0.6, (16.5 / g - 0.7, 5.5 / g - 0.1, 0.95 - 16.5 / g, 0.4 - 5.5 / g)
    got = dict((round(p, 3), b) for b, p in boxhead.decode(centre, edges))
    peak = got[0.9]
    assert regions.iou(peak, truth) > regions.iou((0.14, 0.2, 0.66, 0.8), truth) + 0.05
    assert peak[0] == pytest.approx(0.2, abs=0.03) and peak[2] == pytest.approx(0.6, abs=0.03)
    assert got[0.6] == pytest.approx(elsewhere, abs=1e-6)


@given(st.integers(50, 3000), st.integers(50, 3000), st.floats(0, 0.5), st.floats(0, 0.5), st.floats(0.05, 0.5),
       st.floats(0.05, 0.5))
def test_square_and_back_is_the_same_box(w, h, l, t, bw, bh):
    from dressfinder.training.boxhead import square_box

    box = (l, t, l + bw, t + bh)
    assert boxhead.from_square((w, h), square_box((w, h), box)) == pytest.approx(box, abs=1e-5)


def test_training_photos_are_cut_to_varied_shapes_about_their_middle():
    from dressfinder.training.boxhead import ASPECTS, RESHAPE_SHARE, reshape

    rng = np.random.default_rng(3)
    photo = Image.new("RGB", (900, 900))
    shapes = [reshape(photo, rng).size for _ in range(400)]
    cut = [w / h for w, h in shapes if (w, h) != (900, 900)]
    assert abs(len(cut) / len(shapes) - RESHAPE_SHARE) < 0.08
    assert all(ASPECTS[0] - 0.01 <= a <= ASPECTS[1] + 0.01 for a in cut)
    assert sum(a < 0.8 for a in cut) > 0.25 * len(cut) and sum(a > 1.1 for a in cut) > 0.08 * len(cut)
    marked = Image.new("RGB", (600, 900))
    marked.putpixel((300, 450), (255, 0, 0))       # the middle stays in every cut
    assert all(np.asarray(reshape(marked, rng))[..., 0].max() == 255 for _ in range(100))


# --------------------------------------------------------------------------- the shipped model

needs_model = pytest.mark.skipif(not boxhead.MODEL.exists(), reason="no shipped box head")


def dress_photo(seed: int, size=(300, 400)) -> Image.Image:
    """A product-photo-like picture: a dress shape in colour on a light backdrop, with some texture."""
    rng = np.random.default_rng(seed)
    w, h = size
    im = Image.new("RGB", size, tuple(int(v) for v in rng.integers(215, 250, 3)))
    d = ImageDraw.Draw(im)
    colour = tuple(int(v) for v in rng.integers(20, 200, 3))
    d.polygon([(w * 0.38, h * 0.08), (w * 0.62, h * 0.08), (w * 0.66, h * 0.4), (w * 0.88, h * 0.94),
               (w * 0.12, h * 0.94), (w * 0.34, h * 0.4)], fill=colour)
    for _ in range(40):      # a print on the fabric
        x, y = rng.uniform(0.3, 0.7) * w, rng.uniform(0.2, 0.9) * h
        d.ellipse([x, y, x + w * 0.04, y + w * 0.04], fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
    return im


def room(size, seed: int) -> Image.Image:
    """A hand-made busy background (blurred noise blobs and lines): not the generator's clutter."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (size[1] // 40, size[0] // 40, 3)).astype(np.uint8)
    im = Image.fromarray(small).resize(size, Image.Resampling.BICUBIC)
    d = ImageDraw.Draw(im)
    for _ in range(20):
        x, y = rng.integers(0, size[0]), rng.integers(0, size[1])
        d.line([x, y, x + rng.integers(-300, 300), y + rng.integers(-300, 300)],
               fill=tuple(int(v) for v in rng.integers(0, 256, 3)), width=int(rng.integers(3, 12)))
    return im.filter(ImageFilter.GaussianBlur(1.5))


@needs_model
def test_shipped_head_finds_a_photo_pasted_into_a_room_it_never_saw():
    head = boxhead.BoxHead()
    found = 0
    for seed in range(10):
        rng = np.random.default_rng(seed)
        pic = room((1400, 1050), seed)
        ph = int(rng.integers(350, 600))
        photo = dress_photo(seed, (ph * 3 // 4, ph))
        x, y = int(rng.integers(0, pic.width - photo.width)), int(rng.integers(0, pic.height - photo.height))
        pic.paste(photo, (x, y))
        truth = (x / pic.width, y / pic.height, (x + photo.width) / pic.width, (y + photo.height) / pic.height)
        boxes = head.boxes(pic)
        assert all(0 <= v <= 1 for b, _ in boxes for v in b)
        found += any(regions.iou(b, truth) > 0.5 for b, _ in boxes)
    assert found >= 8, f"the photo was found in {found} of 10 rooms"
