"""``dressfinder bench``: indexing speed, query latency, recall at scale, and the seed side by side.

::

    dressfinder bench --data ../shared/data --out bench/out [--sizes 10k,1M] [--quick]

Writes ``OUT/bench.json`` (every number, the machine, its load while measuring) and ``OUT/bench.md``
(the same as tables). Sections (``--skip`` any of them):

``indexing``  ``Store.build`` of the catalogue with the default encoder: images/s end to end
              (read + decode + encode + index + commit), the pipeline's per-stage seconds, a
              single-thread profile per stage (read, decode, resize, normalise, store, encode,
              index), and threads vs worker processes on a subset.
``latency``   per size: one photo at a time, end to end in-process (decode / encode / search),
              through the CLI (a fresh process per photo, and one process answering many) and
              through HTTP (``dressfinder serve`` on 127.0.0.1, ``POST /api/search`` with the photo).
``scale``     sizes above the catalogue's: synthetic vectors (a Gaussian mixture fitted to the real
              vectors in PCA space, see ``synthetic_vectors``) added to the real ones; per index kind
              build time, memory, single-query p50/p99 and Recall@10 against exact search, for
              queries that are encoded, photo-like variants of catalogue images; then a store of
              that size for the CLI and HTTP latency.
``seed``      the seed's method (32x32 autoencoder, scikit-learn KMeans(10) + NearestNeighbors in
              the predicted cluster) against ours on the same catalogue, as ratios.

Nothing here asserts a speed: tests run it on a tiny catalogue (tests/test_bench.py).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Sequence

SECTIONS = ("indexing", "latency", "scale", "seed")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default="../shared/data", help="catalogue (folder or CSV) to index (default ../shared/data)")
    p.add_argument("--out", default="bench/out", help="folder for bench.json, bench.md and the stores (default bench/out)")
    p.add_argument("--sizes", default="10k,1M",
                   help="catalogue sizes for latency/recall, e.g. 10k,1M: the catalogue itself when a size is not "
                        "above it, else padded with synthetic vectors (default 10k,1M)")
    p.add_argument("--quick", action="store_true", help="few queries and runs (a smoke test, not a measurement)")
    p.add_argument("--queries", type=int, default=None, help="queries per measurement (default 200; quick 10)")
    p.add_argument("--kinds", default="flat,hnsw,ivfpq,ivf",
                   help="index kinds compared at sizes above the catalogue (default flat,hnsw,ivfpq,ivf); "
                        "hnsw:flat / hnsw:sq8 name other vector storages")
    p.add_argument("--limit", type=int, default=None, help="index only the first N catalogue images")
    p.add_argument("--skip", default="", help=f"comma-separated sections to leave out: {', '.join(SECTIONS)}, cli, http")
    p.add_argument("--keep", action="store_true", help="keep the stores built under OUT/stores")


# --------------------------------------------------------------------------- small helpers

def parse_size(text: str) -> int:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmM]?)\s*", text)
    if not m:
        raise ValueError(f"not a size: {text!r} (e.g. 10k, 1M, 250000)")
    return int(float(m.group(1)) * {"": 1, "k": 1_000, "m": 1_000_000}[m.group(2).lower()])


def label(n: int) -> str:
    if n >= 1_000_000 and n % 100_000 == 0:
        return f"{n / 1e6:g}M"
    if n >= 1000:
        return f"{n / 1e3:.1f}k".replace(".0k", "k")
    return str(n)


def stats_ms(seconds: Sequence[float]) -> dict[str, float]:
    import numpy as np

    if not len(seconds):
        return {"n": 0}
    x = np.asarray(seconds, dtype=np.float64) * 1000.0
    return {"n": int(len(x)), "p50": round(float(np.percentile(x, 50)), 3), "p99": round(float(np.percentile(x, 99)), 3),
            "mean": round(float(x.mean()), 3), "min": round(float(x.min()), 3), "max": round(float(x.max()), 3)}


def load() -> list[float]:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:  # pragma: no cover
        return []


def rss_bytes() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:  # pragma: no cover
        pass
    return 0


def machine() -> dict[str, Any]:
    import faiss
    import numpy as np

    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:  # pragma: no cover
        pass
    mem = 0
    try:
        with open("/proc/meminfo") as f:
            mem = int(next(ln for ln in f if ln.startswith("MemTotal")).split()[1]) * 1024
    except (OSError, StopIteration):  # pragma: no cover
        pass
    from .embed import cpu_count

    info = {"cpu": cpu, "cpus": cpu_count(), "memory_gb": round(mem / 2**30, 1), "python": platform.python_version(),
            "platform": platform.platform(), "numpy": np.__version__, "faiss": faiss.__version__}
    try:
        import onnxruntime

        info["onnxruntime"] = onnxruntime.__version__
    except ImportError:  # pragma: no cover
        pass
    return info


@contextmanager
def section(report: dict, name: str):
    """Time a section and record the machine's load average before and after it."""
    entry = report.setdefault(name, {})
    entry["load_before"] = load()
    t = time.perf_counter()
    print(f"bench: {name} ...", file=sys.stderr, flush=True)
    try:
        yield entry
    finally:
        entry["seconds"] = round(time.perf_counter() - t, 1)
        entry["load_after"] = load()
        print(f"bench: {name} done in {entry['seconds']:.0f} s (load {entry['load_after']})", file=sys.stderr, flush=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cli() -> list[str]:
    return [sys.executable, "-m", "dressfinder"]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONWARNINGS": "ignore"}


# --------------------------------------------------------------------------- query photos

def query_photos(store, n: int, seed: int = 0) -> list[Path]:
    """Paths of ``n`` stored catalogue images (real photos) to search with."""
    import numpy as np

    files = [f for _, _, f in store.snapshot().iter_products() if f]
    if not files:
        return []
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(files), size=min(n, len(files)), replace=False)
    return [store.root / "images" / files[i] for i in pick]


