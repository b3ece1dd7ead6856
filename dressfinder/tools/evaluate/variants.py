"""The photo changes a query is made with, deterministically from a seed: each kind of change (crop, background, colour, blur + JPEG, flip, grayscale, rotation, EXIF, combinations) turns a catalogue image into the bytes of a JPEG as an upload would arrive."""

from __future__ import annotations
import io
import zlib
from typing import Any, Sequence
import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageOps

from ..scenes import SCENE_KINDS, make_picture



PHOTO_KINDS = ("crop", "background", "color", "blur_jpeg", "flip", "grayscale", "rotate", "exif", "combo")
KINDS = PHOTO_KINDS + SCENE_KINDS


GENERATOR_VERSION = "2"     # bump when a variant would come out different for the same seed (2: scenes)


DEFAULT_SEED = 20250611     # training augmentations use other seeds (see training/augment.py)


ORIENTATION = 0x0112


# what ImageOps.exif_transpose does for each orientation, and its inverse (how a camera stored it)
_EXIF_INVERSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_90, 7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


def jpeg_bytes(im: Image.Image, quality: int = 90, orientation: int | None = None) -> bytes:
    buf = io.BytesIO()
    kw: dict[str, Any] = {"quality": int(quality)}
    if orientation:
        exif = Image.Exif()
        exif[ORIENTATION] = int(orientation)
        kw["exif"] = exif.tobytes()
    im.save(buf, "JPEG", **kw)
    return buf.getvalue()


