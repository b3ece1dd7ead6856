"""Finding the dress in a bigger picture (regions.py) and the region-aware search path (search.py)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image, ImageDraw

from conftest import dress_image
from dressfinder import regions
from dressfinder.thresholds import DEFAULT_THRESHOLDS
from dressfinder.tools.scenes import SCENE_KINDS, make_picture


def photo(i: int, size=(480, 640)) -> Image.Image:
    """A photo-like picture (a dress on a textured, non-flat backdrop) for the screenshot makers."""
    rng = np.random.default_rng(100 + i)
    back = rng.integers(60, 200, (8, 6, 3)).astype(np.uint8)
    im = Image.fromarray(back).resize(size, Image.Resampling.BICUBIC)
    noise = rng.normal(0, 6, (size[1], size[0], 3))
    im = Image.fromarray(np.clip(np.asarray(im, np.float32) + noise, 0, 255).astype(np.uint8))
    im.paste(dress_image(i, (size[0] * 2 // 3, size[1] * 5 // 6)), (size[0] // 6, size[1] // 12))
    return im


def contains(outer, inner, slack: float = 0.03) -> bool:
    return (outer[0] <= inner[0] + slack and outer[1] <= inner[1] + slack and outer[2] >= inner[2] - slack
            and outer[3] >= inner[3] - slack)


@pytest.mark.parametrize("kind", ["social", "shop"])
def test_content_box_finds_the_photo_in_a_screenshot(kind):
    found = 0
    for seed in range(8):
        pool = [photo(50 + j) for j in range(4)]
        pic, truth = make_picture(photo(seed), kind, np.random.default_rng([seed, 1]), pool)
        boxes = regions.content_boxes(pic)
        if any(regions.iou(b, truth) > 0.7 for b in boxes):
            found += 1
    assert found >= 7, f"the photo's box was found in {found} of 8 {kind} screenshots"


def test_shop_page_row_gives_more_boxes_than_the_photo():
    pool = [photo(60 + j) for j in range(6)]
    rng = np.random.default_rng(3)
    counts = []
    for seed in range(4):
        pic, truth = make_picture(photo(seed), "shop", np.random.default_rng([seed, 2]), pool)
        boxes = regions.content_boxes(pic)
        counts.append(sum(1 for b in boxes if regions.iou(b, truth) < 0.2))
    assert rng is not None and max(counts) >= 2, counts   # tiles of the "you may also like" row


def collage(a: Image.Image, b: Image.Image, gap: int = 40) -> tuple[Image.Image, list]:
    """Two pictures side by side on a white page (a hand-made layout, not the generator's)."""
    w, h = a.width + b.width + 3 * gap, max(a.height, b.height) + 2 * gap
    page = Image.new("RGB", (w, h), (255, 255, 255))
    page.paste(a, (gap, gap))
    page.paste(b, (2 * gap + a.width, gap))
    d = ImageDraw.Draw(page)
    d.text((gap, 5), "my two favourites <3", fill=(0, 0, 0))
    boxes = [(gap / w, gap / h, (gap + a.width) / w, (gap + a.height) / h),
             ((2 * gap + a.width) / w, gap / h, (2 * gap + a.width + b.width) / w, (gap + b.height) / h)]
    return page, boxes


def test_collage_boxes_contain_each_dress():
    page, truth = collage(photo(1, (300, 400)), photo(2, (300, 400)))
    boxes = regions.content_boxes(page)
    for t in truth:
        assert any(regions.iou(b, t) > 0.7 for b in boxes), (t, boxes)


def test_flat_free_photo_has_no_content_boxes_but_windows():
    im = photo(5, (640, 640))
    noisy = Image.fromarray(np.random.default_rng(0).integers(0, 255, (640, 640, 3), dtype=np.uint8))
    assert regions.content_boxes(noisy) == []
    cands = regions.candidate_boxes(im)
    assert 1 <= len(cands) <= regions.MAX_CANDIDATES
    assert all(0 <= b[0] < b[2] <= 1 and 0 <= b[1] < b[3] <= 1 for b, _ in cands)


def screen_under_glare(seed: int) -> tuple[Image.Image, tuple]:
    """A hand-made photo of a screen (not the generator's): a busy room, a dark page whose colour
    drifts by 100 levels under a glare, a photo and some text lines on it."""
    rng = np.random.default_rng(seed)
    W, H = 1600, 1200
    room = Image.fromarray(rng.integers(0, 255, (H // 40, W // 40, 3), dtype=np.uint8)).resize((W, H), Image.NEAREST)
    yy, xx = np.mgrid[0:800, 0:1200].astype(np.float32)
    gx, gy = rng.uniform(200, 1000), rng.uniform(100, 700)
    glare = 100 * np.exp(-((xx - gx) ** 2 + (yy - gy) ** 2) / (2 * 350.0 ** 2))
    page = Image.fromarray(np.clip(30 + glare[..., None] * np.ones(3), 0, 255).astype(np.uint8))
    d = ImageDraw.Draw(page)
    px = int(rng.integers(60, 500))
    page.paste(photo(seed, (360, 540)), (px, 120))
    for i in range(4):
        d.rectangle([px + 420, 140 + 40 * i, px + 420 + int(rng.integers(150, 300)), 152 + 40 * i], fill=(220, 220, 220))
    room.paste(page, (200, 200))
    return room, ((200 + px) / W, 320 / H, (200 + px + 360) / W, 860 / H)


def test_content_box_finds_the_photo_on_a_page_under_glare():
    for seed in range(3):
        pic, truth = screen_under_glare(seed)
        boxes = regions.content_boxes(pic)
        assert any(regions.iou(b, truth) > 0.6 for b in boxes), (seed, truth, boxes)


@pytest.mark.parametrize("size", [(1600, 1200), (1200, 1600), (1080, 2340), (640, 640)])
def test_windows_include_upright_ones_the_shape_of_a_dress_photo(size):
    w, h = size
    wins = regions.windows(w, h)
    assert wins[:len(regions.WINDOWS)] == list(regions.WINDOWS)
    upright = wins[len(regions.WINDOWS):]
    assert len(upright) == regions.UPRIGHT_GRID[0] * regions.UPRIGHT_GRID[1]
    for b in upright:
        assert 0 <= b[0] < b[2] <= 1 + 1e-9 and 0 <= b[1] < b[3] <= 1 + 1e-9
        assert (b[3] - b[1]) == pytest.approx(regions.UPRIGHT_HEIGHT)
        px_w, px_h = (b[2] - b[0]) * w, (b[3] - b[1]) * h
        assert px_w <= px_h * regions.UPRIGHT_ASPECT + 1e-6   # never wider than a dress photo is
    assert min(b[0] for b in upright) == 0 and max(b[2] for b in upright) == pytest.approx(1)


@pytest.mark.parametrize("kind", SCENE_KINDS)
def test_every_scene_kind_puts_the_dress_in_its_box(kind):
    src = photo(7)
    pic, box = make_picture(src, kind, np.random.default_rng(11), [photo(8)])
    assert pic.mode == "RGB" and min(pic.size) >= 200
    assert 0 <= box[0] < box[2] <= 1 and 0 <= box[1] < box[3] <= 1
    if kind not in ("fabric", "screen"):   # the dress's own pixels are where the box says
        w, h = pic.size
        inside = pic.crop((int(box[0] * w) + 2, int(box[1] * h) + 2, int(box[2] * w) - 2, int(box[3] * h) - 2))
        ratio = inside.width / inside.height
        assert abs(ratio - src.width / src.height) < 0.1


def region(box, score, row, kind="window"):
    return regions.Region(tuple(box), score, np.zeros(4, np.float32), kind, row)


def test_a_small_region_needs_a_clear_margin_to_win():
    whole = region(regions.WHOLE, 0.70, 1, "whole")
    th = DEFAULT_THRESHOLDS
    small = region((0.1, 0.1, 0.3, 0.3), 0.70 + th.margin * 0.5, 2)
    assert regions.choose(whole, [small], th).used is whole
    better = region((0.1, 0.1, 0.3, 0.3), 0.70 + th.margin + 0.01, 2)
    assert regions.choose(whole, [better], th).used is better
    wider = replace(th, margin=2 * th.margin)                       # another encoder's scale
    assert regions.choose(whole, [better], wider).used is whole


def test_other_regions_are_other_products_apart_from_the_used_one():
    whole = region(regions.WHOLE, 0.5, 1, "whole")
    a = region((0.0, 0.0, 0.5, 1.0), 0.95, 2, "content")
    a_again = region((0.05, 0.0, 0.5, 0.9), 0.93, 2)          # same product again
    b = region((0.5, 0.0, 1.0, 1.0), 0.9, 3, "content")        # another product
    th = DEFAULT_THRESHOLDS
    weak = region((0.5, 0.5, 1.0, 1.0), th.other_min - 0.1, 4)
    got = regions.choose(whole, [a, a_again, b, weak], th)
    assert got.used is a
    assert got.others == [b]
    assert regions.choose(whole, [a, a_again, b, weak], replace(th, other_min=0.91)).others == []   # b at 0.90


def test_a_photo_is_read_as_a_closeup_when_its_whole_is_unsure_and_no_region_explains_it():
    big = Image.new("RGB", (400, 300))
    th = DEFAULT_THRESHOLDS
    unsure = region(regions.WHOLE, th.sure - 0.1, 1, "whole")
    assert regions.wants_closeup(regions.Located(unsure, [], unsure), big, th)
    gain = th.closeup_max_gain
    head = region((0.0, 0.0, 0.9, 0.95), unsure.score + gain * 0.5, 2, "head")   # a big head box won by little
    assert regions.wants_closeup(regions.Located(head, [], unsure), big, th)
    found = region((0.3, 0.2, 0.6, 0.7), unsure.score + gain + 0.01, 2, "head")  # the dress's box, clearly
    assert not regions.wants_closeup(regions.Located(found, [], unsure), big, th)
    assert regions.wants_closeup(regions.Located(found, [], unsure), big, replace(th, closeup_max_gain=2 * gain))
    sure = region(regions.WHOLE, th.sure, 1, "whole")
    assert not regions.wants_closeup(regions.Located(sure, [], sure), big, th)
    assert regions.wants_closeup(regions.Located(sure, [], sure), big, replace(th, sure=th.sure + 0.01))
    tiny = Image.new("RGB", (regions.MIN_SIDE - 1, 300))                         # no detail to read
    assert not regions.wants_closeup(regions.Located(head, [], unsure), tiny, th)


def test_a_photo_framed_in_a_bigger_picture_is_not_read_as_a_closeup():
    """A close-up of the fabric fills the picture; on a photo of a screen or in a scene the box head
    sees the product's photo as a small part of it (``regions.framed``): such a picture is not read
    as a close-up however little its region wins by, whether the search looked at the head's boxes
    (``Located.proposed``) or not (the head is asked then, on the picture)."""
    big = Image.new("RGB", (400, 300))
    th = DEFAULT_THRESHOLDS
    unsure = region(regions.WHOLE, th.sure - 0.1, 1, "whole")
    small, filling = (0.3, 0.2, 0.6, 0.7), (0.05, 0.05, 0.95, 0.95)
    sure, timid = regions.ANCHOR_PEAK + 0.1, regions.ANCHOR_PEAK - 0.05
    for used in (unsure, region(small, unsure.score + th.closeup_max_gain / 2, 2, "head")):
        def wants(proposed, used=used):
            return regions.wants_closeup(regions.Located(used, [], unsure, proposed), big, th)
        assert not wants([(small, sure), (filling, 0.2)])
        assert wants([(small, timid)])                 # the head is not sure of it
        assert wants([(filling, sure), (small, 0.3)])  # its best box covers the picture: a close-up
        assert wants([])
    asked = []

    def propose(im):
        asked.append(im.size)
        return [(small, sure)]

    assert not regions.wants_closeup(regions.Located(unsure, [], unsure), big, th, propose)
    assert asked == [big.size]                         # not looked at by the search: asked now
    assert regions.wants_closeup(regions.Located(unsure, [], unsure), big, th)   # no box head: nothing framed
    side = regions.FRAMED_AREA ** 0.5
    assert regions.framed([((0.0, 0.0, side - 0.01, side - 0.01), sure)])
    assert not regions.framed([((0.0, 0.0, side + 0.01, side + 0.01), sure)])
    assert regions.framed([((0.0, 0.0, side + 0.01, side + 0.01), sure)], most=0.5)


def test_sure_whole_photo_skips_the_boxes():
    class Counting:
        calls = 0

        def preprocess(self, im):
            return np.zeros((3, 8, 8), np.float32)

        def encode_arrays(self, batch):
            Counting.calls += len(batch)
            return np.ones((len(batch), 4), np.float32) / 2

        def encode_query_arrays(self, batch):
            return self.encode_arrays(batch)

    enc = Counting()
    sure = regions.locate(enc, photo(1), lambda v: (np.full(len(v), 0.99), np.zeros(len(v), int)))
    assert sure.used.kind == "whole" and Counting.calls == 1
    regions.locate(enc, photo(1), lambda v: (np.full(len(v), 0.5), np.zeros(len(v), int)))
    assert Counting.calls > 2
    Counting.calls = 0          # an encoder on another scale, sure from 0.45: its own line is used
    enc.thresholds = replace(DEFAULT_THRESHOLDS, sure=0.45)
    sure = regions.locate(enc, photo(1), lambda v: (np.full(len(v), 0.5), np.zeros(len(v), int)))
    assert sure.used.kind == "whole" and Counting.calls == 1


class WhereEncoder:
    """A fake encoder whose vector says which part of a gradient photo a crop is: the crop's mean
    red and green (its centre) and its size as shares of the photo."""

    def __init__(self, size):
        self.size, self.query_calls = size, 0

    def preprocess(self, im):
        a = np.asarray(im, np.float32)
        return np.array([a[..., 0].mean() / 255, a[..., 1].mean() / 255, im.width / self.size[0],
                         im.height / self.size[1]], np.float32)

    def encode_arrays(self, batch):
        return np.asarray(batch, np.float32)

    def encode_query_arrays(self, batch):
        self.query_calls += 1
        return self.encode_arrays(batch) + np.float32(1000)     # marks the vector as a query-side one


def gradient_photo(w=400, h=400) -> Image.Image:
    x = np.linspace(0, 255, w)[None, :].repeat(h, 0)
    y = np.linspace(0, 255, h)[:, None].repeat(w, 1)
    return Image.fromarray(np.stack([x, y, np.zeros_like(x)], axis=2).astype(np.uint8))


def test_the_dress_inside_a_window_that_is_not_the_best_one_is_found(monkeypatch):
    """A look-alike fills the best window; the dress is small inside the second best: refining the
    best windows (REFINE_TOP) finds it, and the box used is encoded as a query photo is."""
    im = gradient_photo()
    decoy, dress, other = (0.0, 0.0, 0.5, 0.5), (0.5, 0.5, 1.0, 1.0), (0.5, 0.0, 1.0, 0.5)
    monkeypatch.setattr(regions, "candidate_boxes", lambda im, limit: [(b, "window") for b in (decoy, dress, other)])

    def best(vectors):
        v = vectors % 1000
        cx, cy, w = v[:, 0], v[:, 1], v[:, 2]
        near = lambda x, y, r: (np.abs(cx - x) < r) & (np.abs(cy - y) < r)   # noqa: E731
        found = near(0.825, 0.825, 0.05) & (w < 0.4)            # the dress's own box, inside `dress`
        scores = np.where(found, 0.9, np.where(near(0.25, 0.25, 0.15), 0.70, np.where(near(0.75, 0.75, 0.05), 0.60, 0.5)))
        rows = np.where(found | near(0.75, 0.75, 0.05), 1, np.where(near(0.25, 0.25, 0.15), 2, 3))
        return scores, rows

    enc = WhereEncoder(im.size)
    got = regions.locate(enc, im, best, whole_vector=np.array([0.5, 0.5, 1, 1], np.float32))
    assert got.used.best_row == 1 and got.used.score == pytest.approx(0.9)
    assert got.used.box == pytest.approx((1 - regions.REFINE_SCALE / 2, 1 - regions.REFINE_SCALE / 2, 1.0, 1.0))
    assert enc.query_calls == 1 and got.used.vector[0] > 999     # re-encoded on the query side, once
    monkeypatch.setattr(regions, "REFINE_TOP", 1)                 # refining only the best window misses it
    assert regions.locate(enc, im, best, whole_vector=np.array([0.5, 0.5, 1, 1], np.float32)).used.best_row == 2


def test_a_box_head_box_that_finds_the_dress_is_used_and_the_windows_are_skipped(monkeypatch):
    """The box head's box is encoded after the content boxes; when it beats the whole photo by the
    margin it is used and no window is encoded; a box head box on the wrong thing does not stop the
    windows from finding the dress unless the head is fairly sure of it (``ANCHOR_PEAK``): then
    only a box near the head's is used."""
    im = gradient_photo()
    dress, clutter = (0.5, 0.5, 1.0, 1.0), (0.0, 0.0, 0.4, 0.4)
    windows = [(b, "window") for b in ((0.0, 0.5, 0.5, 1.0), dress, (0.5, 0.0, 1.0, 0.5))]
    monkeypatch.setattr(regions, "candidate_boxes", lambda im, limit: list(windows))
    encoded = []

    def best(vectors):
        v = vectors % 1000
        encoded.extend(map(tuple, np.round(v[:, :3], 3)))
        cx, cy = v[:, 0], v[:, 1]
        on_dress = (np.abs(cx - 0.75) < 0.05) & (np.abs(cy - 0.75) < 0.05)
        return np.where(on_dress, 0.9, 0.5), np.where(on_dress, 1, 2)

    whole = np.array([0.5, 0.5, 1, 1], np.float32)
    got = regions.locate(WhereEncoder(im.size), im, best, whole_vector=whole, propose=lambda im: [(dress, 0.8)])
    assert got.used.kind == "head" and got.used.best_row == 1
    assert regions.iou(got.used.box, dress) > 0.7
    assert got.proposed == [(dress, 0.8)]           # what the head saw, for wants_closeup
    assert got.head is not None and got.head.box == dress and got.used is not got.head   # its box rescaled won:
    assert got.head.vector[0] < 999                 # its own box, one pass, is a second opinion
    # the whole photo, the box head's box and its two rescalings (HEAD_SCALES), the used box's
    # final vector (its score: the one searched); no window
    assert len(encoded) == 3 + len(regions.HEAD_SCALES)
    encoded.clear()
    weak = regions.HEAD_MIN_PEAK / 2                # a box the head is not sure of is not tried
    got = regions.locate(WhereEncoder(im.size), im, best, whole_vector=whole, propose=lambda im: [(dress, weak)])
    assert got.used.kind == "window" and len(encoded) > 3
    encoded.clear()
    unsure = (regions.HEAD_MIN_PEAK + regions.ANCHOR_PEAK) / 2
    got = regions.locate(WhereEncoder(im.size), im, best, whole_vector=whole, propose=lambda im: [(clutter, unsure)])
    assert got.used.kind == "window" and got.used.best_row == 1 and len(encoded) > 3
    encoded.clear()
    kept = replace(DEFAULT_THRESHOLDS, framed_gap=DEFAULT_THRESHOLDS.sure - 0.4)   # the whole (0.5) matches something
    got = regions.locate(WhereEncoder(im.size), im, best, whole_vector=whole, propose=lambda im: [(clutter, 0.8)],
                         thresholds=kept)
    assert got.used.kind == "whole"                 # the dress's window is far from the sure head box
    assert got.proposed == [(clutter, 0.8)] and got.head is None   # the whole photo kept: nothing woven in
    assert any(o.best_row == 1 for o in got.others)  # still offered as another region
    inside = [e for e in encoded if e[0] < clutter[2] and e[1] < clutter[3] and e[2] <= 0.4 * regions.REFINE_SCALE + 1e-3]
    assert len(inside) >= 5                         # the boxes inside the head's box were tried too
    near = (0.45, 0.4, 0.95, 0.9)                   # sure, near the dress, a little off: the window wins
    got = regions.locate(WhereEncoder(im.size), im, best, whole_vector=whole, propose=lambda im: [(near, 0.8)])
    assert got.used.kind == "window" and got.used.best_row == 1
    assert got.head is not None and got.head.kind == "head" and got.head.box == near   # a second opinion
    got = regions.locate(WhereEncoder(im.size), im, best, whole_vector=whole, propose=lambda im: [(near, unsure)])
    assert got.used.kind == "window" and got.head is None                             # not sure of it


def test_a_framed_photo_is_searched_by_its_box_when_the_whole_picture_matches_nothing(monkeypatch):
    """The box head is sure of a small box (a photo framed in the picture) and no box beats the
    whole photo by the margin: when the whole's best match is ``framed_gap`` or more below ``sure``
    (it matches nothing), the best of the head's boxes over that photo is used (its box, rescaled,
    the boxes inside it), else the whole photo is kept; a big box (not framed) never is."""
    im = gradient_photo()
    photo_box = (0.1, 0.1, 0.5, 0.5)                     # 0.16 of the picture: framed
    monkeypatch.setattr(regions, "candidate_boxes", lambda im, limit: [((0.5, 0.5, 1.0, 1.0), "window")])

    def best(vectors):                                  # the photo's centre matches a little better
        v = vectors % 1000
        on = (np.abs(v[:, 0] - 0.3) < 0.06) & (np.abs(v[:, 1] - 0.3) < 0.06) & (v[:, 2] < 0.45)
        return np.where(on, 0.33 + 0.02 * (v[:, 2] < 0.3), 0.30), np.where(on, 1, 2)

    whole = np.array([0.5, 0.5, 1, 1], np.float32)
    th = replace(DEFAULT_THRESHOLDS, sure=0.8, margin=0.1, framed_gap=0.45)      # a whole below 0.35 matches nothing
    got = regions.locate(WhereEncoder(im.size), im, best, whole_vector=whole, propose=lambda im: [(photo_box, 0.8)],
                         thresholds=th)
    assert got.used.kind == "head" and got.used.best_row == 1
    assert regions.overlap_of_smaller(got.used.box, photo_box) >= regions.ANCHOR_OVERLAP
    assert got.used.box != photo_box                   # a box inside it matched best: that one is used
    assert got.whole is not None and got.whole.score == pytest.approx(0.30)
    assert got.head is not None and got.head.box == photo_box   # the head's own box: a second opinion
    wider = (0.0, 0.0, 0.6, 0.6)                       # not framed (0.36 of the picture): the whole is kept
    assert regions.locate(WhereEncoder(im.size), im, best, whole_vector=whole,
                          propose=lambda im: [(wider, 0.8)], thresholds=th).used.kind == "whole"
    sure_of_it = replace(th, framed_gap=0.55)          # the whole (0.30) above 0.25: it matches something
    got = regions.locate(WhereEncoder(im.size), im, best, whole_vector=whole, propose=lambda im: [(photo_box, 0.8)],
                         thresholds=sure_of_it)
    assert got.used.kind == "whole" and got.head is None
    unsure = (regions.HEAD_MIN_PEAK + regions.ANCHOR_PEAK) / 2   # a head not sure of its box: the whole is kept
    got = regions.locate(WhereEncoder(im.size), im, best, whole_vector=whole, propose=lambda im: [(photo_box, unsure)],
                         thresholds=th)
    assert got.used.kind == "whole"


def test_boxes_on_a_photographed_screen_are_judged_and_used_without_its_moire(monkeypatch):
    """On a picture with a screen's beat pattern, the box head sees, and the head's boxes and the
    windows are encoded from, the picture with the pattern taken out (images.descreen)."""
    smooth = np.asarray(gradient_photo(), np.float32)
    yy, xx = np.mgrid[0:400, 0:400].astype(np.float32)
    beat = 1 + 0.12 * np.sin(1.3 * xx + 0.4 * yy)
    im = Image.fromarray(np.clip(smooth * beat[..., None], 0, 255).astype(np.uint8))

    def roughness(a):
        a = np.asarray(a, np.float32)
        return float(np.abs(np.diff(a, axis=1)).mean())

    class Rough(WhereEncoder):
        def preprocess(self, crop):
            return np.array([roughness(crop), 0, 0, 0], np.float32)

    seen_by_head = []
    dress = (0.5, 0.5, 1.0, 1.0)
    monkeypatch.setattr(regions, "candidate_boxes", lambda im, limit: [(dress, "window")])
    raw = roughness(regions.crop_box(im, dress))

    def best(v):     # a crop without the beat matches the dress; the whole photo (rough) does not
        return np.where(v[:, 0] % 1000 < 0.5 * raw, 0.9, 0.5), np.zeros(len(v), int)

    got = regions.locate(Rough(im.size), im, best, whole_vector=np.array([10 * raw, 0, 0, 0], np.float32),
                         propose=lambda p: seen_by_head.append(roughness(p)) or [(dress, 0.8)])
    assert seen_by_head[0] < 0.5 * roughness(im)
    assert got.used.kind == "head" and got.used.vector[0] - 1000 < 0.5 * raw


# --------------------------------------------------------------------------- fusing the region's and the whole photo's lists

def test_fuse_keeps_the_regions_first_and_brings_back_the_wholes_first():
    from dressfinder.search import fuse

    region_list, whole_list = list("abcdefghij"), list("wxyzabcdef")
    got = fuse(region_list, whole_list, 10)
    assert got[0] == "a" and len(got) == 10 == len(set(got))
    assert got.index("w") <= 3                     # the whole photo's best comes back near the top
    assert got.index("e") < got.index("x")         # in both lists beats in one at a similar rank
    assert "j" not in got
    assert fuse(list("abcdef"), list("uvwxyz"), 6) == list("abcude")
    assert fuse(region_list, [], 4) == list("abcd")
    assert fuse([], whole_list, 3) == list("wxy")


@given(st.lists(st.integers(0, 30), unique=True, max_size=12), st.lists(st.integers(0, 30), unique=True, max_size=12),
       st.integers(1, 15))
def test_fuse_is_a_ranked_union(primary, secondary, k):
    from dressfinder.search import fuse

    got = fuse(primary, secondary, k)
    assert len(got) == min(k, len(set(primary) | set(secondary))) == len(set(got))
    assert set(got) <= set(primary) | set(secondary)
    if primary:
        assert got[0] == primary[0]
    for x in [x for x in primary if x in secondary]:      # agreement never pushes an item down:
        alone = fuse(primary, [s for s in secondary if s != x], k)   # ... against the lists without it
        if x in alone:
            assert x in got and got.index(x) <= alone.index(x)


def test_fuse_weaves_further_lists_in_by_their_weights():
    from dressfinder.search import fuse

    assert fuse(list("abc"), list("xyz"), 6, more=[(list("pqr"), 0.0)]) == fuse(list("abc"), list("xyz"), 6)
    got = fuse(list("abcdef"), list("uvwxyz"), 6, more=[(list("pqrs"), 0.5)])
    assert got[0] == "a" and got.index("p") < got.index("u")      # 0.5 / 1 against 0.3 / 1
    assert fuse(list("abcd"), list("wxyz"), 4, more=[(list("bq"), 0.5)])[:2] == ["a", "b"]   # agreement lifts "b"
    assert fuse([], [], 3, more=[(list("pq"), 0.5)]) == ["p", "q"]


# --------------------------------------------------------------------------- the search path

@pytest.fixture(scope="module")
def store(built_store):
    from dressfinder.store import Store

    with Store.open(built_store) as s:
        yield s


def two_dress_collage(catalog_dir, i: int, j: int, background=(228, 230, 236)):
    a = Image.open(catalog_dir / "images" / f"dress-{i:03d}.jpg").convert("RGB")
    b = Image.open(catalog_dir / "images" / f"dress-{j:03d}.jpg").convert("RGB")
    page, boxes = collage(a, b)
    canvas = Image.new("RGB", page.size, background)   # a collage app's page, not white
    for (l, t, r, btm), im in zip(boxes, (a, b)):
        canvas.paste(im, (round(l * page.width), round(t * page.height)))
    return canvas, boxes


@pytest.mark.parametrize("pair", [(2, 9), (5, 14)])
def test_collage_each_region_finds_its_dress(store, catalog_dir, pair):
    i, j = pair
    page, truth = two_dress_collage(catalog_dir, i, j)
    found = store.search_regions(page, 5)
    regions_found = [(found.region, found.hits)] + [(o.box, o.hits) for o in found.others]
    assert found.kind == "content" and len(regions_found) == 2
    for box, hits in regions_found:
        want = i if regions.iou(box, truth[0]) > regions.iou(box, truth[1]) else j
        assert max(regions.iou(box, t) for t in truth) > 0.7
        assert hits[0].id == f"sku-{want:03d}"
    assert {hits[0].id for _, hits in regions_found} == {f"sku-{i:03d}", f"sku-{j:03d}"}
    assert store.search(page, 5)[0].id == found.hits[0].id


def test_crop_overrides_detection_and_detect_false_is_the_whole_photo(store, catalog_dir):
    page, truth = two_dress_collage(catalog_dir, 3, 8)
    auto = store.search_regions(page, 3)
    other = truth[1] if regions.iou(auto.region, truth[0]) > 0.5 else truth[0]
    want = "sku-008" if other is truth[1] else "sku-003"
    boxed = store.search_regions(page, 3, crop=other)
    assert boxed.kind == "crop" and boxed.region == tuple(other) and boxed.others == []
    assert boxed.hits[0].id == want
    whole = store.search_regions(page, 3, detect=False)
    assert whole.kind == "whole" and whole.region == regions.WHOLE and whole.others == []
    if auto.kind != "whole":   # a region was used: the whole photo's best match is woven in (top 7 at worst)
        assert whole.hits[0].id in [h.id for h in store.search_regions(page, 7).hits]
    direct = store.search_vectors(store.embed_query(page)[None], 3)[0]
    assert [h.id for h in whole.hits] == [h.id for h in direct]
    assert [h.id for h in store.search(page, 3, detect=False)] == [h.id for h in direct]


def test_search_weaves_in_the_box_heads_sure_box_as_a_second_opinion(store, catalog_dir, monkeypatch):
    """When the region search used a region and the box head was sure of another box
    (``Located.head``), that box's results are woven in beside the whole photo's
    (``search.HEAD_WEIGHT``); without one the region's and the whole photo's are."""
    from dressfinder import search

    used = regions.Region((0.1, 0.1, 0.5, 0.5), 0.5, store.vector("sku-002"), "window", 0)
    whole = regions.Region(regions.WHOLE, 0.99, store.vector("sku-005"), "whole", 0)   # sure: no close-up
    head = regions.Region((0.1, 0.1, 0.6, 0.6), 0.45, store.vector("sku-009"), "head", 0)
    # what each searched vector finds, made up by hand (catalogue rows, best first)
    lists = {"sku-002": [2, 3, 4, 6, 7], "sku-005": [5, 8, 2, 10, 11], "sku-009": [9, 12, 3, 13, 14]}
    snap = store.snapshot()

    def search_vectors(queries, k, filters=None):
        out = []
        for q in queries:
            pid = next(p for p in lists if np.array_equal(q, store.vector(p)))
            rec = snap.records(lists[pid][:k])
            out.append([search.Hit(rec[r][0].id, 1.0 - j / 10, rec[r][0], r, rec[r][1])
                        for j, r in enumerate(lists[pid][:k])])
        return out

    monkeypatch.setattr(store, "search_vectors", search_vectors)
    for second, want in ((head, [2, 3, 9, 4, 5]), (None, [2, 3, 4, 5, 6])):
        monkeypatch.setattr(search, "locate",
                            lambda *a, second=second, **kw: regions.Located(used, [], whole, [], second))
        got = [h.row for h in store.search_regions(catalog_dir / "images" / "dress-004.jpg", 5).hits]
        # by hand, rank r counting w / (1 + r) (search.FUSE_K0 = 1; the region's list w = 1, the whole
        # photo's WHOLE_WEIGHT = 0.3, the head's HEAD_WEIGHT = 0.5): 2: 1 + 0.3 / 3 = 1.1, 3: 1 / 2 (+ 0.5 / 3
        # with the head) = 0.5 (0.67), 9: 0.5 with the head, 4: 1 / 3, 5: 0.3, 6: 1 / 4 (12 too, 0.5 / 2: later list)
        assert got == want, second


def test_a_catalogue_photo_is_searched_whole(store, catalog_dir):
    found = store.search_regions(catalog_dir / "images" / "dress-004.jpg", 3)
    assert found.kind == "whole" and found.region == regions.WHOLE
    assert found.hits[0].id == "sku-004"
