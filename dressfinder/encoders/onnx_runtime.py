"""Exporting torch modules to ONNX once (cached, atomically) and running them with onnxruntime."""

from __future__ import annotations

import fcntl
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

import numpy as np

from ..extras import require
from ..settings import cache_dir


@contextmanager
def _file_lock(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def cached_onnx(key: str, build: Callable[[], "object"], input_size: int,
                directory: Path | None = None) -> Path:
    """Return the path of ``<cache>/<key>.onnx``, exporting ``build()`` (a torch module) if absent.

    The export happens under a file lock and lands by rename, so concurrent processes (Dask
    workers, test runs) never read a half-written model.
    """
    directory = Path(directory) if directory else cache_dir()
    target = directory / f"{key}.onnx"
    if target.exists():
        return target
    with _file_lock(directory / f".{key}.lock"):
        if target.exists():
            return target
        torch = require("torch", "train", f"exporting {key} to ONNX")

        import contextlib
        import io
        import warnings

        with contextlib.redirect_stdout(io.StringIO()):  # some model packages print on load
            module = build()
        module.eval()
        dummy = torch.zeros(1, 3, input_size, input_size)
        fd, tmp = tempfile.mkstemp(dir=directory, suffix=".onnx.tmp")
        os.close(fd)
        try:
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(module, (dummy,), tmp, input_names=["images"], output_names=["features"],
                                  dynamic_axes={"images": {0: "batch"}, "features": {0: "batch"}},
                                  opset_version=17, dynamo=False)
            os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return target


#: Threads of the sessions made from now on in this process; None: one a CPU. Set by whoever runs
#: several encoders side by side (a worker process a core, a Dask worker, a benchmark), through
#: :func:`session_threads`, before the encoder is made.
_SESSION_THREADS: list[int | None] = [None]


def default_threads() -> int:
    """Threads a new session uses: what :func:`session_threads` set, else one a CPU."""
    if _SESSION_THREADS[0]:
        return _SESSION_THREADS[0]
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover
        return max(1, os.cpu_count() or 1)


@contextmanager
def session_threads(n: int | None):
    """Sessions made inside use ``n`` threads (None: one a CPU); the setting before is restored."""
    old, _SESSION_THREADS[0] = _SESSION_THREADS[0], (max(1, int(n)) if n else None)
    try:
        yield
    finally:
        _SESSION_THREADS[0] = old


def set_session_threads(n: int | None) -> None:
    """For a whole worker process: every session it makes uses ``n`` threads."""
    _SESSION_THREADS[0] = max(1, int(n)) if n else None


#: /proc/cpuinfo flags of the x86 instructions that make onnxruntime's 8-bit kernels about twice
#: as fast as float32 (dot products of 8-bit numbers); without them int8 gains little or loses.
INT8_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> set[str]:
    """The CPU's feature flags (empty where there is no /proc/cpuinfo)."""
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        return set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return set(value.split())
    return set()


def int8_is_faster(flags: set[str] | None = None) -> bool:
    """Whether this CPU runs the 8-bit variant of a network faster than float32 (VNNI present)."""
    flags = cpu_flags() if flags is None else flags
    return any(f in flags for f in INT8_FLAGS)


class OnnxModel:
    """An onnxruntime session on the CPU, with threads set for this machine."""

    def __init__(self, path: str | Path, threads: int | None = None):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or default_threads()
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.outputs = [o.name for o in self.session.get_outputs()]

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """The first output (``features``) of a batch."""
        return self.run_all(batch)[0]

    def run_all(self, batch: np.ndarray) -> list[np.ndarray]:
        """Every output of a batch, in the model's order (one forward pass)."""
        return self.session.run(None, {self.input_name: np.ascontiguousarray(batch, dtype=np.float32)})
