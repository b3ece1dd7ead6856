"""``evaluate()``: the stages of one evaluation, in order: read the catalogue, make the queries, then for each configuration encode, index, search and measure."""

from __future__ import annotations
import fnmatch
import logging
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence
import numpy as np

from ...errors import DressfinderError
from ...thresholds import Thresholds

from .configs import (AUTO_STYLE_PREFIX, QuerySide, catalog_key, catalogue_keys, closeup_checked_ranked,
                      closeup_ranked, closeups, embed_cached, fused, located, measure_latency, parse_config,
                      seed_autoencoder)
from .metrics import catalog_colours, colour_share, hits_at, style_share
from .queries import make_queries
from ..machine import describe_machine
from .variants import DEFAULT_SEED, GENERATOR_VERSION, KINDS


log = logging.getLogger(__name__)


@dataclass
class Ground:
    """What the answers are judged against: the catalogue, its byte-identical copies (a copy of the
    source counts as the source), DeepFashion style folders, the held-out ids."""

    ids: list[str]
    images: list[str]
    digests: list[str]
    by_digest: dict[str, set[int]]
    styles: list[str | None]
    style_prefix: str | None
    held: set[str] | None


def read_ground(catalog: str | Path, style_prefix: str | None, heldout: str | Path | None) -> Ground:
    from ...catalog import read_catalog
    from ...encoders import file_digest

    products = read_catalog(catalog).products
    if not products:
        raise DressfinderError(f"catalogue {catalog} has no images")
    ids, images = [p.id for p in products], [p.image for p in products]
    digests = [file_digest(p, 64) for p in images]   # the whole sha256: byte-identical copies
    by_digest: dict[str, set[int]] = {}
    for i, d in enumerate(digests):
        by_digest.setdefault(d, set()).add(i)
    if style_prefix == "auto":
        style_prefix = AUTO_STYLE_PREFIX if any(pid.startswith(AUTO_STYLE_PREFIX) for pid in ids) else None
    styles: list[str | None] = [None] * len(ids)
    if style_prefix:
        for i, pid in enumerate(ids):
            if pid.startswith(style_prefix) and "/" in pid[len(style_prefix):]:
                styles[i] = pid[len(style_prefix):].split("/")[0]
    return Ground(ids, images, digests, by_digest, styles, style_prefix, read_heldout(heldout))


def read_heldout(heldout: str | Path | None) -> set[str] | None:
    if heldout == "auto":   # the shipped model's held-out images, when it has such a list
        from ...encoders.effnet_tuned import DEFAULT_MODEL

        side = DEFAULT_MODEL.with_name(DEFAULT_MODEL.stem + ".heldout.txt")
        heldout = side if side.is_file() else None
    if not heldout:
        return None
    try:
        return {ln.strip() for ln in Path(heldout).read_text().splitlines() if ln.strip()}
    except OSError as e:
        raise DressfinderError(f"cannot read --heldout {heldout}: {e.strerror}") from None


def pick_sources(ids: Sequence[str], queries: Sequence[str], max_sources: int | None, seed: int) -> list[int]:
    """The catalogue images queries are made from: those matching ``queries`` (globs), else the
    dresses (ids that say so), else everything; at most ``max_sources`` of them, drawn by ``seed``."""
    if queries:
        sources = [i for i, pid in enumerate(ids) if any(fnmatch.fnmatchcase(pid, g) for g in queries)]
        if not sources:
            raise DressfinderError(f"no catalogue id matches --queries {' '.join(queries)}")
    else:
        sources = [i for i, pid in enumerate(ids) if "dress" in pid.lower()] or list(range(len(ids)))
    if max_sources and len(sources) > max_sources:
        rng = np.random.default_rng([seed, 7])
        sources = sorted(rng.choice(sources, size=max_sources, replace=False).tolist())
    return sources


@dataclass
class Run:
    """One evaluation's shared inputs: the ground truth, the queries and where vectors are cached."""

    ground: Ground
    qs: Any                          # queries.QuerySet
    cache: Path | None
    cat_key: str
    colours: np.ndarray | None
    progress: bool
    latency: int
    epochs: int
    detect: bool = True
    scratch: tempfile.TemporaryDirectory | None = None

    @property
    def targets(self) -> list[set[int]]:
        g = self.ground
        return [g.by_digest[g.digests[s]] for s in self.qs.source]

    def model_dir(self) -> Path:
        if self.cache is not None:
            return self.cache
        if self.scratch is None:   # --no-cache: a folder that goes away with the run
            self.scratch = tempfile.TemporaryDirectory(prefix="dressfinder-eval-")
        return Path(self.scratch.name)


