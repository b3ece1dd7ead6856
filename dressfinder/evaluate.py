"""``dressfinder evaluate``: how often does a shopper's photo of a catalogue dress bring that dress back?

For every query source (a catalogue image) we make photo-like variants, deterministically from
``--seed``, each one the bytes of a JPEG as an upload would arrive:

==============  ==========================================================================
crop            a part of the picture (45-85 % of the area), other aspect ratio
background      the dress cut out (border-connected background removed) and pasted, smaller,
                onto a new background: a colour, a gradient, stripes/checks, noise texture,
                or a blurred piece of another catalogue photo
color           colour and lighting: brightness, contrast, saturation, hue, gamma, white
                balance, vignette / side light (at least two of them)
blur_jpeg       Gaussian or motion blur, down-scaling, then heavy JPEG compression (q 8-30)
flip            mirror image
grayscale       black-and-white photo (some saved as 8-bit gray JPEG, some as RGB)
rotate          hand-held tilt of 4-15 degrees, corners filled, then cropped
exif            pixels stored rotated/mirrored with the EXIF orientation tag that undoes it
                (phone photos); the loader must apply the tag
combo           three or more of the above together
==============  ==========================================================================

Each config (an encoder and an index) encodes the whole catalogue and the queries, searches, and
we report Recall@1 and Recall@10 (a hit when the source image, or a byte-identical copy of it,
is in the top 1 / top 10), overall and per kind, the "same style" share among the DeepFashion
dresses (of the top 10 results other than the source, how many come from the source's style
folder), and the end-to-end latency of one query (decode + preprocess + encode + search).

Catalogue and query vectors are cached under ``$DRESSFINDER_CACHE/eval`` (keyed by the encoder's
spec and the exact sources), so a second run only pays for what changed.
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import io
import json
import logging
import os
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageOps

from .tools.scenes import SCENE_KINDS, make_picture

log = logging.getLogger(__name__)

PHOTO_KINDS = ("crop", "background", "color", "blur_jpeg", "flip", "grayscale", "rotate", "exif", "combo")
KINDS = PHOTO_KINDS + SCENE_KINDS
GENERATOR_VERSION = "2"     # bump when a variant would come out different for the same seed (2: scenes)
DEFAULT_SEED = 20250611     # training augmentations use other seeds (see encoders/adapt.py)
AUTO_STYLE_PREFIX = "deepfashion-dresses/"   # --style-prefix auto: DeepFashion's style folders
ORIENTATION = 0x0112
# what ImageOps.exif_transpose does for each orientation, and its inverse (how a camera stored it)
_EXIF_INVERSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_90, 7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


# =========================================================================== variants

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
    from scipy import ndimage

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


def make_variant(im: Image.Image, kind: str, rng: np.random.Generator,
                 pool: Sequence[Image.Image] = ()) -> bytes:
    """One photo-like query made from catalogue image ``im``: the bytes of a JPEG."""
    im = im.convert("RGB")
    quality, orientation = int(rng.integers(85, 96)), None
    if kind in SCENE_KINDS:   # a screenshot, a photo of a screen, a scene, a close-up
        return jpeg_bytes(make_picture(im, kind, rng, pool)[0], quality)
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


# =========================================================================== query sets

@dataclass
class QuerySet:
    data: list[bytes]           # one JPEG per query
    source: np.ndarray          # index into the catalogue products
    kind: np.ndarray            # index into kinds
    kinds: tuple[str, ...]
    key: str


def background_pool(images: Sequence[str], exclude: set[int], seed: int, n: int = 200) -> list[Image.Image]:
    """Some catalogue pictures (not query sources) to cut backdrops from."""
    from .images import load_image

    candidates = [i for i in range(len(images)) if i not in exclude] or list(range(len(images)))
    rng = np.random.default_rng([seed, 99])
    pick = rng.choice(len(candidates), size=min(n, len(candidates)), replace=False)
    pool = []
    for j in sorted(pick):
        try:
            pool.append(load_image(images[candidates[j]], draft=256))
        except Exception:  # noqa: BLE001 - a broken distractor just is not used
            continue
    return pool


def make_queries(images: Sequence[str], ids: Sequence[str], sources: Sequence[int], kinds: Sequence[str],
                 seed: int, per_source: int = 1, cache: Path | None = None, progress: bool = True) -> QuerySet:
    """The query variants (cached under ``cache`` by everything that decides them)."""
    from concurrent.futures import ThreadPoolExecutor

    from tqdm import tqdm

    from .errors import DressfinderError
    from .images import load_image

    h = hashlib.sha256(f"{GENERATOR_VERSION}|{seed}|{per_source}|{','.join(kinds)}".encode())
    for s in sources:
        h.update(ids[s].encode("utf-8", "surrogatepass") + b"\0")
        h.update(os.path.getsize(images[s]).to_bytes(8, "little"))
    key = h.hexdigest()[:16]
    path = cache / f"queries-{key}.npz" if cache else None
    if path is not None and path.exists():
        with np.load(path, allow_pickle=False) as z:
            blob, offsets = z["blob"], z["offsets"]
            data = [blob[offsets[i]:offsets[i + 1]].tobytes() for i in range(len(offsets) - 1)]
            return QuerySet(data, z["source"], z["kind"], tuple(str(k) for k in z["kinds"]), key)
    pool = background_pool(images, set(sources), seed)
    jobs = [(s, ki, r) for s in sources for ki in range(len(kinds)) for r in range(per_source)]

    def one(job):
        s, ki, r = job
        try:
            im = load_image(images[s])
        except DressfinderError:
            return None
        return make_variant(im, kinds[ki], variant_rng(seed, ids[s], kinds[ki], r), pool)

    data, src, kind = [], [], []
    with ThreadPoolExecutor(2) as ex:
        for job, out in zip(jobs, tqdm(ex.map(one, jobs), total=len(jobs), desc="making queries", unit="img",
                                       disable=not progress, dynamic_ncols=True)):
            if out is None:
                continue
            data.append(out)
            src.append(job[0])
            kind.append(job[1])
    qs = QuerySet(data, np.array(src, np.int64), np.array(kind, np.int64), tuple(kinds), key)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        offsets = np.cumsum([0] + [len(d) for d in data]).astype(np.int64)
        blob = np.frombuffer(b"".join(data), np.uint8)
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(tmp, blob=blob, offsets=offsets, source=qs.source, kind=qs.kind, kinds=np.array(kinds))
        os.replace(tmp, path)
    return qs


# =========================================================================== metrics

def recall_at(ranked: np.ndarray, targets: Sequence[set[int]], k: int) -> np.ndarray:
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

    from .images import load_image

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


# =========================================================================== configs

@dataclass
class Config:
    label: str
    encoder: str | None          # None: the default encoder
    model: str | None = None
    index: str = "flat"
    index_params: dict[str, Any] = field(default_factory=dict)
    train_seed_autoencoder: bool = False

    def describe(self, enc_name: str) -> str:
        p = self.index_params
        idx = self.index + (f" {p.get('nlist', 10)}/{p.get('nprobe', 1)}" if self.index == "ivf" else "")
        return f"{enc_name} + {idx}"


def parse_config(text: str) -> Config:
    """``seed``, ``base``, ``default``, or ``ENCODER[@MODEL][+flat|+hnsw|+ivf[:NLIST/NPROBE]]``."""
    from .errors import DressfinderError

    text = text.strip()
    if text == "seed":
        return Config("seed", "autoencoder", None, "ivf", {"nlist": 10, "nprobe": 1}, train_seed_autoencoder=True)
    if text == "base":
        return Config("base", "effnet-lite0")
    if text == "default":
        return Config("default", None)
    enc, _, idx = text.partition("+")
    enc, _, model = enc.partition("@")
    kind, _, params = (idx or "flat").partition(":")
    if kind not in ("flat", "ivf", "hnsw"):
        raise DressfinderError(f"config {text!r}: index must be flat, ivf or hnsw")
    ip: dict[str, Any] = {}
    if params:
        try:
            if kind == "ivf":
                nlist, _, nprobe = params.partition("/")
                ip = {"nlist": int(nlist), "nprobe": int(nprobe or 1)}
            elif kind == "hnsw":
                ip = {"efSearch": int(params)}
        except ValueError:
            raise DressfinderError(f"config {text!r}: bad index parameters {params!r}") from None
    return Config(text, enc or None, model or None, kind, ip,
                  train_seed_autoencoder=(enc == "autoencoder" and not model))


class _QuerySide:
    """Wraps an encoder so ``embed`` runs its query path (``encode_query_arrays``)."""

    def __init__(self, enc):
        self.enc = enc
        self.input_size = enc.input_size
        self.batch_size = enc.batch_size
        self.dim = enc.dim
        self.preprocess = enc.preprocess
        self.encode_arrays = enc.encode_query_arrays

    def spec(self):
        return {**self.enc.spec(), "side": "query"}


def _catalog_key(ids: Sequence[str], images: Sequence[str]) -> str:
    h = hashlib.sha256()
    for i, p in zip(ids, images):
        h.update(i.encode("utf-8", "surrogatepass") + b"\0")
        try:
            h.update(os.path.getsize(p).to_bytes(8, "little"))
        except OSError:
            h.update(b"?")
    return h.hexdigest()[:16]


def seed_autoencoder(images: Sequence[str], cat_key: str, cache: Path, epochs: int, progress: bool) -> Path:
    """The seed's autoencoder, trained on this catalogue the seed's way (cached per catalogue)."""
    from .encoders.autoencoder import train_from_sources

    path = cache / f"seed-autoencoder-{cat_key}-e{epochs}.keras"
    if not path.exists():
        if progress:
            print(f"training the seed autoencoder on {len(images)} images ({epochs} epochs)", file=sys.stderr)
        train_from_sources(list(images), path, epochs=epochs, progress=progress)
    return path


def _embed_cached(enc, sources: Sequence, cache: Path | None, keys: Sequence[str], desc: str,
                  progress: bool) -> tuple[np.ndarray, np.ndarray, float, bool]:
    """Vectors, which sources gave one, the seconds the encoding took, whether they came from the cache."""
    from .embed import embed, fingerprint

    work = None
    if cache is not None:
        work = cache / f"vectors-{fingerprint(enc, keys)}"
        done = work / "done.npz"
        if done.exists():
            with np.load(done) as z:
                return z["vectors"], z["ok"], float(z["seconds"]), True
    res = embed(enc, sources, work_dir=work, progress=progress, desc=desc)
    if work is not None:
        np.savez(work / "done.tmp.npz", vectors=res.vectors, ok=res.ok, seconds=res.seconds)
        os.replace(work / "done.tmp.npz", work / "done.npz")
    return res.vectors, res.ok, res.seconds, False


def _located(enc, photos: Sequence[bytes], whole: np.ndarray, cat_vec: np.ndarray, cache: Path | None,
             progress: bool) -> np.ndarray:
    """Query vectors of the regions the region search uses (cached by photos, encoder, catalogue)."""
    from . import regions

    h = hashlib.sha256(f"{regions.VERSION}|{sorted(enc.spec().items())}".encode())
    for d in photos:
        h.update(hashlib.sha256(d).digest())
    h.update(np.ascontiguousarray(cat_vec[:: max(1, len(cat_vec) // 64)]).tobytes())
    path = cache / f"regions-{h.hexdigest()[:16]}.npy" if cache is not None else None
    if path is not None and path.exists():
        return np.load(path)
    out = regions.located_vectors(enc, photos, whole, cat_vec, progress)
    if path is not None:
        np.save(path.with_name(path.stem + ".tmp.npy"), out)
        os.replace(path.with_name(path.stem + ".tmp.npy"), path)
    return out


def measure_latency(enc, index, data: Sequence[bytes], n: int, k: int = 10) -> dict[str, float]:
    """End-to-end time of single queries: decode + preprocess + encode (query path) + search."""
    encode = enc.encode_query_arrays
    picks = np.linspace(0, len(data) - 1, num=min(n, len(data))).astype(int) if len(data) else []
    for d in [data[i] for i in picks[:5]]:  # warm up
        index.search(encode(enc.preprocess(enc.load(d))[None]), k)
    times = []
    for i in picks:
        t0 = time.perf_counter()
        v = encode(enc.preprocess(enc.load(data[i]))[None])
        index.search(np.asarray(v, np.float32), k)
        times.append(time.perf_counter() - t0)
    t = np.array(times) * 1000
    return {"median_ms": float(np.median(t)), "p95_ms": float(np.percentile(t, 95)), "n": int(len(t))} \
        if len(t) else {"median_ms": float("nan"), "p95_ms": float("nan"), "n": 0}


# =========================================================================== the run

def evaluate(catalog: str | Path, configs: Sequence[str], *, queries: Sequence[str] = (),
             kinds: Sequence[str] = KINDS, seed: int = DEFAULT_SEED, per_source: int = 1,
             max_sources: int | None = None, style_prefix: str | None = None, heldout: str | Path | None = None,
             latency: int = 200, cache: Path | None = None, epochs: int = 20, progress: bool = True,
             examples: Path | None = None, colour: bool = True, detect: bool = True) -> dict[str, Any]:
    from .catalog import read_catalog
    from .encoders import file_digest, get_encoder
    from .errors import DressfinderError
    from .index import VectorIndex

    t_start = time.perf_counter()
    read = read_catalog(catalog)
    products = read.products
    if not products:
        raise DressfinderError(f"catalogue {catalog} has no images")
    ids = [p.id for p in products]
    images = [p.image for p in products]
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise DressfinderError(f"unknown variant kind(s) {', '.join(unknown)}; choose from {', '.join(KINDS)}")
    if queries:
        sources = [i for i, pid in enumerate(ids) if any(fnmatch.fnmatchcase(pid, g) for g in queries)]
        if not sources:
            raise DressfinderError(f"no catalogue id matches --queries {' '.join(queries)}")
    else:  # default: the dresses (ids that say so), else everything
        sources = [i for i, pid in enumerate(ids) if "dress" in pid.lower()] or list(range(len(ids)))
    if style_prefix == "auto":
        style_prefix = AUTO_STYLE_PREFIX if any(pid.startswith(AUTO_STYLE_PREFIX) for pid in ids) else None
    if max_sources and len(sources) > max_sources:
        rng = np.random.default_rng([seed, 7])
        sources = sorted(rng.choice(sources, size=max_sources, replace=False).tolist())
    parsed = [parse_config(c) for c in configs]
    if not parsed:
        raise DressfinderError("no configs to evaluate (--configs seed,base,default)")
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
    cat_key = _catalog_key(ids, images)

    # byte-identical copies of a source count as the source
    digests = [file_digest(p, 64) for p in images]   # the whole sha256: byte-identical copies
    by_digest: dict[str, set[int]] = {}
    for i, d in enumerate(digests):
        by_digest.setdefault(d, set()).add(i)
    styles: list[str | None] = [None] * len(ids)
    if style_prefix:
        for i, pid in enumerate(ids):
            if pid.startswith(style_prefix) and "/" in pid[len(style_prefix):]:
                styles[i] = pid[len(style_prefix):].split("/")[0]
    held: set[str] | None = None
    if heldout == "auto":   # the shipped model's held-out images, when it has such a list
        from .encoders.effnet_tuned import DEFAULT_MODEL

        side = DEFAULT_MODEL.with_name(DEFAULT_MODEL.stem + ".heldout.txt")
        heldout = side if side.is_file() else None
    if heldout:
        try:
            held = {ln.strip() for ln in Path(heldout).read_text().splitlines() if ln.strip()}
        except OSError as e:
            raise DressfinderError(f"cannot read --heldout {heldout}: {e.strerror}") from None

    t0 = time.perf_counter()
    qs = make_queries(images, ids, sources, list(kinds), seed, per_source, cache, progress)
    t_queries = time.perf_counter() - t0
    if examples is not None:
        examples.mkdir(parents=True, exist_ok=True)
        for j in range(0, len(qs.data), max(1, len(qs.data) // 40)):
            name = f"{qs.kinds[qs.kind[j]]}-{ids[qs.source[j]].replace('/', '_')}"
            (examples / name).with_suffix(".jpg").write_bytes(qs.data[j])
    colours = catalog_colours(images, cat_key, cache, progress) if colour else None
    targets = [by_digest[digests[s]] for s in qs.source]
    q_style = [styles[s] for s in qs.source]
    query_keys = [f"{qs.key}:{i}" for i in range(len(qs.data))]
    max_group = max(len(t) for t in targets) if targets else 1
    k_fetch = 10 + max_group

    results = []
    scratch: tempfile.TemporaryDirectory | None = None
    for cfg in parsed:
        t_cfg = time.perf_counter()
        model = cfg.model
        if cfg.train_seed_autoencoder:
            if cache is None and scratch is None:   # --no-cache: a folder that goes away with the run
                scratch = tempfile.TemporaryDirectory(prefix="dressfinder-eval-")
            model = str(seed_autoencoder(images, cat_key, cache or Path(scratch.name), epochs, progress))
        enc = get_encoder(cfg.encoder, **({"model": model} if model else {}))
        if progress:
            print(f"[{cfg.label}] {enc!r}", file=sys.stderr)
        cat_keys = [f"{i}\0{p}" for i, p in zip(ids, images)]
        cat_vec, cat_ok, cat_secs, cat_cached = _embed_cached(enc, images, cache, cat_keys,
                                                              f"{cfg.label}: catalogue", progress)
        qenc = _QuerySide(enc)
        q_vec, q_ok, q_secs, _ = _embed_cached(qenc, qs.data, cache, query_keys, f"{cfg.label}: queries", progress)
        if detect and len(q_vec):   # the region search's choice (regions.py), as the service makes it
            q_vec = _located(enc, [qs.data[int(i)] for i in q_ok], q_vec, cat_vec, cache, progress)
        index = VectorIndex.build(cfg.index, cat_vec, ids=cat_ok.astype(np.int64), metric=enc.metric,
                                  **cfg.index_params)
        ranked = np.full((len(qs.data), k_fetch), -1, np.int64)
        if len(q_vec):
            _, found = index.search(q_vec, k_fetch)
            ranked[q_ok] = found
        r1 = recall_at(ranked, targets, 1)
        r10 = recall_at(ranked, targets, 10)
        ss = style_share(ranked, targets, styles, q_style, 10)
        cs = np.full(len(ranked), np.nan, np.float32)
        if colours is not None:
            use = np.array([qs.kinds[k] != "grayscale" for k in qs.kind]) & (colours[qs.source] >= 0)
            cs = colour_share(ranked, targets, colours, colours[qs.source], use, 10)
        lat = measure_latency(enc, index, qs.data, latency) if latency else {}
        res: dict[str, Any] = {
            "config": cfg.label, "describe": cfg.describe(enc.name), "encoder": enc.spec(), "index": index.meta(),
            "recall@1": float(r1.mean()) if len(r1) else float("nan"),
            "recall@10": float(r10.mean()) if len(r10) else float("nan"),
            "same_style@10": float(np.nanmean(ss)) if np.isfinite(ss).any() else None,
            "same_colour@10": float(np.nanmean(cs)) if np.isfinite(cs).any() else None,
            "latency": lat, "catalog_encode_seconds": round(cat_secs, 1),
            "catalog_images_per_second": round(len(cat_ok) / cat_secs, 1) if cat_secs else None,
            "catalog_vectors_cached": cat_cached,
            "query_encode_seconds": round(q_secs, 1), "unreadable_queries": int(len(qs.data) - len(q_ok)),
            "per_kind": {}, "seconds": 0.0,
        }
        for ki, kname in enumerate(qs.kinds):
            m = qs.kind == ki
            res["per_kind"][kname] = {"n": int(m.sum()), "recall@1": float(r1[m].mean()),
                                      "recall@10": float(r10[m].mean()),
                                      "same_style@10": float(np.nanmean(ss[m])) if np.isfinite(ss[m]).any() else None,
                                      "same_colour@10": float(np.nanmean(cs[m])) if np.isfinite(cs[m]).any() else None}
        if held is not None:
            in_held = np.array([ids[s] in held for s in qs.source])
            for name, m in (("held-out sources", in_held), ("training sources", ~in_held)):
                if m.any():
                    res.setdefault("splits", {})[name] = {"n": int(m.sum()), "recall@1": float(r1[m].mean()),
                                                          "recall@10": float(r10[m].mean())}
        res["seconds"] = round(time.perf_counter() - t_cfg, 1)
        results.append(res)
        if progress:
            print(f"[{cfg.label}] R@1 {res['recall@1']:.3f}  R@10 {res['recall@10']:.3f}  "
                  f"({res['seconds']:.0f} s)", file=sys.stderr)
    if scratch is not None:
        scratch.cleanup()
    return {
        "catalog": str(catalog), "catalog_images": len(ids), "query_sources": len(sources),
        "queries": len(qs.data), "kinds": list(qs.kinds), "per_source": per_source, "seed": seed,
        "generator_version": GENERATOR_VERSION, "style_prefix": style_prefix,
        "duplicate_groups": sum(1 for v in by_digest.values() if len(v) > 1),
        "query_generation_seconds": round(t_queries, 1), "seconds": round(time.perf_counter() - t_start, 1),
        "machine": machine(), "results": results,
    }


def machine() -> str:
    import platform

    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover
        cores = os.cpu_count()
    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {cores} cores"


def _pct(x: float | None) -> str:
    return "–" if x is None or not np.isfinite(x) else f"{x:.3f}"


README_START, README_END = "<!-- eval:start -->", "<!-- eval:end -->"


def to_summary(report: dict[str, Any]) -> str:
    """The short table a README shows: one row per config, held-out rows, ratios, how it was made."""
    rs = report["results"]
    lines = ["| config | encoder + index | Recall@1 | Recall@10 | same style@10 | query ms (median) |",
             "|---|---|---:|---:|---:|---:|"]
    for r in rs:
        lat = r.get("latency") or {}
        ms = f"{lat['median_ms']:.1f}" if lat.get("n") else "–"
        lines.append(f"| {r['config']} | {r['describe']} | {_pct(r['recall@1'])} | {_pct(r['recall@10'])} | "
                     f"{_pct(r['same_style@10'])} | {ms} |")
    for r in rs:
        held = (r.get("splits") or {}).get("held-out sources")
        if held and r["config"] == "default":
            lines.append(f"| *{r['config']}, sources held out of training ({held['n']:,} queries)* | | "
                         f"*{_pct(held['recall@1'])}* | *{_pct(held['recall@10'])}* | | |")
    by = {r["config"]: r for r in rs}
    ratios = []
    if "default" in by and "seed" in by and by["seed"]["recall@1"] > 0:
        ratios.append(f"Recall@1 default / seed: **{by['default']['recall@1'] / by['seed']['recall@1']:.2f}x**")
    if "default" in by and "base" in by and by["default"]["recall@1"] < 1:
        ratios.append("misses at rank 1, base / default: "
                      f"**{(1 - by['base']['recall@1']) / (1 - by['default']['recall@1']):.1f}x**")
    lines.append("")
    if ratios:
        lines += ["; ".join(ratios) + ".", ""]
    lines.append(f"{report['queries']:,} queries from {report['query_sources']:,} sources against "
                 f"{report['catalog_images']:,} images; {report['machine']}; "
                 f"{report.get('date', '')}; run took {report['seconds']:.0f} s"
                 + (" (vectors from the cache of an earlier run)" if any(r.get("catalog_vectors_cached") for r in rs)
                    else "") + ". Made by "
                 f"`{report.get('command') or 'dressfinder evaluate'}`.")
    return "\n".join(lines) + "\n"


def splice_readme(path: Path, summary: str) -> None:
    """Put ``summary`` between the README markers (atomically); a clear error when they are missing."""
    from .errors import DressfinderError

    text = path.read_text()
    start, end = text.find(README_START), text.find(README_END)
    if start < 0 or end < start:
        raise DressfinderError(f"{path} has no {README_START} ... {README_END} block to replace")
    new = text[:start + len(README_START)] + "\n" + summary + text[end:]
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(new)
    os.replace(tmp, path)


def to_markdown(report: dict[str, Any], command: str | None = None) -> str:
    rs = report["results"]
    lines = []
    if command:
        lines += [f"Command: `{command}`", ""]
    lines += [f"Catalogue: {report['catalog_images']:,} images; {report['query_sources']:,} query sources x "
              f"{len(report['kinds'])} kinds x {report['per_source']} = {report['queries']:,} queries "
              f"(variant seed {report['seed']}); machine: {report['machine']}; run took {report['seconds']:.0f} s.",
              ""]
    lines.append("| config | encoder + index | Recall@1 | Recall@10 | same style@10 | same colour@10 "
                 "| query ms (median / p95) | catalogue img/s |")
    lines.append("|---|---|---:|---:|---:|---:|---:|---:|")
    for r in rs:
        lat = r.get("latency") or {}
        lat_s = f"{lat['median_ms']:.1f} / {lat['p95_ms']:.1f}" if lat.get("n") else "–"
        ips = r.get("catalog_images_per_second")
        lines.append(f"| {r['config']} | {r['describe']} | {_pct(r['recall@1'])} | {_pct(r['recall@10'])} | "
                     f"{_pct(r['same_style@10'])} | {_pct(r.get('same_colour@10'))} | {lat_s} | "
                     f"{ips if ips else '–'}{' *' if r.get('catalog_vectors_cached') else ''} |")
    lines += ["", "catalogue img/s: decode + preprocess + encode of the catalogue images (the indexer's pipeline)"
              + ("; * = vectors from the cache, speed as measured when they were computed"
                 if any(r.get("catalog_vectors_cached") for r in rs) else "") + ".",
              "", "Recall@1 / Recall@10 per kind of photo change:", ""]
    lines.append("| kind | n | " + " | ".join(r["config"] for r in rs) + " |")
    lines.append("|---|---:|" + "---:|" * len(rs))
    for kname in report["kinds"]:
        n = rs[0]["per_kind"][kname]["n"]
        cells = [f"{_pct(r['per_kind'][kname]['recall@1'])} / {_pct(r['per_kind'][kname]['recall@10'])}" for r in rs]
        lines.append(f"| {kname} | {n} | " + " | ".join(cells) + " |")
    splits = [s for s in (rs[0].get("splits") or {})]
    if splits:
        for s in splits:
            cells = []
            for r in rs:
                sp = (r.get("splits") or {}).get(s)
                cells.append(f"{_pct(sp['recall@1'])} / {_pct(sp['recall@10'])}" if sp else "–")
            n = rs[0]["splits"][s]["n"]
            lines.append(f"| *{s}* | {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


# =========================================================================== command line

def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("catalog", help="catalogue folder or CSV: everything a query may bring back")
    p.add_argument("--queries", nargs="+", default=[], metavar="GLOB",
                   help="catalogue ids to make query photos from (shell patterns on ids; default: the ids that "
                        "contain 'dress', or all when none does)")
    p.add_argument("--configs", default="seed,base,default",
                   help="comma-separated: seed (autoencoder trained here + ivf 10/1), base (effnet-lite0 + flat), "
                        "default (the default encoder + flat), or ENCODER[@MODEL][+flat|+hnsw|+ivf:NLIST/NPROBE]")
    p.add_argument("--kinds", default=",".join(KINDS), help=f"variant kinds (default: {','.join(KINDS)})")
    p.add_argument("--per-source", type=int, default=1, help="variants per kind per source (default 1)")
    p.add_argument("--max-sources", type=int, default=None, help="evaluate a random subset of the sources")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"variant seed (default {DEFAULT_SEED})")
    p.add_argument("--style-prefix", default="auto", metavar="PREFIX",
                   help="ids PREFIX<style>/... have a style folder: report the same-style share of the top 10 "
                        f"(default auto: {AUTO_STYLE_PREFIX} when the catalogue has it; none: off)")
    p.add_argument("--heldout", default="auto", metavar="FILE",
                   help="ids (one a line) an encoder was not trained on: report them and the rest separately "
                        "(default auto: the shipped model's list; none: off)")
    p.add_argument("--latency", type=int, default=200, help="single queries timed end to end (default 200; 0: none)")
    p.add_argument("--epochs", type=int, default=20, help="seed config: autoencoder epochs (default 20)")
    p.add_argument("--cache", default=None,
                   help="cache folder for queries and vectors (default $DRESSFINDER_CACHE/eval)")
    p.add_argument("--no-cache", action="store_true", help="recompute everything, keep nothing")
    p.add_argument("--out", default=None, metavar="FILE.json", help="write the full report as JSON")
    p.add_argument("--markdown", default=None, metavar="FILE.md", help="write the tables as Markdown")
    p.add_argument("--readme", default=None, metavar="FILE.md",
                   help=f"replace the summary table between {README_START} and {README_END} in this file")
    p.add_argument("--examples", default=None, metavar="DIR", help="save some query photos here to look at")
    p.add_argument("--no-colour", dest="colour", action="store_false",
                   help="skip the same-colour share (dominant colour of each catalogue image)")
    p.add_argument("--no-detect", dest="detect", action="store_false",
                   help="search each query photo whole (no region search), as before issue 12")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    import shlex

    from .errors import DressfinderError
    from .settings import cache_dir

    if args.per_source < 1:
        raise DressfinderError("--per-source must be at least 1")
    if args.readme:   # before the long run, not after it
        text = Path(args.readme).read_text() if Path(args.readme).is_file() else ""
        if README_START not in text or README_END not in text:
            raise DressfinderError(f"{args.readme} has no {README_START} ... {README_END} block to replace")
    cache = None if args.no_cache else Path(args.cache) if args.cache else cache_dir() / "eval"
    configs = [c for c in args.configs.split(",") if c.strip()]
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    style = None if args.style_prefix in ("", "none") else args.style_prefix
    report = evaluate(args.catalog, configs, queries=args.queries, kinds=kinds, seed=args.seed,
                      per_source=args.per_source, max_sources=args.max_sources, style_prefix=style,
                      heldout=None if args.heldout in ("", "none") else args.heldout, latency=args.latency,
                      cache=cache, epochs=args.epochs,
                      progress=not args.quiet, examples=Path(args.examples) if args.examples else None,
                      colour=args.colour, detect=args.detect)
    argv = sys.argv[1:]
    command = ("dressfinder " + " ".join(shlex.quote(a) for a in argv[argv.index("evaluate"):])) \
        if "evaluate" in argv else None
    report["command"] = command
    report["date"] = time.strftime("%Y-%m-%d", time.gmtime())
    md = to_markdown(report, command)
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    if args.markdown:
        Path(args.markdown).write_text(md)
    if args.readme:
        splice_readme(Path(args.readme), to_summary(report))
    print(md)
    return 0
