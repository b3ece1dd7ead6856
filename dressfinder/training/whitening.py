"""Learned whitening (closed form): the projection that removes what a shopper's photo changes.

Pairs (photo-like augmented view, clean catalogue image) give the covariance of what changes
between a shopper's photo and the product picture; the projection whitens that away, then keeps
the ``dim`` directions in which catalogue images differ most (Radenovic et al., "Fine-tuning CNN
image retrieval with no human annotation"). Fitted on the pretrained features (stage 2 of a fit)
and again on the fine-tuned ones (stage 4), kept then only if it validates better.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .augment import AugmentedViews
from .export import export_onnx, trunk_export
from .features import clean_input, features, ort_session
from .network import set_projection
from .workdir import Progress, save_atomic


def learned_whitening(clean: np.ndarray, views: np.ndarray, view_of: np.ndarray, dim: int,
                      shrink: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """(mean, projection (dim, d)) whitening what changes between a photo and its product picture.

    ``clean``: (n, d) raw descriptors of catalogue images; ``views``: (m, d) of augmented views;
    ``view_of``: (m,) row of ``clean`` each view was made from.
    """
    clean = np.asarray(clean, np.float64)
    views = np.asarray(views, np.float64)
    d = clean.shape[1]
    mean = clean.mean(0)
    diff = views - clean[view_of]
    cs = diff.T @ diff / len(diff)
    cs += shrink * np.trace(cs) / d * np.eye(d)
    w, v = np.linalg.eigh(cs)
    p1 = (v / np.sqrt(np.maximum(w, 1e-12))) @ v.T           # cs^(-1/2)
    x = (clean - mean) @ p1.T
    cd = x.T @ x / len(x)
    w2, v2 = np.linalg.eigh(cd)
    top = np.argsort(w2)[::-1][:dim]
    proj = v2[:, top].T @ p1
    return mean.astype(np.float32), proj.astype(np.float32)


def initial_whitening(features_npz, dim: int, work: Path):
    """Stage 2 (cached in ``<work>/whitening-0.npz``): the whitening of the pretrained features."""
    white_path = work / "whitening-0.npz"
    if not white_path.exists():
        z = features_npz
        mean, proj = learned_whitening(z["raw"], z["views_raw"], z["view_of"], dim)
        save_atomic(lambda p: np.savez(p, mean=mean, proj=proj), white_path)
    return np.load(white_path)


def pca_projection(raw: np.ndarray, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """(mean, projection): a well-conditioned space to fine-tune in (a scaled PCA rotation).

    The whitening's large gains would amplify every change of the features; it is fitted again
    after fine-tuning.
    """
    centred = raw - raw.mean(0)
    _, _, vt = np.linalg.svd(centred[:: max(1, len(centred) // 8000)], full_matrices=False)
    return raw.mean(0), vt[:dim] * math.sqrt(dim)


def refit_whitening(net, split: int, views: int, dim: int, aug: AugmentedViews, white_path: Path, work: Path,
                    say: Progress) -> None:
    """Stage 4: fit the whitening again on the fine-tuned network's features; save it to ``white_path``."""
    data, n = aug.data, len(aug.data)
    sess = ort_session(export_onnx(trunk_export(net, split), work / "trunk-raw-tuned.onnx", ("trunk", "raw")))
    with say.bar(n * (1 + views), "refit whitening") as bar:
        _, raw_t = features(sess, lambda i: clean_input(data[i]), n, bar)
        views_t = []
        for v in range(views):
            views_t.append(features(sess, lambda i, v=v: aug.view(i, -101 - v), n, bar)[1])
    mean, proj = learned_whitening(raw_t, np.concatenate(views_t), np.concatenate([np.arange(n)] * views), dim)
    save_atomic(lambda p: np.savez(p, mean=mean, proj=proj), white_path)
    del sess


def choose_whitening(net, white_path: Path, before: dict, validate, say: Progress) -> dict:
    """Use the refitted whitening if it validates better than the trained projection."""
    keep = (net.mean.clone().numpy(), net.proj.weight.detach().clone().numpy())
    wt = np.load(white_path)
    set_projection(net, wt["mean"], wt["proj"])
    after = validate()
    if after["recall@1"] + after["recall@10"] < before["recall@1"] + before["recall@10"]:
        set_projection(net, *keep)
        say.say(f"refitted whitening not better ({after} vs {before}): kept the trained projection")
        return before
    say.say(f"refitted whitening: {after} (trained projection: {before})")
    return after
