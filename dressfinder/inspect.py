"""``dressfinder inspect``: a report of a catalogue or a store, for people who would rather look
than read (what the original project's notebooks showed, as one HTML page)::

    dressfinder inspect ../shared/data/f21-dresses/catalog.csv --out report/
    dressfinder inspect stores/shop --out report/

writes ``report/index.html`` with the pictures it shows beside it (``charts/*.png``,
``clusters/*.png``, ``thumbs/*.jpg``) and the numbers as ``report.json``. The folder is
self-contained: it refers to nothing outside itself, so it can be zipped or served as is.

The report has: product count; image formats; width, height and file size histograms;
unreadable files with the reason; exact duplicates (same bytes) and near duplicates (different
files whose embeddings have cosine >= ``--near``), side by side; metadata coverage (title, price,
currency, link, store, category); the price distribution per currency; category and store counts;
and one contact sheet per k-means cluster of the embeddings (10 clusters, as the seed, by
default; a store with an ``ivf`` index shows its own clusters).

A store has embeddings already; a bare catalogue is encoded first with the default encoder
(``--encoder`` to choose, ``--no-embed`` to skip: no near duplicates or clusters then).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import math
import os
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from .errors import DressfinderError
from .schema import NAMES
from .settings import default_threads

NEIGHBOURS = 8              # neighbours looked at per image when looking for near duplicates
SHEET_NEAREST = 12          # contact sheet: images nearest the cluster's centre ...
SHEET_RANDOM = 6            # ... and random other members
SHEET_COLUMNS = 6
THUMB = (120, 160)          # thumbnail of a duplicate (width, height): dresses are tall
SHEET_CELL = (88, 118)      # contact sheet cell: two sheets side by side on a laptop screen
METADATA_FIELDS = tuple(n for n in NAMES if n not in ("id", "image"))


# --------------------------------------------------------------------------- gathering

@dataclass
class Item:
    """One product's picture, and what reading it found."""

    id: str
    path: str                       # where the bytes are (catalogue path, or the store's file)
    product: Any                    # catalog.Product
    row: int | None = None          # store row
    fmt: str | None = None
    width: int | None = None
    height: int | None = None
    nbytes: int | None = None
    sha256: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class Analysis:
    source: str
    kind: str                       # "catalogue" or "store"
    items: list[Item]
    skipped_rows: list[tuple[str, str]] = field(default_factory=list)
    vectors: Any = None             # (n_ok, dim) float32 for items[vector_items], or None
    vector_items: list[int] = field(default_factory=list)
    encoder: str | None = None
    info: dict[str, Any] = field(default_factory=dict)
    clusters: list[dict[str, Any]] = field(default_factory=list)   # size, members (item indices, shown first)
    near: list[tuple[int, int, float]] = field(default_factory=list)
    near_threshold: float | None = None


def is_store(path: str | Path) -> bool:
    p = Path(path)
    return p.is_dir() and (p / "store.json").is_file()


def probe(item: Item) -> Item:
    """Read one image: format, size, bytes, sha256, and whether it decodes (never raises)."""
    from PIL import Image

    from .images import load_image

    try:
        with open(item.path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        item.error = "file not found"
        return item
    except OSError as e:
        item.error = f"cannot read: {e.strerror or e}"
        return item
    item.nbytes = len(data)
    item.sha256 = hashlib.sha256(data).hexdigest()
    if not data:
        item.error = "empty file"
        return item
    try:
        with Image.open(io.BytesIO(data)) as im:
            item.fmt, (item.width, item.height) = im.format, im.size
    except Exception:
        pass  # load_image below says why
    try:
        load_image(data, draft=64)   # decodes (reduced scale for JPEG): catches truncated files
    except DressfinderError as e:
        item.error = str(e)
    return item


def _bar(total: int, desc: str, progress: bool, unit: str = "img"):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=not progress, dynamic_ncols=True, file=sys.stderr)


