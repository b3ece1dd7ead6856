"""ONNX export: the trunk helpers used while training, and the finished model with its sidecar files.

The finished model is ``OUT.onnx`` (image batch -> L2-normalised descriptors), ``OUT.json`` (its
settings and held-out validation, read by the ``effnet-tuned`` encoder) and ``OUT.heldout.txt``
(the images kept out of training).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Sequence

from .config import FitConfig
from .network import INPUT_SIZE, torch_module

FORMAT = 1               # of the exported model's sidecar JSON


def trunk_export(net, split: int, with_raw: bool = True):
    """Export helper: image -> trunk features at ``split`` (and the raw descriptor when ``with_raw``)."""
    torch = torch_module()

    class W(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.m = net

        def forward(self, x):
            t = self.m.trunk(x, split)
            return (t, self.m.raw_from(t, split)) if with_raw else t

    return W().eval()


def export_onnx(module, path: Path, outputs: Sequence[str] = ("features",), size: int = INPUT_SIZE) -> Path:
    """Write ``module`` (image batch -> outputs) as ONNX, atomically."""
    import warnings

    torch = torch_module()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    dummy = torch.zeros(1, 3, size, size)
    module.eval()
    try:
        with torch.no_grad(), warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            torch.onnx.export(module, (dummy,), str(tmp), input_names=["images"], output_names=list(outputs),
                              dynamic_axes={"images": {0: "batch"}, **{o: {0: "batch"} for o in outputs}},
                              opset_version=17, dynamo=False)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def write_model(net, out: Path, cfg: FitConfig, n: int, held_list: Sequence[str], steps: int,
                validation: dict[str, float], t_start: float) -> dict[str, Any]:
    """Export the fitted network to ``out`` (with the ``patches`` output, ``training/patches.py``) and
    its held-out list and settings beside it; return the settings."""
    from .patches import rewrite

    export_onnx(net, out)
    rewrite(out)
    held_path = out.with_name(out.stem + ".heldout.txt")
    held_path.write_text("".join(f"{h}\n" for h in held_list))
    meta = {
        "format": FORMAT, "name": "effnet-tuned", "dim": cfg.dim, "input_size": INPUT_SIZE, "metric": "ip",
        "preprocess": "RGB, longer side to 224, white padding to 224x224, (x - 127) / 128",
        "config": asdict(cfg), "training_images": n, "held_out": len(held_list),
        "held_out_file": held_path.name, "steps": steps, "validation": validation,
        "seconds": round(time.perf_counter() - t_start, 1),
    }
    (out.with_name(out.stem + ".json")).write_text(json.dumps(meta, indent=2) + "\n")
    return meta
