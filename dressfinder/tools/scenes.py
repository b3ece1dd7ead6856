"""Bigger pictures with a catalogue dress inside: what shoppers really send.

Each maker takes the dress's catalogue photo, a random generator and a pool of other catalogue
photos (other products in view) and returns ``(picture, box)``: the picture and where the dress is
in it (fractions ``l, t, r, b``; for a photo of a screen, the box of the warped photo's corners).

* ``social``: a phone screenshot of a social post (status bar, account name, the photo, icons,
  a caption, the next post peeking in), light or dark, at a random phone size;
* ``shop``: a shop's product page (phone or desktop): header, the photo, title, price, an
  "add to bag" button, a "you may also like" row of other products;
* ``screen``: a photo of a laptop screen showing a page with the dress: perspective, moiré,
  glare, noise, a desk or room around it;
* ``scene``: the dress small (about a third of the frame's height) among clutter (often cut out
  from its backdrop: then the box is the cut-out's);
* ``fabric``: a close-up of the dress's fabric.

Layouts, colours, sizes, text (drawn with Pillow's own font) are all drawn from ``rng``.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

Box = tuple[float, float, float, float]
SCENE_KINDS = ("social", "shop", "screen", "scene", "fabric")
PHONES = ((1080, 2340), (1170, 2532), (1080, 1920), (720, 1600), (1284, 2778))
WORDS = ("summer", "dress", "new", "in", "love", "this", "look", "floral", "midi", "sale", "today", "ootd",
         "style", "linen", "party", "wrap", "maxi", "silk", "weekend", "vibes", "shop", "the", "link", "bio",
         "colour", "perfect", "for", "wedding", "guest", "beach", "city", "classic", "fit", "size", "free")


def _font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=max(8, int(size)))


def _words(rng, n: int) -> str:
    return " ".join(WORDS[int(i)] for i in rng.integers(0, len(WORDS), n))


def _colour(rng, lo: int = 0, hi: int = 256) -> tuple[int, int, int]:
    return tuple(int(v) for v in rng.integers(lo, hi, 3))


def _theme(rng) -> tuple[tuple[int, int, int], tuple[int, int, int], tuple[int, int, int]]:
    """(background, text, muted text): light or dark."""
    if rng.random() < 0.3:
        bg = tuple(int(v) for v in rng.integers(0, 30, 3))
        return bg, (235, 235, 235), (150, 150, 150)
    bg = tuple(int(v) for v in rng.integers(238, 256, 3))
    return bg, (20, 20, 20), (120, 120, 120)


def _fit_width(im: Image.Image, width: int, max_h: int | None = None) -> Image.Image:
    w, h = im.size
    nh = max(8, round(h * width / w))
    if max_h and nh > max_h:
        return im.resize((max(8, round(w * max_h / h)), max_h), Image.Resampling.BILINEAR)
    return im.resize((width, nh), Image.Resampling.BILINEAR)


def _fit_box(im: Image.Image, bw: int, bh: int) -> Image.Image:
    w, h = im.size
    s = min(bw / w, bh / h)
    return im.resize((max(8, round(w * s)), max(8, round(h * s))), Image.Resampling.BILINEAR)


def _frac(x0: float, y0: float, x1: float, y1: float, w: int, h: int) -> Box:
    return (max(0.0, x0 / w), max(0.0, y0 / h), min(1.0, x1 / w), min(1.0, y1 / h))


def _text_lines(d: ImageDraw.ImageDraw, x: int, y: int, width: int, size: int, colour, rng,
                lines: int) -> int:
    f = _font(size)
    for _ in range(lines):
        words = _words(rng, int(rng.integers(3, 9)))
        while f.getlength(words) > width and " " in words:
            words = words.rsplit(" ", 1)[0]
        d.text((x, y), words, fill=colour, font=f)
        y += int(size * 1.45)
    return y


def _status_bar(d: ImageDraw.ImageDraw, w: int, h: int, fg, rng) -> None:
    s = h // 2
    d.text((int(w * 0.06), h // 4), f"{int(rng.integers(7, 23))}:{int(rng.integers(0, 60)):02d}", fill=fg,
           font=_font(s))
    x = int(w * 0.8)
    for i in range(4):   # signal bars, then a battery
        d.rectangle([x + i * s // 3, h * 3 // 4 - (i + 1) * s // 5, x + i * s // 3 + s // 5, h * 3 // 4], fill=fg)
    d.rounded_rectangle([x + s * 3 // 2, h // 4 + s // 6, x + s * 5 // 2, h * 3 // 4], radius=3, outline=fg, width=2)


def _icons(d: ImageDraw.ImageDraw, x: int, y: int, s: int, fg) -> None:
    d.ellipse([x, y, x + s // 2, y + s // 2], outline=fg, width=3)             # heart-ish
    d.ellipse([x + s // 3, y, x + s * 5 // 6, y + s // 2], outline=fg, width=3)
    d.polygon([(x + 3, y + s // 3), (x + s * 5 // 6 - 3, y + s // 3), (x + s * 5 // 12, y + s)], outline=fg)
    d.ellipse([x + s * 3 // 2, y, x + s * 5 // 2, y + s], outline=fg, width=3)   # comment
    d.polygon([(x + s * 3, y + s // 2), (x + s * 4, y), (x + s * 7 // 2, y + s)], outline=fg)   # share
    d.rectangle([x + s * 10, y, x + s * 10 + s * 2 // 3, y + s], outline=fg, width=3)          # save


def _other(pool: Sequence[Image.Image], rng) -> Image.Image | None:
    return pool[int(rng.integers(len(pool)))].convert("RGB") if pool else None


def make_social(im: Image.Image, rng, pool: Sequence[Image.Image] = (), phone: tuple[int, int] | None = None
                ) -> tuple[Image.Image, Box]:
    """A social post, screenshotted on a phone (``phone``: its screen size; drawn when None)."""
    W, H = PHONES[int(rng.integers(len(PHONES)))]
    W, H = phone or (W, H)
    bg, fg, muted = _theme(rng)
    canvas = Image.new("RGB", (W, H), bg)
    d = ImageDraw.Draw(canvas)
    u = W / 1080
    _status_bar(d, W, int(90 * u), fg, rng)
    y = int(rng.uniform(100, 260) * u)              # app bar, stories row or nothing
    if rng.random() < 0.5:
        d.text((int(40 * u), int(110 * u)), _words(rng, 1).title() + "gram", fill=fg, font=_font(56 * u))
    y0 = y
    av = int(90 * u)
    d.ellipse([int(30 * u), y0 + 20, int(30 * u) + av, y0 + 20 + av], fill=_colour(rng))
    d.text((int(140 * u), y0 + int(35 * u)), _words(rng, 1) + "_" + _words(rng, 1), fill=fg, font=_font(40 * u))
    y = y0 + av + int(40 * u)
    margin = 0 if rng.random() < 0.7 else int(rng.uniform(20, 60) * u)
    photo = _fit_width(im, W - 2 * margin, max_h=int(H * 0.62))
    px = (W - photo.width) // 2
    canvas.paste(photo, (px, y))
    box = _frac(px, y, px + photo.width, y + photo.height, W, H)
    y += photo.height + int(30 * u)
    _icons(d, int(30 * u), y, int(70 * u), fg)
    y += int(110 * u)
    d.text((int(30 * u), y), f"{int(rng.integers(12, 9999))} likes", fill=fg, font=_font(38 * u))
    y = _text_lines(d, int(30 * u), y + int(55 * u), W - int(60 * u), 36 * u, muted, rng, int(rng.integers(1, 4)))
    other = _other(pool, rng)
    if other is not None and y + int(200 * u) < H:   # the next post peeks in
        y += int(40 * u)
        d.ellipse([int(30 * u), y, int(30 * u) + av, y + av], fill=_colour(rng))
        d.text((int(140 * u), y + int(15 * u)), _words(rng, 2).replace(" ", "."), fill=fg, font=_font(40 * u))
        nxt = _fit_width(other, W)
        canvas.paste(nxt, (0, y + av + int(30 * u)))
    return canvas, box


def _button(d: ImageDraw.ImageDraw, box, colour, text: str, size: int) -> None:
    d.rounded_rectangle(box, radius=int(min(box[3] - box[1], box[2] - box[0]) / 4), fill=colour)
    f = _font(size)
    tw = f.getlength(text)
    d.text(((box[0] + box[2] - tw) / 2, (box[1] + box[3] - size) / 2), text, fill=(255, 255, 255), font=f)


def _product_row(canvas: Image.Image, d, pool, rng, x: int, y: int, width: int, tile: int, fg) -> None:
    gap = max(8, tile // 12)
    cx = x
    while cx < x + width and pool:
        other = _fit_box(_other(pool, rng), tile, int(tile * 1.35))
        canvas.paste(other, (cx, y))
        d.text((cx, y + other.height + 8), f"${int(rng.integers(15, 120))}.99", fill=fg, font=_font(tile // 8))
        cx += other.width + gap


def make_shop(im: Image.Image, rng, pool: Sequence[Image.Image] = (), layout: str | None = None
              ) -> tuple[Image.Image, Box]:
    """A shop's product page, on a phone or a desktop browser (``layout``: drawn when None)."""
    bg, fg, muted = _theme(rng)
    accent = _colour(rng, 0, 200)
    phone = rng.random() < 0.6
    if (layout or ("phone" if phone else "desktop")) == "phone":
        W, H = PHONES[int(rng.integers(len(PHONES)))]
        canvas = Image.new("RGB", (W, H), bg)
        d = ImageDraw.Draw(canvas)
        u = W / 1080
        _status_bar(d, W, int(90 * u), fg, rng)
        d.text((int(40 * u), int(120 * u)), _words(rng, 1).upper(), fill=fg, font=_font(60 * u))
        y = int(230 * u)
        photo = _fit_width(im, W, max_h=int(H * 0.5))
        px = (W - photo.width) // 2
        canvas.paste(photo, (px, y))
        box = _frac(px, y, px + photo.width, y + photo.height, W, H)
        y += photo.height + int(30 * u)
        y = _text_lines(d, int(40 * u), y, W - int(80 * u), 44 * u, fg, rng, 1)
        d.text((int(40 * u), y), f"${int(rng.integers(15, 200))}.00", fill=accent, font=_font(52 * u))
        y += int(90 * u)
        _button(d, [int(40 * u), y, W - int(40 * u), y + int(120 * u)], accent, "ADD TO BAG", int(44 * u))
        y += int(170 * u)
        d.text((int(40 * u), y), "You may also like", fill=fg, font=_font(44 * u))
        _product_row(canvas, d, pool, rng, int(40 * u), y + int(70 * u), W, int(rng.uniform(280, 380) * u), muted)
        return canvas, box
    W, H = ((1920, 1080), (1440, 900), (1366, 768))[int(rng.integers(3))]
    canvas = Image.new("RGB", (W, H), bg)
    d = ImageDraw.Draw(canvas)
    d.rectangle([0, 0, W, 70], fill=_colour(rng, 200, 256) if bg[0] > 128 else (40, 40, 40))
    d.text((40, 18), _words(rng, 1).upper() + " STORE", fill=fg, font=_font(32))
    ph = int(H * rng.uniform(0.55, 0.7))
    photo = _fit_box(im, int(W * 0.4), ph)
    px, py = int(W * rng.uniform(0.04, 0.12)), 100
    canvas.paste(photo, (px, py))
    box = _frac(px, py, px + photo.width, py + photo.height, W, H)
    tx = px + photo.width + 60
    y = _text_lines(d, tx, 120, W - tx - 40, 34, fg, rng, 2)
    d.text((tx, y + 10), f"${int(rng.integers(15, 200))}.00", fill=accent, font=_font(40))
    _button(d, [tx, y + 80, tx + 360, y + 150], accent, "Add to bag", 30)
    _text_lines(d, tx, y + 190, W - tx - 40, 24, muted, rng, int(rng.integers(2, 6)))
    _product_row(canvas, d, pool, rng, tx, y + 340, W - tx, int(H * 0.2), muted)
    return canvas, box