def analyse(source: str | Path, *, clusters: int = 10, near: float | None = None, encode: bool = True,
            encoder: str | None = None, workers: int | None = None, progress: bool = True,
            seed: int = 0) -> Analysis:
    """Read a catalogue (folder or CSV) or a store and work out everything the report shows."""
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np

    source = str(source)
    if is_store(source):
        from .store import Store

        store = Store.open(source)
        items = [Item(p.id, str(Path(source) / "images" / f) if f else "", p, row=row)
                 for row, p, f in store.snapshot().iter_products()]
        m = store.manifest
        if near is None:
            near = store.encoder.near_duplicate_cosine
        a = Analysis(source, "store", items, encoder=m["encoder"].get("name"), near_threshold=near,
                     info={"encoder": m["encoder"], "index": m["index"], "generation": m["generation"],
                           "updated": m.get("updated"), "built": m.get("built", {})})
    else:
        from .catalog import read_catalog

        if not Path(source).exists():
            raise DressfinderError(f"no such catalogue or store: {source}")
        read = read_catalog(source)
        items = [Item(p.id, p.image, p) for p in read.products]
        a = Analysis(source, "catalogue", items, skipped_rows=list(read.skipped), near_threshold=near)
        store = None
    if not items:
        raise DressfinderError(f"{source} has no products")

    workers = workers or default_threads()
    bar = _bar(len(items), "reading images", progress)
    with ThreadPoolExecutor(workers) as pool:
        for _ in pool.map(probe, items):
            bar.update(1)
    bar.close()

    ok = [i for i, it in enumerate(items) if it.ok]
    if store is not None and ok:
        a.vector_items = ok
        a.vectors = store.snapshot().vectors(np.array([items[i].row for i in ok], np.int64))
    elif encode and ok:
        from .embed import embed
        from .encoders import get_encoder

        enc = get_encoder(encoder)
        a.encoder = enc.name
        if near is None:
            a.near_threshold = near = enc.near_duplicate_cosine
        res = embed(enc, [items[i].path for i in ok], progress=progress, workers=workers)
        for j, reason in res.skipped:
            items[ok[j]].error = reason
        a.vector_items = [ok[j] for j in res.ok.tolist()]
        a.vectors = res.vectors
    if a.vectors is not None and len(a.vector_items):
        a.near = _near_duplicates(a, near, progress)
        if clusters > 0:
            a.clusters = _clusters(a, store, clusters, seed)
    return a


def _unique_vectors(a: Analysis):
    """One vector per distinct image (exact duplicates share one), and the item indices it stands for."""
    import numpy as np

    first: dict[str, int] = {}
    reps = []
    for j, i in enumerate(a.vector_items):
        key = a.items[i].sha256 or f"#{i}"
        if key not in first:
            first[key] = j
            reps.append(j)
    return np.asarray(reps, np.int64)


def _near_duplicates(a: Analysis, threshold: float, progress: bool) -> list[tuple[int, int, float]]:
    """Pairs of different images (item indices) with cosine >= threshold, most alike first."""
    from .encoders import l2_normalize
    from .index import VectorIndex

    reps = _unique_vectors(a)
    if len(reps) < 2:
        return []
    x = l2_normalize(a.vectors[reps])
    index = VectorIndex.build("flat" if len(x) <= 200_000 else "hnsw", x, metric="ip")
    k = min(NEIGHBOURS + 1, len(x))
    pairs: dict[tuple[int, int], float] = {}
    bar = _bar(len(x), "near duplicates", progress)
    for s in range(0, len(x), 1024):
        scores, ids = index.search(x[s:s + 1024], k)
        for qi in range(len(scores)):
            me = s + qi
            for sc, other in zip(scores[qi], ids[qi]):
                other = int(other)
                if other < 0 or other == me or sc < threshold:
                    continue
                key = (min(me, other), max(me, other))
                pairs[key] = max(pairs.get(key, -1.0), float(sc))
        bar.update(len(scores))
    bar.close()
    vi = a.vector_items
    out = [(vi[int(reps[p])], vi[int(reps[q])], min(1.0, s)) for (p, q), s in pairs.items()]
    out.sort(key=lambda t: (-t[2], a.items[t[0]].id, a.items[t[1]].id))
    return out


def _clusters(a: Analysis, store: Any, n: int, seed: int) -> list[dict[str, Any]]:
    """k-means clusters of the vectors (a store's own ivf clusters when it has them). Members are
    item indices, nearest the centre first."""
    import faiss
    import numpy as np

    from .index import kmeans

    x = np.ascontiguousarray(a.vectors, np.float32)
    index = store.snapshot().index if store is not None else None
    if index is not None and index.kind == "ivf":
        centroids = index.centroids
        source = "the store's own ivf clusters"
    else:
        centroids = kmeans(x, n, niter=25, nredo=1, seed=1234)
        source = "k-means on the embeddings"
    flat = faiss.IndexFlatL2(x.shape[1])
    flat.add(np.ascontiguousarray(centroids, np.float32))
    dist, assign = flat.search(x, 1)
    dist, assign = dist[:, 0], assign[:, 0]
    rng = np.random.default_rng(seed)
    out = []
    for c in range(len(centroids)):
        members = np.flatnonzero(assign == c)
        if not len(members):
            continue
        members = members[np.argsort(dist[members], kind="stable")]
        nearest = members[:SHEET_NEAREST]
        rest = members[SHEET_NEAREST:]
        extra = rng.choice(rest, size=min(SHEET_RANDOM, len(rest)), replace=False) if len(rest) else rest
        out.append({"cluster": int(c), "size": int(len(members)),
                    "nearest": [a.vector_items[int(j)] for j in nearest],
                    "random": [a.vector_items[int(j)] for j in extra]})
    out.sort(key=lambda d: (-d["size"], d["cluster"]))
    a.info["clusters_from"] = source
    return out


