"""The configurations compared side by side (an encoder, its precision and an index kind: ``seed``, ``base``, ``default``, ``int8``...), the cached catalogue and query vectors, and the latency of one query."""

from __future__ import annotations
import hashlib
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence
import numpy as np



AUTO_STYLE_PREFIX = "deepfashion-dresses/"   # --style-prefix auto: DeepFashion's style folders


@dataclass
class Config:
    label: str
    encoder: str | None          # None: the default encoder
    model: str | None = None
    index: str = "flat"
    index_params: dict[str, Any] = field(default_factory=dict)
    train_seed_autoencoder: bool = False
    precision: str | None = None  # the encoder's variant (int8 / fp32; None: the encoder's default)

    def describe(self, enc_name: str) -> str:
        p = self.index_params
        idx = self.index + (f" {p.get('nlist', 10)}/{p.get('nprobe', 1)}" if self.index == "ivf" else "")
        return f"{enc_name}{' ' + self.precision if self.precision else ''} + {idx}"


def parse_config(text: str) -> Config:
    """``seed``, ``base``, ``default`` (float32), ``int8`` (the default encoder's 8-bit variant), or
    ``ENCODER[@MODEL][+flat|+hnsw|+ivf[:NLIST/NPROBE]]``."""
    from ...errors import DressfinderError

    text = text.strip()
    if text == "seed":
        return Config("seed", "autoencoder", None, "ivf", {"nlist": 10, "nprobe": 1}, train_seed_autoencoder=True)
    if text == "base":
        return Config("base", "effnet-lite0")
    if text == "default":
        return Config("default", None, precision="fp32")
    if text == "int8":
        return Config("int8", None, precision="int8")
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


class QuerySide:
    """Wraps an encoder so ``embed`` runs its query path (``encode_query_arrays``), in this process:
    a worker process would rebuild the plain encoder from its spec and run the catalogue side."""

    prefer_processes = False

    def __init__(self, enc):
        self.enc = enc
        self.input_size = enc.input_size
        self.batch_size = enc.batch_size
        self.dim = enc.dim
        self.patch_dim = 0
        self.preprocess = enc.preprocess
        self.encode_arrays = self.encode_catalogue_arrays = enc.encode_query_arrays

    def spec(self):
        return {**self.enc.spec(), "side": "query", "path": "encode_query_arrays"}


def catalog_key(ids: Sequence[str], images: Sequence[str]) -> str:
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
    from ...training.autoencoder import train_from_sources

    path = cache / f"seed-autoencoder-{cat_key}-e{epochs}.keras"
    if not path.exists():
        if progress:
            print(f"training the seed autoencoder on {len(images)} images ({epochs} epochs)", file=sys.stderr)
        train_from_sources(list(images), path, epochs=epochs, progress=progress)
    return path


def catalogue_keys(ids: Sequence[str], images: Sequence[str]) -> list[str]:
    """The cache keys of catalogue images for :func:`embed_cached`: each one's id and path."""
    return [f"{i}\0{p}" for i, p in zip(ids, images)]


def embed_cached(enc, sources: Sequence, cache: Path | None, keys: Sequence[str], desc: str,
                  progress: bool) -> tuple[np.ndarray, np.ndarray, float, bool, np.ndarray | None]:
    """Vectors, which sources gave one, the seconds the encoding took, whether they came from the
    cache, and their patch vectors (None when the encoder makes none)."""
    from ...embed import embed, fingerprint

    work = None
    if cache is not None:
        work = cache / f"vectors-{fingerprint(enc, keys)}"
        done = work / "done.npz"
        if done.exists():
            with np.load(done) as z:
                patches = z["patches"] if "patches" in z.files else None
                return z["vectors"], z["ok"], float(z["seconds"]), True, patches
    res = embed(enc, sources, work_dir=work, progress=progress, desc=desc)
    if work is not None:
        extra = {} if res.patches is None else {"patches": res.patches}
        np.savez(work / "done.tmp.npz", vectors=res.vectors, ok=res.ok, seconds=res.seconds, **extra)
        os.replace(work / "done.tmp.npz", work / "done.npz")
    return res.vectors, res.ok, res.seconds, False, res.patches


