"""Encoders: a batch of images in, one float32 vector per image out.

Small public surface, after sentence-transformers::

    enc = get_encoder("effnet-lite0")
    vectors = enc.encode(["a.jpg", pil_image, jpeg_bytes])   # (3, enc.dim) float32

Every encoder has a ``name``, a ``version`` (changes whenever its vectors would change), a
``dim``, a ``metric`` (``"ip"``: vectors are L2-normalised and compared by cosine;
``"l2"``: raw vectors compared by Euclidean distance, as the seed did), and splits its work into
``preprocess`` (one decoded image -> one array; pure, safe in worker processes) and
``encode_arrays`` (a stacked batch -> vectors).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import EncoderError
from .base import (DEFAULT_ENCODER, PRECISIONS, Encoder, check_precision, file_digest, keep_model_file,  # noqa: F401
                   l2_normalize, refuse_precision_mismatch, register, registered, registered_names, spec_precision)


def _ensure_builtin() -> None:
    # (always import: one of them may have been imported, and registered, on its own already)
    from . import autoencoder, effnet, effnet_tuned  # noqa: F401  (they register themselves)


def available_encoders() -> list[str]:
    _ensure_builtin()
    return registered_names()


def get_encoder(name: str | None = None, **options: Any) -> Encoder:
    """Build an encoder by registry name (``None``: the default)."""
    _ensure_builtin()
    name = name or DEFAULT_ENCODER
    found = registered(name)
    if found is None:
        raise EncoderError(f"unknown encoder {name!r}; choose from {', '.join(available_encoders())}")
    factory, variants = found
    precision = check_precision(options.pop("precision", None))
    if precision not in (None, "auto") and precision not in variants:
        raise EncoderError(f"encoder {name} has no {precision} variant (it has: {', '.join(variants)})")
    if len(variants) > 1:
        options["precision"] = precision
    return factory(**{k: v for k, v in options.items() if v is not None})


def load_encoder(spec: dict[str, Any], store_dir: str | Path | None = None) -> Encoder:
    """Rebuild the encoder a store was built with, and check it still makes the same vectors."""
    _ensure_builtin()
    options = dict(spec.get("options") or {})
    if spec.get("model"):
        model = Path(spec["model"])
        if not model.is_absolute() and store_dir is not None:
            model = Path(store_dir) / model
        options["model"] = str(model)
    options["precision"] = spec_precision(spec)   # never "auto": the variant the vectors came from
    enc = get_encoder(spec["name"], **options)
    if spec.get("version") and enc.version != spec["version"]:
        raise EncoderError(f"store was built with {spec['name']} version {spec['version']}, "
                           f"this installation has version {enc.version}; rebuild the store")
    return enc
