"""The machine a measurement ran on, said once for bench and evaluate."""

from __future__ import annotations

import platform
from typing import Any


def machine() -> dict[str, Any]:
    """The machine the numbers were measured on: CPU, cores this process may use, memory, versions."""
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
    from ..embed import cpu_count
    from ..encoders.onnx_runtime import INT8_FLAGS, cpu_flags

    info = {"cpu": cpu, "int8_instructions": sorted(cpu_flags() & set(INT8_FLAGS)), "cpus": cpu_count(),
            "memory_gb": round(mem / 2**30, 1), "python": platform.python_version(),
            "platform": platform.platform(), "numpy": np.__version__, "faiss": faiss.__version__}
    try:
        import onnxruntime

        info["onnxruntime"] = onnxruntime.__version__
    except ImportError:  # pragma: no cover
        pass
    return info


def describe_machine() -> str:
    """'AMD EPYC ..., 2 cores, no VNNI': whether the CPU has the 8-bit dot-product instructions
    decides ``--precision auto`` and how the int8 encoder's numbers come out (see
    ``dressfinder/models/README.md``)."""
    info = machine()
    return f"{info['cpu'] or platform.machine()}, {info['cpus']} cores, {int8_note(info['int8_instructions'])}"


def int8_note(instructions: list[str]) -> str:
    """'avx512_vnni, avx_vnni' or 'no VNNI': how reports name the CPU's 8-bit instructions."""
    return ", ".join(instructions) or "no VNNI"