# --------------------------------------------------------------------------- numbers

def _stats(values: Sequence[float]) -> dict[str, float] | None:
    import numpy as np

    if not len(values):
        return None
    v = np.asarray(values, np.float64)
    return {"count": int(len(v)), "min": float(v.min()), "median": float(np.median(v)), "mean": float(v.mean()),
            "max": float(v.max())}


def summarise(a: Analysis) -> dict[str, Any]:
    """The report's numbers (also written as report.json)."""
    items = a.items
    ok = [it for it in items if it.ok]
    groups: dict[str, list[str]] = defaultdict(list)
    for it in items:
        if it.sha256 and it.nbytes:
            groups[it.sha256].append(it.id)
    exact = [{"sha256": h, "ids": sorted(ids)} for h, ids in groups.items() if len(ids) > 1]
    exact.sort(key=lambda g: (-len(g["ids"]), g["ids"][0]))
    coverage = {}
    for f in METADATA_FIELDS:
        coverage[f] = sum(1 for it in items if getattr(it.product, f) not in (None, ""))
    prices: dict[str, list[float]] = defaultdict(list)
    for it in items:
        if it.product.price is not None:
            prices[it.product.currency or "?"].append(float(it.product.price))
    unreadable = [{"id": it.id, "path": it.path, "reason": it.error} for it in items if not it.ok]
    return {
        "source": a.source,
        "kind": a.kind,
        "generated": time.strftime("%Y-%m-%d %H:%M:%S"),
        "products": len(items),
        "readable": len(ok),
        "unreadable": unreadable,
        "unreadable_reasons": dict(Counter(_reason_kind(u["reason"]) for u in unreadable).most_common()),
        "catalogue_rows_skipped": [{"where": w, "reason": r} for w, r in a.skipped_rows],
        "formats": dict(Counter(it.fmt or "unknown" for it in ok).most_common()),
        "width": _stats([it.width for it in ok if it.width]),
        "height": _stats([it.height for it in ok if it.height]),
        "bytes": _stats([it.nbytes for it in ok if it.nbytes]),
        "common_sizes": [[f"{w}x{h}", n] for (w, h), n in
                         Counter((it.width, it.height) for it in ok if it.width).most_common(10)],
        "exact_duplicates": exact,
        "exact_duplicate_products": sum(len(g["ids"]) - 1 for g in exact),
        "near_threshold": a.near_threshold,
        "near_duplicates": [{"a": items[i].id, "b": items[j].id, "cosine": round(s, 4)} for i, j, s in a.near],
        "embedded": len(a.vector_items) if a.vectors is not None else 0,
        "encoder": a.encoder,
        "metadata": coverage,
        "prices": {cur: _stats(v) for cur, v in sorted(prices.items(), key=lambda kv: -len(kv[1]))},
        "categories": dict(Counter(it.product.category for it in items if it.product.category).most_common()),
        "shops": dict(Counter(it.product.shop for it in items if it.product.shop).most_common()),
        "clusters": [{"cluster": c["cluster"], "size": c["size"],
                      "shown": [items[i].id for i in c["nearest"] + c["random"]]} for c in a.clusters],
        "clusters_from": a.info.get("clusters_from"),
        "store": {k: v for k, v in a.info.items() if k != "clusters_from"} or None,
    }


def _reason_kind(reason: str | None) -> str:
    r = (reason or "").lower()
    for key, label in (("not found", "missing file"), ("no such", "missing file"), ("empty", "empty file"),
                       ("truncated", "corrupt or truncated"), ("corrupt", "corrupt or truncated"),
                       ("not an image", "not an image"), ("unsupported", "unsupported format"),
                       ("too many pixels", "too large"), ("pixels; the limit", "too large")):
        if key in r:
            return label
    return "other"


# --------------------------------------------------------------------------- pictures

BLUE = (58, 96, 172)
GREY = (120, 120, 120)
LIGHT = (225, 228, 235)


def _font(size: int = 12):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType sizes
        return ImageFont.load_default()


