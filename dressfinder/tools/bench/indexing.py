"""The ``indexing`` section: ``Store.build`` of the catalogue, images/s end to end, float32 and int8, a per-stage profile, threads vs worker processes."""

from __future__ import annotations
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from .common import load


def bench_indexing(data: Path, root: Path, *, quick: bool, limit: int | None, entry: dict) -> None:
    from ...catalog import read_catalog
    from ...embed import PROCESS_MIN, cpu_count, prefers_processes, worker_spec
    from ...encoders import get_encoder
    from ...store import Store

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
    entry["precision"] = info["encoder"].get("precision")
    entry["by_precision"] = index_other_precision(products, root, store, wall)
    entry["profile"] = stage_profile(store, n=40 if quick else 300)
    if not quick and n >= 2 * 768:
        entry["modes"] = compare_modes([p.image for p in products[:1536]])


def index_other_precision(products: list, root: Path, store, wall: float) -> dict[str, Any]:
    """The same ``Store.build`` with the default encoder's other variant (int8 <-> fp32), same run."""
    spec = store.manifest["encoder"]
    if not spec.get("precision"):
        return {}
    from ...store import Store

    rows = {spec["precision"]: {"images_per_second": round(store.last_report.added / wall, 1),
                                "build_seconds": round(wall, 2), "default": True}}
    other = "fp32" if spec["precision"] == "int8" else "int8"
    alt = root.with_name(root.name + "-" + other)
    try:
        t = time.perf_counter()
        st = Store.build(products, alt, encoder=spec["name"], precision=other, progress=False)
        secs = time.perf_counter() - t
        rows[other] = {"images_per_second": round(st.last_report.added / secs, 1), "build_seconds": round(secs, 2),
                       "default": False, "load_after": load()}
    except Exception as e:  # e.g. no int8 file: report it, keep the rest of the bench
        rows[other] = {"error": f"{type(e).__name__}: {e}"}
    finally:
        shutil.rmtree(alt, ignore_errors=True)
    return rows


def stage_profile(store, n: int) -> dict[str, Any]:
    """Single-thread milliseconds per image for each stage, on ``n`` catalogue images."""
    import numpy as np

    from ...encoders import get_encoder
    from ...images import fit_square, load_image
    from ...index import VectorIndex

    paths = [p.image for p in list(store.products())[:n] if p.image and Path(p.image).is_file()]
    if not paths:
        return {}
    from PIL import Image

    from ...encoders.onnx_runtime import session_threads

    with session_threads(1):
        enc = get_encoder(store.manifest["encoder"]["name"], precision=store.manifest["encoder"].get("precision"))
        enc.encode_arrays(enc.preprocess(Image.new("RGB", (64, 64)))[None])  # load the model, single-threaded
    t = {"read": 0.0, "decode": 0.0, "resize": 0.0, "normalize": 0.0, "hash+store": 0.0}
    arrays = []
    with tempfile.TemporaryDirectory() as tmp:
        from ...embed import store_image_bytes

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
    from ...embed import SINGLE_THREAD_BATCH

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
    from ...embed import embed
    from ...encoders import get_encoder

    out = {}
    for mode in ("threads", "processes"):
        enc = get_encoder()
        with tempfile.TemporaryDirectory() as tmp:
            r = embed(enc, sources, images_dir=Path(tmp), progress=False, mode=mode)
        out[mode] = {"images": len(r.ok), "images_per_second": round(r.rate, 1), "workers": r.workers,
                     "load_after": load()}
    return out
