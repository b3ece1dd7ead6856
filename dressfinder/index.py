"""Vector indexes on FAISS: ``flat`` (exact), ``ivf`` (the seed's k-means + k-NN), ``hnsw``.

Every index is keyed by int64 ids (a store uses vector rows), supports ``add`` and ``remove``
without a rebuild, filtered search (an array of allowed ids) and returns scores where higher
means more similar: cosine similarity for ``metric="ip"`` (unit vectors), ``1 / (1 + d)`` of the
Euclidean distance ``d`` for ``metric="l2"``.

``ivf`` with ``nlist=10, nprobe=1`` is exactly the seed: vectors are clustered by k-means
(Euclidean, as scikit-learn's KMeans), a query goes to its nearest centroid and is answered by
exact k-NN among that cluster's members.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from .errors import DressfinderError

KINDS = ("flat", "ivf", "hnsw")
DEFAULTS: dict[str, dict[str, Any]] = {
    "flat": {},
    "ivf": {"nlist": 10, "nprobe": 1, "niter": 50, "nredo": 3, "seed": 1234},
    "hnsw": {"M": 32, "efConstruction": 80, "efSearch": 128},
}


def _metric(metric: str) -> int:
    if metric == "ip":
        return faiss.METRIC_INNER_PRODUCT
    if metric == "l2":
        return faiss.METRIC_L2
    raise DressfinderError(f"unknown metric {metric!r} (ip or l2)")


def kmeans(vectors: np.ndarray, k: int, *, niter: int = 50, nredo: int = 3, seed: int = 1234) -> np.ndarray:
    """Euclidean k-means (FAISS) -> (k, dim) centroids. ``k`` is capped at the number of vectors."""
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    k = max(1, min(int(k), len(x)))
    km = faiss.Kmeans(x.shape[1], k, niter=niter, nredo=nredo, seed=seed, verbose=False,
                      min_points_per_centroid=1, max_points_per_centroid=1 << 20)
    km.train(x)
    return km.centroids.copy()


@dataclass
class VectorIndex:
    kind: str
    dim: int
    metric: str = "ip"
    params: dict[str, Any] = field(default_factory=dict)
    index: Any = None
    deleted: set[int] = field(default_factory=set)  # tombstones, for kinds that cannot remove (hnsw)

    # ------------------------------------------------------------------ construction
    @classmethod
    def create(cls, kind: str, dim: int, metric: str = "ip", **params: Any) -> "VectorIndex":
        if kind not in KINDS:
            raise DressfinderError(f"unknown index kind {kind!r}; choose from {', '.join(KINDS)}")
        merged = {**DEFAULTS[kind], **{k: v for k, v in params.items() if v is not None}}
        self = cls(kind=kind, dim=int(dim), metric=metric, params=merged)
        m = _metric(metric)
        if kind == "flat":
            self.index = faiss.IndexIDMap2(faiss.IndexFlat(dim, m))
        elif kind == "hnsw":
            inner = faiss.IndexHNSWFlat(dim, int(merged["M"]), m)
            inner.hnsw.efConstruction = int(merged["efConstruction"])
            inner.hnsw.efSearch = int(merged["efSearch"])
            self.index = faiss.IndexIDMap2(inner)
        return self  # ivf is made by train()

    @classmethod
    def build(cls, kind: str, vectors: np.ndarray, ids: np.ndarray | None = None, metric: str = "ip",
              centroids: np.ndarray | None = None, **params: Any) -> "VectorIndex":
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or len(vectors) == 0:
            raise DressfinderError("cannot build an index from zero vectors")
        self = cls.create(kind, vectors.shape[1], metric, **params)
        if kind == "ivf":
            self.train(vectors, centroids=centroids)
        self.add(vectors, np.arange(len(vectors), dtype=np.int64) if ids is None else ids)
        return self

    def train(self, vectors: np.ndarray, centroids: np.ndarray | None = None) -> None:
        """ivf: cluster ``vectors`` (or take given ``centroids``) into the coarse quantizer."""
        if self.kind != "ivf":
            return
        p = self.params
        if centroids is None:
            centroids = kmeans(vectors, p["nlist"], niter=p["niter"], nredo=p["nredo"], seed=p["seed"])
        centroids = np.ascontiguousarray(centroids, dtype=np.float32)
        p["nlist"] = len(centroids)
        # Assignment is always Euclidean, as k-means' predict; lists are scanned with the metric.
        quantizer = faiss.IndexFlatL2(self.dim)
        quantizer.add(centroids)
        ivf = faiss.IndexIVFFlat(quantizer, self.dim, len(centroids), _metric(self.metric))
        ivf.is_trained = True
        ivf.nprobe = min(int(p["nprobe"]), len(centroids))
        ivf.own_fields = True
        quantizer.this.disown()
        self.index = ivf

    # ------------------------------------------------------------------ updates
    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal) - len(self.deleted) if self.index is not None else 0

    def add(self, vectors: np.ndarray, ids: np.ndarray) -> None:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        if vectors.shape != (len(ids), self.dim):
            raise DressfinderError(f"expected {len(ids)} vectors of dimension {self.dim}, got {vectors.shape}")
        if self.index is None:
            raise DressfinderError("ivf index must be trained before adding vectors")
        if len(ids):
            self.index.add_with_ids(vectors, ids)

    def remove(self, ids: np.ndarray) -> int:
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        if not len(ids):
            return 0
        if self.kind == "hnsw":  # HNSW graphs cannot drop nodes: tombstone them
            before = len(self.deleted)
            present = set(int(i) for i in ids) - self.deleted
            self.deleted |= present
            return len(self.deleted) - before
        return int(self.index.remove_ids(faiss.IDSelectorBatch(ids)))

    # ------------------------------------------------------------------ queries
    def _params(self, allowed: np.ndarray | None, nprobe: int | None, ef: int | None):
        sel = None
        keep_alive = []
        if allowed is not None:
            allowed = np.ascontiguousarray(allowed, dtype=np.int64)
            if self.deleted:
                allowed = np.setdiff1d(allowed, np.fromiter(self.deleted, np.int64))
            sel = faiss.IDSelectorBatch(allowed)
            keep_alive.append(allowed)
        elif self.deleted:
            dead = np.fromiter(self.deleted, np.int64)
            inner = faiss.IDSelectorBatch(dead)
            sel = faiss.IDSelectorNot(inner)
            keep_alive += [dead, inner]
        if self.kind == "ivf":
            params = faiss.SearchParametersIVF()
            params.nprobe = int(nprobe or self.index.nprobe)
        elif self.kind == "hnsw":
            params = faiss.SearchParametersHNSW()
            params.efSearch = int(ef or self.params["efSearch"])
        else:
            params = faiss.SearchParameters()
        if sel is not None:
            params.sel = sel
            keep_alive.append(sel)
        return params, keep_alive

    def search(self, queries: np.ndarray, k: int, *, allowed: np.ndarray | None = None,
               nprobe: int | None = None, ef: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids), each (n_queries, k); missing results have id -1 and score -inf."""
        q = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        n = len(q)
        if k <= 0 or self.index is None or self.index.ntotal == 0:
            return np.full((n, max(k, 0)), -np.inf, np.float32), np.full((n, max(k, 0)), -1, np.int64)
        if allowed is not None and len(allowed) == 0:
            return np.full((n, k), -np.inf, np.float32), np.full((n, k), -1, np.int64)
        params, _keep = self._params(allowed, nprobe, ef)
        if self.kind == "hnsw":
            # IDMap translates the selector; HNSW's own params must reach the inner index
            dist, ids = self.index.search(q, k, params=params)
        else:
            dist, ids = self.index.search(q, k, params=params)
        return self.to_scores(dist, ids), ids

    def to_scores(self, dist: np.ndarray, ids: np.ndarray) -> np.ndarray:
        if self.metric == "ip":
            scores = dist.astype(np.float32)
        else:
            scores = (1.0 / (1.0 + np.sqrt(np.maximum(dist, 0)))).astype(np.float32)
        scores[ids < 0] = -np.inf
        return scores

    def assign(self, vectors: np.ndarray) -> np.ndarray:
        """ivf: the cluster (inverted list) each vector belongs to."""
        if self.kind != "ivf":
            raise DressfinderError("only an ivf index has clusters")
        _, lists = self.index.quantizer.search(np.ascontiguousarray(vectors, dtype=np.float32), 1)
        return lists[:, 0]

    @property
    def centroids(self) -> np.ndarray:
        if self.kind != "ivf":
            raise DressfinderError("only an ivf index has centroids")
        q = self.index.quantizer
        return faiss.rev_swig_ptr(faiss.downcast_index(q).get_xb(), q.ntotal * self.dim).reshape(q.ntotal, self.dim).copy()

    # ------------------------------------------------------------------ persistence
    def meta(self) -> dict[str, Any]:
        return {"kind": self.kind, "dim": self.dim, "metric": self.metric, "params": dict(self.params)}

    def save(self, path: str | Path) -> None:
        faiss.write_index(self.index, str(path))

    @classmethod
    def load(cls, path: str | Path, meta: dict[str, Any], deleted: np.ndarray | None = None,
             mmap: bool = False) -> "VectorIndex":
        flags = faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY if mmap else 0
        index = faiss.read_index(str(path), flags) if flags else faiss.read_index(str(path))
        self = cls(kind=meta["kind"], dim=int(meta["dim"]), metric=meta["metric"], params=dict(meta["params"]),
                   index=index)
        if self.kind == "ivf":
            self.index.nprobe = int(self.params.get("nprobe", 1))
        if self.kind == "hnsw":
            faiss.downcast_index(self.index.index).hnsw.efSearch = int(self.params["efSearch"])
        if deleted is not None:
            self.deleted = set(int(i) for i in deleted)
        return self
