"""The one place that decodes images.

``load_image`` takes a path, bytes or a binary file object and returns an RGB ``PIL.Image``:
EXIF orientation applied, first frame of animations, any mode (grayscale, 16-bit, RGBA,
palette, CMYK) turned into 8-bit RGB (transparency composited on white, the usual
product-photo background). It refuses what is not a raster image we support, anything over a
pixel budget (decompression bombs) and, when asked (web uploads), anything whose decoded pixels
would need more than a memory budget, *before* decoding the pixels. Large images are reduced
before they are converted, so the conversion costs little beyond the decode itself.

``descreen`` takes a photographed screen's moiré out of a decoded picture (the region search
uses it on pictures that are not laid-out screenshots).
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import BinaryIO, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ImageError, ImageTooLarge, NotAnImage

ImageSource = Union[str, os.PathLike, bytes, bytearray, memoryview, BinaryIO, Image.Image]

#: Formats accepted from users and catalogues (Pillow format names).
ALLOWED_FORMATS = frozenset({"JPEG", "MPO", "PNG", "WEBP", "GIF", "BMP", "TIFF"})
#: File name extensions a catalogue folder is scanned for.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp")
CONTENT_TYPES = {
    "JPEG": "image/jpeg",
    "MPO": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
    "GIF": "image/gif",
    "BMP": "image/bmp",
    "TIFF": "image/tiff",
}
EXTENSIONS = {"JPEG": ".jpg", "MPO": ".jpg", "PNG": ".png", "WEBP": ".webp", "GIF": ".gif",
              "BMP": ".bmp", "TIFF": ".tif"}
DEFAULT_MAX_PIXELS = 40_000_000  # 40 MP: a 7000x5700 photo; far above any phone camera's default
BACKGROUND = (255, 255, 255)
#: Bytes per pixel of Pillow's decoded image, by mode (multi-band and 32-bit modes use 4).
_ONE_BYTE_MODES = frozenset({"1", "L", "P"})
_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})
_MODE_NAMES = {"LA": "gray + alpha", "La": "gray + alpha", "PA": "palette + alpha", "RGBA": "RGB + alpha",
               "P": "palette", "L": "gray", "1": "black and white", "CMYK": "CMYK"}

# We enforce our own (lower) limit before decoding; keep Pillow's own bomb check as a second net.
Image.MAX_IMAGE_PIXELS = max(Image.MAX_IMAGE_PIXELS or 0, DEFAULT_MAX_PIXELS)


def _open(src: ImageSource) -> Image.Image:
    if isinstance(src, (bytes, bytearray, memoryview)):
        if len(src) == 0:
            raise NotAnImage("empty file: no image data")
        fp: BinaryIO | str = io.BytesIO(bytes(src))
    elif isinstance(src, (str, os.PathLike)):
        path = Path(src)
        if not path.is_file():
            raise ImageError(f"no such image file: {path}")
        if path.stat().st_size == 0:
            raise NotAnImage(f"empty file: {path}")
        fp = str(path)
    else:
        fp = src
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return Image.open(fp)
    except UnidentifiedImageError:
        raise NotAnImage("not an image (or an image format we do not read)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageTooLarge("image has too many pixels") from None
    except Exception as e:  # Pillow's parsers raise many kinds on hostile bytes (struct.error, ...)
        raise NotAnImage(f"cannot read image: {e}") from None


def decoded_bytes(im: Image.Image) -> int:
    """Memory the pixels of ``im`` (at its current, possibly drafted, size) take once decoded."""
    w, h = im.size
    if im.mode in _ONE_BYTE_MODES:
        per = 1
    elif im.mode.startswith("I;16"):
        per = 2
    else:
        per = 4
    return w * h * per


def _check_memory(im: Image.Image, fmt: str, max_decode_bytes: int | None) -> None:
    need = decoded_bytes(im)
    if max_decode_bytes is not None and need > max_decode_bytes:
        w, h = im.size
        kind = f"{_MODE_NAMES.get(im.mode, im.mode)} {fmt}".strip()
        raise ImageTooLarge(f"a {w}x{h} {kind} needs {need / 2**20:.0f} MB of memory to decode; the limit for "
                            f"uploads is {max_decode_bytes / 2**20:.0f} MB: send a smaller image (or a JPEG)")


def _reduce(im: Image.Image, short_side: int | None) -> Image.Image:
    """Shrink by a whole factor, before converting, when the caller needs only ``short_side``
    pixels on the short side (keeping at least twice that for the resize after)."""
    if not short_side:
        return im
    factor = min(im.size) // (2 * short_side)
    if factor < 2 or im.mode in ("1", "P") or im.mode.startswith("I;16") or "transparency" in im.info:
        return im  # (a tRNS colour key must be matched on the original pixels)
    if im.mode not in _ALPHA_MODES:
        return im.reduce(factor)
    # Pillow reduces RGBA/LA through a full-size premultiplied copy: composite on white and
    # reduce band by band instead (the average of what is shown, and no second full copy)
    w, h = im.size
    out = Image.new("RGB", (-(-w // factor), -(-h // factor)), BACKGROUND)
    rows = factor * max(1, 128 // factor)  # about 128 rows a band
    for top in range(0, h, rows):
        band = _to_rgb(im.crop((0, top, w, min(top + rows, h))))
        out.paste(band.reduce(factor), (0, top // factor))
    return out


def _to_rgb(im: Image.Image) -> Image.Image:
    mode = im.mode
    if mode == "RGB" and "transparency" not in im.info:
        return im
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(im, dtype=np.float64)
        if mode == "F":
            lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
            arr = (arr - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(arr)
        elif arr.max(initial=0) > 255:
            arr = arr / 257.0  # 16-bit range to 8-bit
        gray = np.clip(np.nan_to_num(arr), 0, 255).astype(np.uint8)
        return Image.fromarray(gray, "L").convert("RGB")
    if mode in ("P", "L", "RGB") and "transparency" in im.info:  # palette alpha, or a tRNS colour key
        im = im.convert("RGBA")
        mode = "RGBA"
    if mode in _ALPHA_MODES:
        rgba = im.convert("RGBA")
        canvas = Image.new("RGB", rgba.size, BACKGROUND)
        canvas.paste(rgba, mask=rgba.getchannel("A"))
        return canvas
    return im.convert("RGB")


def load_image(src: ImageSource, *, max_pixels: int | None = DEFAULT_MAX_PIXELS,
               draft: int | None = None, max_decode_bytes: int | None = None) -> Image.Image:
    """Decode ``src`` into an RGB image, oriented as its EXIF says.

    ``draft``: when the caller only needs about ``draft`` pixels on the short side, JPEGs are
    decoded at a reduced scale (1/2, 1/4, 1/8), which is several times faster, and other images
    are reduced (by a whole factor, to at least twice ``draft``) before they are converted.

    Raises ``NotAnImage`` (not a supported raster image, empty, corrupt or truncated) and
    ``ImageTooLarge`` (more than ``max_pixels`` pixels, or more than ``max_decode_bytes`` of
    decoded pixels: a 6300x6300 gray + alpha PNG needs 151 MB, however small its file).
    """
    if isinstance(src, Image.Image):
        im = src
        fmt = "PIL"
    else:
        im = _open(src)
        fmt = im.format or ""
        if fmt not in ALLOWED_FORMATS:
            raise NotAnImage(f"unsupported image format {fmt or 'unknown'}; use JPEG, PNG or WebP")
    w, h = im.size
    if w < 1 or h < 1:
        raise NotAnImage("image has no pixels")
    if max_pixels is not None and w * h > max_pixels:
        raise ImageTooLarge(f"image is {w}x{h} = {w * h:,} pixels; the limit is {max_pixels:,}")
    try:
        if getattr(im, "is_animated", False):
            im.seek(0)
        if draft and fmt in ("JPEG", "MPO") and im.mode in ("RGB", "L", "CMYK", "YCbCr"):
            im.draft("RGB" if im.mode != "L" else "L", (draft, draft))
        _check_memory(im, fmt, max_decode_bytes)
        im.load()
    except Image.DecompressionBombError:
        raise ImageTooLarge("image has too many pixels") from None
    except ImageError:
        raise
    except Exception as e:  # truncated or corrupt data; Pillow raises many kinds
        raise NotAnImage(f"corrupt or truncated image: {e}") from None
    try:
        ImageOps.exif_transpose(im, in_place=True)  # (not in place, it copies even an upright image)
    except Exception:  # a broken EXIF block must not lose the picture
        pass
    try:
        return _to_rgb(_reduce(im, draft))
    except Exception as e:
        raise NotAnImage(f"cannot convert image: {e}") from None


def sniff_format(data: bytes) -> str:
    """Pillow's format name for encoded image bytes (``NotAnImage`` when it is not one we accept)."""
    im = _open(data)
    fmt = im.format or ""
    if fmt not in ALLOWED_FORMATS:
        raise NotAnImage(f"unsupported image format {fmt or 'unknown'}")
    return fmt