def _short(v: float) -> str:
    a = abs(v)
    if a >= 1e6:
        return f"{v / 1e6:.3g}M"
    if a >= 1e4:
        return f"{v / 1e3:.3g}k"
    if a >= 100 or float(v).is_integer():
        return f"{v:.0f}"
    return f"{v:.3g}"


def bar_chart(path: Path, labels: Sequence[str], counts: Sequence[int], title: str, *,
              xlabel: str = "", size: tuple[int, int] = (560, 260)) -> Path:
    """A plain bar chart as a PNG (Pillow only)."""
    from PIL import Image, ImageDraw

    w, h = size
    left, right, top, bottom = 48, 16, 46, 52
    im = Image.new("RGB", size, "white")
    d = ImageDraw.Draw(im)
    f, small = _font(14), _font(11)
    d.text((left, 8), title, fill=(20, 20, 20), font=f)
    n = max(1, len(counts))
    peak = max(counts) if counts and max(counts) > 0 else 1
    plot_w, plot_h = w - left - right, h - top - bottom
    d.line([(left, top), (left, top + plot_h), (left + plot_w, top + plot_h)], fill=GREY)
    for frac in (0.5, 1.0):
        y = top + plot_h - frac * plot_h
        d.line([(left - 3, y), (left + plot_w, y)], fill=LIGHT)
        d.text((4, y - 6), _short(peak * frac), fill=GREY, font=small)
    slot = min(plot_w / n, 90.0)                     # a few bars stay bars, not slabs
    x_start = left + (plot_w - slot * n) / 2
    every = max(1, math.ceil(n / (plot_w / 46)))   # label at most one bar in 46 px
    for i, (lab, c) in enumerate(zip(labels, counts)):
        x0 = x_start + i * slot + max(1, slot * 0.12)
        x1 = x_start + (i + 1) * slot - max(1, slot * 0.12)
        y0 = min(top + plot_h - (c / peak) * plot_h, top + plot_h - 2)   # a count of 1 still shows
        if c > 0:
            d.rectangle([x0, y0, max(x0 + 1, x1), top + plot_h - 1], fill=BLUE)
            if slot >= 22:
                t = _short(c)
                tw = d.textlength(t, font=small)
                d.text(((x0 + x1 - tw) / 2, y0 - 14), t, fill=(40, 40, 40), font=small)
        if i % every == 0:
            lab = str(lab)
            if len(lab) > 12:
                lab = lab[:11] + "…"
            tw = d.textlength(lab, font=small)
            d.text((max(0, (x0 + x1 - tw) / 2), top + plot_h + 5), lab, fill=(60, 60, 60), font=small)
    if xlabel:
        tw = d.textlength(xlabel, font=small)
        d.text((left + (plot_w - tw) / 2, h - 18), xlabel, fill=GREY, font=small)
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path, "PNG", optimize=True)
    return path


def histogram(path: Path, values: Sequence[float], title: str, *, xlabel: str = "", bins: int = 20) -> Path:
    """A histogram of ``values`` as a PNG; bars are labelled with their lower edge."""
    import numpy as np

    v = np.asarray(values, np.float64)
    lo, hi = float(v.min()), float(v.max())
    if hi <= lo:
        counts, edges = np.array([len(v)]), np.array([lo, lo])
    else:
        counts, edges = np.histogram(v, bins=min(bins, max(1, len(np.unique(v)))), range=(lo, hi))
    labels = [_short(e) for e in edges[:-1]] if len(edges) > 1 else [_short(lo)]
    return bar_chart(path, labels, counts.tolist(), title, xlabel=xlabel)


