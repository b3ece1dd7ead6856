"""Peak memory of decoding one upload, each case in a fresh process (issue 14).

    python bench/decode_memory.py

Prints, per case: the file's size, the outcome (decoded size or the refusal), the peak resident
memory the decode added (VmHWM after, reset just before, minus VmRSS before), and its seconds.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tempfile
import time

CASES = {
    "png-la-6300": ("LA", (6300, 6300), "PNG"),          # the 92 KB gray+alpha PNG
    "png-rgba-4000x3000": ("RGBA", (4000, 3000), "PNG"),
    "png-rgb-6000x4000": ("RGB", (6000, 4000), "PNG"),
    "jpeg-rgb-7000x5700": ("RGB", (7000, 5700), "JPEG"),
}


def make(mode: str, size: tuple[int, int], fmt: str) -> bytes:
    from PIL import Image, ImageDraw

    im = Image.new(mode, size, (128,) * len(mode) if mode != "LA" else (128, 255))
    ImageDraw.Draw(im).ellipse((size[0] // 4, size[1] // 4, size[0] // 2, size[1] // 2),
                               fill=(20,) * len(mode) if mode != "LA" else (20, 0))
    buf = io.BytesIO()
    im.save(buf, fmt)
    return buf.getvalue()


def _status(key: str) -> int:
    """A /proc/self/status value in KB (Linux)."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(key + ":"))


def _reset_peak() -> int:
    """Reset the peak resident size to the current one (Linux: clear_refs 5); return it in KB."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return _status("VmRSS")


def one(case: str, path: str, budget: str) -> dict:
    from dressfinder.errors import DressfinderError
    from dressfinder.images import load_image

    with open(path, "rb") as f:   # made by the parent: this process's peak is the decode's alone
        data = f.read()
    before = _reset_peak()
    t0 = time.perf_counter()
    try:
        im = load_image(data, draft=224, max_decode_bytes=None if budget == "none" else int(budget))
        outcome = f"decoded to {im.size[0]}x{im.size[1]}"
    except DressfinderError as e:
        outcome = f"refused ({e.status}): {e}"
    seconds = time.perf_counter() - t0
    peak = _status("VmHWM") - before
    return {"case": case, "bytes": len(data), "budget": budget, "outcome": outcome,
            "peak_mb": round(peak / 1024, 1), "seconds": round(seconds, 2)}


def main() -> None:
    if len(sys.argv) == 4:
        print(json.dumps(one(*sys.argv[1:])))
        return
    from dressfinder.settings import Settings

    folder = tempfile.mkdtemp(prefix="decode-memory-")
    for case, spec in CASES.items():
        with open(os.path.join(folder, case), "wb") as f:
            f.write(make(*spec))
    for budget in ("none", str(Settings().max_decode_bytes)):
        for case in CASES:
            out = subprocess.run([sys.executable, __file__, case, os.path.join(folder, case), budget],
                                 capture_output=True, text=True)
            r = json.loads(out.stdout) if out.returncode == 0 else {"case": case, "error": out.stderr[-300:]}
            print(json.dumps(r))


if __name__ == "__main__":
    main()
