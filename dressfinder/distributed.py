"""Distributed indexing on a Dask cluster (``dressfinder index CATALOG --store S --dask local|ADDRESS``).

How the work is split
---------------------
* The **client** (the machine running ``dressfinder index``) reads each image's bytes and sends
  them, a batch of ``BATCH`` images per task, to the cluster. Workers therefore need no access to
  the catalogue's files: no shared filesystem, no object-store credentials. The client keeps only
  ``2 x workers`` batches in flight, so memory stays flat whatever the catalogue size.
* Each **worker** decodes, preprocesses and encodes its batch with an encoder it builds once and
  keeps (``embed.worker_encoder``: one per worker process, keyed by the encoder's spec), and sends
  back only the vectors (5 KB an image at 1280 dimensions) and the reasons for images it skipped.
  Model files an encoder needs (the seed autoencoder's ``.keras``) are shipped once to every
  worker; the pretrained EfficientNet is built from the ``dressfinder`` installation each worker
  must have (same version: ``load_encoder`` refuses a different one).
* The client writes the images it read into the store's ``images/`` folder, so the store comes
  out identical to a single-machine build.

``local`` starts a ``LocalCluster`` on 127.0.0.1 (one single-threaded worker process per core, no
dashboard); any other value is a scheduler address (``tcp://host:8786``) of an existing cluster
(dask-kubernetes, dask-yarn, dask-jobqueue...). Worker processes are spawned, so a script that
calls this must keep its top-level code under ``if __name__ == "__main__":``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import time
from collections import deque
from functools import partial
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .embed import BatchResult, EmbedResult, catalogue_width, cpu_count, progress_bar, encode_batch, store_image_bytes, worker_encoder, \
    worker_spec
from .encoders import Encoder
from .encoders.base import split_patches
from .errors import DressfinderError
from .extras import require

log = logging.getLogger(__name__)

BATCH = 64             # images per Dask task
CONNECT_TIMEOUT = "30s"


# --------------------------------------------------------------------------- on the workers

def _localise_model(spec: dict[str, Any], model: bytes | None, name: str | None) -> dict[str, Any]:
    """Write a shipped model file into this worker's temp folder (once) and point the spec at it."""
    if model is None:
        return spec
    digest = hashlib.sha256(model).hexdigest()[:16]
    path = Path(tempfile.gettempdir()) / "dressfinder-models" / digest / (name or "model")
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(model)
        os.replace(tmp, path)
    return {**spec, "model": str(path)}


def dask_task(spec: dict[str, Any], model: bytes | None, model_name: str | None, datas: list,
              first: int) -> BatchResult:
    """One batch on a worker: ``datas`` are image bytes (or an error text for a file the client
    could not read); returns the vectors of the readable ones."""
    from .encoders.onnx_runtime import set_session_threads

    set_session_threads(1)  # one thread per worker process: run a worker per core
    enc = worker_encoder(_localise_model(spec, model, model_name))
    t = time.perf_counter()
    readable = [(j, d) for j, d in enumerate(datas) if isinstance(d, (bytes, bytearray))]
    r = encode_batch(enc, [d for _, d in readable], 0, None)
    # map back to the batch's positions, then to the catalogue's indices
    pos = [j for j, _ in readable]
    ok = [first + pos[i] for i in r.ok]
    skipped = [(first + pos[i], reason) for i, reason in r.skipped]
    skipped += [(first + j, d) for j, d in enumerate(datas) if isinstance(d, str)]
    r.timings["busy"] = time.perf_counter() - t
    return BatchResult(len(datas), r.vectors, ok, [None] * len(ok), sorted(skipped), r.timings)


# --------------------------------------------------------------------------- on the client

def _read(source) -> bytes | str:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source)
    try:
        with open(source, "rb") as f:
            return f.read()
    except OSError as e:
        return f"cannot read: {e.strerror or e}"


def connect(address: str, workers: int | None = None):
    """(client, cluster or None) for ``"local"`` or a scheduler address."""
    dd = require("dask.distributed", "dask", "indexing with Dask")
    Client, LocalCluster = dd.Client, dd.LocalCluster

    if address == "local":
        scratch = tempfile.mkdtemp(prefix="dressfinder-dask-")  # workers' spill space, removed on close
        cluster = LocalCluster(host="127.0.0.1", dashboard_address=None, n_workers=workers or cpu_count(),
                               threads_per_worker=1, processes=True, silence_logs=logging.ERROR,
                               local_directory=scratch)
        cluster._dressfinder_scratch = scratch
        try:
            return Client(cluster), cluster
        except BaseException:
            close_local(cluster)
            raise
    try:
        return Client(address, timeout=CONNECT_TIMEOUT), None
    except (OSError, TimeoutError) as e:
        raise DressfinderError(f"cannot reach the Dask scheduler at {address}: {e}") from None


