"""A training run's work folder and progress output.

Everything a run computes (features, whitenings, checkpoints, the validation history) is kept in
its work folder and written atomically, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Callable

from ..errors import DressfinderError
from .config import FitConfig


class Progress:
    """Progress bars and messages on stderr, or nothing when disabled."""

    def __init__(self, enabled: bool):
        self.enabled = enabled

    def bar(self, total: int, desc: str, unit: str = "img"):
        from tqdm import tqdm

        return tqdm(total=total, desc=desc, unit=unit, disable=not self.enabled, dynamic_ncols=True,
                    file=sys.stderr)

    def say(self, msg: str):
        if self.enabled:
            print(msg, file=sys.stderr, flush=True)


def save_atomic(obj_or_fn: Callable[[Path], None], path: Path) -> None:
    """``obj_or_fn(tmp)`` writes a file; it lands at ``path`` by rename."""
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")   # same suffix: np.savez adds none
    obj_or_fn(tmp)
    os.replace(tmp, path)


def check_settings(work: Path, cfg: FitConfig, resume: bool) -> None:
    """Refuse to resume a work folder made with other settings; record this run's."""
    cfg_path = work / "config.json"
    if cfg_path.exists() and resume:
        old = json.loads(cfg_path.read_text())
        keys = {"dim": None, "split": None, "seed": None, "holdout": None, "screen_views": 0.0, "closeup_views": 0.0}
        if {k: old.get(k, d) for k, d in keys.items()} != {k: getattr(cfg, k) for k in keys}:
            raise DressfinderError(f"{work} holds a run with other settings ({old}); use another --work or delete it")
    cfg_path.write_text(json.dumps(asdict(cfg), indent=2))