def crop_relative(im: Image.Image, box: tuple[float, float, float, float] | None) -> Image.Image:
    """Crop by a box given as fractions of width and height: (left, top, right, bottom) in [0, 1]."""
    if box is None:
        return im
    try:
        x0, y0, x1, y1 = (float(v) for v in box)
    except (TypeError, ValueError):
        raise ImageError("crop box must be four numbers: left, top, right, bottom") from None
    if not all(np.isfinite([x0, y0, x1, y1])):
        raise ImageError("crop box must be finite numbers")
    x0, x1 = sorted((min(max(x0, 0.0), 1.0), min(max(x1, 0.0), 1.0)))
    y0, y1 = sorted((min(max(y0, 0.0), 1.0), min(max(y1, 0.0), 1.0)))
    w, h = im.size
    left, top, right, bottom = round(x0 * w), round(y0 * h), round(x1 * w), round(y1 * h)
    if right - left < 8 or bottom - top < 8:
        raise ImageError("crop box is too small (at least 8x8 pixels)")
    return im.crop((left, top, right, bottom))


def fit_square(im: Image.Image, size: int, *, background=BACKGROUND,
               resample=Image.Resampling.BILINEAR) -> Image.Image:
    """Resize so the longer side is ``size`` and pad to a ``size`` x ``size`` square.

    Dresses are tall: padding keeps the whole garment where a centre crop would cut it.
    """
    w, h = im.size
    scale = size / max(w, h)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    if (nw, nh) != (w, h):
        im = im.resize((nw, nh), resample, reducing_gap=2.0 if scale < 0.5 else None)
    if nw == nh == size:
        return im
    canvas = Image.new("RGB", (size, size), background)
    canvas.paste(im, ((size - nw) // 2, (size - nh) // 2))
    return canvas


#: :func:`descreen`: a spectral peak counts as a screen's beat pattern when it stands this many
#: times above the geometric mean of its ring of frequencies; periods longer than this share of the
#: picture's shorter side are the picture's own content; at most this many peaks are removed; a
#: peak must stand this many times above its direction's spectrum nearer and farther out.
DESCREEN_PEAK_RATIO = 12.0
DESCREEN_MAX_PERIOD = 0.1
DESCREEN_MAX_PEAKS = 4
DESCREEN_RADIAL = 3.0
#: :func:`descreen`'s notch around each peak (and its mirror): a Gaussian this many frequency bins
#: wide (its standard deviation). A camera's beat pattern is no pure tone: the screen's perspective
#: and the pattern's wandering phase spread each peak into a small cluster of side peaks, which a
#: notch of 1.5 bins left standing (docs/regions.md, "The moiré's side peaks").
DESCREEN_NOTCH_WIDTH = 5.0
#: :func:`descreen` works on at most this many pixels on the longer side (a bigger picture is
#: reduced first, by a whole factor, and comes back reduced): about 25 ms at this size.
DESCREEN_MAX_SIDE = 1024


def descreen(im: Image.Image) -> Image.Image | None:
    """``im`` without the moiré of a photographed screen: the strong, isolated peaks of its
    log-brightness spectrum (a fine beat pattern multiplies the picture) notched out, the same
    correction applied to each colour; a picture over :data:`DESCREEN_MAX_SIDE` comes back
    reduced. None when there is no such peak (nothing to remove)."""
    if max(im.size) > DESCREEN_MAX_SIDE:
        im = im.reduce(-(-max(im.size) // DESCREEN_MAX_SIDE))
    rgb = np.asarray(im.convert("RGB"), np.float32)
    h, w = rgb.shape[:2]
    if min(h, w) < 32:
        return None
    lum = np.log1p(rgb @ np.array([0.299, 0.587, 0.114], np.float32))
    spec = np.fft.rfft2(lum - lum.mean())
    fy, fx = np.fft.fftfreq(h).astype(np.float32)[:, None], np.fft.rfftfreq(w).astype(np.float32)[None, :]
    radius = np.hypot(fy, fx)
    notch = _moire_notch(np.abs(spec), fy, fx, radius, 1.0 / (DESCREEN_MAX_PERIOD * min(h, w)))
    if notch is None:
        return None
    pattern = np.fft.irfft2(spec * (1.0 - notch), s=(h, w)) - (lum - lum.mean())   # minus the beat
    out = rgb * np.exp(pattern)[..., None]
    return Image.fromarray(np.clip(out + 0.5, 0, 255).astype(np.uint8))


def _moire_notch(mag: np.ndarray, fy: np.ndarray, fx: np.ndarray, radius: np.ndarray,
                 min_freq: float) -> np.ndarray | None:
    """A mask (1 at the peaks :func:`descreen` removes, 0 elsewhere) or None when there are none."""
    rings = np.minimum((radius / radius.max() * 64).astype(np.int64), 63)
    logm = np.log(mag + 1e-9)
    counts = np.bincount(rings.ravel(), minlength=64)
    level = np.bincount(rings.ravel(), logm.ravel(), minlength=64) / np.maximum(counts, 1)   # each ring's log-mean
    ratio = np.where(radius >= min_freq, np.exp(logm - level[rings]), 0.0)
    width = DESCREEN_NOTCH_WIDTH / min(mag.shape[0], 2 * (mag.shape[1] - 1))      # in frequency bins
    notch = np.zeros_like(mag)
    found = 0
    for _ in range(4 * DESCREEN_MAX_PEAKS):                  # edge streaks are looked at and passed over
        if found == DESCREEN_MAX_PEAKS:
            break
        iy, ix = np.unravel_index(np.argmax(ratio * (1.0 - notch)), ratio.shape)
        if ratio[iy, ix] * (1.0 - notch[iy, ix]) < DESCREEN_PEAK_RATIO:
            break
        ratio[iy, ix] = 0.0                                  # looked at: not again
        if not _isolated(mag, iy, ix):
            continue                                         # a straight edge's streak, not a beat
        found += 1
        for sy, sx in ((fy[iy, 0], fx[0, ix]), (-fy[iy, 0], -fx[0, ix])):   # the peak and its mirror
            d2 = (fy - sy) ** 2 + (fx - sx) ** 2
            notch = np.maximum(notch, np.exp(-d2 / (2 * width ** 2)))
    return notch if notch.any() else None


def _isolated(mag: np.ndarray, iy: int, ix: int) -> bool:
    """Whether the spectral peak at ``(iy, ix)`` stands :data:`DESCREEN_RADIAL` times above the
    same direction at 0.7 and 1.4 times its frequency (a straight edge puts a streak of energy
    through the origin, falling off with frequency; a beat pattern is a dot)."""
    h, half = mag.shape
    fy = iy if iy <= h // 2 else iy - h
    for s in (0.7, 1.4):
        y, x = int(round(fy * s)), int(round(ix * s))
        if x < half and abs(y) <= h // 2 and mag[iy, ix] < DESCREEN_RADIAL * mag[y % h, x]:
            return False
    return True