def close_local(cluster) -> None:
    import shutil

    try:
        cluster.close()
    finally:
        scratch = getattr(cluster, "_dressfinder_scratch", None)
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)


def _run_batches(client, task, sources: Sequence, images_dir: Path | None, batch: int, window: int, bar,
                 timings: dict[str, float]) -> tuple[dict[int, BatchResult], dict[int, str | None]]:
    """Submit ``task`` over batches of ``sources``, at most ``window`` at a time; the client reads the
    files and keeps the readable images' bytes (as a local build does). -> (results by first index,
    stored file by index)."""
    n, t0 = len(sources), time.perf_counter()
    results: dict[int, BatchResult] = {}
    stored: dict[int, str | None] = {}
    pending: deque = deque()
    datas_of: dict[int, list] = {}
    firsts = iter(range(0, n, batch))

    def submit_next() -> None:
        b0 = next(firsts, None)
        if b0 is None:
            return
        tr = time.perf_counter()
        datas_of[b0] = [_read(sources[i]) for i in range(b0, min(n, b0 + batch))]
        timings["read"] += time.perf_counter() - tr
        pending.append((b0, client.submit(task, datas_of[b0], b0, pure=False,
                                          key=f"dressfinder-encode-{b0}-{os.getpid()}-{t0}")))

    for _ in range(window):
        submit_next()
    while pending:
        b0, fut = pending.popleft()
        tw = time.perf_counter()
        r = fut.result()
        timings["wait"] += time.perf_counter() - tw
        fut.release()
        submit_next()
        datas, ts = datas_of.pop(b0), time.perf_counter()
        for i in r.ok:
            stored[i] = store_image_bytes(datas[i - b0], images_dir) if images_dir is not None else None
        timings["store"] += time.perf_counter() - ts
        for k, v in r.timings.items():
            timings[k] = timings.get(k, 0.0) + v
        results[b0] = r
        bar.update(r.count)
    return results, stored


def embed_with_dask(encoder: Encoder, sources: Sequence, images_dir: Path | None, address: str, *,
                    progress: bool = True, workers: int | None = None, batch: int = BATCH,
                    client=None) -> EmbedResult:
    """Encode ``sources`` (paths or bytes) on a Dask cluster; same result as ``embed.embed``.

    ``address``: ``"local"`` or a scheduler address; ``client``: an existing ``distributed.Client``
    to use instead (then ``address`` is ignored). ``workers``: size of a local cluster.
    """
    spec = worker_spec(encoder)
    if spec is None:
        raise DressfinderError(f"{encoder!r} cannot be rebuilt on Dask workers; index without --dask")
    model = model_name = None
    if spec.get("model"):
        model_path = Path(spec["model"])
        model, model_name = model_path.read_bytes(), model_path.name
    n = len(sources)
    t0 = time.perf_counter()
    own = client is None
    cluster = None
    if own:
        client, cluster = connect(address, workers)
    bar = progress_bar(n, "encoding (dask)", progress)
    timings: dict[str, float] = {"read": 0.0, "store": 0.0, "wait": 0.0}
    try:
        n_workers = max(1, len(client.scheduler_info().get("workers", {})))
        model_future = client.scatter(model, broadcast=True) if model is not None else None
        task = partial(dask_task, spec, model_future, model_name)
        results, stored = _run_batches(client, task, sources, images_dir, batch, 2 * n_workers, bar, timings)
    finally:
        bar.close()
        if own:
            client.close()
            if cluster is not None:
                close_local(cluster)
    ordered = [results[b0] for b0 in sorted(results)]
    wide = np.concatenate([r.vectors for r in ordered]) if ordered else np.zeros((0, catalogue_width(encoder)), np.float32)
    vectors, patches = split_patches(encoder, wide)
    ok = np.array([i for r in ordered for i in r.ok], np.int64)
    skipped = [s for r in ordered for s in r.skipped]
    for i, reason in skipped:
        log.warning("skipped %s: %s", sources[i] if isinstance(sources[i], (str, os.PathLike)) else f"#{i}", reason)
    return EmbedResult(vectors.astype(np.float32, copy=False), ok, [stored[i] for i in ok.tolist()], skipped,
                       time.perf_counter() - t0, {k: round(v, 3) for k, v in timings.items()}, "dask", n_workers,
                       patches)
