"""Frozen-trunk features, computed once by onnxruntime (3-4x faster than torch on a CPU).

Stage 1 of a fit: the trunk features (blocks below ``split``) and raw descriptors of every clean
training image, raw descriptors of ``views`` augmented views of each (for the whitening), and the
held-out images' features with two augmented views each (for validation). Kept in
``<work>/features.npz``.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..encoders.onnx_runtime import OnnxModel
from ..images import load_image
from .augment import AugmentedViews
from .export import export_onnx, trunk_export
from .network import INPUT_SIZE, to_array
from .workdir import Progress, save_atomic


def ort_session(path: Path, threads: int | None = None) -> OnnxModel:
    return OnnxModel(path, threads)


def clean_input(b: bytes) -> np.ndarray:
    """The network input of a catalogue image, unaugmented."""
    return to_array(load_image(b, draft=INPUT_SIZE))


def _run_ort(session, arrays_iter, n: int, bar) -> list[np.ndarray]:
    outs = None
    for batch in arrays_iter:
        res = session.session.run(None, {session.input_name: np.ascontiguousarray(batch, np.float32)})
        if outs is None:
            outs = [[] for _ in res]
        for o, r in zip(outs, res):
            o.append(r)
        bar.update(len(batch))
    return [np.concatenate(o) for o in outs] if outs else []


def _batched(items: Sequence, size: int):
    for i in range(0, len(items), size):
        yield items[i:i + size]


def features(session, producer: Callable[[int], np.ndarray], n: int, bar, batch: int = 32,
             threads: int = 2) -> list[np.ndarray]:
    """Run ``producer(i)`` (an input array) for i < n through the session, decoding in threads."""
    with ThreadPoolExecutor(threads) as pool:
        def batches():
            for chunk in _batched(range(n), batch):
                yield np.stack(list(pool.map(producer, chunk)))
        return _run_ort(session, batches(), n, bar)


def _catalogue_features(sess, aug: AugmentedViews, views: int, say: Progress) -> dict[str, np.ndarray]:
    data, n = aug.data, len(aug.data)
    with say.bar(n, "clean features") as bar:
        trunk, raw = features(sess, lambda i: clean_input(data[i]), n, bar)
    order, views_raw = [], []
    with say.bar(n * views, "augmented views") as bar:
        for v in range(views):
            _, r = features(sess, lambda i, v=v: aug.view(i, -1 - v), n, bar)
            views_raw.append(r)
            order.append(np.arange(n))
    return {"trunk": trunk.astype(np.float16), "raw": raw, "views_raw": np.concatenate(views_raw),
            "view_of": np.concatenate(order)}


def _held_out_features(sess, val_aug: AugmentedViews, say: Progress) -> dict[str, np.ndarray]:
    held_data = val_aug.data
    held_ok = [j for j, b in enumerate(held_data) if b]
    with say.bar(len(held_ok) * 3, "held-out features") as bar:
        h_trunk, h_raw = features(sess, lambda j: clean_input(held_data[held_ok[j]]), len(held_ok), bar)
        hv_trunk, hv_raw = [], []
        for v in range(2):
            t, r = features(sess, lambda j, v=v: val_aug.view(held_ok[j], v), len(held_ok), bar)
            hv_trunk.append(t)
            hv_raw.append(r)
    return {"h_trunk": h_trunk.astype(np.float16), "h_raw": h_raw,
            "hv_trunk": np.concatenate(hv_trunk).astype(np.float16), "hv_raw": np.concatenate(hv_raw),
            "hv_of": np.concatenate([np.arange(len(held_ok))] * 2), "held_ok": np.array(held_ok, np.int64)}


def frozen_features(net, split: int, views: int, aug: AugmentedViews, val_aug: AugmentedViews, work: Path,
                    say: Progress):
    """Stage 1 (cached in ``<work>/features.npz``): the loaded npz."""
    feats_path = work / "features.npz"
    if not feats_path.exists():
        onnx_path = export_onnx(trunk_export(net, split), work / "trunk-raw.onnx", ("trunk", "raw"))
        sess = ort_session(onnx_path)
        catalogue = _catalogue_features(sess, aug, views, say)
        held = _held_out_features(sess, val_aug, say)
        save_atomic(lambda p: np.savez(p, **catalogue, **held), feats_path)
        del sess
    return np.load(feats_path)
