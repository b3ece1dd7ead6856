"""Give an ``effnet-tuned`` ONNX model a second output, ``patches``: the centre of the picture
pooled from the feature maps of the same forward pass (not on the serving path).

::

    python -m dressfinder.training.patches dressfinder/models/effnet-tuned.onnx   # in place

The network pools its head (1280 channels, 7x7 at 224 px) and a mid-level layer (672 channels,
14x14) with GeM over the whole map, whitens the two to ``dim`` and normalises. ``patches`` is the
same computation over the maps' centre only (:data:`CENTRE`: cells 2-4 of 7 in both directions,
the middle 3/7 of the picture), with the same GeM powers and the same whitening, so it lies in the
same space as ``features``. For a catalogue image it describes the middle of the dress (its fabric
and print at the catalogue's scale) at no extra cost; a shopper's close-up of the fabric, shrunk to
the same scale in the middle of a white picture, is compared with it (``search.closeup_hits``).
``features`` is untouched (the same nodes, the same values). ``write_model`` (training) calls this,
so a newly trained model has the output too; ``python -m dressfinder.training.quantize`` keeps the
new nodes float32.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from ..extras import require

#: The centre cells of the 7x7 head map (rows and columns from, to); the mid map (14x14) uses twice these.
CENTRE = (2, 5)
OUTPUT = "patches"
PREFIX = "/patches/"


def _find(graph, op: str, name: str):
    for n in graph.node:
        if n.op_type == op and n.name == name:
            return n
    raise ValueError(f"not an effnet-tuned model: no {op} node {name!r}")


def _pool_nodes(helper, graph, tag: str, scale: int) -> tuple[list, str]:
    """Nodes pooling the centre of the map that ``/gem_<tag>`` pools whole; returns them and the
    name of their L2-normalised output."""
    clip = _find(graph, "Clip", f"/gem_{tag}/Clip_1")      # clip(map, eps): its input is the map
    power = _find(graph, "Pow", f"/gem_{tag}/Pow")          # map ** p: its second input is p (clipped)
    inv = _find(graph, "Mul", f"/gem_{tag}/Mul")            # 1 / p
    p, n = f"{PREFIX}{tag}/", []
    a, b = CENTRE[0] * scale, CENTRE[1] * scale
    consts = {"starts": [a, a], "ends": [b, b], "axes": [2, 3]}
    for key, val in consts.items():
        n.append(helper.make_node("Constant", [], [p + key], name=p + key,
                                  value=helper.make_tensor(p + key, 7, [2], val)))
    n += [helper.make_node("Slice", [clip.input[0], p + "starts", p + "ends", p + "axes"], [p + "centre"], name=p + "Slice"),
          helper.make_node("Clip", [p + "centre", clip.input[1]], [p + "clipped"], name=p + "Clip"),
          helper.make_node("Pow", [p + "clipped", power.input[1]], [p + "pow"], name=p + "Pow"),
          helper.make_node("ReduceMean", [p + "pow"], [p + "mean"], name=p + "ReduceMean", axes=[2, 3], keepdims=0),
          helper.make_node("Pow", [p + "mean", inv.output[0]], [p + "gem"], name=p + "Pow_1"),
          helper.make_node("ReduceL2", [p + "gem"], [p + "norm"], name=p + "ReduceL2", axes=[1], keepdims=1),
          helper.make_node("Div", [p + "gem", p + "norm"], [p + "unit"], name=p + "Div")]
    return n, p + "unit"


def add_patch_output(model):
    """The model (an ``onnx.ModelProto``) with the ``patches`` output added (no-op if it has one)."""
    onnx = require("onnx", "train", "adding the patch output")
    helper = onnx.helper
    graph = model.graph
    if any(o.name == OUTPUT for o in graph.output):
        return model
    head, head_out = _pool_nodes(helper, graph, "head", 1)
    mid, mid_out = _pool_nodes(helper, graph, "mid", 2)
    sub = _find(graph, "Sub", "/Sub")                # the two pooled parts, centred ...
    proj = _find(graph, "MatMul", "/proj/MatMul")    # ... and whitened
    p = PREFIX
    tail = [helper.make_node("Concat", [head_out, mid_out], [p + "concat"], name=p + "Concat", axis=1),
            helper.make_node("Sub", [p + "concat", sub.input[1]], [p + "centred"], name=p + "Sub"),
            helper.make_node("MatMul", [p + "centred", proj.input[1]], [p + "proj"], name=p + "MatMul"),
            helper.make_node("ReduceL2", [p + "proj"], [p + "pnorm"], name=p + "ReduceL2", axes=[1], keepdims=1),
            helper.make_node("Div", [p + "proj", p + "pnorm"], [OUTPUT], name=p + "Div")]
    graph.node.extend(head + mid + tail)
    dim = next(list(i.dims) for i in graph.initializer if i.name == proj.input[1])[1]
    graph.output.append(helper.make_tensor_value_info(OUTPUT, onnx.TensorProto.FLOAT, ["batch", dim]))
    onnx.checker.check_model(model)
    return model


def rewrite(path: Path) -> None:
    """Add the output to the model file at ``path``, in place (atomically)."""
    onnx = require("onnx", "train", "adding the patch output")
    model = add_patch_output(onnx.load(str(path)))
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".onnx.tmp")
    os.close(fd)
    try:
        onnx.save(model, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m dressfinder.training.patches", description=__doc__.split("\n\n")[0])
    ap.add_argument("model", type=Path, help="an effnet-tuned float32 .onnx file (rewritten in place)")
    args = ap.parse_args(argv)
    try:
        rewrite(args.model)
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"{args.model}: output {OUTPUT!r} added (the centre of the feature maps)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
