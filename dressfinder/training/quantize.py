"""Make the 8-bit variant of the default encoder from the float32 one (not on the serving path).

::

    python -m dressfinder.training.quantize ../shared/data            # or scripts/quantize_default_model.sh

Static quantization with onnxruntime's own tools: QDQ format, int8 weights per output channel,
uint8 activations whose ranges are calibrated (percentile of the histogram) on ``--images``
(default 200) catalogue pictures, spread evenly over the catalogue (sorted paths, every n-th; the default model's held-out
dresses are left out), preprocessed exactly as the encoder does. The convolutions are quantized
except the first :data:`FLOAT_FIRST` (the stem on raw pixels and the first two blocks, at full resolution,
whose depthwise convolutions lose the most to int8 weights) and the last one (the 1x1 head conv
whose 1280 channels are pooled); the small head after them (GeM pooling, whitening, normalisation,
and all of the ``patches`` output's nodes) stays float32 too. Measured by ``scripts/int8_agreement.py`` on 200 region crops of screens, scenes
and close-ups (cosine to the float32 vectors; 2026-12-01): with only the stem and head conv float
the median was 0.992, 5th percentile 0.984, minimum 0.947; with the first two blocks float as well
0.998 / 0.996 / 0.994, for about 19 % of the model's int8 speed at batch 32 (326 -> 266 images/s;
float32 191). Keeping only some of those convolutions float (the depthwise ones) breaks the
quantized graph (median 0.95): keep whole blocks. Writes
``dressfinder/models/effnet-tuned.int8.onnx`` and ``effnet-tuned.int8.json`` (what it was made from).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from ..extras import require

CALIBRATION_IMAGES = 200
#: the first convolutions kept float32 (graph order: stem; block 0's depthwise and projection;
#: block 1's expansion, depthwise and projection)
FLOAT_FIRST = 6
CALIBRATION_BATCH = 8
METHODS = {"minmax": lambda c: c.MinMax, "percentile": lambda c: c.Percentile, "entropy": lambda c: c.Entropy}
#: the head after the convolutions (GeM pooling's powers and means, the whitening MatMul, the
#: L2 normalisations) stays float32: a negligible share of the time, and its inputs (x**p, the
#: projection) are where rounding would hurt most
HEAD_OPS = ("Pow", "ReduceMean", "Reciprocal", "Mul", "Sub", "MatMul", "Div", "ReduceL2")
#: the nodes of the ``patches`` output (training/patches.py) stay float32 too, all of them
PATCH_NODES = "/patches/"


def calibration_images(folder: Path, n: int, exclude: Sequence[str] = ()) -> list[Path]:
    """``n`` readable catalogue images spread evenly over the sorted list of ``folder``'s images
    (every n-th; an unreadable one is skipped and the next readable one past the evenly spread
    ones takes its place)."""
    from ..errors import ImageError
    from ..images import IMAGE_EXTENSIONS, load_image

    skip = set(exclude)
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS
                   and p.relative_to(folder).as_posix() not in skip)
    step = max(1, len(paths) // max(n, 1))
    spread = paths[::step]
    picked: list[Path] = []
    for p in spread + [p for i, p in enumerate(paths) if i % step]:
        if len(picked) == n:
            break
        try:
            load_image(p, draft=64).load()
        except (ImageError, OSError):
            continue
        picked.append(p)
    if not picked:
        raise SystemExit(f"quantize: no readable images under {folder}")
    return picked


class _Reader:
    """onnxruntime's CalibrationDataReader protocol: ``get_next()`` -> feed dict or None."""

    def __init__(self, input_name: str, paths: Sequence[Path]):
        self.input_name, self.paths = input_name, list(paths)
        self._it = self._batches()

    def _batches(self) -> Iterator[dict[str, np.ndarray]]:
        from ..encoders.effnet import to_input
        from ..encoders.effnet_tuned import INPUT_SIZE
        from ..images import load_image

        for i in range(0, len(self.paths), CALIBRATION_BATCH):
            arrays = [to_input(load_image(p, draft=INPUT_SIZE), INPUT_SIZE) for p in self.paths[i:i + CALIBRATION_BATCH]]
            yield {self.input_name: np.stack(arrays).astype(np.float32)}

    def get_next(self):
        return next(self._it, None)

    def rewind(self) -> None:
        self._it = self._batches()


