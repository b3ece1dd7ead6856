#!/usr/bin/env bash
# Fits the region search's and close-up reading's cosine thresholds (dressfinder/thresholds.py) to
# another effnet-tuned model's score scale, by rank against the shipped model's, on photos the
# evaluation's generator makes with a seed of their own; --write puts them in the model's .json
# (and its int8 variant's). See dressfinder/training/fit_thresholds.py.
#
#   scripts/fit_thresholds.sh --model build/cand/effnet-tuned.onnx --write     # DATA=../shared/data
#
# About 10 minutes on 2 cores (2,100 photos, each encoded by both models).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data}
PYTHON=${PYTHON:-.venv/bin/python}
exec nice -n 10 "$PYTHON" -m dressfinder.training.fit_thresholds "$DATA" "$@"
