"""Embedding many images: decode + preprocess in parallel, encode in batches, show progress,
keep finished chunks on disk so an interrupted run resumes where it stopped.

Two ways to use the CPUs (``mode``):

* ``"threads"``: decoding threads (Pillow releases the GIL) feed batched inference in this
  process, which uses every core through onnxruntime's own thread pool;
* ``"processes"``: one worker process per core, each with its own single-threaded encoder, doing
  read + decode + preprocess + encode for whole batches (data parallel: no thread hand-offs inside
  a convolution, no GIL). Only vectors travel back. Faster on small CPUs (docs/scaling.md).

``"auto"`` uses processes for big jobs (``PROCESS_MIN`` images or more, more than one CPU, an
encoder a worker can rebuild from its spec, whose network dominates the cost) and threads
otherwise (single uploads, tests, the seed autoencoder). Worker
processes are started with ``spawn``, so a script that builds a store must keep its top-level code
under ``if __name__ == "__main__":`` (the ``dressfinder`` command does).

Used by ``Store.build``/``Store.add`` (and the Dask path, which runs ``prepare_one`` on workers).
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from .encoders import Encoder
from .encoders.base import split_patches
from .errors import DressfinderError
from .images import EXTENSIONS, load_image, sniff_format
from .settings import default_threads

log = logging.getLogger(__name__)

CHUNK = 512
PROCESS_MIN = 1024       # mode="auto": fewer images than this are done in this process
TASK = 32                # images per task sent to a worker process
# a single-threaded onnxruntime session runs EfficientNet-Lite0 ~9% faster per image on batches of
# 4-8 than of 32 (the activations stay in cache): worker processes encode in runs of this many
SINGLE_THREAD_BATCH = 8


@dataclass
class Prepared:
    """One source after decoding: the encoder's input array, or why it was skipped."""

    array: np.ndarray | None
    file: str | None = None      # stored image name (content hash + extension), when kept
    error: str | None = None


@dataclass
class EmbedResult:
    vectors: np.ndarray                       # (n_ok, dim)
    ok: np.ndarray                            # indices into the sources that were encoded
    files: list[str | None]                   # stored image name per ok source
    skipped: list[tuple[int, str]] = field(default_factory=list)  # (source index, reason)
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)   # seconds per stage (summed over workers)
    mode: str = "threads"                     # how the CPUs were used: threads or processes (or dask)
    workers: int = 1
    patches: np.ndarray | None = None         # (n_ok, patch_dim) when the encoder makes patch vectors
    resumed: int = 0                          # sources taken from an earlier run's finished chunks (work_dir)

    @property
    def rate(self) -> float:
        return len(self.ok) / self.seconds if self.seconds > 0 else 0.0


