"""A training run's settings (``FitConfig``) and which images it keeps out of training."""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Sequence


@dataclass
class FitConfig:
    dim: int = 512
    epochs: float = 0.0          # contrastive fine-tuning epochs over the training images (0: whitening only)
    batch: int = 48
    split: int = 11              # blocks [0, split) stay frozen
    lr: float = 1e-5             # AdamW moves every weight by ~lr a step: keep it small for pretrained blocks
    head_lr: float = 1e-4
    tau: float = 0.05
    views: int = 2               # augmented views per training image for fitting the whitening
    holdout: float = 0.1         # share of the query-like images kept out of training entirely
    seed: int = 1234             # training randomness (the evaluation uses other seeds)
    val_every: int = 200         # steps between validations
    ckpt_every: int = 50         # steps between checkpoints
    backdrops: int = 300
    time_budget: float | None = None   # seconds: stop training (cleanly, resumable) after this long
    refit_whitening: bool = True       # fit the whitening again after fine-tuning (kept if it validates better)
    train_proj: str = "whitened"       # projection during fine-tuning: the learned whitening, or "pca" (a rotation)
    screen_views: float = 0.0          # share of augmented views that are photos of a screen (augment.ScreenPhoto)
    closeup_views: float = 0.0         # share that are close-ups of the fabric (augment.PhotoAugment.closeup)


def is_query_like(pid: str) -> bool:
    return "dress" in pid.lower()


def holdout_ids(ids: Sequence[str], share: float) -> set[str]:
    """A deterministic share of the query-like ids (all ids when none is query-like)."""
    if share <= 0:
        return set()
    pool = [i for i in ids if is_query_like(i)] or list(ids)
    return {i for i in pool if zlib.crc32(("holdout:" + i).encode("utf-8")) % 1000 < share * 1000}