def _perspective(im: Image.Image, out: tuple[int, int], quad: np.ndarray) -> Image.Image:
    """Warp ``im`` so its corners land on ``quad`` (4x2 pixel corners, clockwise from top-left)."""
    w, h = im.size
    src = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float64)
    a = []
    for (x, y), (u, v) in zip(quad, src):   # output -> input mapping coefficients
        a.append([x, y, 1, 0, 0, 0, -u * x, -u * y, u])
        a.append([0, 0, 0, x, y, 1, -v * x, -v * y, v])
    m = np.array(a)
    coeffs = np.linalg.solve(m[:, :8], m[:, 8])
    return im.transform(out, Image.Transform.PERSPECTIVE, tuple(coeffs), Image.Resampling.BILINEAR)


def make_screen(im: Image.Image, rng, pool: Sequence[Image.Image] = ()) -> tuple[Image.Image, Box]:
    """A photo of a laptop screen showing the shop page: warped, moiré, glare, noise."""
    page, pbox = make_shop(im, rng, pool, layout="desktop") if rng.random() < 0.3 else _desktop_page(im, rng)
    W, H = (1600, 1200) if rng.random() < 0.6 else (1200, 1600)
    room = Image.new("RGB", (W, H), _colour(rng, 20, 120))
    room = Image.blend(room, _clutter((W, H), rng), 0.4)
    pw, ph = page.size
    s = min(W / pw, H / ph) * rng.uniform(0.8, 1.15)
    cw, ch = pw * s, ph * s
    cx, cy = W / 2 + rng.uniform(-0.08, 0.08) * W, H / 2 + rng.uniform(-0.08, 0.08) * H
    quad = np.array([[cx - cw / 2, cy - ch / 2], [cx + cw / 2, cy - ch / 2], [cx + cw / 2, cy + ch / 2],
                     [cx - cw / 2, cy + ch / 2]]) + rng.normal(0, 0.03 * min(cw, ch), (4, 2))
    warped = _perspective(page, (W, H), quad)
    mask = _perspective(Image.new("L", page.size, 255), (W, H), quad)
    room.paste(warped, (0, 0), mask)
    arr = np.asarray(room, np.float32)
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    f, theta = rng.uniform(0.25, 0.6), rng.uniform(0, np.pi)           # moiré: a fine beat pattern
    moire = 1 + rng.uniform(0.04, 0.12) * np.sin(f * (xx * np.cos(theta) + yy * np.sin(theta))
                                                 + rng.uniform(0, 3) * np.sin(yy / rng.uniform(20, 80)))
    gx, gy, gr = rng.uniform(0.2, 0.8) * W, rng.uniform(0.2, 0.8) * H, rng.uniform(0.15, 0.4) * max(W, H)
    glare = rng.uniform(40, 110) * np.exp(-((xx - gx) ** 2 + (yy - gy) ** 2) / (2 * gr ** 2))
    noise = rng.standard_normal(arr.shape, dtype=np.float32) * np.float32(rng.uniform(3, 10))
    arr = arr * moire[..., None] + glare[..., None] + noise
    out = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.2)))
    pts = np.array([_bilerp(quad, u, v) for u in (pbox[0], pbox[2]) for v in (pbox[1], pbox[3])])
    return out, _frac(pts[:, 0].min(), pts[:, 1].min(), pts[:, 0].max(), pts[:, 1].max(), W, H)


