"""What every bench section shares: sizes and labels, timing statistics, the machine and its load, a free port, the CLI, photos to search with."""

from __future__ import annotations
import os
import re
import socket
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Sequence



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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli() -> list[str]:
    return [sys.executable, "-m", "dressfinder"]


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONWARNINGS": "ignore"}


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

    from ...images import load_image

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