def photos_key(head: str, photos: Sequence[bytes], cat_vec: np.ndarray) -> str:
    """A cache key for a stage that depends on ``head`` (what decides it), the photos and the catalogue."""
    h = hashlib.sha256(head.encode())
    for d in photos:
        h.update(hashlib.sha256(d).digest())
    h.update(np.ascontiguousarray(cat_vec[:: max(1, len(cat_vec) // 64)]).tobytes())
    return h.hexdigest()[:16]


def regions_version() -> str:
    """What the region search's choices depend on: its code's version and the shipped box head."""
    from ... import boxhead, regions

    head = boxhead.shipped()
    return f"{regions.VERSION}|{head.digest if head is not None else 'no box head'}"


def thresholds_key(enc) -> str:
    """The encoder's thresholds for a cache key: nothing for the defaults (keys made before they
    could differ stay valid), else their values."""
    from ...thresholds import DEFAULT_THRESHOLDS, Thresholds

    th = Thresholds.of(enc)
    return "" if th == DEFAULT_THRESHOLDS else f"|thresholds {th.key()}"


def located(enc, photos: Sequence[bytes], whole: np.ndarray, cat_vec: np.ndarray, cache: Path | None,
            progress: bool) -> tuple[np.ndarray, np.ndarray]:
    """Query vectors of the regions the region search uses and of the box head's boxes it weaves
    in (``regions.located_vectors``, as the service decides), cached by photos, encoder and catalogue."""
    from ... import boxhead, regions

    head = boxhead.shipped()
    key = photos_key(f"{regions_version()}|{sorted(enc.spec().items())}{thresholds_key(enc)}", photos, cat_vec)
    path = cache / f"regions-{key}.npy" if cache is not None else None
    if path is not None and path.exists():
        used, heads = np.load(path)
        return used, heads
    used, heads = regions.located_vectors(enc, photos, whole, cat_vec, progress, propose=head)
    if path is not None:
        np.save(path.with_name(path.stem + ".tmp.npy"), np.stack([used, heads]))
        os.replace(path.with_name(path.stem + ".tmp.npy"), path)
    return used, heads


def _best_scores(vectors: np.ndarray, cat: np.ndarray) -> np.ndarray:
    """Each vector's best cosine over the catalogue, in chunks."""
    out = np.zeros(len(vectors), np.float32)
    for start in range(0, len(vectors) if len(cat) else 0, 1024):
        out[start:start + 1024] = (np.asarray(vectors[start:start + 1024], np.float32) @ cat.T).max(axis=1)
    return out


def closeups(enc, photos: Sequence[bytes], whole: np.ndarray, used: np.ndarray, cat_vec: np.ndarray,
             cache: Path | None, progress: bool) -> dict[int, np.ndarray]:
    """The close-up vectors (``Encoder.encode_closeup``) of the photos the service reads as
    close-ups too (``regions.wants_closeup``: the whole photo's best match is not sure, the used
    region's does not beat it by much, and the shipped box head sees no product's photo framed in
    it), by photo index; cached by photos, encoder and catalogue."""
    from tqdm import tqdm

    from ... import boxhead, regions
    from ...images import load_image
    from ...search import query_draft

    head = boxhead.shipped()
    key = photos_key(f"closeup|{regions.CLOSEUP_VERSION}|{regions_version()}|{sorted(enc.spec().items())}"
                     f"{thresholds_key(enc)}", photos, cat_vec)
    path = cache / f"closeups-{key}.npz" if cache is not None else None
    if path is not None and path.exists():
        with np.load(path) as z:
            return dict(zip(z["index"].tolist(), z["vectors"]))
    cat = np.asarray(cat_vec, np.float32)
    th = regions.Thresholds.of(enc)
    best, best_used = _best_scores(whole, cat), _best_scores(used, cat)
    out: dict[int, np.ndarray] = {}
    draft = query_draft(enc.input_size, detect=True)
    for i in tqdm(np.flatnonzero(best < th.sure).tolist() if len(cat) else [],
                  desc="close-ups", unit="img", disable=not progress, dynamic_ncols=True):
        im = load_image(photos[i], draft=draft)
        w = regions.Region(regions.WHOLE, float(best[i]), whole[i], "whole")
        u = w if np.array_equal(used[i], whole[i]) else \
            regions.Region(w.box, float(best_used[i]), used[i], "window")   # its box and kind are not kept; the rule needs neither
        wants = regions.wants_closeup(regions.Located(u, [], w), im, th, propose=head)   # the head's boxes anew
        vector = enc.encode_closeup(im) if wants else None
        if vector is not None:
            out[int(i)] = vector
    if path is not None:
        np.savez(path.with_name(path.stem + ".tmp.npz"), index=np.array(sorted(out), np.int64),
                 vectors=np.array([out[i] for i in sorted(out)], np.float32).reshape(len(out), -1))
        os.replace(path.with_name(path.stem + ".tmp.npz"), path)
    return out


def closeup_ranked(found: np.ndarray, vectors: dict[int, np.ndarray], used: np.ndarray, whole: np.ndarray,
                   cat_vec: np.ndarray, cat_patches: np.ndarray, ids: np.ndarray, k: int, th,
                   scores_out: dict[int, tuple[np.ndarray, np.ndarray]] | None = None) -> np.ndarray:
    """``found`` with the close-up photos' rows ranked as the service ranks them
    (``search.closeup_scores`` over the whole catalogue, beside the better of ``used``, the searched
    regions' vectors, and ``whole``, the photos', weighted by ``search.closeup_weight`` of the
    ``whole`` photos' best matches; ``th``: the encoder's ``Thresholds``). ``scores_out``, if given,
    gets each re-ranked photo's best ``search.CLOSEUP_POOL`` (or ``k``, if more) ids and their
    scores (for :func:`closeup_checked_ranked`)."""
    from ...search import CLOSEUP_POOL, best_cosines, closeup_scores, closeup_weight, reads_as_closeup

    out = found.copy()
    cat64 = np.asarray(cat_vec, np.float64)               # once, not per photo
    for i, c in vectors.items():
        patch = cat_patches @ c
        if not reads_as_closeup(patch.max(), th):
            continue
        weight = closeup_weight(float((cat_vec @ whole[i]).max()), th)
        scores = closeup_scores(best_cosines(cat64, np.stack([used[i], whole[i]])), patch, weight)
        top = np.argsort(-scores, kind="stable")[:max(k, CLOSEUP_POOL)]
        out[i, :min(k, len(top))] = ids[top[:k]]
        if scores_out is not None:
            scores_out[int(i)] = (ids[top], scores[top])
    return out


def closeup_checked_ranked(enc, photos: Sequence[bytes], found: np.ndarray,
                           pools: dict[int, tuple[np.ndarray, np.ndarray]],
                           vectors: np.ndarray, cat_vec: np.ndarray, ids: np.ndarray, images: Sequence[str],
                           cache: Path | None, progress: bool) -> np.ndarray:
    """``found`` with the close-up photos' rows re-ordered as the service looks at them closer
    (``search.closeup_checked``): ``pools`` (from :func:`closeup_ranked`) holds each such photo's
    candidate ids and close-up scores; views of the first ``search.CLOSEUP_CHECK`` candidates'
    catalogue ``images`` (by image index) are compared with each photo's ``vectors`` (the searched
    region's and the whole photo's: the better counts). The views' cosines are cached by photos,
    encoder, catalogue and candidates."""
    from ... import regions, search

    row_of = {int(x): r for r, x in enumerate(ids)}
    picks = sorted(pools)
    cand = np.array([pools[i][0][:search.CLOSEUP_CHECK] for i in picks], np.int64).reshape(len(picks), -1)
    head = (f"closeup-check|region and whole|{search.CLOSEUP_CHECK}|{regions.CLOSEUP_VIEW_HEIGHTS}|"
            f"{regions.CLOSEUP_VIEW_X}|{regions.CLOSEUP_VIEW_Y}|{sorted(enc.spec().items())}|"
            f"{hashlib.sha256(cand.tobytes()).hexdigest()}")
    path = cache / f"checks-{photos_key(head, photos, cat_vec)}.npy" if cache is not None else None
    if path is not None and path.exists():
        views = np.load(path)
    else:
        views = _view_cosines(enc, photos, picks, cand, vectors, images, progress)
        if path is not None:
            np.save(path.with_name(path.stem + ".tmp.npy"), views)
            os.replace(path.with_name(path.stem + ".tmp.npy"), path)
    out = found.copy()
    for n, i in enumerate(picks):
        rows, scores = np.asarray(pools[i][0], np.int64), pools[i][1]
        photo_cos = search.best_cosines(cat_vec[[row_of[int(x)] for x in rows]].astype(np.float64), vectors[i])
        view = np.full(len(rows), np.nan)
        view[:cand.shape[1]] = views[n, :len(rows)]
        order, _ = search.checked_order(scores, photo_cos, view, rows)
        top = rows[order][:found.shape[1]]
        out[i, :len(top)] = top
    return out


def _view_cosines(enc, photos: Sequence[bytes], picks: list[int], cand: np.ndarray, vectors: np.ndarray,
                  images: Sequence[str], progress: bool) -> np.ndarray:
    """``search.view_cosines`` of each picked photo's candidates (rows of ``cand``: image indexes)."""
    from tqdm import tqdm

    from ... import search
    from ...images import load_image

    views = np.full(cand.shape, np.nan)
    draft = search.query_draft(enc.input_size, detect=True)
    for n, i in enumerate(tqdm(picks, desc="close-ups, closer", unit="img", disable=not progress,
                               dynamic_ncols=True)):
        w, h = load_image(photos[i], draft=draft).size
        views[n] = search.view_cosines(enc, vectors[i], [load_image(images[int(x)]) for x in cand[n]], w / h)
    return views


def fused(index, found: np.ndarray, used: np.ndarray, whole: np.ndarray, k: int,
          heads: np.ndarray | None = None) -> np.ndarray:
    """``found`` (the used regions' top ``k`` rows) with, where a region was used instead of the
    whole photo, the whole photo's results woven in as the service does (``search.fuse``), and the
    box head's box's where it was a second opinion (rows of ``heads`` that are not zeros)."""
    from ...search import HEAD_WEIGHT, fuse

    moved = np.flatnonzero(np.any(used != whole, axis=1))
    if not len(moved):
        return found
    _, whole_found = index.search(whole[moved], k)
    second = np.zeros(len(moved), bool) if heads is None else np.any(heads[moved] != 0, axis=1)
    head_found = {}
    if second.any():
        _, rows = index.search(heads[moved[second]], k)
        head_found = dict(zip(moved[second].tolist(), rows))
    out = found.copy()
    for i, w in zip(moved, whole_found):
        more = [([int(r) for r in head_found[i] if r >= 0], HEAD_WEIGHT)] if i in head_found else []
        rows = fuse([int(r) for r in found[i] if r >= 0], [int(r) for r in w if r >= 0], k, more=more)
        out[i] = rows + [-1] * (k - len(rows))
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
