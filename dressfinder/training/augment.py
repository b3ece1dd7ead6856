"""Training augmentations: photo-like views of catalogue pictures.

``PhotoAugment`` imitates shoppers' photos: random crops and zoom-outs, close-ups of the fabric,
new backgrounds, flips, tilts, colour/lighting changes, photos of a screen showing the picture
(``ScreenPhoto``: a display's black level and colour, coloured moiré bands, glare, a slight keystone,
sensor noise), grayscale, blur, down-scaling and JPEG loss; close-ups and screens only when asked
(``dressfinder train --screen-views/--closeup-views``; the shipped model was trained without). It is written
independently of the evaluation's variant generator (``dressfinder/tools/evaluate/variants.py``) and draws from
other random streams. ``AugmentedViews`` gives the network input of view ``round`` of image
``index``, its randomness from (seed, round, index) alone.
"""

from __future__ import annotations

import io
import math
import random
from typing import Sequence

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter, ImageOps

from ..images import load_image
from .network import INPUT_SIZE, to_array


def corner_mask(im: Image.Image, thresh: int = 45) -> np.ndarray | None:
    """Background = what a flood fill from the four corners reaches through pixels within
    ``thresh`` (summed over R, G, B) of the corners' colour. None when the corners do not look like
    one plain backdrop."""
    from scipy import ndimage

    small = im.copy()
    small.thumbnail((160, 160))
    arr = np.asarray(small, np.int16)
    corners = np.stack([arr[0, 0], arr[0, -1], arr[-1, 0], arr[-1, -1]])
    if np.abs(corners - corners.mean(0)).max() > 40:
        return None
    near = np.abs(arr - corners.mean(0)).sum(2) <= thresh
    seed = np.zeros_like(near)
    seed[0, 0] = seed[0, -1] = seed[-1, 0] = seed[-1, -1] = True
    fg = ~ndimage.binary_propagation(seed, mask=near)
    share = fg.mean()
    if share < 0.05 or share > 0.95:
        return None
    return np.asarray(Image.fromarray(fg.astype(np.uint8) * 255).resize(im.size, Image.Resampling.BILINEAR)) > 127


