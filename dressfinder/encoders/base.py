"""The ``Encoder`` interface, the registry encoders add themselves to, and helpers they share
(digests, keeping a model file in a store, precision variants)."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from PIL import Image

from ..errors import EncoderError
from ..images import ImageSource, load_image
from ..settings import PRECISIONS
from ..thresholds import DEFAULT_THRESHOLDS, Thresholds


class Encoder:
    name: str = "encoder"
    version: str = "0"
    dim: int = 0
    metric: str = "ip"
    input_size: int = 224   # short side the encoder looks at (used for reduced-size JPEG decoding)
    batch_size: int = 32
    #: cosine at or above which two different files show the same picture (``dressfinder inspect``);
    #: each encoder has its own scale and sets its own (measured) value.
    near_duplicate_cosine: float = 0.97
    #: which variant of the network makes the vectors ("fp32", or "int8" for a quantized one)
    precision: str = "fp32"
    #: width of a catalogue image's *patch* vector (its centre, for close-ups of the fabric), made
    #: by the same forward pass as its vector; 0: the encoder has none (see ``encode_catalogue_arrays``)
    patch_dim: int = 0
    #: the cosine thresholds of the region search and close-up reading on this encoder's scale
    #: (``dressfinder.thresholds``); a model may bring its own (its ``.json``'s ``"thresholds"``)
    thresholds: Thresholds = DEFAULT_THRESHOLDS

    # -- the two halves of the work ------------------------------------------------------
    def preprocess(self, im: Image.Image) -> np.ndarray:
        raise NotImplementedError

    def encode_arrays(self, batch: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def encode_catalogue_arrays(self, batch: np.ndarray) -> np.ndarray:
        """What the catalogue side stores per image: its vector, then (when ``patch_dim``) its patch
        vector, side by side: ``(n, dim + patch_dim)``. Default: ``encode_arrays``."""
        return self.encode_arrays(batch)

    def encode_closeup(self, im: Image.Image) -> np.ndarray | None:
        """A query photo read as a close-up of the fabric: a vector to compare with the catalogue's
        patch vectors; None when the encoder has none."""
        return None

    # -- conveniences ------------------------------------------------------------------------
    def load(self, src: ImageSource) -> Image.Image:
        return load_image(src, draft=self.input_size)

    def encode(self, images: Sequence[ImageSource], batch_size: int | None = None) -> np.ndarray:
        """Encode images (paths, bytes, or PIL images) into a (n, dim) float32 array."""
        bs = batch_size or self.batch_size
        out = []
        for i in range(0, len(images), bs):
            arrays = [self.preprocess(self.load(src)) for src in images[i:i + bs]]
            out.append(self.encode_arrays(np.stack(arrays)))
        if not out:
            return np.zeros((0, self.dim), np.float32)
        return np.concatenate(out).astype(np.float32, copy=False)

    # -- the query side (an encoder may spend more on a query than on a catalogue image) -------
    def encode_query_arrays(self, batch: np.ndarray) -> np.ndarray:
        """Vectors for preprocessed *query* photos; default: the same as ``encode_arrays``."""
        return self.encode_arrays(batch)

    def encode_query(self, images: Sequence[ImageSource]) -> np.ndarray:
        """Encode query photos (what ``Store.search`` should call); default: ``encode``."""
        arrays = [self.preprocess(self.load(src)) for src in images]
        if not arrays:
            return np.zeros((0, self.dim), np.float32)
        return np.asarray(self.encode_query_arrays(np.stack(arrays)), np.float32)

    def spec(self) -> dict[str, Any]:
        """What a store records to rebuild this encoder later (``load_encoder(spec, store_dir)``)."""
        return {"name": self.name, "version": self.version, "dim": self.dim, "metric": self.metric}

    def save_into(self, store_dir: Path) -> dict[str, Any]:
        """Copy whatever model files the store needs to keep; return the spec to record."""
        return self.spec()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} v{self.version} dim={self.dim} metric={self.metric}>"


def split_patches(encoder: Encoder, wide: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """``encode_catalogue_arrays``' rows -> (vectors, patch vectors or None)."""
    wide = np.asarray(wide, np.float32)
    if not encoder.patch_dim:
        return wide, None
    return wide[:, :encoder.dim], wide[:, encoder.dim:encoder.dim + encoder.patch_dim]


def l2_normalize(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(n, 1e-12)


def file_digest(path: str | Path, n: int = 12) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:n]


def keep_model_file(src: str | Path, store_dir: str | Path, name: str, sidecars: Sequence[str] = ()) -> str:
    """Copy an encoder's model file into a store as ``name`` (content-addressed by the caller, so
    rebuilds never clash), atomically; ``sidecars``: suffixes of files beside it to copy too
    (e.g. ``.json``). Returns ``name`` for the store's manifest."""
    src, dest = Path(src), Path(store_dir) / name
    if not dest.exists():
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(dest.name + ".tmp")
        shutil.copyfile(src, tmp)
        os.replace(tmp, dest)
        for suffix in sidecars:
            side = src.with_suffix(suffix)
            if side.is_file():
                shutil.copyfile(side, dest.with_suffix(suffix))
    return name


# --------------------------------------------------------------------------- registry

_REGISTRY: dict[str, Callable[..., Encoder]] = {}
_PRECISIONS: dict[str, tuple[str, ...]] = {}   # name -> the variants its factory takes (precision=...)
DEFAULT_ENCODER = "effnet-tuned"   # dressfinder/models/effnet-tuned.onnx: docs/quality.md


def registered(name: str) -> tuple[Callable[..., Encoder], tuple[str, ...]] | None:
    """A registered encoder's factory and the variants it makes; None when ``name`` is unknown."""
    return (_REGISTRY[name], _PRECISIONS.get(name, ("fp32",))) if name in _REGISTRY else None


def registered_names() -> list[str]:
    return sorted(_REGISTRY)


def register(name: str, precisions: Sequence[str] = ("fp32",)) -> Callable[[Callable[..., Encoder]], Callable[..., Encoder]]:
    """Register a factory; ``precisions``: the variants it makes (more than fp32: it takes ``precision=``)."""
    def deco(factory):
        _REGISTRY[name] = factory
        _PRECISIONS[name] = tuple(precisions)
        return factory
    return deco


def check_precision(value: str | None) -> str | None:
    if value is not None and value not in PRECISIONS:
        raise EncoderError(f"precision must be one of {', '.join(PRECISIONS)}, not {value!r}")
    return value


def spec_precision(spec: dict[str, Any]) -> str:
    """The variant a store's encoder spec was made with (stores from before int8 variants: fp32)."""
    return str(spec.get("precision") or "fp32")


def refuse_precision_mismatch(spec: dict[str, Any], requested: str | None, where: str = "this store") -> None:
    """Queries must use the variant the store was encoded with: an explicit other one is refused."""
    check_precision(requested)
    have = spec_precision(spec)
    if requested not in (None, "auto") and requested != have:
        raise EncoderError(f"{where} was encoded with the {have} variant of {spec.get('name')}; its queries "
                           f"must use it too (drop --precision / DRESSFINDER_PRECISION, or rebuild the store "
                           f"with --precision {requested})")
