#!/usr/bin/env bash
# Makes dressfinder/models/effnet-tuned.int8.onnx (+ .int8.json), the 8-bit variant of the default
# encoder, from the float32 dressfinder/models/effnet-tuned.onnx: onnxruntime static quantization,
# QDQ format, per-channel int8 weights, activations calibrated on 200 catalogue images.
#
#   scripts/quantize_default_model.sh                 # DATA=../shared/data
#   DATA=/path/to/catalogue scripts/quantize_default_model.sh [--images N]
#
# Takes a minute or two on 2 cores. Rerun it whenever effnet-tuned.onnx changes (stores record the
# int8 file's digest, as they do the float32 one's).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data}
PYTHON=${PYTHON:-.venv/bin/python}
exec nice -n 10 "$PYTHON" -m dressfinder.training.quantize "$DATA" "$@"
