"""The ``scale`` section: each index kind at sizes above the catalogue's (build time, memory, latency, recall), and a store of that size."""

from __future__ import annotations
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

from .common import label, load, photo_variant, query_photos, rss_bytes, stats_ms
from .synthetic import exact_topk, neighbour_recall, synthetic_vectors


def index_variants(kinds: Sequence[str]) -> list[tuple[str, str, dict[str, Any]]]:
    """(name, kind, params) for names such as ``hnsw`` or ``hnsw:sq8``."""
    out = []
    for name in kinds:
        kind, _, storage = name.partition(":")
        params: dict[str, Any] = {}
        if storage:
            params["storage"] = storage
        out.append((name, kind, params))
    return out


def _queries_and_truth(base, x, real, n_queries: int, metric: str, entry: dict):
    """Photo-like queries (variants of catalogue photos, encoded; not in the index) and their exact
    10 nearest; how close the synthetic vectors sit to real queries (sanity of the model)."""
    import numpy as np

    photos = query_photos(base, n_queries, seed=1)
    q = base.encoder.encode_query([photo_variant(p, i) for i, p in enumerate(photos)])
    entry["queries"] = len(q)
    t = time.perf_counter()
    _, truth = exact_topk(q, x, 10, metric)
    entry["exact_batch_seconds"] = round(time.perf_counter() - t, 1)
    real_top = exact_topk(q, real, 10, metric)[0][:, -1]
    all_top = exact_topk(q, x, 10, metric)[0][:, -1] if len(x) <= 200_000 else None
    entry["tenth_neighbour_score"] = {"real_only_median": round(float(np.median(real_top)), 4)}
    if all_top is not None:
        entry["tenth_neighbour_score"]["padded_median"] = round(float(np.median(all_top)), 4)
    return q, truth


def _flat_scan(q, x, metric: str, n_single: int) -> dict[str, Any]:
    """The exact scan itself (no copy of the vectors): the same FAISS kernel as IndexFlat."""
    import faiss

    from ...index import omp_threads

    kind = faiss.METRIC_INNER_PRODUCT if metric == "ip" else faiss.METRIC_L2

    def timed(n: int) -> list[float]:
        lat = []
        for i in range(n):
            t0 = time.perf_counter()
            faiss.knn(q[i:i + 1], x, 10, metric=kind)
            lat.append(time.perf_counter() - t0)
        return lat

    with omp_threads(1):
        one = timed(n_single)
    return dict(build_seconds=0.0, index_bytes=int(x.nbytes), params={}, recall_at_10=1.0,
                search_1_thread=stats_ms(one), search_all_threads=stats_ms(timed(min(n_single, 50))))


def _build(kind: str, params: dict[str, Any], x, metric: str, r: dict[str, Any]):
    import numpy as np

    from ...index import VectorIndex, kmeans

    rss0 = rss_bytes()
    t = time.perf_counter()
    if kind == "ivf" and len(x) > 200_000:
        # the seed's 10 clusters, from k-means on a 100k sample (all of 1M: minutes, same lists)
        sample = x[np.random.default_rng(0).choice(len(x), 100_000, replace=False)]
        params = {**params, "centroids": kmeans(sample, int(params.get("nlist", 10)), niter=20, nredo=1)}
        r["note"] = "k-means on a 100k sample (20 iterations)"
    ix = VectorIndex.build(kind, x, metric=metric, **params)
    r["build_seconds"] = round(time.perf_counter() - t, 1)
    r["rss_growth_bytes"] = max(0, rss_bytes() - rss0)
    r["params"] = {k: v for k, v in ix.params.items()}
    return ix


def _sweeps(kind: str, ix, q, truth, n: int) -> dict[str, Any]:
    """Recall and latency at other settings of the kind's knob."""
    sweep = {"hnsw": ("ef", [32, 64, 128, 256]), "ivfpq": ("nprobe", [8, 16, 32, 64]),
             "ivf": ("nprobe", [1, 2, 4])}.get(kind)
    if not sweep:
        return {}
    knob, values = sweep
    out = {f"{knob}={v}": measure_index(ix, q, truth, n, **{knob: v}) for v in values}
    if kind == "ivfpq":  # candidates re-ranked per result
        kf = ix.params["k_factor"]
        for v in (16, 128):
            ix.params["k_factor"] = v
            out[f"k_factor={v}"] = measure_index(ix, q, truth, n)
        ix.params["k_factor"] = kf
    return out


