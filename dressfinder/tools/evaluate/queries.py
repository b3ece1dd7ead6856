"""The query set: every source image times every kind of change, made in parallel and cached by the generator version, seed and sources."""

from __future__ import annotations
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence
import numpy as np
from PIL import Image

from .variants import GENERATOR_VERSION, make_variant, variant_rng


@dataclass
class QuerySet:
    data: list[bytes]           # one JPEG per query
    source: np.ndarray          # index into the catalogue products
    kind: np.ndarray            # index into kinds
    kinds: tuple[str, ...]
    key: str


def background_pool(images: Sequence[str], exclude: set[int], seed: int, n: int = 200) -> list[Image.Image]:
    """Some catalogue pictures (not query sources) to cut backdrops from."""
    from ...images import load_image

    candidates = [i for i in range(len(images)) if i not in exclude] or list(range(len(images)))
    rng = np.random.default_rng([seed, 99])
    pick = rng.choice(len(candidates), size=min(n, len(candidates)), replace=False)
    pool = []
    for j in sorted(pick):
        try:
            pool.append(load_image(images[candidates[j]], draft=256))
        except Exception:  # noqa: BLE001 - a broken distractor just is not used
            continue
    return pool


def make_queries(images: Sequence[str], ids: Sequence[str], sources: Sequence[int], kinds: Sequence[str],
                 seed: int, per_source: int = 1, cache: Path | None = None, progress: bool = True) -> QuerySet:
    """The query variants (cached under ``cache`` by everything that decides them)."""
    from concurrent.futures import ThreadPoolExecutor

    from tqdm import tqdm

    from ...errors import DressfinderError
    from ...images import load_image

    h = hashlib.sha256(f"{GENERATOR_VERSION}|{seed}|{per_source}|{','.join(kinds)}".encode())
    for s in sources:
        h.update(ids[s].encode("utf-8", "surrogatepass") + b"\0")
        h.update(os.path.getsize(images[s]).to_bytes(8, "little"))
    key = h.hexdigest()[:16]
    path = cache / f"queries-{key}.npz" if cache else None
    if path is not None and path.exists():
        with np.load(path, allow_pickle=False) as z:
            blob, offsets = z["blob"], z["offsets"]
            data = [blob[offsets[i]:offsets[i + 1]].tobytes() for i in range(len(offsets) - 1)]
            return QuerySet(data, z["source"], z["kind"], tuple(str(k) for k in z["kinds"]), key)
    pool = background_pool(images, set(sources), seed)
    jobs = [(s, ki, r) for s in sources for ki in range(len(kinds)) for r in range(per_source)]

    def one(job):
        s, ki, r = job
        try:
            im = load_image(images[s])
        except DressfinderError:
            return None
        return make_variant(im, kinds[ki], variant_rng(seed, ids[s], kinds[ki], r), pool)

    data, src, kind = [], [], []
    with ThreadPoolExecutor(2) as ex:
        for job, out in zip(jobs, tqdm(ex.map(one, jobs), total=len(jobs), desc="making queries", unit="img",
                                       disable=not progress, dynamic_ncols=True)):
            if out is None:
                continue
            data.append(out)
            src.append(job[0])
            kind.append(job[1])
    qs = QuerySet(data, np.array(src, np.int64), np.array(kind, np.int64), tuple(kinds), key)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        offsets = np.cumsum([0] + [len(d) for d in data]).astype(np.int64)
        blob = np.frombuffer(b"".join(data), np.uint8)
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(tmp, blob=blob, offsets=offsets, source=qs.source, kind=qs.kind, kinds=np.array(kinds))
        os.replace(tmp, path)
    return qs
