"""Training the seed's autoencoder (``dressfinder train --method autoencoder``, and ``index`` without
``--model``); the model and its encoder are in ``dressfinder/encoders/autoencoder.py``."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..encoders.autoencoder import INPUT_SIZE, build_autoencoder, load_keras, to_input
from ..errors import DressfinderError, EncoderError
from ..images import load_image


def train_autoencoder(arrays: np.ndarray, out: str | Path, *, epochs: int = 20, batch_size: int = 128,
                      validation_split: float = 0.1, seed: int = 0, verbose: int | str = "auto") -> dict[str, Any]:
    """Train on (n, 32, 32, 3) arrays in [0, 1], save a ``.keras`` file, return the loss history."""
    keras = load_keras()
    if len(arrays) < 2:
        raise EncoderError("need at least 2 images to train the autoencoder")
    keras.utils.set_random_seed(seed)
    autoencoder, _ = build_autoencoder()
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(arrays))
    n_val = max(1, int(round(len(arrays) * validation_split))) if validation_split > 0 else 0
    val, train = arrays[order[:n_val]], arrays[order[n_val:]]
    history = autoencoder.fit(train, train, epochs=epochs, batch_size=batch_size, shuffle=True,
                              validation_data=(val, val) if n_val else None, verbose=verbose)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp.keras")
    autoencoder.save(tmp)
    os.replace(tmp, out)
    return {k: [float(v) for v in vals] for k, vals in history.history.items()}


def load_training_arrays(sources: Sequence, *, progress: bool = True) -> np.ndarray:
    """Decode and squash images (paths/bytes/PIL) to (n, 32, 32, 3); unreadable ones are skipped."""
    from tqdm import tqdm

    def one(src):
        try:
            return to_input(load_image(src, draft=INPUT_SIZE))
        except DressfinderError:
            return None

    with ThreadPoolExecutor(4) as pool:
        arrays = [a for a in tqdm(pool.map(one, sources), total=len(sources), desc="loading", unit="img",
                                  disable=not progress) if a is not None]
    if not arrays:
        raise EncoderError("no readable images to train the autoencoder on")
    return np.stack(arrays)


def train_from_sources(sources: Sequence, out: str | Path, *, progress: bool = True, **kw) -> dict[str, Any]:
    """Train the seed autoencoder on a catalogue's images and save it to ``out``."""
    arrays = load_training_arrays(sources, progress=progress)
    return train_autoencoder(arrays, out, verbose="auto" if progress else 0, **kw)