def rank(run: Run, cfg: Any) -> tuple[Any, Any, np.ndarray, dict[str, Any]]:
    """Encode the catalogue and the queries with ``cfg``'s encoder, index, search ->
    (encoder, index, ranked catalogue rows per query, encoding figures)."""
    from ...encoders import get_encoder
    from ...index import VectorIndex

    g, qs = run.ground, run.qs
    model = cfg.model
    if cfg.train_seed_autoencoder:
        model = str(seed_autoencoder(g.images, run.cat_key, run.model_dir(), run.epochs, run.progress))
    enc = get_encoder(cfg.encoder, precision=cfg.precision, **({"model": model} if model else {}))
    if run.progress:
        print(f"[{cfg.label}] {enc!r}", file=sys.stderr)
    cat_keys = catalogue_keys(g.ids, g.images)
    cat_vec, cat_ok, cat_secs, cat_cached, cat_patches = embed_cached(enc, g.images, run.cache, cat_keys,
                                                                       f"{cfg.label}: catalogue", run.progress)
    query_keys = [f"{qs.key}:{i}" for i in range(len(qs.data))]
    q_vec, q_ok, q_secs, _, _ = embed_cached(QuerySide(enc), qs.data, run.cache, query_keys,
                                             f"{cfg.label}: queries", run.progress)
    whole_vec, head_vec = q_vec, None
    if run.detect and len(q_vec):   # the region search's choice (regions.py), as the service makes it
        q_vec, head_vec = located(enc, [qs.data[int(i)] for i in q_ok], q_vec, cat_vec, run.cache, run.progress)
    index = VectorIndex.build(cfg.index, cat_vec, ids=cat_ok.astype(np.int64), metric=enc.metric,
                              **cfg.index_params)
    k_fetch = 10 + max((len(t) for t in run.targets), default=1)
    ranked = np.full((len(qs.data), k_fetch), -1, np.int64)
    if len(q_vec):
        _, found = index.search(q_vec, k_fetch)
        if run.detect:   # as the service ranks: the whole photo woven in, close-ups with the patch vectors
            found = fused(index, found, q_vec, whole_vec, k_fetch, head_vec)
            if cat_patches is not None:
                near = closeups(enc, [qs.data[int(i)] for i in q_ok], whole_vec, q_vec, cat_vec, run.cache,
                                run.progress)
                read: dict[int, tuple[np.ndarray, np.ndarray]] = {}
                found = closeup_ranked(found, near, q_vec, whole_vec, cat_vec, cat_patches, cat_ok.astype(np.int64),
                                       k_fetch, Thresholds.of(enc), scores_out=read)
                found = closeup_checked_ranked(enc, [qs.data[int(i)] for i in q_ok], found, read,
                                               np.stack([q_vec, whole_vec], axis=1),
                                               cat_vec, cat_ok.astype(np.int64), g.images, run.cache, run.progress)
        ranked[q_ok] = found
    figures = {"catalog_encode_seconds": round(cat_secs, 1),
               "catalog_images_per_second": round(len(cat_ok) / cat_secs, 1) if cat_secs else None,
               "catalog_vectors_cached": cat_cached, "query_encode_seconds": round(q_secs, 1),
               "unreadable_queries": int(len(qs.data) - len(q_ok))}
    return enc, index, ranked, figures


def _mean(x: np.ndarray) -> float | None:
    return float(np.nanmean(x)) if np.isfinite(x).any() else None


