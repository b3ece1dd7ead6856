"""``effnet-tuned``: EfficientNet-Lite0 adapted for finding the exact dress in a shopper's photo.

The network (``training/``): EfficientNet-Lite0 fine-tuned contrastively on a catalogue,
GeM pooling of the head (1280) and of a mid-level layer (672), a learned whitening to ``dim``
dimensions, L2-normalised; one forward pass per image at 224x224, run by onnxruntime.

The shipped model is ``dressfinder/models/effnet-tuned.onnx`` (made by
``scripts/train_default_model.sh``); another one is chosen with ``model=FILE.onnx`` (``--model``).
Beside it, ``effnet-tuned.int8.onnx``: the same network quantized to 8 bits
(``scripts/quantize_default_model.sh``), about twice as fast where the CPU has VNNI instructions.
``precision``: ``"int8"``, ``"fp32"`` or ``"auto"`` (int8 where the CPU runs it faster and the file
exists, else fp32); ``None`` reads ``DRESSFINDER_PRECISION`` (default auto). A store records which
variant made its vectors (``spec()["precision"]``) and its queries use the same one.
On the query side the photo and its mirror image are both encoded and their vectors averaged
(``encode_query_arrays``): about one more forward pass per query, none per catalogue image.

Close-ups of the fabric: a model with a ``patches`` output (``training/patches.py``; the shipped
ones have it) also gives each catalogue image a *patch vector*, the middle 3/7 of its feature maps
pooled and whitened alike, from the same forward pass (``encode_catalogue_arrays``). A query photo
read as a close-up (``encode_closeup``) is shrunk to :data:`CLOSEUP_SIDE` pixels in the middle of a
white picture, so its fabric is at about the catalogue's scale, and the same centre is pooled.

A model's ``.json`` may carry ``"thresholds"``: the region search's and close-up reading's cosine
lines fitted to its score scale (``dressfinder.thresholds``, ``scripts/fit_thresholds.sh``); the
encoder's ``thresholds`` are those, else the defaults (calibrated on the model shipped until
2026-12-05).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..errors import EncoderError
from ..thresholds import Thresholds
from .base import Encoder, file_digest, keep_model_file, l2_normalize, register
from .effnet import to_input
from .onnx_runtime import OnnxModel, int8_is_faster

MODEL_DIR = Path(__file__).resolve().parent.parent / "models"
DEFAULT_MODEL = MODEL_DIR / "effnet-tuned.onnx"
INPUT_SIZE = 224
INT8_SUFFIX = ".int8.onnx"
#: A close-up's longer side in the 224-pixel picture it is encoded in (``encode_closeup``): the
#: centre cells the patch output pools cover 96 pixels; 96-128 were tried on 150 close-ups
#: (``docs/regions.md``), 128 found the most.
CLOSEUP_SIDE = 128


def int8_path(fp32: Path) -> Path:
    """Where the 8-bit variant of a float32 model lives: ``NAME.int8.onnx`` beside ``NAME.onnx``."""
    fp32 = Path(fp32)
    return fp32 if fp32.name.endswith(INT8_SUFFIX) else fp32.with_name(fp32.stem + INT8_SUFFIX)


def resolve_precision(requested: str | None, fp32_model: Path) -> str:
    """``"int8"`` or ``"fp32"`` for a request of int8 / fp32 / auto / None (the setting)."""
    if requested is None:
        from ..settings import Settings

        try:
            requested = Settings.from_env().precision
        except ValueError as e:
            raise EncoderError(str(e)) from None
    if requested == "auto":
        return "int8" if int8_path(fp32_model).is_file() and int8_is_faster() else "fp32"
    if requested not in ("int8", "fp32"):
        raise EncoderError(f"precision must be auto, int8 or fp32, not {requested!r}")
    return requested


def model_meta(path: Path) -> dict[str, Any]:
    side = path.with_name(path.stem + ".json")
    if side.is_file():
        try:
            return json.loads(side.read_text())
        except ValueError:
            pass
    return {}


class TunedEffNet(Encoder):
    name = "effnet-tuned"
    metric = "ip"
    input_size = INPUT_SIZE
    batch_size = 32
    #: for a model whose ``.json`` does not say (``"near_duplicate_cosine"``, measured for each model by
    #: ``scripts/near_duplicate_cosine.py``): the model shipped until 2026-12-05's line, where copies
    #: re-saved as JPEG q90 or resized to 90 % scored >= 0.95 for 95.5 % of 1,500 images
    near_duplicate_cosine = 0.95

    def __init__(self, model: str | None = None, threads: int | None = None, query_flip: bool = True,
                 precision: str | None = None):
        path = Path(model) if model else DEFAULT_MODEL
        given_int8 = path.name.endswith(INT8_SUFFIX)   # a store's kept copy of an int8 model, say
        self.precision = "int8" if given_int8 and precision in (None, "auto", "int8") \
            else resolve_precision(precision, path)
        if given_int8 and self.precision != "int8":
            raise EncoderError(f"{path.name} is an int8 model; use the float32 one for --precision fp32")
        if self.precision == "int8" and not given_int8:
            if not path.is_file():
                raise EncoderError(f"no effnet-tuned model at {path}")
            path = int8_path(path)
            if not path.is_file():
                raise EncoderError(f"no int8 variant of the model ({path.name}); make one with: "
                                   f"scripts/quantize_default_model.sh (or python -m dressfinder.training.quantize)")
        if not path.is_file():
            raise EncoderError(f"no effnet-tuned model at {path}; make one with: dressfinder train CATALOG "
                               f"--method contrastive --out {path}")
        self.model_path = path
        self.is_default = path.resolve() in (DEFAULT_MODEL.resolve(), int8_path(DEFAULT_MODEL).resolve())
        self.version = file_digest(path)
        meta = model_meta(path)
        self._threads = threads
        self._model: OnnxModel | None = None
        self.query_flip = bool(query_flip)
        self.dim = int(meta.get("dim") or self._probe_dim())
        self.near_duplicate_cosine = float(meta.get("near_duplicate_cosine", type(self).near_duplicate_cosine))
        try:
            self.thresholds = Thresholds.from_dict(meta.get("thresholds"))
        except ValueError as e:
            raise EncoderError(f"{path.with_suffix('.json').name}: {e}") from None
        self._patches: bool | None = None

    def _probe_dim(self) -> int:
        return int(self.model(np.zeros((1, 3, INPUT_SIZE, INPUT_SIZE), np.float32)).shape[1])

    @property
    def model(self) -> OnnxModel:
        if self._model is None:
            self._model = OnnxModel(self.model_path, self._threads)
        return self._model

    def preprocess(self, im: Image.Image) -> np.ndarray:
        return to_input(im, INPUT_SIZE)

    @property
    def patch_dim(self) -> int:  # type: ignore[override]
        """``dim`` when the model has the ``patches`` output, else 0 (looked at once, lazily)."""
        if self._patches is None:
            self._patches = "patches" in self.model.outputs
        return self.dim if self._patches else 0

    def encode_catalogue_arrays(self, batch: np.ndarray) -> np.ndarray:
        if not self.patch_dim:
            return self.encode_arrays(batch)
        features, patches = self.model.run_all(batch)[:2]
        return np.concatenate([l2_normalize(features), l2_normalize(patches)], axis=1)

    def encode_closeup(self, im: Image.Image) -> np.ndarray | None:
        if not self.patch_dim:
            return None
        small = (im if im.mode == "RGB" else im.convert("RGB")).copy()
        small.thumbnail((CLOSEUP_SIDE, CLOSEUP_SIDE), Image.Resampling.BILINEAR)
        canvas = Image.new("RGB", (INPUT_SIZE, INPUT_SIZE), (255, 255, 255))
        canvas.paste(small, ((INPUT_SIZE - small.width) // 2, (INPUT_SIZE - small.height) // 2))
        return l2_normalize(self.model.run_all(to_input(canvas, INPUT_SIZE)[None])[1])[0]

    def encode_arrays(self, batch: np.ndarray) -> np.ndarray:
        return l2_normalize(self.model(batch))

    def encode_query_arrays(self, batch: np.ndarray) -> np.ndarray:
        """Query side: the photo and its mirror image, vectors averaged (catalogue side: one pass)."""
        if not self.query_flip:
            return self.encode_arrays(batch)
        batch = np.asarray(batch, np.float32)
        both = self.model(np.concatenate([batch, batch[..., ::-1]]))
        n = len(batch)
        return l2_normalize(both[:n] + both[n:])

    def spec(self) -> dict[str, Any]:
        s = {**super().spec(), "precision": self.precision}
        if not self.query_flip:
            s["options"] = {"query_flip": False}
        if not self.is_default:
            s["model"] = str(self.model_path)
        return s

    def save_into(self, store_dir: Path) -> dict[str, Any]:
        if self.is_default:   # the installed package has it; the version check guards changes
            return self.spec()
        suffix = INT8_SUFFIX if self.precision == "int8" else ".onnx"
        name = keep_model_file(self.model_path, store_dir, f"models/effnet-tuned-{self.version}{suffix}",
                               sidecars=(".json",))
        return {**self.spec(), "model": name}


@register("effnet-tuned", precisions=("fp32", "int8"))
def _make(model: str | None = None, threads: int | None = None, query_flip: bool = True,
          precision: str | None = None, **_: Any) -> Encoder:
    return TunedEffNet(model=model, threads=threads, query_flip=query_flip, precision=precision)
