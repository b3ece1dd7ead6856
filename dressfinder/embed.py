"""Embedding many images: decode + preprocess in parallel, encode in batches, show progress,
keep finished chunks on disk so an interrupted run resumes where it stopped.

Used by ``Store.build``/``Store.add`` (and the Dask path, which runs ``prepare_one`` on workers).
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

from .encoders import Encoder
from .errors import DressfinderError
from .images import EXTENSIONS, load_image, sniff_format

log = logging.getLogger(__name__)

CHUNK = 512


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
    timings: dict[str, float] = field(default_factory=dict)

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
        tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, dest)
    return name


def prepare_one(encoder: Encoder, source, images_dir: Path | None = None) -> Prepared:
    """Read, decode and preprocess one image; never raises for a bad image."""
    try:
        if isinstance(source, (str, os.PathLike)):
            with open(source, "rb") as f:
                data = f.read()
        else:
            data = source
        im = load_image(data, draft=encoder.input_size)
        file = store_image_bytes(data, images_dir) if images_dir is not None else None
        return Prepared(encoder.preprocess(im), file)
    except DressfinderError as e:
        return Prepared(None, error=str(e))
    except OSError as e:
        return Prepared(None, error=f"cannot read: {e.strerror or e}")


def _progress(total: int, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="img", disable=not enabled, dynamic_ncols=True, smoothing=0.1)


def fingerprint(encoder: Encoder, keys: Sequence[str]) -> str:
    h = hashlib.sha256()
    h.update(repr(sorted(encoder.spec().items())).encode())
    for k in keys:
        h.update(k.encode("utf-8", "surrogatepass"))
        h.update(b"\0")
    return h.hexdigest()[:16]


def embed(encoder: Encoder, sources: Sequence, *, images_dir: Path | None = None,
          work_dir: Path | None = None, progress: bool = True, desc: str = "encoding",
          workers: int | None = None, prepared_hook: Callable[[list[Prepared]], None] | None = None
          ) -> EmbedResult:
    """Encode ``sources`` (paths or bytes). Unreadable images are skipped and reported.

    ``work_dir``: where finished chunks are kept; a rerun over the same sources with the same
    encoder reuses them (resume after a crash or Ctrl-C).
    """
    n = len(sources)
    workers = workers or min(4, max(1, (os.cpu_count() or 1)))
    t0 = time.perf_counter()
    timings = {"prepare_wait": 0.0, "encode": 0.0}
    vec_chunks, ok_chunks, files, skipped = [], [], [], []
    if work_dir is not None:
        work_dir.mkdir(parents=True, exist_ok=True)
    bar = _progress(n, desc, progress)
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="decode")
    try:
        def chunk_iter() -> Iterator[tuple[int, int]]:
            for start in range(0, n, CHUNK):
                yield start, min(n, start + CHUNK)

        for start, stop in chunk_iter():
            cached = work_dir / f"chunk-{start:09d}.npz" if work_dir is not None else None
            if cached is not None and cached.exists():
                try:
                    with np.load(cached, allow_pickle=False) as z:
                        vec_chunks.append(z["vectors"])
                        ok_chunks.append(z["ok"])
                        files.extend(str(f) or None for f in z["files"])
                        skipped.extend((int(i), str(r)) for i, r in zip(z["skip_idx"], z["skip_reason"]))
                    bar.update(stop - start)
                    continue
                except Exception:  # a chunk torn by a crash: redo it
                    cached.unlink(missing_ok=True)
            c_vecs, c_ok, c_files, c_skip = [], [], [], []
            futures = [pool.submit(prepare_one, encoder, sources[i], images_dir) for i in range(start, stop)]
            bs = encoder.batch_size
            for b0 in range(0, len(futures), bs):
                tw = time.perf_counter()
                batch = [f.result() for f in futures[b0:b0 + bs]]
                timings["prepare_wait"] += time.perf_counter() - tw
                if prepared_hook:
                    prepared_hook(batch)
                arrays = []
                for j, p in enumerate(batch):
                    idx = start + b0 + j
                    if p.array is None:
                        c_skip.append((idx, p.error or "unreadable"))
                        log.warning("skipped %s: %s", sources[idx] if isinstance(sources[idx], (str, os.PathLike))
                                    else f"#{idx}", p.error)
                    else:
                        arrays.append(p.array)
                        c_ok.append(idx)
                        c_files.append(p.file)
                if arrays:
                    te = time.perf_counter()
                    c_vecs.append(encoder.encode_arrays(np.stack(arrays)).astype(np.float32))
                    timings["encode"] += time.perf_counter() - te
                bar.update(len(batch))
            vecs = np.concatenate(c_vecs) if c_vecs else np.zeros((0, encoder.dim), np.float32)
            if cached is not None:
                tmp = cached.with_name(cached.name + ".tmp.npz")
                np.savez(tmp, vectors=vecs, ok=np.array(c_ok, np.int64),
                         files=np.array([f or "" for f in c_files], dtype=str),
                         skip_idx=np.array([i for i, _ in c_skip], np.int64),
                         skip_reason=np.array([r for _, r in c_skip], dtype=str))
                os.replace(tmp, cached)
            vec_chunks.append(vecs)
            ok_chunks.append(np.array(c_ok, np.int64))
            files.extend(c_files)
            skipped.extend(c_skip)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        bar.close()
    vectors = np.concatenate(vec_chunks) if vec_chunks else np.zeros((0, encoder.dim), np.float32)
    ok = np.concatenate(ok_chunks) if ok_chunks else np.zeros(0, np.int64)
    return EmbedResult(vectors, ok, files, skipped, time.perf_counter() - t0, timings)