def quantize(src: Path, dest: Path, images: Sequence[Path], method: str = "percentile",
             float_first: int = FLOAT_FIRST) -> dict:
    """Write the QDQ int8 model of ``src`` to ``dest`` (its first ``float_first`` convolutions and
    its last one kept float32); return what went into it."""
    onnx = require("onnx", "train", "quantizing the encoder")
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    t = time.perf_counter()
    graph = onnx.load(str(src), load_external_data=False).graph
    input_name = graph.input[0].name
    convs = [n.name for n in graph.node if n.op_type == "Conv"]
    head = [n.name for n in graph.node if n.op_type in HEAD_OPS or n.name.startswith(PATCH_NODES)] \
        + convs[:max(1, float_first)] + convs[-1:]
    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        out = Path(tmp) / "int8.onnx"
        quantize_static(str(pre), str(out), _Reader(input_name, images), quant_format=QuantFormat.QDQ,
                        per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=METHODS[method](CalibrationMethod), nodes_to_exclude=head)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(out), str(dest))
    return {"format": 1, "source": src.name, "quantization": "static, QDQ, per-channel int8 weights, "
            f"uint8 activations, {method} calibration (onnxruntime.quantization.quantize_static); "
            f"the first {max(1, float_first)} convolutions, the last one and the pooling/whitening head kept float32",
            "float32_nodes": len(head),
            "calibration_images": len(images), "seconds": round(time.perf_counter() - t, 1)}


def main(argv: list[str] | None = None) -> int:
    from ..encoders.effnet_tuned import DEFAULT_MODEL, int8_path, model_meta

    p = argparse.ArgumentParser(prog="python -m dressfinder.training.quantize", description=__doc__.split("\n\n")[0])
    p.add_argument("catalog", help="folder of catalogue images to calibrate on (e.g. ../shared/data)")
    p.add_argument("--model", default=str(DEFAULT_MODEL), help="float32 .onnx to quantize (default: the shipped one)")
    p.add_argument("--out", default=None, help="int8 .onnx to write (default: MODEL with .int8.onnx)")
    p.add_argument("--images", type=int, default=CALIBRATION_IMAGES, help="calibration images (default 200)")
    p.add_argument("--method", default="percentile", choices=sorted(METHODS),
                   help="activation range calibration (default percentile: 99.999 %% of the histogram)")
    p.add_argument("--float-first", type=int, default=FLOAT_FIRST,
                   help=f"first convolutions kept float32 (default {FLOAT_FIRST}: the stem and the first two blocks)")
    a = p.parse_args(argv)
    src, folder = Path(a.model), Path(a.catalog)
    if not src.is_file() or not folder.is_dir():
        print(f"quantize: need a model file and a catalogue folder ({src}, {folder})", file=sys.stderr)
        return 2
    dest = Path(a.out) if a.out else int8_path(src)
    held = model_meta(src).get("held_out_file")
    held_path = src.with_name(held) if held else None
    exclude = held_path.read_text().split() if held_path and held_path.is_file() else []
    images = calibration_images(folder, a.images, exclude)
    meta = quantize(src, dest, images, a.method, a.float_first)
    src_meta = model_meta(src)
    keep = ("name", "dim", "input_size", "metric", "preprocess", "thresholds", "near_duplicate_cosine")
    meta.update({k: src_meta[k] for k in keep if k in src_meta})
    meta["precision"] = "int8"
    dest.with_name(dest.name[:-len(".onnx")] + ".json").write_text(json.dumps(meta, indent=2) + "\n")
    print(f"quantize: wrote {dest} ({dest.stat().st_size / 2**20:.1f} MiB) from {src.name}, "
          f"calibrated on {len(images)} images in {meta['seconds']} s", file=sys.stderr)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