def _measure_kind(name: str, kind: str, params: dict[str, Any], x, q, truth, metric: str, n_single: int,
                  out_root: Path) -> tuple[dict[str, Any], Any]:
    """One index kind at this size -> (its figures, the index; None for flat)."""
    r: dict[str, Any] = {"kind": kind, "load_before": load()}
    if kind == "flat":
        r.update(_flat_scan(q, x, metric, n_single))
        return r, None
    ix = _build(kind, params, x, metric, r)
    with tempfile.NamedTemporaryFile(dir=out_root, suffix=".faiss") as tmp:
        ix.save(tmp.name)
        r["index_bytes"] = os.path.getsize(tmp.name)
    r.update(measure_index(ix, q, truth, n_single))
    sweeps = _sweeps(kind, ix, q, truth, min(n_single, 100))
    if sweeps:
        r["sweep"] = sweeps
    r["load_after"] = load()
    print(f"bench:   {name}: recall@10 {r['recall_at_10']}, p50 {r['search_1_thread']['p50']} ms, "
          f"{r['index_bytes'] / 2**20:.0f} MiB, built in {r['build_seconds']} s", file=sys.stderr, flush=True)
    return r, ix


def _write_store(base_root: Path, base, rows: list, x, index, size: int, out_root: Path) -> Path:
    """The store of this size, for the CLI and HTTP: real products first, then synthetic ones."""
    import numpy as np

    from ...schema import Product
    from ...store import Store

    n_real = len(rows)
    root = out_root / f"store-{label(size)}"
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    rng = np.random.default_rng(7)
    shops, cats = ["synthetic-a", "synthetic-b", "synthetic-c"], ["maxi", "midi", "mini"]
    products = [p for _, p, _ in rows] + [
        Product(id=f"synthetic/{i:07d}", image="synthetic", title=f"Synthetic dress {i}",
                price=float(round(rng.uniform(10, 200), 2)), currency="EUR", shop=shops[i % 3], category=cats[i % 3 - 1])
        for i in range(size - n_real)]
    files = [f for _, _, f in rows] + [None] * (size - n_real)
    shutil.copytree(base_root / "images", root / "images")
    Store.from_vectors(root, base.encoder, index, x, products, files, {
        "source": f"{base_root} + {size - n_real} synthetic vectors", "products": size})
    return root


def bench_scale(base_root: Path, size: int, *, kinds: Sequence[str], n_queries: int, quick: bool,
                out_root: Path, entry: dict) -> Path:
    """Pad the real vectors to ``size`` with synthetic ones; compare index kinds; write a store of
    that size (index chosen by ``auto_kind``) for the latency section. Returns its path."""
    import gc

    import numpy as np

    from ...index import VectorIndex, auto_kind
    from ...store import Store

    base = Store.open(base_root)
    metric = base.manifest["index"]["metric"]
    real = base.snapshot().all_vectors()
    rows = list(base.snapshot().iter_products())
    t = time.perf_counter()
    x = np.empty((size, real.shape[1]), np.float32)
    x[:len(real)] = real
    synthetic_vectors(real, size - len(real), normalize=metric == "ip", out=x[len(real):])
    entry.update(size=size, real=len(real), synthetic=size - len(real), dim=int(x.shape[1]),
                 synthetic_seconds=round(time.perf_counter() - t, 1), vectors_gb=round(x.nbytes / 2**30, 2))
    q, truth = _queries_and_truth(base, x, real, n_queries, metric, entry)
    n_single = min(len(q), 100 if quick else 300)
    results = entry.setdefault("kinds", {})
    auto = auto_kind(size, x.shape[1])
    store_index = None
    for name, kind, params in index_variants(kinds):
        gc.collect()
        results[name], ix = _measure_kind(name, kind, params, x, q, truth, metric, n_single, out_root)
        if name == auto and store_index is None:
            store_index = ix
        del ix
    t = time.perf_counter()
    root = _write_store(base_root, base, rows, x, store_index or VectorIndex.build(auto, x, metric=metric),
                        size, out_root)
    entry["store"] = {"path": str(root), "index": auto, "write_seconds": round(time.perf_counter() - t, 1)}
    del x, store_index
    gc.collect()
    return root


def measure_index(ix, q, truth, n_single: int, **search_kw) -> dict[str, Any]:
    """Recall@10 (all queries in one batch) and single-query latency (one thread, as the web app)."""
    _, found = ix.search(q, 10, **search_kw)
    lat = []
    for i in range(n_single):
        t0 = time.perf_counter()
        ix.search(q[i:i + 1], 10, **search_kw)
        lat.append(time.perf_counter() - t0)
    return {"recall_at_10": neighbour_recall(found, truth), "search_1_thread": stats_ms(lat)}
