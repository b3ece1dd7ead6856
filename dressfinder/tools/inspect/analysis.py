"""What ``dressfinder inspect`` finds in a catalogue or a store: each image read (format, size,
bytes, hash, whether it decodes), the embeddings (a store's own, or a bare catalogue encoded),
near duplicates among them, k-means clusters, and the report's numbers (``summarise``)."""

from __future__ import annotations

import hashlib
import io
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from ...errors import DressfinderError
from ...schema import NAMES
from ...settings import default_threads

NEIGHBOURS = 8              # neighbours looked at per image when looking for near duplicates
SHEET_NEAREST = 12          # contact sheet: images nearest the cluster's centre ...
SHEET_RANDOM = 6            # ... and random other members
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

    from ...images import load_image

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


def progress_bar(total: int, desc: str, progress: bool, unit: str = "img"):
    """A tqdm bar on stderr (``progress=False``: a silent one)."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=not progress, dynamic_ncols=True, file=sys.stderr)


def analyse(source: str | Path, *, clusters: int = 10, near: float | None = None, encode: bool = True,
            encoder: str | None = None, workers: int | None = None, progress: bool = True,
            seed: int = 0) -> Analysis:
    """Read a catalogue (folder or CSV) or a store and work out everything the report shows."""
    a, store = _gather(str(source), near)
    workers = workers or default_threads()
    _read_images(a.items, workers, progress)
    _attach_vectors(a, store, encode, encoder, workers, progress)
    if a.vectors is not None and len(a.vector_items):
        a.near = _near_duplicates(a, a.near_threshold, progress)
        if clusters > 0:
            a.clusters = _clusters(a, store, clusters, seed)
    return a


def _gather(source: str, near: float | None) -> tuple[Analysis, Any]:
    """The products of a store (and the open store) or of a catalogue (and None), images unread."""
    if is_store(source):
        from ...store import Store

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
        from ...catalog import read_catalog

        if not Path(source).exists():
            raise DressfinderError(f"no such catalogue or store: {source}")
        read = read_catalog(source)
        items = [Item(p.id, p.image, p) for p in read.products]
        a = Analysis(source, "catalogue", items, skipped_rows=list(read.skipped), near_threshold=near)
        store = None
    if not items:
        raise DressfinderError(f"{source} has no products")
    return a, store


def _read_images(items: list[Item], workers: int, progress: bool) -> None:
    from concurrent.futures import ThreadPoolExecutor

    bar = progress_bar(len(items), "reading images", progress)
    with ThreadPoolExecutor(workers) as pool:
        for _ in pool.map(probe, items):
            bar.update(1)
    bar.close()


def _attach_vectors(a: Analysis, store: Any, encode: bool, encoder: str | None, workers: int,
                    progress: bool) -> None:
    """The readable images' vectors: a store's own, or a catalogue encoded (unless ``encode`` is off)."""
    import numpy as np

    items = a.items
    ok = [i for i, it in enumerate(items) if it.ok]
    if store is not None and ok:
        a.vector_items = ok
        a.vectors = store.snapshot().vectors(np.array([items[i].row for i in ok], np.int64))
    elif encode and ok:
        from ...embed import embed
        from ...encoders import get_encoder

        enc = get_encoder(encoder)
        a.encoder = enc.name
        if a.near_threshold is None:
            a.near_threshold = enc.near_duplicate_cosine
        res = embed(enc, [items[i].path for i in ok], progress=progress, workers=workers)
        for j, reason in res.skipped:
            items[ok[j]].error = reason
        a.vector_items = [ok[j] for j in res.ok.tolist()]
        a.vectors = res.vectors


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
    from ...encoders import l2_normalize
    from ...index import VectorIndex

    reps = _unique_vectors(a)
    if len(reps) < 2:
        return []
    x = l2_normalize(a.vectors[reps])
    index = VectorIndex.build("flat" if len(x) <= 200_000 else "hnsw", x, metric="ip")
    k = min(NEIGHBOURS + 1, len(x))
    pairs: dict[tuple[int, int], float] = {}
    bar = progress_bar(len(x), "near duplicates", progress)
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

    from ...index import kmeans

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