def photo_variant(path: Path, seed: int):
    """A photo-like variant of a catalogue image: cropped, maybe mirrored, re-lit (a PIL image)."""
    import numpy as np
    from PIL import Image, ImageEnhance

    from .images import load_image

    rng = np.random.default_rng(seed)
    im = load_image(path)
    w, h = im.size
    s = rng.uniform(0.8, 0.95)
    cw, ch = max(8, int(w * s)), max(8, int(h * s))
    x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    im = im.crop((x0, y0, x0 + cw, y0 + ch))
    if rng.random() < 0.5:
        im = im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    im = ImageEnhance.Brightness(im).enhance(rng.uniform(0.85, 1.15))
    return ImageEnhance.Contrast(im).enhance(rng.uniform(0.85, 1.15))


# --------------------------------------------------------------------------- synthetic vectors

def synthetic_vectors(real, n: int, *, seed: int = 0, pca_dims: int = 256, components: int = 200,
                      normalize: bool = True, chunk: int = 100_000, out=None):
    """``n`` vectors drawn from a model of ``real`` (an (m, d) array of encoder vectors).

    The model: PCA of the real vectors; a mixture of ``components`` full-covariance Gaussians on
    the top ``pca_dims`` coordinates, where the catalogue's structure lives (styles, colours),
    fitted by k-means (each cluster's mean, covariance and share); independent Gaussian noise
    with the real residual's per-dimension variance for the other directions; L2-normalised, as
    the encoder's vectors are. Neighbourhoods are as crowded as the real ones in the main
    directions, and no synthetic vector copies a real one. ``out``: an (n, d) float32 array to
    fill (no second copy of a large set).
    """
    import numpy as np
    from threadpoolctl import threadpool_limits

    real = np.asarray(real, np.float32)
    m, d = real.shape
    rng = np.random.default_rng(seed)
    # one BLAS thread: the factorisations are small, and random numbers, not products, bound the
    # sampling (measured: a second thread only adds waiting on a busy 2-core machine)
    with threadpool_limits(1):
        return _sample(real, n, rng, normalize, chunk, out, *_fit_mixture(real, pca_dims, components, seed))


def _sample(real, n, rng, normalize, chunk, out, mean, basis, resid_sd, means, chols, w):
    import numpy as np

    d = real.shape[1]
    k = len(basis)
    out = np.empty((n, d), np.float32) if out is None else out
    for start in range(0, n, chunk):
        size = min(chunk, n - start)
        comp = rng.choice(len(chols), size=size, p=w)
        zs = np.empty((size, k), np.float32)
        for c, chol in enumerate(chols):
            sel = np.flatnonzero(comp == c)
            zs[sel] = means[c] + rng.standard_normal((len(sel), k), np.float32) @ chol.T
        x = mean + zs @ basis + rng.standard_normal((size, d), np.float32) * resid_sd
        if normalize:
            x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        out[start:start + size] = x
    return out