def measure(run: Run, ranked: np.ndarray) -> dict[str, Any]:
    """Recall@1/@10 and the style and colour shares, overall, per kind and per split."""
    g, qs, targets = run.ground, run.qs, run.targets
    r1, r10 = hits_at(ranked, targets, 1), hits_at(ranked, targets, 10)
    ss = style_share(ranked, targets, g.styles, [g.styles[s] for s in qs.source], 10)
    cs = np.full(len(ranked), np.nan, np.float32)
    if run.colours is not None:
        use = np.array([qs.kinds[k] != "grayscale" for k in qs.kind]) & (run.colours[qs.source] >= 0)
        cs = colour_share(ranked, targets, run.colours, run.colours[qs.source], use, 10)
    out: dict[str, Any] = {"recall@1": float(r1.mean()) if len(r1) else float("nan"),
                           "recall@10": float(r10.mean()) if len(r10) else float("nan"),
                           "same_style@10": _mean(ss), "same_colour@10": _mean(cs), "per_kind": {}}
    for ki, kname in enumerate(qs.kinds):
        m = qs.kind == ki
        out["per_kind"][kname] = {"n": int(m.sum()), "recall@1": float(r1[m].mean()),
                                  "recall@10": float(r10[m].mean()), "same_style@10": _mean(ss[m]),
                                  "same_colour@10": _mean(cs[m])}
    if g.held is not None:
        in_held = np.array([g.ids[s] in g.held for s in qs.source])
        for name, m in (("held-out sources", in_held), ("training sources", ~in_held)):
            if m.any():
                out.setdefault("splits", {})[name] = {"n": int(m.sum()), "recall@1": float(r1[m].mean()),
                                                      "recall@10": float(r10[m].mean())}
    return out


def evaluate_config(run: Run, cfg: Any) -> dict[str, Any]:
    t_cfg = time.perf_counter()
    enc, index, ranked, figures = rank(run, cfg)
    scores = measure(run, ranked)
    lat = measure_latency(enc, index, run.qs.data, run.latency) if run.latency else {}
    res: dict[str, Any] = {"config": cfg.label, "describe": cfg.describe(enc.name), "encoder": enc.spec(),
                           "index": index.meta(), **{k: scores[k] for k in scores if k != "per_kind"},
                           "latency": lat, **figures, "per_kind": scores["per_kind"]}
    res["seconds"] = round(time.perf_counter() - t_cfg, 1)
    if run.progress:
        print(f"[{cfg.label}] R@1 {res['recall@1']:.3f}  R@10 {res['recall@10']:.3f}  "
              f"({res['seconds']:.0f} s)", file=sys.stderr)
    return res


def write_examples(examples: Path, qs: Any, ids: Sequence[str]) -> None:
    """About 40 of the queries as JPEG files, to look at."""
    examples.mkdir(parents=True, exist_ok=True)
    for j in range(0, len(qs.data), max(1, len(qs.data) // 40)):
        name = f"{qs.kinds[qs.kind[j]]}-{ids[qs.source[j]].replace('/', '_')}"
        (examples / name).with_suffix(".jpg").write_bytes(qs.data[j])


def evaluate(catalog: str | Path, configs: Sequence[str], *, queries: Sequence[str] = (),
             kinds: Sequence[str] = KINDS, seed: int = DEFAULT_SEED, per_source: int = 1,
             max_sources: int | None = None, style_prefix: str | None = None, heldout: str | Path | None = None,
             latency: int = 200, cache: Path | None = None, epochs: int = 20, progress: bool = True,
             examples: Path | None = None, colour: bool = True, detect: bool = True) -> dict[str, Any]:
    """Make the queries, run every config on them, and report (see the package's doc)."""
    t_start = time.perf_counter()
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise DressfinderError(f"unknown variant kind(s) {', '.join(unknown)}; choose from {', '.join(KINDS)}")
    g = read_ground(catalog, style_prefix, heldout)
    sources = pick_sources(g.ids, queries, max_sources, seed)
    parsed = [parse_config(c) for c in configs]
    if not parsed:
        raise DressfinderError("no configs to evaluate (--configs seed,base,default)")
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
    cat_key = catalog_key(g.ids, g.images)
    t0 = time.perf_counter()
    qs = make_queries(g.images, g.ids, sources, list(kinds), seed, per_source, cache, progress)
    t_queries = time.perf_counter() - t0
    if examples is not None:
        write_examples(examples, qs, g.ids)
    colours = catalog_colours(g.images, cat_key, cache, progress) if colour else None
    run = Run(g, qs, cache, cat_key, colours, progress, latency, epochs, detect)
    try:
        results = [evaluate_config(run, cfg) for cfg in parsed]
    finally:
        if run.scratch is not None:
            run.scratch.cleanup()
    return {
        "catalog": str(catalog), "catalog_images": len(g.ids), "query_sources": len(sources),
        "queries": len(qs.data), "kinds": list(qs.kinds), "per_source": per_source, "seed": seed,
        "generator_version": GENERATOR_VERSION, "style_prefix": g.style_prefix,
        "duplicate_groups": sum(1 for v in g.by_digest.values() if len(v) > 1),
        "query_generation_seconds": round(t_queries, 1), "seconds": round(time.perf_counter() - t_start, 1),
        "machine": describe_machine(), "results": results,
    }
