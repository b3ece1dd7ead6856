"""The seed model: a 3-layer convolutional autoencoder in Keras 3 (torch backend).

Input 32x32x3. Encoder: Conv 64 -> 32 -> 16 filters (3x3, relu, same padding), each followed by
2x2 max-pooling; bottleneck 4x4x16 = 256 values. Decoder mirrors it with upsampling. Adam.
The embedding is the **bottleneck** (the original code used the reconstruction by mistake),
compared by Euclidean distance as the seed did (``metric = "l2"``). Training it is
``dressfinder/training/autoencoder.py``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..errors import EncoderError
from ..extras import require
from .base import Encoder, file_digest, keep_model_file, register

INPUT_SIZE = 32
BOTTLENECK = 4 * 4 * 16


def load_keras():
    """Keras 3, on the torch backend (imported on first use)."""
    if "keras" not in sys.modules:
        os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = require("keras", "train", "the seed autoencoder")
    if keras.backend.backend() != "torch":
        raise EncoderError(f"Keras runs on the {keras.backend.backend()!r} backend; set KERAS_BACKEND=torch")
    return keras


def build_autoencoder():
    """(autoencoder, encoder) Keras models sharing layers; the encoder outputs the 4x4x16 bottleneck."""
    keras = load_keras()
    L = keras.layers
    inp = keras.Input((INPUT_SIZE, INPUT_SIZE, 3), name="image")
    x = inp
    for filters in (64, 32, 16):
        x = L.Conv2D(filters, 3, activation="relu", padding="same")(x)
        x = L.MaxPooling2D(2, padding="same")(x)
    code = x  # 4 x 4 x 16
    for filters in (16, 32, 64):
        x = L.Conv2D(filters, 3, activation="relu", padding="same")(x)
        x = L.UpSampling2D(2)(x)
    out = L.Conv2D(3, 3, activation="sigmoid", padding="same", name="reconstruction")(x)
    autoencoder = keras.Model(inp, out, name="seed_autoencoder")
    autoencoder.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy")
    encoder = keras.Model(inp, code, name="seed_encoder")
    return autoencoder, encoder


def to_input(im: Image.Image) -> np.ndarray:
    """Squash to 32x32 as the seed did (no padding), scale to [0, 1]."""
    return np.asarray(im.resize((INPUT_SIZE, INPUT_SIZE), Image.Resampling.BILINEAR), dtype=np.float32) / 255.0


class Autoencoder(Encoder):
    name = "autoencoder"
    metric = "l2"
    input_size = INPUT_SIZE
    dim = BOTTLENECK
    batch_size = 256

    def __init__(self, model: str | None = None):
        if not model:
            raise EncoderError("the autoencoder needs a trained model: --model FILE.keras "
                               "(dressfinder train makes one; index trains one when none is given)")
        self.model_path = Path(model)
        if not self.model_path.is_file():
            raise EncoderError(f"no such autoencoder model file: {self.model_path}")
        self.version = file_digest(self.model_path)
        self._encoder = None

    @property
    def encoder(self):
        if self._encoder is None:
            keras = load_keras()
            try:
                auto = keras.models.load_model(self.model_path, compile=False)
            except Exception as e:  # keras raises many kinds for a bad file
                raise EncoderError(f"cannot load autoencoder model {self.model_path}: {e}") from None
            # the bottleneck: output of the third max-pooling layer
            pools = [layer for layer in auto.layers if layer.__class__.__name__ == "MaxPooling2D"]
            if len(pools) != 3:
                raise EncoderError(f"{self.model_path} is not a seed autoencoder (expected 3 pooling layers)")
            self._encoder = keras.Model(auto.inputs, pools[-1].output)
        return self._encoder

    def preprocess(self, im: Image.Image) -> np.ndarray:
        return to_input(im)

    def encode_arrays(self, batch: np.ndarray) -> np.ndarray:
        code = self.encoder.predict(batch, batch_size=self.batch_size, verbose=0)
        return np.asarray(code, dtype=np.float32).reshape(len(batch), -1)

    def spec(self) -> dict[str, Any]:
        return {**super().spec(), "model": str(self.model_path)}

    def save_into(self, store_dir: Path) -> dict[str, Any]:
        name = keep_model_file(self.model_path, store_dir, f"models/autoencoder-{self.version}.keras")
        return {**super().spec(), "model": name}


@register("autoencoder")
def _make(model: str | None = None, **_: Any) -> Encoder:
    return Autoencoder(model=model)