def _tile(path: str, cell: tuple[int, int]):
    """The picture at ``path`` fitted into ``cell`` on white (a grey box when it cannot be read)."""
    from PIL import Image, ImageOps

    from .images import load_image

    canvas = Image.new("RGB", cell, "white")
    try:
        im = ImageOps.contain(load_image(path, draft=max(cell)), cell)
        canvas.paste(im, ((cell[0] - im.width) // 2, (cell[1] - im.height) // 2))
    except Exception:
        canvas.paste(LIGHT, (0, 0, *cell))
    return canvas


def contact_sheet(path: Path, images: Sequence[str], title: str, *, columns: int = SHEET_COLUMNS,
                  cell: tuple[int, int] = SHEET_CELL, marked: int = 0) -> Path:
    """Tile ``images`` into one PNG under a title; the first ``marked`` get a blue rule beneath."""
    from PIL import Image, ImageDraw

    pad, head = 6, 30
    rows = max(1, math.ceil(len(images) / columns))
    w = columns * (cell[0] + pad) + pad
    h = head + rows * (cell[1] + pad + 4) + pad
    sheet = Image.new("RGB", (w, h), (246, 247, 250))
    d = ImageDraw.Draw(sheet)
    d.text((pad, 8), title, fill=(20, 20, 20), font=_font(14))
    for n, src in enumerate(images):
        r, c = divmod(n, columns)
        x, y = pad + c * (cell[0] + pad), head + r * (cell[1] + pad + 4)
        sheet.paste(_tile(src, cell), (x, y))
        if n < marked:
            d.rectangle([x, y + cell[1] + 1, x + cell[0] - 1, y + cell[1] + 3], fill=BLUE)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path, "PNG", optimize=True)
    return path


def thumbnail(path: Path, src: str, size: tuple[int, int] = THUMB) -> Path:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        _tile(src, size).save(path, "JPEG", quality=82, optimize=True)
    return path


# --------------------------------------------------------------------------- HTML

TEMPLATE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>dressfinder inspect: {{ r.source }}</title>
<style>
  body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; color: #1d2230; background: #f6f7fa; }
  header { background: #1d2a4d; color: #fff; padding: 18px 28px; }
  header h1 { margin: 0 0 4px; font-size: 20px; }
  header .sub { opacity: .8; font-size: 13px; word-break: break-all; }
  nav { padding: 8px 28px; background: #e7eaf2; font-size: 13px; position: sticky; top: 0; }
  nav a { margin-right: 14px; color: #1d2a4d; }
  main { padding: 8px 28px 40px; max-width: 1400px; }
  section { background: #fff; border-radius: 8px; padding: 14px 20px; margin: 16px 0; box-shadow: 0 1px 2px #0001; }
  h2 { font-size: 17px; margin: 4px 0 10px; }
  .cards { display: flex; flex-wrap: wrap; gap: 12px; }
  .card { background: #f0f2f8; border-radius: 6px; padding: 10px 16px; min-width: 130px; }
  .card b { display: block; font-size: 22px; }
  .card.bad b { color: #b3261e; }
  table { border-collapse: collapse; margin: 6px 0 10px; }
  th, td { text-align: left; padding: 3px 12px 3px 0; border-bottom: 1px solid #eceef3; vertical-align: top; }
  td.n, th.n { text-align: right; }
  .charts { display: flex; flex-wrap: wrap; gap: 10px; }
  .charts img { border: 1px solid #e3e6ee; border-radius: 4px; max-width: 100%; }
  .pair { display: inline-flex; gap: 6px; align-items: flex-start; margin: 0 14px 14px 0; padding: 6px; background: #f0f2f8; border-radius: 6px; }
  figure { margin: 0; width: 124px; font-size: 11px; word-break: break-all; }
  figure img { display: block; border: 1px solid #dde1ea; background: #fff; }
  .score { align-self: center; font-weight: 600; font-size: 12px; color: #3a60ac; }
  .sheets { display: flex; flex-wrap: wrap; gap: 16px; }
  .sheet { margin: 0 0 6px; max-width: 100%; }
  .sheet img { max-width: 100%; border-radius: 4px; }
  .bar { display: inline-block; height: 10px; background: #3a60ac; border-radius: 2px; vertical-align: middle; }
  .muted { color: #667; }
  code { font-size: 12px; word-break: break-all; }
  details summary { cursor: pointer; color: #3a60ac; }
</style>
</head>
<body>
<header>
  <h1>{{ r.products }} products &middot; {{ r.kind }}</h1>
  <div class="sub">{{ r.source }} &middot; generated {{ r.generated }} by dressfinder {{ version }}{% if r.encoder %} &middot; encoder {{ r.encoder }}{% endif %}</div>
</header>
<nav>
  <a href="#summary">Summary</a><a href="#images">Formats &amp; sizes</a><a href="#unreadable">Unreadable</a>
  <a href="#duplicates">Duplicates</a><a href="#metadata">Metadata</a>{% if r.prices %}<a href="#prices">Prices</a>{% endif %}
  {% if r.clusters %}<a href="#clusters">Clusters</a>{% endif %}
</nav>
<main>
<section id="summary">
  <h2>Summary</h2>
  <div class="cards">
    <div class="card"><b id="n-products">{{ r.products }}</b>products</div>
    <div class="card"><b id="n-readable">{{ r.readable }}</b>readable images</div>
    <div class="card{% if r.unreadable %} bad{% endif %}"><b id="n-unreadable">{{ r.unreadable|length }}</b>unreadable</div>
    <div class="card"><b id="n-exact">{{ r.exact_duplicates|length }}</b>exact duplicate groups</div>
    <div class="card"><b id="n-near">{{ r.near_duplicates|length }}</b>near-duplicate pairs</div>
    {% if r.clusters %}<div class="card"><b id="n-clusters">{{ r.clusters|length }}</b>clusters</div>{% endif %}
    {% if r.catalogue_rows_skipped %}<div class="card bad"><b>{{ r.catalogue_rows_skipped|length }}</b>catalogue rows skipped</div>{% endif %}
  </div>
  {% if r.store %}
  <table>
    <tr><th>Encoder</th><td>{{ r.store.encoder.name }} (dim {{ r.store.encoder.dim }}, {{ r.store.encoder.metric }})</td></tr>
    <tr><th>Index</th><td>{{ r.store.index.kind }} {{ r.store.index.params|tojson }}</td></tr>
    <tr><th>Generation</th><td>{{ r.store.generation }}, updated {{ r.store.updated }}</td></tr>
    {% if r.store.built %}<tr><th>Built from</th><td><code>{{ r.store.built.get("source", "") }}</code>; {{ r.store.built.get("skipped", 0) }} images skipped when it was built</td></tr>{% endif %}
  </table>
  {% endif %}
</section>

<section id="images">
  <h2>Formats and sizes</h2>
  <table>
    <tr><th>Format</th><th class="n">Images</th></tr>
    {% for f, n in r.formats.items() %}<tr><td>{{ f }}</td><td class="n">{{ n }}</td></tr>{% endfor %}
  </table>
  <div class="charts">{% for c in charts.images %}<img src="{{ c.src }}" alt="{{ c.alt }}" width="560" height="260">{% endfor %}</div>
  {% if r.common_sizes %}
  <p class="muted">Most common sizes (width x height in pixels):
    {% for s, n in r.common_sizes %}{{ s }} ({{ n }}){% if not loop.last %}, {% endif %}{% endfor %}</p>
  {% endif %}
</section>

<section id="unreadable">
  <h2>Unreadable files ({{ r.unreadable|length }})</h2>
  {% if r.unreadable %}
  <p>{% for k, n in r.unreadable_reasons.items() %}{{ k }}: {{ n }}{% if not loop.last %} &middot; {% endif %}{% endfor %}</p>
  <table>
    <tr><th>Product</th><th>File</th><th>Reason</th></tr>
    {% for u in r.unreadable[:max_rows] %}<tr class="unreadable"><td>{{ u.id }}</td><td><code>{{ u.path }}</code></td><td>{{ u.reason }}</td></tr>{% endfor %}
  </table>
  {% if r.unreadable|length > max_rows %}<p class="muted">... and {{ r.unreadable|length - max_rows }} more (all in report.json)</p>{% endif %}
  {% else %}<p class="muted">Every image could be read.</p>{% endif %}
  {% if r.catalogue_rows_skipped %}
  <h3>Catalogue rows skipped</h3>
  <table>{% for s in r.catalogue_rows_skipped[:max_rows] %}<tr><td>{{ s.where }}</td><td>{{ s.reason }}</td></tr>{% endfor %}</table>
  {% endif %}
</section>

<section id="duplicates">
  <h2>Duplicates</h2>
  <h3>Exact duplicates: the same bytes ({{ r.exact_duplicates|length }} groups, {{ r.exact_duplicate_products }} extra products)</h3>
  {% for g in dups.exact %}
  <div class="pair exact">{% for f in g %}<figure><img src="{{ f.src }}" alt="{{ f.id }}" width="120" height="160"><figcaption>{{ f.id }}<br>{{ f.meta }}</figcaption></figure>{% endfor %}</div>
  {% else %}<p class="muted">None.</p>{% endfor %}
  {% if r.exact_duplicates|length > dups.exact|length %}<p class="muted">... and {{ r.exact_duplicates|length - dups.exact|length }} more groups (report.json)</p>{% endif %}
  <h3>Near duplicates: different files, embeddings with cosine &ge; {{ r.near_threshold }} ({{ r.near_duplicates|length }} pairs)</h3>
  {% if not r.embedded %}<p class="muted">Not computed: the catalogue was not encoded (--no-embed).</p>{% endif %}
  {% for p in dups.near %}
  <div class="pair near"><figure><img src="{{ p.a.src }}" alt="{{ p.a.id }}" width="120" height="160"><figcaption>{{ p.a.id }}<br>{{ p.a.meta }}</figcaption></figure>
    <span class="score">{{ '%.4f'|format(p.cosine) }}</span>
    <figure><img src="{{ p.b.src }}" alt="{{ p.b.id }}" width="120" height="160"><figcaption>{{ p.b.id }}<br>{{ p.b.meta }}</figcaption></figure></div>
  {% else %}{% if r.embedded %}<p class="muted">None.</p>{% endif %}{% endfor %}
  {% if r.near_duplicates|length > dups.near|length %}<p class="muted">... and {{ r.near_duplicates|length - dups.near|length }} more pairs (report.json)</p>{% endif %}
</section>

<section id="metadata">
  <h2>Metadata coverage</h2>
  <table>
    <tr><th>Field</th><th class="n">Products</th><th class="n">Share</th><th></th></tr>
    {% for f, n in r.metadata.items() %}
    <tr class="coverage" data-field="{{ f }}"><td>{{ f }}</td><td class="n">{{ n }}</td><td class="n">{{ '%.1f'|format(100 * n / r.products) }}%</td>
      <td><span class="bar" style="width: {{ (200 * n / r.products)|round|int }}px"></span></td></tr>
    {% endfor %}
  </table>
  {% for name, counts in [("Categories", r.categories), ("Shops", r.shops)] %}{% if counts %}
  <h3>{{ name }} ({{ counts|length }})</h3>
  <table>{% for k, n in counts.items() %}{% if loop.index <= 30 %}<tr><td>{{ k }}</td><td class="n">{{ n }}</td></tr>{% endif %}{% endfor %}</table>
  {% endif %}{% endfor %}
</section>

{% if r.prices %}
<section id="prices">
  <h2>Prices</h2>
  <table>
    <tr><th>Currency</th><th class="n">Products</th><th class="n">Min</th><th class="n">Median</th><th class="n">Mean</th><th class="n">Max</th></tr>
    {% for cur, s in r.prices.items() %}<tr><td>{{ cur }}</td><td class="n">{{ s.count }}</td><td class="n">{{ '%.2f'|format(s.min) }}</td>
      <td class="n">{{ '%.2f'|format(s.median) }}</td><td class="n">{{ '%.2f'|format(s.mean) }}</td><td class="n">{{ '%.2f'|format(s.max) }}</td></tr>{% endfor %}
  </table>
  <div class="charts">{% for c in charts.prices %}<img src="{{ c.src }}" alt="{{ c.alt }}" width="560" height="260">{% endfor %}</div>
</section>
{% endif %}

{% if r.clusters %}
<section id="clusters">
  <h2>Clusters: {{ r.clusters|length }} ({{ r.clusters_from }})</h2>
  <p class="muted">One contact sheet per cluster: the {{ nearest }} images nearest its centre (underlined), then up to {{ random }} random other members.</p>
  <div class="sheets">
  {% for s in sheets %}
  <div class="sheet"><img src="{{ s.src }}" alt="cluster {{ s.cluster }}" width="{{ s.width }}" height="{{ s.height }}">
    <details><summary>ids shown</summary><code>{{ s.ids|join(', ') }}</code></details></div>
  {% endfor %}
  </div>
</section>
{% endif %}
</main>
</body>
</html>
"""


def _meta(it: Item) -> str:
    bits = []
    if it.width:
        bits.append(f"{it.width}x{it.height}")
    if it.nbytes:
        bits.append(f"{it.nbytes / 1024:.0f} KB")
    return ", ".join(bits)


def write_report(a: Analysis, out: str | Path, *, max_shown: int = 60, progress: bool = True) -> dict[str, Any]:
    """Write ``out/index.html`` (+ charts, thumbnails, contact sheets, report.json). Returns the numbers."""
    import jinja2
    from PIL import Image

    from . import __version__

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DressfinderError(f"--out {out} is a file; give a folder")
    out.mkdir(parents=True, exist_ok=True)
    r = summarise(a)
    items = a.items
    ok = [it for it in items if it.ok]

    charts: dict[str, list[dict[str, str]]] = {"images": [], "prices": []}

    def chart(name: str, make, alt: str, group: str = "images") -> None:
        make(out / "charts" / name)
        charts[group].append({"src": f"charts/{name}", "alt": alt})

    if r["formats"]:
        chart("formats.png", lambda p: bar_chart(p, list(r["formats"]), list(r["formats"].values()),
                                                 "Images per format"), "images per format")
    for key, title, xl, scale in (("width", "Image width", "pixels", 1), ("height", "Image height", "pixels", 1),
                                  ("bytes", "File size", "KB", 1 / 1024)):
        vals = [getattr(it, "nbytes" if key == "bytes" else key) for it in ok]
        vals = [v * scale for v in vals if v]
        if vals:
            chart(f"{key}.png", lambda p, v=vals, t=title, x=xl: histogram(p, v, t, xlabel=x), title.lower())
    for n, (cur, _) in enumerate(list(r["prices"].items())[:3]):
        vals = [float(it.product.price) for it in items
                if it.product.price is not None and (it.product.currency or "?") == cur]
        chart(f"price-{n}.png", lambda p, v=vals, c=cur: histogram(p, v, f"Price ({c})", xlabel=c),
              f"price distribution {cur}", "prices")

    by_id = {it.id: it for it in items}
    todo: list[tuple[Path, str]] = []

    def fig(it: Item) -> dict[str, str]:
        name = f"thumbs/{(it.sha256 or hashlib.sha256(it.id.encode()).hexdigest())[:20]}.jpg"
        todo.append((out / name, it.path))
        return {"id": it.id, "src": name, "meta": _meta(it)}

    dups = {"exact": [[fig(by_id[i]) for i in g["ids"][:6]] for g in r["exact_duplicates"][:max_shown]],
            "near": [{"a": fig(items[i]), "b": fig(items[j]), "cosine": s} for i, j, s in a.near[:max_shown]]}
    sheets = []
    for n, c in enumerate(a.clusters):
        members = c["nearest"] + c["random"]
        name = f"clusters/cluster-{n + 1:02d}.png"
        sheets.append({"members": members, "name": name, "cluster": n + 1, "size": c["size"],
                       "marked": len(c["nearest"]), "ids": [items[i].id for i in members]})
    bar = _bar(len(set(todo)) + len(sheets), "writing report", progress)
    seen = set()
    for path, src in todo:
        if path not in seen:
            seen.add(path)
            thumbnail(path, src)
            bar.update(1)
    total = max(1, sum(s["size"] for s in sheets))
    for s in sheets:
        title = f"Cluster {s['cluster']} of {len(sheets)}: {s['size']} products ({100 * s['size'] / total:.1f}%)"
        contact_sheet(out / s["name"], [items[i].path for i in s["members"]], title, marked=s["marked"])
        with Image.open(out / s["name"]) as im:
            s["width"], s["height"] = im.size
        s["src"] = s["name"]
        bar.update(1)
    bar.close()

    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    page = env.from_string(TEMPLATE).render(r=r, charts=charts, dups=dups, sheets=sheets, version=__version__,
                                            max_rows=500, nearest=SHEET_NEAREST, random=SHEET_RANDOM)
    _write_atomic(out / "report.json", json.dumps(r, indent=1, ensure_ascii=False))
    _write_atomic(out / "index.html", page)
    return r


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def make_report(source: str | Path, out: str | Path, *, max_shown: int = 60, progress: bool = True,
                **kw: Any) -> dict[str, Any]:
    """Analyse ``source`` (catalogue or store) and write the report into ``out``; returns its numbers."""
    return write_report(analyse(source, progress=progress, **kw), out, max_shown=max_shown, progress=progress)


# --------------------------------------------------------------------------- command line

def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", metavar="CATALOG_OR_STORE", help="catalogue folder or CSV, or a store folder")
    p.add_argument("--out", "-o", required=True, metavar="DIR", help="folder to write index.html and its pictures into")
    p.add_argument("--clusters", type=int, default=10, help="k-means clusters to show (default 10, as the seed; 0: none)")
    p.add_argument("--near", type=float, default=None,
                   help="cosine at or above which two different images are near duplicates "
                        "(default: the encoder's own: 0.95 for effnet-tuned, 0.98 for effnet-lite0)")
    p.add_argument("--no-embed", action="store_true",
                   help="catalogue: do not encode the images (no near duplicates, no clusters; much faster)")
    p.add_argument("--encoder", default=None, help="catalogue: encoder for the embeddings (default: the default one)")
    p.add_argument("--max-shown", type=int, default=60, help="duplicate groups and pairs shown as pictures (default 60)")
    p.add_argument("--workers", type=int, default=None, help="image reading threads")
    p.add_argument("--seed", type=int, default=0, help="random seed for the contact sheets' random members")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    if args.near is not None and not 0 < args.near <= 1:
        raise DressfinderError("--near is a cosine between 0 and 1, e.g. 0.95")
    r = make_report(args.source, args.out, clusters=args.clusters, near=args.near, encode=not args.no_embed,
                    encoder=args.encoder, workers=args.workers, progress=not args.quiet, seed=args.seed,
                    max_shown=args.max_shown)
    print(f"{r['products']} products, {len(r['unreadable'])} unreadable, {len(r['exact_duplicates'])} exact "
          f"duplicate groups, {len(r['near_duplicates'])} near-duplicate pairs; report: "
          f"{Path(args.out) / 'index.html'}", file=sys.stderr)
    return 0