class ScreenPhoto:
    """A phone photo of a screen that shows the picture (one random draw per call).

    What such photos do to a picture, each drawn independently: the display lifts black and cuts
    white and tints towards blue or yellow; the camera's sensor grid beats against the screen's
    pixel grid into smooth coloured bands (moiré), bent and at an angle; a lamp or a window
    reflects as a soft bright patch or band that washes out what lies under it; the screen is seen
    a little from the side; the sensor adds noise and the lens some blur.
    """

    @staticmethod
    def display(arr: np.ndarray, r: random.Random) -> np.ndarray:
        black, white = r.uniform(8, 60), r.uniform(205, 255)
        tint = np.array([r.uniform(0.9, 1.04), 1.0, r.uniform(0.98, 1.12)], np.float32)
        if r.random() < 0.3:
            tint = tint[::-1].copy()
        return black + arr * ((white - black) / 255.0) * tint

    @staticmethod
    def moire(shape: tuple[int, int], r: random.Random) -> np.ndarray:
        h, w = shape
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32) / max(h, w)
        angle = r.uniform(0, math.pi)
        bands = r.uniform(3, 20)                               # bands across the picture
        bend = r.uniform(0, 2.5) * np.sin(2 * math.pi * (yy * r.uniform(0.3, 1.5) + xx * r.uniform(-0.5, 0.5)))
        phase = 2 * math.pi * bands * (xx * math.cos(angle) + yy * math.sin(angle)) + bend
        depth = r.uniform(0.02, 0.1)
        spread = r.uniform(0.0, 2.1)                           # 0: grey bands; ~2: rainbow bands
        return np.stack([1 + depth * np.sin(phase + spread * c) for c in (-1, 0, 1)], axis=2)

    @staticmethod
    def glare(shape: tuple[int, int], r: random.Random) -> np.ndarray:
        """Share of white mixed in at each pixel (0..~0.8)."""
        h, w = shape
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        cx, cy = r.uniform(-0.1, 1.1) * w, r.uniform(-0.1, 1.1) * h
        a = r.uniform(0, math.pi)
        u = (xx - cx) * math.cos(a) + (yy - cy) * math.sin(a)
        v = -(xx - cx) * math.sin(a) + (yy - cy) * math.cos(a)
        size = max(h, w)
        if r.random() < 0.6:                                   # a lamp: a soft, stretched patch
            d2 = (u / (r.uniform(0.1, 0.45) * size)) ** 2 + (v / (r.uniform(0.08, 0.3) * size)) ** 2
        else:                                                  # a window: a soft band across
            d2 = (v / (r.uniform(0.05, 0.25) * size)) ** 2
        return r.uniform(0.2, 0.8) * np.exp(-d2 / 2)

    @staticmethod
    def keystone(im: Image.Image, r: random.Random, fill: tuple[int, int, int]) -> Image.Image:
        w, h = im.size
        j = [r.uniform(0, 0.08) for _ in range(8)]
        quad = (j[0] * w, j[1] * h, j[2] * w, h - j[3] * h, w - j[4] * w, h - j[5] * h, w - j[6] * w, j[7] * h)
        return im.transform((w, h), Image.Transform.QUAD, quad, Image.Resampling.BILINEAR, fillcolor=fill)

    def __call__(self, im: Image.Image, r: random.Random) -> Image.Image:
        if r.random() < 0.5:
            im = self.keystone(im, r, tuple(r.randrange(60) for _ in range(3)))
        arr = self.display(np.asarray(im, np.float32), r)
        if r.random() < 0.85:
            arr = arr * self.moire(arr.shape[:2], r)
        if r.random() < 0.75:
            g = self.glare(arr.shape[:2], r)[..., None]
            arr = arr + (255 - arr) * g
        noise = np.random.default_rng(r.randrange(1 << 30)).standard_normal(arr.shape).astype(np.float32)
        arr = arr + noise * r.uniform(1, 9)
        out = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
        return out.filter(ImageFilter.GaussianBlur(r.uniform(0.2, 1.2)))