def store_image_bytes(data: bytes, images_dir: Path) -> str:
    """Keep the original bytes, content-addressed: ``ab/abcdef....jpg``. Returns the relative name."""
    fmt = sniff_format(data)
    digest = hashlib.sha256(data).hexdigest()
    name = f"{digest[:2]}/{digest}{EXTENSIONS[fmt]}"
    dest = images_dir / name
    if not dest.exists():
        dest.parent.mkdir(parents=True, exist_ok=True)
        # a temporary name of this thread's own: two products with one picture (a feed's variants)
        # are decoded side by side, and both write it; each os.replace is whole
        tmp = dest.with_name(f".{dest.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, dest)
    return name


def prepare_one(encoder: Encoder, source, images_dir: Path | None = None,
                timer: dict[str, float] | None = None) -> Prepared:
    """Read, decode and preprocess one image; never raises for a bad image.

    ``timer``: seconds spent are added to its ``read``, ``decode``, ``store`` and ``preprocess``
    keys (the resize to the encoder's input is ``preprocess``)."""
    try:
        t0 = time.perf_counter()
        if isinstance(source, (str, os.PathLike)):
            with open(source, "rb") as f:
                data = f.read()
        else:
            data = source
        t1 = time.perf_counter()
        im = load_image(data, draft=encoder.input_size)
        t2 = time.perf_counter()
        file = store_image_bytes(data, images_dir) if images_dir is not None else None
        t3 = time.perf_counter()
        array = encoder.preprocess(im)
        if timer is not None:
            t4 = time.perf_counter()
            for key, dt in (("read", t1 - t0), ("decode", t2 - t1), ("store", t3 - t2), ("preprocess", t4 - t3)):
                timer[key] = timer.get(key, 0.0) + dt
        return Prepared(array, file)
    except DressfinderError as e:
        return Prepared(None, error=str(e))
    except OSError as e:
        return Prepared(None, error=f"cannot read: {e.strerror or e}")


def progress_bar(total: int, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="img", disable=not enabled, dynamic_ncols=True, smoothing=0.1)


def fingerprint(encoder: Encoder, keys: Sequence[str]) -> str:
    h = hashlib.sha256()
    h.update(repr(sorted(encoder.spec().items())).encode())
    for k in keys:
        h.update(k.encode("utf-8", "surrogatepass"))
        h.update(b"\0")
    return h.hexdigest()[:16]


#: A finished chunk: (vectors, indices of the readable sources, their stored files, (index, reason) skipped)
Chunk = tuple


class ChunkCache:
    """Finished chunks of a build, kept in ``work_dir`` so that a rerun resumes (one .npz a chunk,
    written atomically; a torn one is redone). ``work_dir`` None: nothing is kept."""

    def __init__(self, work_dir: Path | None):
        self.dir = work_dir
        if work_dir is not None:
            work_dir.mkdir(parents=True, exist_ok=True)

    def _path(self, start: int) -> Path:
        return self.dir / f"chunk-{start:09d}.npz"

    def load(self, start: int) -> Chunk | None:
        if self.dir is None or not self._path(start).exists():
            return None
        try:
            with np.load(self._path(start), allow_pickle=False) as z:
                return (z["vectors"], z["ok"], [str(f) or None for f in z["files"]],
                        [(int(i), str(r)) for i, r in zip(z["skip_idx"], z["skip_reason"])])
        except Exception:  # a chunk torn by a crash: redo it
            self._path(start).unlink(missing_ok=True)
            return None

    def save(self, start: int, chunk: Chunk) -> None:
        if self.dir is None:
            return
        vecs, ok, files, skipped = chunk
        tmp = self._path(start).with_name(self._path(start).name + ".tmp.npz")
        np.savez(tmp, vectors=vecs, ok=np.asarray(ok, np.int64), files=np.array([f or "" for f in files], dtype=str),
                 skip_idx=np.array([i for i, _ in skipped], np.int64),
                 skip_reason=np.array([r for _, r in skipped], dtype=str))
        os.replace(tmp, self._path(start))


def _runner(encoder: Encoder, mode: str, workers: int | None, left: int, images_dir: Path | None,
            prepared_hook: Callable[[list[Prepared]], None] | None) -> "_Runner":
    """Worker processes (whole batches each) or decoding threads feeding this process's encoder."""
    cpus = cpu_count()
    spec = None
    if mode != "threads" and workers != 1 and prepared_hook is None and left and (cpus > 1 or mode == "processes"):
        if mode == "processes" or (left >= PROCESS_MIN and prefers_processes(encoder)):
            spec = worker_spec(encoder)
            if spec is None and mode == "processes":
                log.warning("%r cannot be rebuilt in a worker process: decoding in threads instead", encoder)
    if spec is not None:
        return _ProcessRunner(spec, max(1, min(workers or cpus, -(-left // TASK))), images_dir)
    return _ThreadRunner(encoder, workers or default_threads(), images_dir, prepared_hook)


def _collect(results: Iterator["BatchResult"], start: int, stop: int, batch: int, sources: Sequence, dim: int,
             bar) -> Chunk:
    """The batches of one chunk, from the runner, as one chunk."""
    vecs, ok, files, skipped = [], [], [], []
    for _ in range(start, stop, batch):
        r = next(results)
        for idx, reason in r.skipped:
            skipped.append((idx, reason))
            log.warning("skipped %s: %s", sources[idx] if isinstance(sources[idx], (str, os.PathLike))
                        else f"#{idx}", reason)
        if len(r.ok):
            vecs.append(r.vectors)
            ok.extend(r.ok)
            files.extend(r.files)
        bar.update(r.count)
    return (np.concatenate(vecs) if vecs else np.zeros((0, dim), np.float32), np.array(ok, np.int64), files, skipped)


def embed(encoder: Encoder, sources: Sequence, *, images_dir: Path | None = None,
          work_dir: Path | None = None, progress: bool = True, desc: str = "encoding",
          workers: int | None = None, prepared_hook: Callable[[list[Prepared]], None] | None = None,
          mode: str = "auto") -> EmbedResult:
    """Encode ``sources`` (paths or bytes). Unreadable images are skipped and reported.

    ``work_dir``: where finished chunks are kept; a rerun over the same sources with the same
    encoder reuses them (resume after a crash or Ctrl-C).
    ``workers``: decoding threads (``mode="threads"``) or worker processes (``"processes"``);
    ``workers=1`` always works in this process. ``mode``: ``"auto"``, ``"threads"`` or
    ``"processes"`` (see the module doc).
    """
    if mode not in ("auto", "threads", "processes"):
        raise DressfinderError(f"embed mode {mode!r}: auto, threads or processes")
    n, t0 = len(sources), time.perf_counter()
    cache = ChunkCache(work_dir)
    chunks = [(start, min(n, start + CHUNK)) for start in range(0, n, CHUNK)]
    done = {start: c for start, _ in chunks if (c := cache.load(start)) is not None}  # an earlier run's
    resumed = sum(stop - start for start, stop in chunks if start in done)
    runner = _runner(encoder, mode, workers, sum(b - a for a, b in chunks if a not in done), images_dir,
                     prepared_hook)
    parts: list[Chunk] = []
    bar = progress_bar(n, desc, progress)
    try:
        results = runner.run(sources, [(b0, min(stop, b0 + runner.batch)) for start, stop in chunks
                                       if start not in done for b0 in range(start, stop, runner.batch)])
        for start, stop in chunks:
            if start in done:
                parts.append(done.pop(start))
                bar.update(stop - start)
            else:
                parts.append(_collect(results, start, stop, runner.batch, sources, catalogue_width(encoder), bar))
                cache.save(start, parts[-1])
    finally:
        runner.close()
        bar.close()
    wide = np.concatenate([p[0] for p in parts]) if parts else np.zeros((0, catalogue_width(encoder)), np.float32)
    vectors, patches = split_patches(encoder, wide)
    ok = np.concatenate([np.asarray(p[1], np.int64) for p in parts]) if parts else np.zeros(0, np.int64)
    return EmbedResult(vectors, ok, [f for p in parts for f in p[2]], [s for p in parts for s in p[3]],
                       time.perf_counter() - t0, {k: round(v, 3) for k, v in runner.timings.items()},
                       runner.mode, runner.workers, patches, resumed)


def catalogue_width(encoder: Encoder) -> int:
    """Floats a catalogue image gets from ``encoder.encode_catalogue_arrays``: its vector and patch vector."""
    return encoder.dim + encoder.patch_dim


# --------------------------------------------------------------------------- the two runners

def cpu_count() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover
        return max(1, os.cpu_count() or 1)


@dataclass
class BatchResult:
    """One batch of sources, encoded: indices are into the full source list."""

    count: int
    vectors: np.ndarray
    ok: list[int]
    files: list[str | None]
    skipped: list[tuple[int, str]]
    timings: dict[str, float] = field(default_factory=dict)


def encode_batch(encoder: Encoder, sources: Sequence, first: int, images_dir: Path | None,
                 timer: dict[str, float] | None = None, sub_batch: int | None = None) -> BatchResult:
    """Prepare and encode ``sources`` (whose indices start at ``first``) in this thread, with a
    single-threaded encoder (a worker process): network runs of ``sub_batch`` images (default
    ``SINGLE_THREAD_BATCH`` for encoders that take small batches, the whole batch otherwise)."""
    timer = {} if timer is None else timer
    if sub_batch is None and encoder.batch_size <= 64:
        sub_batch = SINGLE_THREAD_BATCH
    prepared = [prepare_one(encoder, src, images_dir, timer=timer) for src in sources]
    return finish_batch(encoder, prepared, first, timer, sub_batch)


def finish_batch(encoder: Encoder, prepared: list[Prepared], first: int,
                 timer: dict[str, float], sub_batch: int | None = None) -> BatchResult:
    """Encode the prepared images of one batch (in runs of ``sub_batch`` through the network)."""
    arrays, ok, files, skipped = [], [], [], []
    for j, p in enumerate(prepared):
        if p.array is None:
            skipped.append((first + j, p.error or "unreadable"))
        else:
            arrays.append(p.array)
            ok.append(first + j)
            files.append(p.file)
    if arrays:
        te = time.perf_counter()
        step = sub_batch or len(arrays)
        vectors = np.concatenate([np.asarray(encoder.encode_catalogue_arrays(np.stack(arrays[i:i + step])), np.float32)
                                  for i in range(0, len(arrays), step)])
        timer["encode"] = timer.get("encode", 0.0) + time.perf_counter() - te
    else:
        vectors = np.zeros((0, catalogue_width(encoder)), np.float32)
    return BatchResult(len(prepared), vectors, ok, files, skipped, timer)


class _Runner:
    mode = "?"
    batch = 32
    workers = 1
    timings: dict[str, float]

    def run(self, sources: Sequence, batches: list[tuple[int, int]]) -> Iterator[BatchResult]:
        raise NotImplementedError

    def close(self) -> None:
        pass


class _ThreadRunner(_Runner):
    """Decode in threads, encode batches here (the encoder's own thread pool uses the cores)."""

    mode = "threads"

    def __init__(self, encoder: Encoder, workers: int, images_dir: Path | None, hook):
        self.encoder, self.images_dir, self.hook = encoder, images_dir, hook
        self.batch = max(1, int(encoder.batch_size))
        self.workers = workers
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="decode")
        self.timings = {"prepare_wait": 0.0, "encode": 0.0}

    def run(self, sources, batches):
        # look up prepare_one at call time (tests replace it); submit a few batches ahead so
        # decoding overlaps with inference
        ahead = 4
        futures: list[tuple[int, list]] = []
        it = iter(batches)

        def submit_next() -> None:
            nxt = next(it, None)
            if nxt is not None:
                b0, b1 = nxt
                futures.append((b0, [self.pool.submit(prepare_one, self.encoder, sources[i], self.images_dir)
                                     for i in range(b0, b1)]))

        for _ in range(ahead):
            submit_next()
        while futures:
            b0, fs = futures.pop(0)
            tw = time.perf_counter()
            prepared = [f.result() for f in fs]
            self.timings["prepare_wait"] += time.perf_counter() - tw
            submit_next()
            if self.hook:
                self.hook(prepared)
            yield finish_batch(self.encoder, prepared, b0, self.timings)

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


# -- worker processes --------------------------------------------------------------

def prefers_processes(encoder: Encoder) -> bool:
    """Whether ``mode="auto"`` should use worker processes for this encoder: when its network
    dominates the cost (encoders that take small batches, such as the EfficientNets), not for
    the seed's tiny 32x32 autoencoder, whose Keras runtime costs more to start in every worker
    than it saves. An encoder may say so itself with a ``prefer_processes`` attribute."""
    return bool(getattr(encoder, "prefer_processes", encoder.batch_size <= 64))


_WORKER: dict[str, Any] = {}


def worker_spec(encoder: Encoder) -> dict[str, Any] | None:
    """What a worker process needs to rebuild ``encoder`` (None: it cannot, e.g. an ad-hoc class)."""
    from .encoders import available_encoders

    try:
        spec = dict(encoder.spec())
    except Exception:
        return None
    if spec.get("name") not in available_encoders():
        return None
    if type(encoder).__module__.split(".")[0] != __name__.split(".")[0]:
        return None  # a subclass defined elsewhere: its vectors may differ
    model = spec.get("model")
    if model and not Path(model).is_absolute():
        return None  # relative to a store folder we do not know here
    return spec


def worker_encoder(spec: dict[str, Any]) -> Encoder:
    """The encoder of this worker process (or Dask worker), built once per spec and kept."""
    import json

    from .encoders import load_encoder

    key = json.dumps(spec, sort_keys=True, default=str)
    enc = _WORKER.get(key)
    if enc is None:
        enc = load_encoder(spec)
        _WORKER.clear()  # one encoder a worker: a new spec replaces the old one
        _WORKER[key] = enc
    return enc


def _process_init(threads: int) -> None:
    from .encoders.onnx_runtime import set_session_threads

    set_session_threads(threads)                       # onnxruntime sessions made here
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))   # OpenMP (FAISS, torch) reads it at load
    os.environ.setdefault("KERAS_BACKEND", "torch")
    if "torch" in sys.modules:  # pragma: no cover
        sys.modules["torch"].set_num_threads(threads)


def _process_task(spec: dict[str, Any], sources: list, first: int, images_dir: str | None) -> BatchResult:
    enc = worker_encoder(spec)
    t = time.perf_counter()
    out = encode_batch(enc, sources, first, Path(images_dir) if images_dir else None)
    out.timings["busy"] = time.perf_counter() - t
    return out


class _ProcessRunner(_Runner):
    """Whole batches (read + decode + preprocess + encode) in worker processes, one per core."""

    mode = "processes"

    def __init__(self, spec: dict[str, Any], workers: int, images_dir: Path | None):
        import multiprocessing

        from concurrent.futures import ProcessPoolExecutor

        self.spec, self.workers = spec, workers
        self.images_dir = str(images_dir) if images_dir is not None else None
        self.batch = TASK
        self.pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                                        initializer=_process_init, initargs=(1,))
        self.timings = {"wait": 0.0}

    def run(self, sources, batches):
        from collections import deque

        ahead = 3 * self.workers
        futures: deque = deque()
        it = iter(batches)

        def submit_next() -> None:
            nxt = next(it, None)
            if nxt is not None:
                b0, b1 = nxt
                futures.append(self.pool.submit(_process_task, self.spec, [_portable(sources[i]) for i in range(b0, b1)],
                                                b0, self.images_dir))

        for _ in range(ahead):
            submit_next()
        while futures:
            tw = time.perf_counter()
            r = futures.popleft().result()
            self.timings["wait"] += time.perf_counter() - tw
            submit_next()
            for k, v in r.timings.items():  # CPU-seconds summed over the workers
                self.timings[k] = self.timings.get(k, 0.0) + v
            yield r

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


def _portable(source):
    return os.fspath(source) if isinstance(source, os.PathLike) else source
