"""Contrastive fine-tuning of blocks ``split``.. of the retrieval network (stage 3 of a fit).

Each step, an augmented view of a catalogue image must pick out that image's clean embedding
among *all* catalogue images (a memory bank of clean embeddings, refreshed as the network changes;
InfoNCE with temperature ``tau``), plus the symmetric in-batch term. The frozen first blocks run in
onnxruntime (3-4x faster than torch on a CPU); clean images' frozen features are computed once
(stage 1). Checkpointed every ``ckpt_every`` steps; a run stopped by its time budget resumes.
"""

from __future__ import annotations

import json
import math
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import DressfinderError
from .augment import AugmentedViews
from .config import FitConfig
from .export import export_onnx, trunk_export
from .features import ort_session
from .network import embed_trunk, torch_module
from .workdir import Progress, save_atomic

SETTINGS = ("epochs", "batch", "split", "lr", "head_lr", "tau", "dim", "seed", "train_proj")


class ContrastiveTrainer:
    """Fine-tunes ``net`` in place on the frozen trunk features ``trunk`` of the training images."""

    def __init__(self, net, cfg: FitConfig, aug: AugmentedViews, trunk: np.ndarray,
                 validate: Callable[[np.ndarray], dict[str, float]], history: dict[str, Any], say: Progress,
                 work: Path, t_start: float):
        self.net, self.cfg, self.aug, self.trunk = net, cfg, aug, trunk
        self.validate, self.history, self.say, self.work, self.t_start = validate, history, say, work, t_start
        self.n = len(trunk)
        self.settings = {k: getattr(cfg, k) for k in SETTINGS}
        # set by run()
        self.steps_per_epoch = self.total_steps = self.warm = 0
        self.ckpt_path: Path | None = None
        self.opt = self.bank_t = self.trunk_sess = self.pool = None

    # -- set-up ----------------------------------------------------------------------------------
    def _optimizer(self):
        """Trainable: blocks >= split, head conv/bn, GeM exponents, projection."""
        torch, cfg = torch_module(), self.cfg
        for p in self.net.parameters():
            p.requires_grad = False
        body = self.net.body_parameters(cfg.split)
        head = self.net.head_parameters()
        for p in body + head:
            p.requires_grad = True
        return torch.optim.AdamW([{"params": body, "lr": cfg.lr, "weight_decay": 1e-5},
                                  {"params": head, "lr": cfg.head_lr, "weight_decay": 0.0}])

    def _resume(self, ckpt_path: Path, total_steps: int) -> tuple[int, np.ndarray]:
        torch = torch_module()
        ck = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        if ck.get("settings") != self.settings:
            raise DressfinderError(f"{ckpt_path} was made with other settings ({ck.get('settings')}); "
                                   "use the same ones, --no-resume, or another --work")
        self.net.load_state_dict(ck["net"])
        self.opt.load_state_dict(ck["opt"])
        step = int(ck["step"])
        self.history.update(ck["history"])
        self.say.say(f"resuming contrastive training at step {step}/{total_steps}")
        return step, ck["bank"]

    def _first_bank(self) -> np.ndarray:
        torch = torch_module()
        self.say.say("memory bank: embedding the catalogue")
        with torch.no_grad():
            bank = embed_trunk(self.net, self.trunk, self.cfg.split)
        self.history["val"].append({"step": 0, **self.validate(bank)})
        v0 = self.history["val"][-1]
        self.say.say(f"step 0: held-out R@1 {v0['recall@1']:.3f}  R@10 {v0['recall@10']:.3f}")
        return bank

    # -- one step --------------------------------------------------------------------------------
    def _batch_indices(self, s: int) -> np.ndarray:
        epoch, k = divmod(s, self.steps_per_epoch)
        perm = np.random.default_rng([self.cfg.seed, epoch]).permutation(self.n)
        return perm[k * self.cfg.batch:(k + 1) * self.cfg.batch]

    def _load_views(self, s: int):
        idx = self._batch_indices(s)
        epoch = s // self.steps_per_epoch
        return idx, np.stack(list(self.pool.map(lambda i: self.aug.view(int(i), epoch), idx)))

    def _set_lr(self, step: int) -> float:
        """Linear warm-up, then cosine decay; returns the scale."""
        lr_scale = min(1.0, (step + 1) / self.warm) * 0.5 * (1 + math.cos(math.pi * step / self.total_steps))
        for g, base in zip(self.opt.param_groups, (self.cfg.lr, self.cfg.head_lr)):
            g["lr"] = base * lr_scale
        return lr_scale

    def _train_step(self, idx: np.ndarray, views: np.ndarray) -> tuple[float, float]:
        torch = torch_module()
        F = torch.nn.functional
        net, tau = self.net, self.cfg.tau
        t_aug = torch.from_numpy(self.trunk_sess(views))
        t_clean = torch.from_numpy(np.asarray(self.trunk[idx], np.float32))
        z = net.embed_raw(net.raw_from(torch.cat([t_aug, t_clean]), self.cfg.split))
        za, zc = z[:len(idx)], z[len(idx):]
        idx_t = torch.from_numpy(idx)
        # photo -> its catalogue image among all catalogue images (bank; this batch's rows fresh)
        # (the bank's columns of this batch's images are replaced by their fresh embeddings)
        logits_bank = (za @ self.bank_t.T).index_fill(1, idx_t, -1e4)
        own = (za * zc).sum(1, keepdim=True)
        in_batch = (za @ zc.T).masked_fill(torch.eye(len(idx), dtype=torch.bool), -1e4)
        logits = torch.cat([own, in_batch, logits_bank], 1) / tau
        loss_q = F.cross_entropy(logits, torch.zeros(len(idx), dtype=torch.long))
        loss_c = F.cross_entropy((zc @ za.T) / tau, torch.arange(len(idx)))
        loss = loss_q + 0.5 * loss_c
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        with torch.no_grad():
            self.bank_t[idx_t] = zc.detach()
        return loss_q.item(), loss_c.item()

    # -- after a step ----------------------------------------------------------------------------
    def _save(self, step: int) -> None:
        torch = torch_module()
        save_atomic(lambda p: torch.save({"net": self.net.state_dict(), "opt": self.opt.state_dict(), "step": step,
                                          "settings": self.settings,
                                          "bank": self.bank_t.numpy(), "history": self.history}, p), self.ckpt_path)

    def _after_step(self, step: int, loss_q: float) -> None:
        """Bank refresh at the end of an epoch, validation, checkpoint."""
        torch, spe = torch_module(), self.steps_per_epoch
        end_of_epoch = step % spe == 0
        if end_of_epoch:   # refresh the whole bank with the current network
            with torch.no_grad():
                self.bank_t = torch.from_numpy(embed_trunk(self.net, self.trunk, self.cfg.split))
        if step % self.cfg.val_every == 0 or end_of_epoch or step == self.total_steps:
            v = self.validate(self.bank_t.numpy())
            self.history["val"].append({"step": step, "epoch": round(step / spe, 2), **v,
                                        "seconds": round(time.perf_counter() - self.t_start, 1)})
            self.say.say(f"\nstep {step} (epoch {step / spe:.2f}): held-out R@1 {v['recall@1']:.3f}  "
                         f"R@10 {v['recall@10']:.3f}  loss {loss_q:.3f}")
            (self.work / "history.json").write_text(json.dumps(self.history, indent=2) + "\n")
        if step % self.cfg.ckpt_every == 0 or step == self.total_steps:
            self._save(step)

    # -- the run ---------------------------------------------------------------------------------
    def _loop(self, step: int) -> int:
        """Steps until the end or the time budget; returns the step reached."""
        cfg, total_steps = self.cfg, self.total_steps
        bar = self.say.bar(total_steps, "contrastive", unit="step")
        bar.update(step)
        pending = self.pool.submit(self._load_views, step) if step < total_steps else None
        t_run = time.perf_counter()
        try:
            while step < total_steps:
                idx, views = pending.result()
                pending = self.pool.submit(self._load_views, step + 1) if step + 1 < total_steps else None
                lr_scale = self._set_lr(step)
                loss_q, loss_c = self._train_step(idx, views)
                step += 1
                self.history["loss"].append([step, round(loss_q, 4), round(loss_c, 4)])
                bar.update(1)
                bar.set_postfix(loss=f"{loss_q:.3f}", lr=f"{cfg.lr * lr_scale:.1e}")
                self._after_step(step, loss_q)
                if cfg.time_budget and time.perf_counter() - t_run > cfg.time_budget and step < total_steps:
                    self._save(step)
                    self.say.say(f"\ntime budget reached at step {step}/{total_steps}; rerun with --resume to go on")
                    break
        finally:
            bar.close()
            if pending is not None:
                pending.cancel()
            self.pool.shutdown(wait=False, cancel_futures=True)
        return step

    def run(self, steps_per_epoch: int, total_steps: int, ckpt_path: Path, resume: bool) -> int:
        """Train to ``total_steps`` (resuming from ``ckpt_path``); returns the steps trained."""
        torch, split = torch_module(), self.cfg.split
        self.steps_per_epoch, self.total_steps, self.ckpt_path = steps_per_epoch, total_steps, ckpt_path
        self.opt = self._optimizer()
        self.warm = min(50, total_steps // 10 + 1)
        step, bank = self._resume(ckpt_path, total_steps) if resume and ckpt_path.exists() else (0, None)
        if bank is None:
            bank = self._first_bank()
        self.bank_t = torch.from_numpy(bank)
        trunk_onnx = export_onnx(trunk_export(self.net, split, with_raw=False), self.work / f"trunk-{split}.onnx",
                                 ("trunk",))
        self.trunk_sess = ort_session(trunk_onnx, threads=None)
        self.pool = ThreadPoolExecutor(2)
        step = self._loop(step)
        if step < total_steps:
            raise DressfinderError(f"training stopped at step {step} of {total_steps}; rerun with --resume")
        for p in self.net.parameters():
            p.requires_grad = False
        self.net.eval()
        return step