def _bilerp(quad: np.ndarray, u: float, v: float) -> np.ndarray:
    """A point of the page (fractions u, v) on the warped quad (close to the true perspective)."""
    top = quad[0] + (quad[1] - quad[0]) * u
    bottom = quad[3] + (quad[2] - quad[3]) * u
    return top + (bottom - top) * v


def _desktop_page(im: Image.Image, rng) -> tuple[Image.Image, Box]:
    bg, fg, muted = _theme(rng)
    W, H = 1440, 900
    page = Image.new("RGB", (W, H), bg)
    d = ImageDraw.Draw(page)
    d.rectangle([0, 0, W, 60], fill=_colour(rng))
    photo = _fit_box(im, int(W * rng.uniform(0.3, 0.45)), int(H * rng.uniform(0.7, 0.85)))
    px, py = int(rng.uniform(0.05, 0.5) * (W - photo.width)), 90
    page.paste(photo, (px, py))
    tx = px + photo.width + 40 if px + photo.width < W * 0.7 else 40
    _text_lines(d, tx, 100, max(200, W - tx - 40), 28, fg, rng, 3)
    _text_lines(d, tx, 260, max(200, W - tx - 40), 20, muted, rng, 6)
    return page, _frac(px, py, px + photo.width, py + photo.height, W, H)