class PhotoAugment:
    """One random shopper-like photo of a catalogue picture (training side)."""

    def __init__(self, backdrops: Sequence[Image.Image] = (), size: int = INPUT_SIZE,
                 screen_views: float = 0.0, closeup_views: float = 0.0):
        """``screen_views``, ``closeup_views``: the share of views that are photos of a screen,
        close-ups of the fabric (``FitConfig``'s settings of the same names; 0, the default, draws
        nothing for them: the same views as before they existed)."""
        self.backdrops = list(backdrops)
        self.size = size
        self.screen_views, self.closeup_views = screen_views, closeup_views

    # -- pieces ---------------------------------------------------------------------------
    def backdrop(self, size, r: random.Random) -> Image.Image:
        w, h = size
        c = r.random()
        if c < 0.25:
            return Image.new("RGB", size, tuple(r.randrange(256) for _ in range(3)))
        if c < 0.45:
            a = np.array([r.randrange(256) for _ in range(3)], np.float32)
            b = np.array([r.randrange(256) for _ in range(3)], np.float32)
            t = np.linspace(0, 1, h if r.random() < 0.5 else w, dtype=np.float32)
            t = t[:, None, None] * np.ones((1, w, 1), np.float32) if len(t) == h else \
                t[None, :, None] * np.ones((h, 1, 1), np.float32)
            return Image.fromarray((a + (b - a) * t).astype(np.uint8))
        if c < 0.6:
            g = np.random.default_rng(r.randrange(1 << 30)).integers(0, 256, (r.randint(2, 10), r.randint(2, 10), 3))
            im = Image.fromarray(g.astype(np.uint8)).resize(size, Image.Resampling.BILINEAR)
            return im.filter(ImageFilter.BoxBlur(r.uniform(0, 3)))
        if not self.backdrops:
            return Image.new("RGB", size, tuple(r.randrange(256) for _ in range(3)))
        src = self.backdrops[r.randrange(len(self.backdrops))]
        sw, sh = src.size
        s = r.uniform(0.3, 1.0)
        cw, ch = max(4, int(sw * s)), max(4, int(sh * s))
        x, y = r.randrange(sw - cw + 1), r.randrange(sh - ch + 1)
        im = src.crop((x, y, x + cw, y + ch)).resize(size, Image.Resampling.BILINEAR)
        if r.random() < 0.7:
            im = im.filter(ImageFilter.GaussianBlur(r.uniform(0.5, 6)))
        return im

    def new_background(self, im: Image.Image, r: random.Random) -> Image.Image:
        w, h = im.size
        mask = corner_mask(im) if r.random() < 0.85 else None
        zoom = r.uniform(1.0, 1.6)
        cw, ch = int(w * zoom * r.uniform(0.8, 1.3)), int(h * zoom)
        cw, ch = max(cw, w), max(ch, h)
        canvas = self.backdrop((cw, ch), r)
        x, y = r.randrange(cw - w + 1), r.randrange(ch - h + 1)
        if mask is None:
            canvas.paste(im, (x, y))
        else:
            alpha = Image.fromarray(mask.astype(np.uint8) * 255).filter(ImageFilter.BoxBlur(1))
            canvas.paste(im, (x, y), alpha)
        return canvas

    @staticmethod
    def resized_crop(im: Image.Image, r: random.Random, lo: float = 0.35) -> Image.Image:
        w, h = im.size
        for _ in range(10):
            area = r.uniform(lo, 1.0) * w * h
            ratio = math.exp(r.uniform(math.log(0.7), math.log(1.4)))
            cw, ch = int(round(math.sqrt(area * ratio))), int(round(math.sqrt(area / ratio)))
            if 8 <= cw <= w and 8 <= ch <= h:
                x, y = r.randrange(w - cw + 1), r.randrange(h - ch + 1)
                return im.crop((x, y, x + cw, y + ch))
        return im

    @staticmethod
    def closeup(im: Image.Image, r: random.Random) -> Image.Image:
        """A close-up of the fabric: a small square-ish piece from the middle of the picture."""
        w, h = im.size
        side = math.sqrt(r.uniform(0.06, 0.25) * w * h)
        cw = min(w, max(8, int(side * r.uniform(0.8, 1.25))))
        ch = min(h, max(8, int(side)))
        cx, cy = w * r.uniform(0.35, 0.65), h * r.uniform(0.3, 0.7)
        x = int(min(max(0, cx - cw / 2), w - cw))
        y = int(min(max(0, cy - ch / 2), h - ch))
        return im.crop((x, y, x + cw, y + ch))

    @staticmethod
    def colour(im: Image.Image, r: random.Random) -> Image.Image:
        ops = [lambda i: ImageEnhance.Brightness(i).enhance(r.uniform(0.55, 1.45)),
               lambda i: ImageEnhance.Contrast(i).enhance(r.uniform(0.55, 1.45)),
               lambda i: ImageEnhance.Color(i).enhance(r.uniform(0.4, 1.6)),
               PhotoAugment.hue(r), PhotoAugment.channel_gain(r), PhotoAugment.shade(r)]
        r.shuffle(ops)
        for op in ops[:r.randint(1, 4)]:
            im = op(im)
        return im

    @staticmethod
    def hue(r: random.Random):
        shift = r.randint(-14, 14)

        def f(im):
            h, s, v = im.convert("HSV").split()
            h = h.point(lambda x: (x + shift) % 256)
            return Image.merge("HSV", (h, s, v)).convert("RGB")
        return f

    @staticmethod
    def channel_gain(r: random.Random):
        g = [r.uniform(0.8, 1.2) for _ in range(3)]
        gamma = math.exp(r.uniform(-0.4, 0.4))

        def f(im):
            lut = []
            for gi in g:
                lut += [min(255, int(255 * (min(1.0, v / 255 * gi)) ** gamma)) for v in range(256)]
            return im.point(lut)
        return f

    @staticmethod
    def shade(r: random.Random):
        strength = r.uniform(0.2, 0.6)
        horizontal = r.random() < 0.5
        flip = r.random() < 0.5

        def f(im):
            w, h = im.size
            ramp = np.linspace(1 - strength / 2, 1 + strength / 2, w if horizontal else h, dtype=np.float32)
            if flip:
                ramp = ramp[::-1]
            gain = ramp[None, :, None] if horizontal else ramp[:, None, None]
            return Image.fromarray(np.clip(np.asarray(im, np.float32) * gain, 0, 255).astype(np.uint8))
        return f

    @staticmethod
    def tilt(im: Image.Image, r: random.Random) -> Image.Image:
        arr = np.asarray(im)
        fill = tuple(int(v) for v in arr[0, 0])
        return im.rotate(r.uniform(-18, 18), resample=Image.Resampling.BILINEAR, expand=r.random() < 0.5,
                         fillcolor=fill)

    @staticmethod
    def degrade(im: Image.Image, r: random.Random) -> Image.Image:
        if r.random() < 0.6:
            im = im.filter(ImageFilter.GaussianBlur(r.uniform(0.5, 3.0)) if r.random() < 0.75
                           else ImageFilter.BoxBlur(r.uniform(1, 2.5)))
        if r.random() < 0.6:
            w, h = im.size
            f = r.uniform(0.3, 0.9)
            im = im.resize((max(8, int(w * f)), max(8, int(h * f))), Image.Resampling.BILINEAR)
        return PhotoAugment.jpeg(im, r.randint(6, 60))

    @staticmethod
    def jpeg(im: Image.Image, q: int) -> Image.Image:
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=int(q))
        buf.seek(0)
        return Image.open(buf).convert("RGB")

    # -- the whole chain ----------------------------------------------------------------------
    def __call__(self, im: Image.Image, r: random.Random) -> Image.Image:
        im = im.convert("RGB")
        if r.random() < 0.4:
            im = self.new_background(im, r)
        c = r.random()
        if c < self.closeup_views:
            im = self.closeup(im, r)
        elif c < self.closeup_views + 0.6 * (1 - self.closeup_views):
            im = self.resized_crop(im, r)
        if r.random() < 0.5:
            im = ImageOps.mirror(im)
        if r.random() < 0.25:
            im = self.tilt(im, r)
        if r.random() < 0.7:
            im = self.colour(im, r)
        if self.screen_views and r.random() < self.screen_views:
            im = ScreenPhoto()(im, r)
        if r.random() < 0.2:
            im = ImageOps.grayscale(im).convert("RGB")
        if r.random() < 0.4:
            im = self.degrade(im, r)
        elif r.random() < 0.5:
            im = self.jpeg(im, r.randint(40, 95))
        return im


class AugmentedViews:
    """Dataset: item (index, round) -> augmented network input; randomness from (seed, round, index)."""

    def __init__(self, data: Sequence[bytes], backdrops: Sequence[bytes], seed: int, size: int = INPUT_SIZE,
                 screen_views: float = 0.0, closeup_views: float = 0.0):
        self.data = data
        self.backdrop_bytes = backdrops
        self.seed = seed
        self.size = size
        self.extra_views = {"screen_views": screen_views, "closeup_views": closeup_views}
        self._aug: PhotoAugment | None = None

    def _augment(self) -> PhotoAugment:
        if self._aug is None:
            self._aug = PhotoAugment([load_image(b, draft=256) for b in self.backdrop_bytes], self.size,
                                     **self.extra_views)
        return self._aug

    def view(self, index: int, round_: int) -> np.ndarray:
        r = random.Random(f"{self.seed}:{round_}:{index}")
        im = load_image(self.data[index], draft=self.size)
        return to_array(self._augment()(im, r), self.size)

    def __len__(self):
        return len(self.data)

    def __getitem__(self, item):
        index, round_ = item
        return index, self.view(index, round_)