def _fit_mixture(real, pca_dims: int, components: int, seed: int):
    import faiss
    import numpy as np

    m, d = real.shape
    mean = real.mean(axis=0)
    xc = real - mean
    k = max(1, min(pca_dims, m - 1, d))
    _, vecs = np.linalg.eigh((xc.T @ xc).astype(np.float64) / max(1, m - 1))
    basis = vecs[:, ::-1][:, :k].T.astype(np.float32)   # (k, d), the top principal directions
    z = xc @ basis.T
    resid_sd = (xc - z @ basis).std(axis=0)
    n_comp = max(1, min(components, m // 50 or 1))
    km = faiss.Kmeans(k, n_comp, niter=20, seed=seed, verbose=False)
    km.train(np.ascontiguousarray(z))
    _, labels = km.index.search(np.ascontiguousarray(z), 1)
    labels = labels[:, 0]
    means, chols, weights = [], [], []
    reg = 1e-3 * float(z.var(axis=0).mean())
    for c in range(n_comp):
        zc = z[labels == c].astype(np.float64)
        if len(zc) < 2:
            continue
        cov = np.cov(zc, rowvar=False).reshape(k, k) + reg * np.eye(k)
        means.append(zc.mean(axis=0).astype(np.float32))
        chols.append(np.linalg.cholesky(cov).astype(np.float32))
        weights.append(len(zc))
    w = np.asarray(weights, np.float64) / np.sum(weights)
    return mean, basis, resid_sd, means, chols, w


def exact_topk(queries, base, k: int, metric: str = "ip", block: int = 200_000):
    """(scores, ids) of the exact ``k`` nearest, by blocks of the base (no copy of the whole base)."""
    import faiss
    import numpy as np

    q = np.ascontiguousarray(queries, np.float32)
    best_d = np.full((len(q), k), -np.inf if metric == "ip" else np.inf, np.float32)
    best_i = np.full((len(q), k), -1, np.int64)
    fm = faiss.METRIC_INNER_PRODUCT if metric == "ip" else faiss.METRIC_L2
    for start in range(0, len(base), block):
        part = np.ascontiguousarray(base[start:start + block], np.float32)
        dd, ii = faiss.knn(q, part, min(k, len(part)), metric=fm)
        dd = np.concatenate([best_d, dd], axis=1)
        ii = np.concatenate([best_i, ii + start], axis=1)
        order = np.argsort(-dd if metric == "ip" else dd, axis=1, kind="stable")[:, :k]
        best_d, best_i = np.take_along_axis(dd, order, 1), np.take_along_axis(ii, order, 1)
    return best_d, best_i


def recall_at(found, truth, k: int = 10) -> float:
    import numpy as np

    hits = [len(set(f[:k][f[:k] >= 0].tolist()) & set(t[:k].tolist())) for f, t in zip(found, truth)]
    return round(float(np.mean(hits)) / k, 4)


# --------------------------------------------------------------------------- indexing

def bench_indexing(data: Path, root: Path, *, quick: bool, limit: int | None, entry: dict) -> None:
    from .catalog import read_catalog
    from .embed import PROCESS_MIN, cpu_count, prefers_processes, worker_spec
    from .encoders import get_encoder
    from .store import Store

    products = read_catalog(data).products
    if limit:
        products = products[:limit]
    enc = get_encoder()
    n = len(products)
    mode = "processes" if worker_spec(enc) is not None and n >= PROCESS_MIN and cpu_count() > 1 \
        and prefers_processes(enc) else "threads"
    entry.update(catalogue=str(data), images=n, encoder=enc.name, encoder_dim=enc.dim, mode=mode)
    t = time.perf_counter()
    store = Store.build(products, root, progress=False)
    wall = time.perf_counter() - t
    rep = store.last_report
    info = store.info()
    entry.update(
        indexed=rep.added, skipped=len(rep.skipped), index_kind=info["index"]["kind"],
        build_seconds=round(wall, 2), images_per_second=round(rep.added / wall, 1),
        encode_seconds=round(rep.encode_seconds, 2), encode_images_per_second=round(rep.rate, 1),
        index_and_commit_seconds=round(wall - rep.encode_seconds, 2),
        pipeline_cpu_seconds={k: v for k, v in rep.timings.items()})
    entry["profile"] = stage_profile(store, n=40 if quick else 300)
    if not quick and n >= 2 * 768:
        entry["modes"] = compare_modes([p.image for p in products[:1536]])


def stage_profile(store, n: int) -> dict[str, Any]:
    """Single-thread milliseconds per image for each stage, on ``n`` catalogue images."""
    import numpy as np

    from .encoders import get_encoder
    from .images import fit_square, load_image
    from .index import VectorIndex

    paths = [p.image for p in list(store.products())[:n] if p.image and Path(p.image).is_file()]
    if not paths:
        return {}
    old = os.environ.get("DRESSFINDER_THREADS")
    os.environ["DRESSFINDER_THREADS"] = "1"
    try:
        from PIL import Image

        enc = get_encoder(store.manifest["encoder"]["name"])
        enc.encode_arrays(enc.preprocess(Image.new("RGB", (64, 64)))[None])  # load the model, single-threaded
    finally:
        if old is None:
            os.environ.pop("DRESSFINDER_THREADS", None)
        else:
            os.environ["DRESSFINDER_THREADS"] = old
    t = {"read": 0.0, "decode": 0.0, "resize": 0.0, "normalize": 0.0, "hash+store": 0.0}
    arrays = []
    with tempfile.TemporaryDirectory() as tmp:
        from .embed import store_image_bytes

        for p in paths:
            t0 = time.perf_counter()
            data = Path(p).read_bytes()
            t1 = time.perf_counter()
            im = load_image(data, draft=enc.input_size)
            t2 = time.perf_counter()
            fit_square(im, enc.input_size)
            t3 = time.perf_counter()
            arrays.append(enc.preprocess(im))
            t4 = time.perf_counter()
            store_image_bytes(data, Path(tmp))
            t5 = time.perf_counter()
            t["read"] += t1 - t0
            t["decode"] += t2 - t1
            t["resize"] += t3 - t2
            t["normalize"] += max(0.0, (t4 - t3) - (t3 - t2))  # preprocess = resize + normalise
            t["hash+store"] += t5 - t4
    from .embed import SINGLE_THREAD_BATCH

    x = np.stack(arrays)
    te = time.perf_counter()
    vecs = np.concatenate([enc.encode_arrays(x[i:i + SINGLE_THREAD_BATCH]) for i in range(0, len(x), SINGLE_THREAD_BATCH)])
    t["encode"] = time.perf_counter() - te
    kind = store.manifest["index"]["kind"]
    ix = VectorIndex.create(kind, vecs.shape[1], store.manifest["index"]["metric"]) if kind in ("flat", "hnsw") else None
    if ix is not None and (kind != "hnsw" or ix.params.get("storage") != "sq8"):
        ti = time.perf_counter()
        ix.add(np.asarray(vecs, np.float32), np.arange(len(vecs)))
        t["index"] = time.perf_counter() - ti
    per = {k: round(v / len(paths) * 1000, 3) for k, v in t.items()}
    total = sum(per.values())
    return {"images": len(paths), "ms_per_image": per, "share": {k: round(v / total, 3) for k, v in per.items()},
            "total_ms": round(total, 3), "single_core_images_per_second": round(1000 / total, 1),
            "encode_batch": SINGLE_THREAD_BATCH}


def compare_modes(sources: list) -> dict[str, Any]:
    """images/s of the same images in decoding threads + a multi-threaded encoder, and in worker processes."""
    from .embed import embed
    from .encoders import get_encoder

    out = {}
    for mode in ("threads", "processes"):
        enc = get_encoder()
        with tempfile.TemporaryDirectory() as tmp:
            r = embed(enc, sources, images_dir=Path(tmp), progress=False, mode=mode)
        out[mode] = {"images": len(r.ok), "images_per_second": round(r.rate, 1), "workers": r.workers,
                     "load_after": load()}
    return out


# --------------------------------------------------------------------------- latency

def bench_latency(root: Path, photos: list[Path], *, n_queries: int, cli_cold: int, skip: set[str],
                  entry: dict) -> None:
    from .store import Store

    store = Store.open(root)
    entry["products"] = len(store)
    entry["index"] = store.manifest["index"]["kind"]
    enc = store.encoder
    store.search(photos[0], 10)  # warm: model loaded, pages touched
    dec, encd, srch, ann, total = [], [], [], [], []
    qs = [photos[i % len(photos)] for i in range(n_queries)]
    for p in qs:
        t0 = time.perf_counter()
        im = enc.load(p)
        t1 = time.perf_counter()
        v = enc.encode_query([im])   # as Store.search makes them
        t2 = time.perf_counter()
        store.search_vectors(v, 10)
        t3 = time.perf_counter()
        store.snapshot().index.search(v, 10)
        t4 = time.perf_counter()
        dec.append(t1 - t0)
        encd.append(t2 - t1)
        srch.append(t3 - t2)
        ann.append(t4 - t3)
    for p in qs:
        t0 = time.perf_counter()
        store.search(p, 10)
        total.append(time.perf_counter() - t0)
    entry["in_process"] = {"search": stats_ms(total), "decode": stats_ms(dec), "preprocess+encode": stats_ms(encd),
                           "index+metadata": stats_ms(srch), "index_only": stats_ms(ann)}
    store.close()
    if "cli" not in skip:
        entry["cli"] = cli_latency(root, qs, cold=cli_cold)
    if "http" not in skip:
        entry["http"] = http_latency(root, qs)


def cli_latency(root: Path, photos: list[Path], *, cold: int) -> dict[str, Any]:
    """A fresh ``dressfinder search`` per photo (cold: start, load, answer), and one process answering
    all photos (warm: gaps between its flushed JSON lines)."""
    colds = []
    for p in photos[:cold]:
        t = time.perf_counter()
        proc = subprocess.run([*_cli(), "search", str(p), "--store", str(root), "--json", "-k", "10"],
                              capture_output=True, text=True, env=_env(), timeout=600)
        colds.append(time.perf_counter() - t)
        if proc.returncode != 0:
            return {"error": proc.stderr.strip()[-500:]}
    proc = subprocess.Popen([*_cli(), "search", *map(str, photos), "--store", str(root), "--json", "-k", "10"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    t_start = time.perf_counter()
    arrivals = []
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.strip():
            arrivals.append(time.perf_counter())
    proc.wait(timeout=600)
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:])]
    return {"cold_process": stats_ms(colds),
            "first_answer_ms": round((arrivals[0] - t_start) * 1000, 1) if arrivals else None,
            "warm_per_photo": stats_ms(gaps), "command": f"dressfinder search PHOTO --store {root} --json -k 10"}


def http_latency(root: Path, photos: list[Path], *, warmup: int = 5) -> dict[str, Any]:
    """``dressfinder serve`` on 127.0.0.1; sequential ``POST /api/search`` with each photo (multipart)."""
    import httpx

    port = _free_port()
    cmd = [*_cli(), "serve", "--store", str(root), "--host", "127.0.0.1", "--port", str(port),
           "--log-level", "warning", "--reload-interval", "0"]
    log = tempfile.TemporaryFile()
    server = subprocess.Popen(cmd, stdout=log, stderr=log, env=_env())
    base = f"http://127.0.0.1:{port}"
    try:
        t = time.perf_counter()
        with httpx.Client(base_url=base, timeout=60) as client:
            while True:
                if server.poll() is not None:
                    log.seek(0)
                    return {"error": f"server exited {server.returncode}: {log.read().decode()[-800:]}"}
                try:
                    if client.get("/healthz").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.perf_counter() - t > 600:
                    return {"error": "server not ready after 600 s"}
                time.sleep(0.2)
            ready = time.perf_counter() - t
            blobs = [(p.name, p.read_bytes()) for p in photos]
            for name, data in blobs[:warmup]:
                client.post("/api/search", files={"file": (name, data, "image/jpeg")}, data={"k": "10"})
            lat, took, codes = [], [], {}
            for name, data in blobs:
                t0 = time.perf_counter()
                r = client.post("/api/search", files={"file": (name, data, "image/jpeg")}, data={"k": "10"})
                lat.append(time.perf_counter() - t0)
                codes[r.status_code] = codes.get(r.status_code, 0) + 1
                if r.status_code == 200:
                    took.append(r.json().get("took_ms", 0) / 1000)
            pictures = {kind: _post_all(client, blobs) for kind, blobs in picture_queries(photos).items()}
        return {"post_api_search": stats_ms(lat), "server_took": stats_ms(took), "status": codes,
                "startup_seconds": round(ready, 2), "command": " ".join(cmd[1:]).replace(str(port), "PORT"),
                "by_picture": pictures}
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:  # pragma: no cover
            server.kill()
            server.wait()
        log.close()


def picture_queries(photos: list[Path], seed: int = 12) -> dict[str, list[tuple[str, bytes]]]:
    """Region search's two cases (issue 12): a plain photo (a cropped, re-lit catalogue image) and a
    1080x2340 phone screenshot of a social post showing it (tools/scenes.py), as JPEG q90."""
    import io

    import numpy as np

    from .images import load_image
    from .tools.scenes import make_social

    def jpeg(im) -> bytes:
        buf = io.BytesIO()
        im.convert("RGB").save(buf, "JPEG", quality=90)
        return buf.getvalue()

    out: dict[str, list[tuple[str, bytes]]] = {"plain_photo": [], "screenshot_1080x2340": []}
    others = [load_image(p, draft=400) for p in photos[-4:]]
    for i, p in enumerate(photos):
        out["plain_photo"].append((p.name, jpeg(photo_variant(p, seed + i))))
        shot, _ = make_social(load_image(p), np.random.default_rng([seed, i]), others, phone=(1080, 2340))
        out["screenshot_1080x2340"].append((p.name, jpeg(shot)))
    return out


def _post_all(client, blobs: list[tuple[str, bytes]], warmup: int = 3) -> dict[str, Any]:
    """Sequential ``POST /api/search`` of each picture: latency, and how often a region was used."""
    for name, data in blobs[:warmup]:
        client.post("/api/search", files={"file": (name, data, "image/jpeg")}, data={"k": "10"})
    lat, regions = [], 0
    for name, data in blobs:
        t0 = time.perf_counter()
        r = client.post("/api/search", files={"file": (name, data, "image/jpeg")}, data={"k": "10"})
        lat.append(time.perf_counter() - t0)
        if r.status_code == 200 and (r.json().get("region") or {}).get("kind") not in (None, "whole"):
            regions += 1
    return {**stats_ms(lat), "region_used": regions}


# --------------------------------------------------------------------------- scale

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


def bench_scale(base_root: Path, size: int, *, kinds: Sequence[str], n_queries: int, quick: bool,
                out_root: Path, entry: dict) -> Path:
    """Pad the real vectors to ``size`` with synthetic ones; compare index kinds; write a store of
    that size (index chosen by ``auto_kind``) for the latency section. Returns its path."""
    import gc

    import faiss
    import numpy as np

    from .catalog import Product
    from .index import VectorIndex, auto_kind, omp_threads
    from .store import Store

    base = Store.open(base_root)
    enc = base.encoder
    metric = base.manifest["index"]["metric"]
    real = base.snapshot().all_vectors()
    rows = list(base.snapshot().iter_products())
    n_real = len(real)
    t = time.perf_counter()
    x = np.empty((size, real.shape[1]), np.float32)
    x[:n_real] = real
    synthetic_vectors(real, size - n_real, normalize=metric == "ip", out=x[n_real:])
    entry.update(size=size, real=n_real, synthetic=size - n_real, dim=int(x.shape[1]),
                 synthetic_seconds=round(time.perf_counter() - t, 1),
                 vectors_gb=round(x.nbytes / 2**30, 2))
    # photo-like queries: variants of catalogue photos, encoded (not in the index)
    photos = query_photos(base, n_queries, seed=1)
    q = enc.encode_query([photo_variant(p, i) for i, p in enumerate(photos)])
    entry["queries"] = len(q)
    t = time.perf_counter()
    _, truth = exact_topk(q, x, 10, metric)
    entry["exact_batch_seconds"] = round(time.perf_counter() - t, 1)
    # how close the synthetic vectors sit to real queries, against the real ones (sanity of the model)
    real_top = exact_topk(q, real, 10, metric)[0][:, -1]
    all_top = exact_topk(q, x, 10, metric)[0][:, -1] if size <= 200_000 else None
    entry["tenth_neighbour_score"] = {"real_only_median": round(float(np.median(real_top)), 4)}
    if all_top is not None:
        entry["tenth_neighbour_score"]["padded_median"] = round(float(np.median(all_top)), 4)
    n_single = min(len(q), 100 if quick else 300)
    results = entry.setdefault("kinds", {})
    auto = auto_kind(size, x.shape[1])
    store_index = None
    for name, kind, params in index_variants(kinds):
        gc.collect()
        r: dict[str, Any] = {"kind": kind, "load_before": load()}
        if kind == "flat":
            # the exact scan itself (no copy of the vectors): the same FAISS kernel as IndexFlat
            lat = []
            with omp_threads(1):
                for i in range(n_single):
                    t0 = time.perf_counter()
                    faiss.knn(q[i:i + 1], x, 10, metric=faiss.METRIC_INNER_PRODUCT if metric == "ip" else faiss.METRIC_L2)
                    lat.append(time.perf_counter() - t0)
            lat2 = []
            for i in range(min(n_single, 50)):
                t0 = time.perf_counter()
                faiss.knn(q[i:i + 1], x, 10, metric=faiss.METRIC_INNER_PRODUCT if metric == "ip" else faiss.METRIC_L2)
                lat2.append(time.perf_counter() - t0)
            r.update(build_seconds=0.0, index_bytes=int(x.nbytes), params={}, recall_at_10=1.0,
                     search_1_thread=stats_ms(lat), search_all_threads=stats_ms(lat2))
            results[name] = r
            continue
        rss0 = rss_bytes()
        t = time.perf_counter()
        if kind == "ivf" and len(x) > 200_000:
            # the seed's 10 clusters, from k-means on a 100k sample (all of 1M: minutes, same lists)
            from .index import kmeans

            sample = x[np.random.default_rng(0).choice(len(x), 100_000, replace=False)]
            params = {**params, "centroids": kmeans(sample, int(params.get("nlist", 10)), niter=20, nredo=1)}
            r["note"] = "k-means on a 100k sample (20 iterations)"
        ix = VectorIndex.build(kind, x, metric=metric, **params)
        r["build_seconds"] = round(time.perf_counter() - t, 1)
        r["rss_growth_bytes"] = max(0, rss_bytes() - rss0)
        r["params"] = {k: v for k, v in ix.params.items()}
        with tempfile.NamedTemporaryFile(dir=out_root, suffix=".faiss") as tmp:
            ix.save(tmp.name)
            r["index_bytes"] = os.path.getsize(tmp.name)
        r.update(measure_index(ix, q, truth, n_single))
        sweep = {"hnsw": ("ef", [32, 64, 128, 256]), "ivfpq": ("nprobe", [8, 16, 32, 64]),
                 "ivf": ("nprobe", [1, 2, 4])}.get(kind)
        if sweep:
            knob, values = sweep
            r["sweep"] = {f"{knob}={v}": measure_index(ix, q, truth, min(n_single, 100), **{knob: v})
                          for v in values}
        if kind == "ivfpq":  # candidates re-ranked per result
            kf = ix.params["k_factor"]
            for v in (16, 128):
                ix.params["k_factor"] = v
                r["sweep"][f"k_factor={v}"] = measure_index(ix, q, truth, min(n_single, 100))
            ix.params["k_factor"] = kf
        r["load_after"] = load()
        results[name] = r
        print(f"bench:   {name}: recall@10 {r['recall_at_10']}, p50 {r['search_1_thread']['p50']} ms, "
              f"{r['index_bytes'] / 2**20:.0f} MiB, built in {r['build_seconds']} s", file=sys.stderr, flush=True)
        if name == auto and store_index is None:
            store_index = ix
        else:
            del ix
    # the store of this size, for the CLI and HTTP: real products first, then synthetic ones
    if store_index is None:
        store_index = VectorIndex.build(auto, x, metric=metric)
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
    images = root / "images"
    t = time.perf_counter()
    shutil.copytree(base_root / "images", images)
    Store.from_vectors(root, enc, store_index, x, products, files, {
        "source": f"{base_root} + {size - n_real} synthetic vectors", "products": size})
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
    return {"recall_at_10": recall_at(found, truth), "search_1_thread": stats_ms(lat)}


# --------------------------------------------------------------------------- the seed, side by side

def bench_seed(base_root: Path, *, n_queries: int, quick: bool, ours: dict, entry: dict) -> None:
    """The seed's method end to end: 32x32 squash, the Keras autoencoder's bottleneck, KMeans(10)
    and a NearestNeighbors per cluster (scikit-learn); queries: predict the cluster, k-NN in it.

    The autoencoder's weights are untrained (``build_autoencoder``): its speed does not depend on
    them; retrieval quality is compared in docs/eval.md."""
    import numpy as np
    from sklearn.cluster import KMeans
    from sklearn.neighbors import NearestNeighbors

    from .encoders.autoencoder import INPUT_SIZE, Autoencoder, build_autoencoder, to_input
    from .images import load_image
    from .store import Store

    base = Store.open(base_root)
    paths = [p.image for p in base.products() if p.image and Path(p.image).is_file()]
    if quick:
        paths = paths[:200]
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "seed.keras"
        auto, _ = build_autoencoder()
        auto.save(model)
        enc = Autoencoder(model=str(model))
        enc.encode_arrays(np.zeros((1, INPUT_SIZE, INPUT_SIZE, 3), np.float32))  # load before timing
        t0 = time.perf_counter()
        arrays = [to_input(load_image(p)) for p in paths]  # as the seed: one by one, full decode, squash
        t1 = time.perf_counter()
        codes = enc.encode_arrays(np.stack(arrays))
        t2 = time.perf_counter()
        km = KMeans(n_clusters=10, n_init=10, random_state=0).fit(codes)
        nns = {}
        for c in range(10):
            members = np.flatnonzero(km.labels_ == c)
            if len(members):
                nns[c] = (members, NearestNeighbors(n_neighbors=min(10, len(members))).fit(codes[members]))
        t3 = time.perf_counter()
        total = t3 - t0
        entry["indexing"] = {"images": len(paths), "seconds": round(total, 2),
                             "images_per_second": round(len(paths) / total, 1),
                             "decode_seconds": round(t1 - t0, 2), "encode_seconds": round(t2 - t1, 2),
                             "kmeans+nn_seconds": round(t3 - t2, 2)}
        photos = query_photos(base, n_queries, seed=0)
        lat = []
        for p in photos:
            t = time.perf_counter()
            code = enc.encode_arrays(to_input(load_image(p))[None])
            c = int(km.predict(code)[0])
            members, nn = nns[c]
            nn.kneighbors(code, n_neighbors=min(10, len(members)))
            lat.append(time.perf_counter() - t)
        entry["query"] = {"search": stats_ms(lat)}
    ours_rate = ours.get("indexing", {}).get("images_per_second")
    ours_p50 = ours.get("latency_p50_ms")
    entry["ours"] = {"images_per_second": ours_rate, "search_p50_ms": ours_p50}
    entry["ratios_ours_over_seed"] = {
        "indexing_images_per_second": round(ours_rate / entry["indexing"]["images_per_second"], 3) if ours_rate else None,
        "query_latency_p50": round(ours_p50 / entry["query"]["search"]["p50"], 3) if ours_p50 else None}


# --------------------------------------------------------------------------- the report

def markdown(report: dict[str, Any]) -> str:
    lines = ["# dressfinder benchmarks", ""]
    m = report["machine"]
    lines += [f"Machine: {m['cpu']}, {m['cpus']} CPUs, {m['memory_gb']} GB; Python {m['python']}, "
              f"faiss {m['faiss']}, onnxruntime {m.get('onnxruntime', '?')}. Date: {report['date']}. "
              f"Command: `{report['command']}`. Load average (1/5/15 min) at start {report['load_start']}, "
              f"at end {report['load_end']}; total {report['seconds']:.0f} s.", ""]
    ix = report.get("indexing")
    if ix and "images_per_second" in ix:
        lines += ["## Indexing", "",
                  f"{ix['indexed']} images of `{ix['catalogue']}` with {ix['encoder']} ({ix['encoder_dim']}-d), "
                  f"{ix['mode']}, index `{ix['index_kind']}`: **{ix['images_per_second']} images/s** end to end "
                  f"({ix['build_seconds']} s: encoding {ix['encode_seconds']} s = {ix['encode_images_per_second']} images/s, "
                  f"index + commit {ix['index_and_commit_seconds']} s). Load {ix['load_before']} -> {ix['load_after']}.", ""]
        pr = ix.get("profile") or {}
        if pr:
            lines += ["Where the time goes (one thread, ms per image, "
                      f"{pr['images']} images; encoder batches of {pr['encode_batch']}):", "",
                      "| stage | ms/image | share |", "|---|---:|---:|"]
            lines += [f"| {k} | {v} | {pr['share'][k] * 100:.1f}% |" for k, v in pr["ms_per_image"].items()]
            lines += [f"| total | {pr['total_ms']} | = {pr['single_core_images_per_second']} images/s on one core |", ""]
        if ix.get("pipeline_cpu_seconds"):
            lines += ["Pipeline CPU-seconds by stage (summed over workers): "
                      + ", ".join(f"{k} {v}" for k, v in ix["pipeline_cpu_seconds"].items()), ""]
        if ix.get("modes"):
            lines += ["| same 1536 images | images/s | workers |", "|---|---:|---:|"]
            lines += [f"| {k} | {v['images_per_second']} | {v['workers']} |" for k, v in ix["modes"].items()]
            lines += [""]
    lat = report.get("latency") or {}
    if lat:
        lines += ["## Query latency (one photo at a time, k=10)", "",
                  "| products | index | in-process p50 / p99 | decode p50 | encode p50 | index+metadata p50 | "
                  "CLI fresh process p50 / p99 | CLI warm p50 / p99 | HTTP POST /api/search p50 / p99 |",
                  "|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
        for name, e in lat.items():
            ip = e.get("in_process", {})
            cli = e.get("cli", {})
            http = e.get("http", {})

            def pp(s):
                return f"{s['p50']} / {s['p99']} ms" if s and s.get("n") else "-"
            cli_cold = pp(cli.get("cold_process")) if "error" not in cli else "error"
            cli_warm = pp(cli.get("warm_per_photo")) if "error" not in cli else "error"
            http_s = pp(http.get("post_api_search")) if "error" not in http else "error"
            lines.append(f"| {e.get('products')} | {e.get('index')} | {pp(ip.get('search'))} | "
                         f"{ip.get('decode', {}).get('p50', '-')} | {ip.get('preprocess+encode', {}).get('p50', '-')} | "
                         f"{ip.get('index+metadata', {}).get('p50', '-')} | {cli_cold} | {cli_warm} | {http_s} |")
        lines += [""]
        for name, e in lat.items():
            for kind, st in ((e.get("http") or {}).get("by_picture") or {}).items():
                lines.append(f"- HTTP POST /api/search, {kind.replace('_', ' ')}: p50 {st.get('p50')} ms, "
                             f"p99 {st.get('p99')} ms (n {st.get('n')}; a region searched in {st.get('region_used')})")
            for part in ("cli", "http"):
                if (e.get(part) or {}).get("error"):
                    lines += [f"{name} {part}: {e[part]['error']}", ""]
    for name, sc in (report.get("scale") or {}).items():
        if "kinds" not in sc:
            continue
        lines += [f"## {label(sc['size'])} vectors: index kinds against exact search", "",
                  f"{sc['real']} real + {sc['synthetic']} synthetic vectors of dimension {sc['dim']} "
                  f"({sc['vectors_gb']} GB as float32); {sc['queries']} queries: encoded photo-like variants of "
                  f"catalogue photos (not in the index). Median score of a query's 10th neighbour: "
                  f"{sc['tenth_neighbour_score']}. Load {sc.get('load_before')} -> {sc.get('load_after')}.", "",
                  "| kind | params | build s | index MiB | search p50 / p99 (1 thread) | Recall@10 |",
                  "|---|---|---:|---:|---:|---:|"]
        for kname, r in sc["kinds"].items():
            s = r.get("search_1_thread", {})
            params = ", ".join(f"{k}={v}" for k, v in r.get("params", {}).items() if k not in ("seed", "niter", "nredo"))
            lines.append(f"| {kname} | {params} | {r.get('build_seconds')} | {r.get('index_bytes', 0) / 2**20:.0f} | "
                         f"{s.get('p50')} / {s.get('p99')} ms | {r.get('recall_at_10')} |")
        lines += [""]
        for kname, r in sc["kinds"].items():
            if r.get("sweep"):
                lines.append(f"{kname} sweep: " + "; ".join(
                    f"{k}: R@10 {v['recall_at_10']}, p50 {v['search_1_thread']['p50']} ms" for k, v in r["sweep"].items()))
        lines += [""]
    seed = report.get("seed")
    if seed and "indexing" in seed:
        r = seed["ratios_ours_over_seed"]
        lines += ["## The seed's method vs ours (same catalogue, same run)", "",
                  "| | seed (32x32 autoencoder + KMeans(10) + NearestNeighbors) | ours | ours / seed |",
                  "|---|---:|---:|---:|",
                  f"| indexing images/s | {seed['indexing']['images_per_second']} | {seed['ours']['images_per_second']} | "
                  f"{r['indexing_images_per_second']} |",
                  f"| query latency p50 (in-process) | {seed['query']['search']['p50']} ms | {seed['ours']['search_p50_ms']} ms | "
                  f"{r['query_latency_p50']} |", ""]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- entry point

def run(args: argparse.Namespace) -> int:
    from .errors import DressfinderError

    data = Path(args.data)
    if not data.exists():
        raise DressfinderError(f"no catalogue at {data}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stores = out / "stores"
    stores.mkdir(exist_ok=True)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    quick = bool(args.quick)
    n_queries = args.queries or (10 if quick else 200)
    sizes = [parse_size(s) for s in args.sizes.split(",") if s.strip()]
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    t_start = time.perf_counter()
    report: dict[str, Any] = {"command": "dressfinder bench " + " ".join(sys.argv[2:]) if sys.argv[1:2] == ["bench"]
                              else f"dressfinder bench --data {args.data} --out {args.out} --sizes {args.sizes}"
                              + (" --quick" if quick else ""),
                              "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "machine": machine(),
                              "load_start": load(), "quick": quick}

    def save() -> None:
        report["load_end"] = load()
        report["seconds"] = round(time.perf_counter() - t_start, 1)
        (out / "bench.json").write_text(json.dumps(report, indent=2, default=str))
        (out / "bench.md").write_text(markdown(report))

    base_root = stores / "catalogue"
    ours: dict[str, Any] = {}
    try:
        if "indexing" not in skip or not (base_root / "store.json").exists():
            with section(report, "indexing") as entry:
                bench_indexing(data, base_root, quick=quick, limit=args.limit, entry=entry)
            ours["indexing"] = report["indexing"]
            save()
        from .store import Store

        n_real = len(Store.open(base_root))
        photos = query_photos(Store.open(base_root), n_queries, seed=0)
        for size in sizes:
            name = label(max(size, n_real)) if size > n_real else label(n_real)
            root = base_root
            if size > n_real:
                if "scale" in skip:
                    continue
                with section(report.setdefault("scale", {}), name) as entry:
                    root = bench_scale(base_root, size, kinds=kinds, n_queries=max(n_queries, 100 if quick else 500),
                                       quick=quick, out_root=stores, entry=entry)
                save()
            if "latency" not in skip:
                with section(report.setdefault("latency", {}), name) as entry:
                    bench_latency(root, photos, n_queries=n_queries, cli_cold=2 if quick else 10, skip=skip,
                                  entry=entry)
                if root == base_root:
                    ours["latency_p50_ms"] = entry["in_process"]["search"]["p50"]
                save()
            if root != base_root and not args.keep:
                shutil.rmtree(root, ignore_errors=True)
        if "seed" not in skip:
            with section(report, "seed") as entry:
                bench_seed(base_root, n_queries=n_queries, quick=quick, ours=ours, entry=entry)
            save()
    finally:
        save()
        if not args.keep:
            shutil.rmtree(stores, ignore_errors=True)
    print(f"bench: wrote {out / 'bench.json'} and {out / 'bench.md'} ({report['seconds']:.0f} s)", file=sys.stderr)
    return 0