def _clutter(size: tuple[int, int], rng) -> Image.Image:
    """A busy background that is no product: gradient, shapes, stripes, text, blur."""
    w, h = size
    a, b = np.array(_colour(rng), np.float32), np.array(_colour(rng), np.float32)
    t = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    im = Image.fromarray(np.broadcast_to(a + (b - a) * t, (h, w, 3)).astype(np.uint8))
    d = ImageDraw.Draw(im)
    for _ in range(int(rng.integers(15, 45))):
        x0, y0 = int(rng.integers(-w // 8, w)), int(rng.integers(-h // 8, h))
        x1, y1 = x0 + int(rng.integers(w // 20, w // 3)), y0 + int(rng.integers(h // 20, h // 3))
        kind = int(rng.integers(4))
        c = _colour(rng)
        if kind == 0:
            d.rectangle([x0, y0, x1, y1], fill=c)
        elif kind == 1:
            d.ellipse([x0, y0, x1, y1], fill=c)
        elif kind == 2:
            d.line([x0, y0, x1, y1], fill=c, width=int(rng.integers(2, 15)))
        else:
            d.polygon([(x0, y1), ((x0 + x1) // 2, y0), (x1, y1)], fill=c)
    if rng.random() < 0.5:
        _text_lines(d, int(rng.integers(0, w // 2)), int(rng.integers(0, h // 2)), w // 2, h // 25, _colour(rng),
                    rng, 3)
    return im.filter(ImageFilter.GaussianBlur(float(rng.uniform(0, 2.5))))


def dress_mask(im: Image.Image, tol: int = 28) -> Image.Image | None:
    """An alpha mask of the product on a plain backdrop (pixels unlike the border's colour), or None."""
    arr = np.asarray(im.convert("RGB"), np.int16)
    b = max(1, min(arr.shape[:2]) // 100)
    border = np.concatenate([arr[:b].reshape(-1, 3), arr[-b:].reshape(-1, 3), arr[:, :b].reshape(-1, 3),
                             arr[:, -b:].reshape(-1, 3)])
    bg = np.median(border, axis=0)
    if (np.abs(border - bg).max(axis=1) <= tol).mean() < 0.7:
        return None
    fg = np.abs(arr - bg).max(axis=2) > tol
    if not 0.05 < fg.mean() < 0.95:
        return None
    return Image.fromarray((fg * 255).astype(np.uint8)).filter(ImageFilter.MaxFilter(5)).filter(
        ImageFilter.GaussianBlur(1.5))


def make_scene(im: Image.Image, rng, pool: Sequence[Image.Image] = ()) -> tuple[Image.Image, Box]:
    """The dress small (its photo about a third of the frame's height) in a cluttered scene."""
    W, H = ((1600, 1200), (1200, 1600), (1280, 960), (1080, 1350))[int(rng.integers(4))]
    canvas = _clutter((W, H), rng)
    dh = int(H * rng.uniform(0.33, 0.5))
    photo = im.resize((max(8, round(im.width * dh / im.height)), dh), Image.Resampling.BILINEAR)
    if photo.width > W * 0.6:
        photo = _fit_box(photo, int(W * 0.6), dh)
    x, y = int(rng.integers(0, W - photo.width + 1)), int(rng.integers(0, H - photo.height + 1))
    mask = dress_mask(photo) if rng.random() < 0.7 else None
    canvas.paste(photo, (x, y), mask)
    l, t, r, b = (0, 0, photo.width, photo.height) if mask is None else mask.point(lambda v: 255 * (v > 64)).getbbox()
    return canvas, _frac(x + l, y + t, x + r, y + b, W, H)   # cut out: the box of what was pasted


def make_fabric(im: Image.Image, rng, pool: Sequence[Image.Image] = ()) -> tuple[Image.Image, Box]:
    """A close-up of the fabric: a patch from the dress's middle, enlarged, a little soft."""
    w, h = im.size
    side = rng.uniform(0.3, 0.45)
    cw, ch = int(w * side * 1.4), int(h * side)
    cx, cy = w / 2 + rng.uniform(-0.1, 0.1) * w, h * rng.uniform(0.35, 0.6)
    x0, y0 = int(max(0, min(w - cw, cx - cw / 2))), int(max(0, min(h - ch, cy - ch / 2)))
    patch = im.crop((x0, y0, x0 + cw, y0 + ch))
    scale = rng.uniform(2.0, 3.5)
    patch = patch.resize((int(cw * scale), int(ch * scale)), Image.Resampling.BICUBIC)
    patch = patch.filter(ImageFilter.GaussianBlur(float(rng.uniform(0, 1.5))))
    return patch, (0.0, 0.0, 1.0, 1.0)


MAKERS: dict[str, Callable[..., tuple[Image.Image, Box]]] = {
    "social": make_social, "shop": make_shop, "screen": make_screen, "scene": make_scene, "fabric": make_fabric}


def make_picture(im: Image.Image, kind: str, rng, pool: Sequence[Image.Image] = ()) -> tuple[Image.Image, Box]:
    """One bigger picture of ``kind`` (see :data:`SCENE_KINDS`) with the dress of ``im`` in it."""
    if kind not in MAKERS:
        raise ValueError(f"unknown scene kind {kind!r}")
    return MAKERS[kind](im.convert("RGB"), rng, pool)