def variant_rng(seed: int, source_id: str, kind: str, rep: int = 0) -> np.random.Generator:
    """The random stream of one variant: depends on the seed, the source id, the kind and rep only."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, zlib.crc32(source_id.encode("utf-8")),
                                  zlib.crc32(kind.encode()), int(rep)])


def foreground_mask(im: Image.Image, tol: int = 28) -> np.ndarray | None:
    """Boolean mask of the product: everything not connected to a near-uniform border.

    ``None`` when the border is not a plain backdrop (a scene photo), or the mask looks wrong.
    """
    from ...extras import require

    ndimage = require("scipy.ndimage", "train", "evaluate")
    arr = np.asarray(im.convert("RGB"), dtype=np.int16)
    h, w, _ = arr.shape
    b = max(1, min(h, w) // 100)
    border = np.concatenate([arr[:b].reshape(-1, 3), arr[-b:].reshape(-1, 3),
                             arr[:, :b].reshape(-1, 3), arr[:, -b:].reshape(-1, 3)])
    bg = np.median(border, axis=0)
    if (np.abs(border - bg).max(axis=1) <= tol).mean() < 0.7:
        return None
    near = np.abs(arr - bg).max(axis=2) <= tol
    labels, _ = ndimage.label(near)
    edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    edge = edge[edge > 0]
    fg = ~np.isin(labels, edge)
    fg = ndimage.binary_opening(fg, iterations=1)
    share = fg.mean()
    if share < 0.04 or share > 0.96:
        return None
    return fg


def _random_colour(rng) -> tuple[int, int, int]:
    return tuple(int(v) for v in rng.integers(0, 256, 3))


def make_background(size: tuple[int, int], rng: np.random.Generator,
                    pool: Sequence[Image.Image] = ()) -> Image.Image:
    """A new backdrop: plain colour, gradient, stripes/checks, noise texture, or a blurred photo."""
    w, h = size
    choices = ["solid", "gradient", "pattern", "texture"] + (["photo", "photo"] if pool else [])
    kind = choices[int(rng.integers(len(choices)))]
    if kind == "solid":
        im = Image.new("RGB", size, _random_colour(rng))
    elif kind == "gradient":
        a, c = np.array(_random_colour(rng), np.float32), np.array(_random_colour(rng), np.float32)
        theta = rng.uniform(0, np.pi)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        t = (xx * np.cos(theta) + yy * np.sin(theta))
        t = (t - t.min()) / max(1e-6, float(t.max() - t.min()))
        im = Image.fromarray((a + (c - a) * t[..., None]).astype(np.uint8))
    elif kind == "pattern":
        a, c = _random_colour(rng), _random_colour(rng)
        period = int(rng.integers(6, 40))
        big = max(w, h) * 2
        im = Image.new("RGB", (big, big), a)
        d = ImageDraw.Draw(im)
        checks = rng.random() < 0.4
        for x in range(0, big, period * 2):
            d.rectangle([x, 0, x + period - 1, big], fill=c)
        if checks:
            for y in range(0, big, period * 2):
                d.rectangle([0, y, big, y + period - 1], fill=c)
        im = im.rotate(float(rng.uniform(0, 180)), resample=Image.Resampling.BILINEAR)
        im = im.crop(((big - w) // 2, (big - h) // 2, (big - w) // 2 + w, (big - h) // 2 + h))
    elif kind == "texture":
        cells = int(rng.integers(3, 12))
        base = rng.integers(0, 256, (cells, cells, 3)).astype(np.uint8)
        im = Image.fromarray(base).resize(size, Image.Resampling.BICUBIC)
        noise = rng.normal(0, rng.uniform(4, 20), (h, w, 1))
        im = Image.fromarray(np.clip(np.asarray(im, np.float32) + noise, 0, 255).astype(np.uint8))
    else:  # other catalogue photos, tiled and out of focus: a busy room, a shop, a street
        n = int(rng.integers(2, 4))
        im = Image.new("RGB", size)
        for gy in range(n):
            for gx in range(n):
                src = pool[int(rng.integers(len(pool)))]
                sw, sh = src.size
                cw, ch = max(8, int(sw * rng.uniform(0.4, 0.8))), max(8, int(sh * rng.uniform(0.4, 0.8)))
                x0, y0 = int(rng.integers(0, sw - cw + 1)), int(rng.integers(0, sh - ch + 1))
                box = (gx * w // n, gy * h // n, (gx + 1) * w // n, (gy + 1) * h // n)
                tile = src.crop((x0, y0, x0 + cw, y0 + ch)).resize((box[2] - box[0], box[3] - box[1]))
                im.paste(ImageEnhance.Brightness(tile).enhance(float(rng.uniform(0.5, 1.1))), box[:2])
        im = im.filter(ImageFilter.GaussianBlur(float(rng.uniform(1.5, 5))))
    return im


def v_crop(im: Image.Image, rng, lo: float = 0.45, hi: float = 0.85) -> Image.Image:
    w, h = im.size
    area = rng.uniform(lo, hi) * w * h
    aspect = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3))) * (w / h)
    cw = int(round(min(w, np.sqrt(area * aspect))))
    ch = int(round(min(h, area / max(cw, 1))))
    cw, ch = max(cw, 8), max(ch, 8)
    x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    return im.crop((x0, y0, x0 + cw, y0 + ch))


def v_background(im: Image.Image, rng, pool: Sequence[Image.Image] = ()) -> Image.Image:
    w, h = im.size
    mask = foreground_mask(im)
    ch = int(h * rng.uniform(1.05, 1.5))
    cw = int(ch * rng.uniform(0.6, 1.0))
    cw = max(cw, int(w * 1.05))
    canvas = make_background((cw, ch), rng, pool)
    scale = rng.uniform(0.75, 0.95) if mask is not None else rng.uniform(0.6, 0.85)
    scale = min(scale * ch / h, 0.95 * cw / w)
    nw, nh = max(8, int(w * scale)), max(8, int(h * scale))
    fg = im.resize((nw, nh), Image.Resampling.BILINEAR)
    x0 = int(rng.integers(0, cw - nw + 1))
    y0 = int(rng.integers(max(0, (ch - nh) // 2), ch - nh + 1))
    if mask is None:
        alpha = Image.new("L", (nw, nh), 255)
    else:
        alpha = Image.fromarray((mask * 255).astype(np.uint8)).resize((nw, nh), Image.Resampling.BILINEAR)
        alpha = alpha.filter(ImageFilter.GaussianBlur(1.0))
    canvas.paste(fg, (x0, y0), alpha)
    return canvas


def v_color(im: Image.Image, rng) -> Image.Image:
    ops = ["brightness", "contrast", "saturation", "hue", "gamma", "white_balance", "light"]
    picked = rng.choice(len(ops), size=int(rng.integers(2, 5)), replace=False)
    for i in sorted(picked):
        op = ops[i]
        if op == "brightness":
            im = ImageEnhance.Brightness(im).enhance(float(rng.uniform(0.6, 1.4)))
        elif op == "contrast":
            im = ImageEnhance.Contrast(im).enhance(float(rng.uniform(0.6, 1.4)))
        elif op == "saturation":
            im = ImageEnhance.Color(im).enhance(float(rng.uniform(0.5, 1.5)))
        elif op == "hue":
            hsv = np.asarray(im.convert("HSV")).copy()
            hsv[..., 0] = (hsv[..., 0].astype(np.int16) + int(rng.integers(-12, 13))) % 256
            im = Image.fromarray(hsv, "HSV").convert("RGB")
        elif op == "gamma":
            g = float(np.exp(rng.uniform(np.log(0.7), np.log(1.4))))
            lut = [int(round(255 * (v / 255) ** g)) for v in range(256)] * 3
            im = im.point(lut)
        elif op == "white_balance":
            gains = rng.uniform(0.85, 1.15, 3)
            arr = np.asarray(im, np.float32) * gains
            im = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
        else:  # uneven light: vignette or light from one side
            w, h = im.size
            yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
            if rng.random() < 0.5:
                r = np.sqrt(((xx - w / 2) / (w / 2)) ** 2 + ((yy - h / 2) / (h / 2)) ** 2)
                gain = 1 - rng.uniform(0.2, 0.5) * np.clip(r, 0, 1.5) ** 2 / 2.25
            else:
                theta = rng.uniform(0, 2 * np.pi)
                t = ((xx - w / 2) * np.cos(theta) + (yy - h / 2) * np.sin(theta)) / max(w, h)
                gain = 1 + rng.uniform(0.3, 0.7) * t
            arr = np.asarray(im, np.float32) * gain[..., None]
            im = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    return im


def _motion_kernel(rng) -> ImageFilter.Kernel:
    k = np.zeros((5, 5), np.float32)
    if rng.random() < 0.5:
        k[2, :] = 1
    else:
        np.fill_diagonal(k, 1)
        if rng.random() < 0.5:
            k = k[:, ::-1]
    return ImageFilter.Kernel((5, 5), k.ravel().tolist(), scale=float(k.sum()))


def v_blur_jpeg(im: Image.Image, rng, strength: float = 1.0) -> tuple[Image.Image, int]:
    """Blur, lose resolution, then (by the caller) compress hard. Returns (image, JPEG quality)."""
    if rng.random() < 0.3:
        im = im.filter(_motion_kernel(rng))
    else:
        im = im.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.8, 2.5) * strength)))
    w, h = im.size
    f = rng.uniform(0.35, 0.8) if strength >= 1 else rng.uniform(0.6, 0.9)
    small = im.resize((max(8, int(w * f)), max(8, int(h * f))), Image.Resampling.BILINEAR)
    im = small.resize((w, h), Image.Resampling.BILINEAR) if rng.random() < 0.5 else small
    q = int(rng.integers(8, 31)) if strength >= 1 else int(rng.integers(25, 60))
    return im, q


def v_grayscale(im: Image.Image, rng) -> Image.Image:
    g = ImageOps.grayscale(im)
    if rng.random() < 0.5:
        g = ImageEnhance.Contrast(g).enhance(float(rng.uniform(0.8, 1.3)))
    return g if rng.random() < 0.5 else g.convert("RGB")


def v_rotate(im: Image.Image, rng) -> Image.Image:
    angle = float(rng.uniform(4, 15) * (1 if rng.random() < 0.5 else -1))
    arr = np.asarray(im)
    fill = tuple(int(v) for v in np.median(np.concatenate([arr[0], arr[-1]]), axis=0))
    w, h = im.size
    rot = im.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=fill)
    rw, rh = rot.size
    keep = rng.uniform(0.8, 1.0)   # crop part of the filled corners away, as a photo's frame would
    cw, ch = int(rw * keep), int(rh * keep)
    x0, y0 = (rw - cw) // 2, (rh - ch) // 2
    return rot.crop((x0, y0, x0 + cw, y0 + ch))


def v_exif(im: Image.Image, rng) -> tuple[Image.Image, int]:
    """(stored pixels, orientation tag): a viewer applying the tag shows ``im`` again."""
    orientation = int(rng.choice([3, 6, 8, 6, 8, 2, 4, 5, 7]))
    return im.transpose(_EXIF_INVERSE[orientation]), orientation


def _change(step: str, im: Image.Image, rng: np.random.Generator, pool: Sequence[Image.Image],
            in_combo: bool) -> tuple[Image.Image, int | None, int | None]:
    """Apply one photo change -> (image, JPEG quality it asks for, EXIF orientation it stores);
    inside a combination the crop and the blur are milder."""
    if step == "crop":
        return (v_crop(im, rng, 0.55, 0.9) if in_combo else v_crop(im, rng)), None, None
    if step == "background":
        return v_background(im, rng, pool), None, None
    if step == "color":
        return v_color(im, rng), None, None
    if step == "blur_jpeg":
        im, quality = v_blur_jpeg(im, rng, strength=0.5 if in_combo else 1.0)
        return im, quality, None
    if step == "flip":
        return ImageOps.mirror(im), None, None
    if step == "grayscale":
        return v_grayscale(im, rng), None, None
    if step == "rotate":
        return v_rotate(im, rng), None, None
    if step == "exif":
        im, orientation = v_exif(im, rng)
        return im, None, orientation
    raise ValueError(f"unknown variant kind {step!r}")


# the changes a combination draws from, each with its probability (order matters: it is the
# order they are drawn and applied in)
COMBO_STEPS = (("crop", 0.6), ("background", 0.4), ("color", 0.7), ("flip", 0.5), ("rotate", 0.3),
               ("grayscale", 0.15), ("blur_jpeg", 0.5), ("exif", 0.3))


def picture_variant(im: Image.Image, kind: str, rng: np.random.Generator,
                    pool: Sequence[Image.Image] = ()) -> tuple[bytes, tuple[float, float, float, float]]:
    """A bigger picture of ``kind`` (``scenes.SCENE_KINDS``) with the dress of ``im`` in it, as the
    bytes of a JPEG, and where the dress is in it (fractions ``l, t, r, b``): :func:`make_variant`'s
    query for those kinds, with the box it knows."""
    quality = int(rng.integers(85, 96))
    picture, box = make_picture(im.convert("RGB"), kind, rng, pool)
    return jpeg_bytes(picture, quality), box


def make_variant(im: Image.Image, kind: str, rng: np.random.Generator,
                 pool: Sequence[Image.Image] = ()) -> bytes:
    """One photo-like query made from catalogue image ``im``: the bytes of a JPEG."""
    im = im.convert("RGB")
    if kind in SCENE_KINDS:   # a screenshot, a photo of a screen, a scene, a close-up
        return picture_variant(im, kind, rng, pool)[0]
    quality, orientation = int(rng.integers(85, 96)), None
    if kind == "combo":
        steps: list[str] = []
        while len(steps) < 3:
            steps = [step for step, p in COMBO_STEPS if rng.random() < p]
    else:
        steps = [kind]
    for step in steps:
        im, q, o = _change(step, im, rng, pool, in_combo=kind == "combo")
        quality = q if q is not None else quality
        orientation = o if o is not None else orientation
    return jpeg_bytes(im, quality, orientation)
