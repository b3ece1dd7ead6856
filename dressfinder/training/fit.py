"""Fitting the retrieval network to a catalogue (``dressfinder train --method contrastive``).

The stages, each resumable from the work folder (default ``<out>.work``):

1. frozen-trunk features of the clean training images, their augmented views and the held-out
   images (``features.py``);
2. learned whitening on the pretrained features, the starting point (``whitening.py``);
3. contrastive fine-tuning of blocks ``split``.. (``contrastive.py``; skipped when ``epochs`` is 0);
4. the whitening again, on the fine-tuned features (kept if it validates better);

then the export (``export.py``). A held-out share of the dresses is kept out of training
altogether (``<model>.heldout.txt``) and validates every stage.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import DressfinderError
from ..images import load_image
from .augment import AugmentedViews
from .config import FitConfig, holdout_ids
from .contrastive import ContrastiveTrainer
from .export import write_model
from .features import frozen_features
from .network import MID_BLOCK, embed_trunk, make_net, set_projection, torch_module
from .whitening import choose_whitening, initial_whitening, pca_projection, refit_whitening
from .workdir import Progress, check_settings


@dataclass
class TrainingImages:
    data: list[bytes]           # encoded training images (held-out ones and unreadable ones left out)
    backdrops: list[bytes]      # training images the augmentation uses as backgrounds
    held_list: list[str]        # held-out ids, sorted
    held_data: list[bytes]      # their encoded images (b"" when unreadable)


def read_training_images(images: Sequence[str], ids: Sequence[str], cfg: FitConfig,
                         say: Progress) -> TrainingImages:
    """The catalogue's images, the held-out ones set aside."""
    held = holdout_ids(ids, cfg.holdout)
    say.say(f"catalogue: {len(ids)} images; {len(held)} held out of training")
    data: list[bytes] = []
    for i, p in enumerate(images):
        if ids[i] in held:
            continue
        try:
            with open(p, "rb") as f:
                b = f.read()
            load_image(b, draft=64)
        except (OSError, DressfinderError):
            continue
        data.append(b)
    if len(data) < 8:
        raise DressfinderError("need at least 8 readable training images")
    n = len(data)
    rng = np.random.default_rng(cfg.seed)
    backdrops = [data[j] for j in rng.choice(n, size=min(cfg.backdrops, n), replace=False)]
    held_list = sorted(held)
    held_data = []
    for pid in held_list:
        try:
            with open(images[ids.index(pid)], "rb") as f:
                held_data.append(f.read())
        except OSError:
            held_data.append(b"")
    return TrainingImages(data, backdrops, held_list, held_data)


class HeldOutValidation:
    """Held-out photos (training-style augmentation, own seed) against catalogue + held-out images."""

    def __init__(self, net, split: int, trunk: np.ndarray, features_npz):
        self.net, self.split, self.trunk = net, split, trunk
        z = features_npz
        self.h_trunk, self.hv_trunk, self.hv_of = z["h_trunk"], z["hv_trunk"], z["hv_of"]

    def __call__(self, bank: np.ndarray | None = None) -> dict[str, float]:
        """Recall@1 and @10; ``bank``: the catalogue's embeddings when already at hand."""
        with torch_module().no_grad():
            if bank is None:
                bank = embed_trunk(self.net, self.trunk, self.split)
            hc = embed_trunk(self.net, self.h_trunk, self.split)
            hv = embed_trunk(self.net, self.hv_trunk, self.split)
        allv = np.concatenate([bank, hc])
        target = len(bank) + self.hv_of
        sims = hv @ allv.T
        top = np.argsort(-sims, axis=1)[:, :10]
        r1 = float((top[:, 0] == target).mean()) if len(top) else float("nan")
        r10 = float((top == target[:, None]).any(1).mean()) if len(top) else float("nan")
        return {"recall@1": r1, "recall@10": r10}


def fine_tune(net, cfg: FitConfig, aug: AugmentedViews, trunk: np.ndarray, features_npz,
              validate: HeldOutValidation, history: dict[str, Any], say: Progress, work: Path, resume: bool,
              t_start: float) -> tuple[int, dict[str, float]]:
    """Stages 3 and 4: (steps trained, final held-out validation)."""
    n = len(aug)
    steps_per_epoch = max(1, n // cfg.batch)
    total_steps = int(round(cfg.epochs * steps_per_epoch))
    if total_steps > 0 and cfg.train_proj == "pca":
        set_projection(net, *pca_projection(features_npz["raw"], cfg.dim))
    if total_steps <= 0:
        return 0, validate()
    trainer = ContrastiveTrainer(net, cfg, aug, trunk, validate, history, say, work, t_start)
    trained_steps = trainer.run(steps_per_epoch, total_steps, work / "checkpoint.pt", resume)
    white_path = work / f"whitening-{trained_steps}.npz"
    if cfg.refit_whitening and not white_path.exists():
        refit_whitening(net, cfg.split, cfg.views, cfg.dim, aug, white_path, work, say)
    before = validate()
    if not cfg.refit_whitening:
        return trained_steps, before
    return trained_steps, choose_whitening(net, white_path, before, validate, say)


def fit_model(images: Sequence[str], ids: Sequence[str], out: str | Path, *, config: FitConfig | None = None,
              work: str | Path | None = None, resume: bool = True, progress: bool = True) -> dict[str, Any]:
    """Fit the retrieval network to a catalogue; write ``out`` (.onnx) with ``out``.json beside it.

    Resumable: every stage keeps its results in ``work`` (default ``<out>.work``).
    """
    torch = torch_module()
    cfg = config or FitConfig()
    out = Path(out)
    work = Path(work) if work else out.with_name(out.name + ".work")
    work.mkdir(parents=True, exist_ok=True)
    say = Progress(progress)
    torch.set_num_threads(max(1, min(4, len(os.sched_getaffinity(0)))))
    t_start = time.perf_counter()
    check_settings(work, cfg, resume)

    imgs = read_training_images(images, ids, cfg, say)
    extra = {"screen_views": cfg.screen_views, "closeup_views": cfg.closeup_views}
    aug = AugmentedViews(imgs.data, imgs.backdrops, cfg.seed, **extra)
    val_aug = AugmentedViews(imgs.held_data, imgs.backdrops, cfg.seed + 7919, **extra)
    net = make_net(cfg.dim)
    if not 0 <= cfg.split <= MID_BLOCK:
        raise DressfinderError(f"--split must be between 0 and {MID_BLOCK}")

    z = frozen_features(net, cfg.split, cfg.views, aug, val_aug, work, say)          # stage 1
    w0 = initial_whitening(z, cfg.dim, work)                                         # stage 2
    history: dict[str, Any] = {"val": [], "loss": []}
    set_projection(net, w0["mean"], w0["proj"])
    trunk = z["trunk"]
    validate = HeldOutValidation(net, cfg.split, trunk, z)
    trained_steps, final = fine_tune(net, cfg, aug, trunk, z, validate, history, say, work, resume, t_start)  # 3, 4
    history["final_val"] = final
    say.say(f"held-out validation: R@1 {final['recall@1']:.3f}  R@10 {final['recall@10']:.3f}")

    meta = write_model(net, out, cfg, len(aug), imgs.held_list, trained_steps, final, t_start)
    (work / "history.json").write_text(json.dumps(history, indent=2) + "\n")
    return {**meta, "history": history}
