"""Vector indexes on FAISS: ``flat`` (exact), ``ivf`` (the seed's k-means + k-NN), ``hnsw``
(graph; vectors kept as float32, float16 or 8-bit), ``ivfpq`` (inverted lists of product-quantised
codes, re-ranked with compact copies of the vectors: the kind for catalogues too big for RAM).

Every index is keyed by int64 ids (a store uses vector rows), supports ``add`` and ``remove``
without a rebuild, filtered search (an array of allowed ids) and returns scores where higher
means more similar: cosine similarity for ``metric="ip"`` (unit vectors), ``1 / (1 + d)`` of the
Euclidean distance ``d`` for ``metric="l2"``.

``ivf`` with ``nlist=10, nprobe=1`` is exactly the seed: vectors are clustered by k-means
(Euclidean, as scikit-learn's KMeans), a query goes to its nearest centroid and is answered by
exact k-NN among that cluster's members.

``auto_kind(n, dim)`` is the choice ``Store.build(index="auto")`` makes (see docs/scaling.md for the
measurements behind it): exact search while a brute-force scan stays within a few milliseconds,
HNSW over float16 vectors up to a few million products, IVF-PQ beyond.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import os

# FAISS' OpenMP threads spin while waiting by default: on a small or shared CPU (the web app's
# encoder threads, other processes) that turns k-means and PQ training into a crawl (5x slower
# measured on 2 busy cores). Passive waiting costs nothing measurable when the CPU is idle. Read
# once, when FAISS' OpenMP runtime loads: an explicit setting in the environment wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import faiss  # noqa: E402
import numpy as np  # noqa: E402

from .errors import DressfinderError

KINDS = ("flat", "ivf", "hnsw", "ivfpq")
DEFAULTS: dict[str, dict[str, Any]] = {
    "flat": {},
    "ivf": {"nlist": 10, "nprobe": 1, "niter": 50, "nredo": 3, "seed": 1234},
    # storage: how the graph keeps the vectors: "flat" (float32), "fp16" (half the memory, same
    # recall), "sq8" (a quarter, trained per dimension)
    "hnsw": {"M": 32, "efConstruction": 80, "efSearch": 128, "storage": "fp16"},
    # nlist/pq_m/nbits None: chosen from the data (see _ivfpq_shape); refine: the re-ranking copy
    # ("sq8", "fp16", "flat" or "none"); k_factor: candidates re-ranked = k * k_factor
    "ivfpq": {"nlist": None, "nprobe": 16, "pq_m": None, "nbits": None, "refine": "sq8", "k_factor": 64,
              "seed": 1234},
}
#: kinds whose FAISS structure cannot drop vectors: removal keeps tombstones instead
TOMBSTONE_KINDS = ("hnsw", "ivfpq")
_SQ = {"fp16": "QT_fp16", "sq8": "QT_8bit"}

# auto choice by catalogue size (measured on a 2-core CPU at dim 1280: docs/scaling.md)
AUTO_FLAT_MAX = 5_000           # exact search up to here: a scan of n * dim floats per query
AUTO_HNSW_MAX = 5_000_000       # HNSW (float16 vectors in RAM) up to here, IVF-PQ beyond


def auto_kind(n: int, dim: int, *, flat_max: int = AUTO_FLAT_MAX, hnsw_max: int = AUTO_HNSW_MAX) -> str:
    """The index kind for ``n`` vectors of dimension ``dim``.

    Exact while a scan stays within ~3 ms (a scan is memory-bound: 5k x 1280 floats = 26 MB;
    10.8k took 4-9 ms on one core, where HNSW answers in 0.3-0.7 ms with Recall@10 >= 0.99), so
    ``flat_max`` scales with 1280 / dim; HNSW over float16 vectors while those fit comfortably in
    one machine's memory (``hnsw_max`` at dim 1280 = 12.8 GB, again scaled by dim); IVF-PQ with
    re-ranking beyond (128 bytes a vector plus an 8-bit copy for re-ranking, 1.4 KB in all at 1280).
    """
    scale = 1280 / max(1, int(dim))
    if n <= flat_max * scale:
        return "flat"
    if n <= hnsw_max * scale:
        return "hnsw"
    return "ivfpq"


def _ivfpq_shape(n: int, dim: int, params: dict[str, Any]) -> tuple[int, int, int]:
    """(nlist, pq_m, nbits) for ``n`` training vectors: given values win, the rest are derived."""
    nlist = params.get("nlist") or int(min(65536, max(1, np.sqrt(n))))
    nlist = max(1, min(int(nlist), n // 39 or 1))            # >= 39 training points per list
    pq_m = params.get("pq_m")
    if not pq_m:  # at most 128 bytes a vector (10 dimensions a sub-quantizer at 1280), at least 4 dims each
        target = max(1, min(128, dim // 4))
        pq_m = max(m for m in range(1, target + 1) if dim % m == 0)
    if dim % int(pq_m):
        raise DressfinderError(f"ivfpq: pq_m={pq_m} must divide the dimension {dim}")
    nbits = params.get("nbits") or int(np.clip(np.floor(np.log2(max(2, n / 39))), 1, 8))  # >= 39 points per code
    return int(nlist), int(pq_m), int(nbits)


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
    with omp_threads(1 if len(x) < SMALL_TRAIN else faiss.omp_get_max_threads()):
        km.train(x)
    return km.centroids.copy()


SMALL_BATCH = 4        # searches of at most this many queries run on one OpenMP thread
SMALL_TRAIN = 10_000   # k-means/PQ training on fewer vectors than this runs on one OpenMP thread


@contextmanager
def omp_threads(n: int):
    """Run FAISS with ``n`` OpenMP threads in this thread (OpenMP's setting is per calling thread)."""
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(n)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


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
            storage = merged.get("storage") or "flat"
            if storage == "flat":
                inner = faiss.IndexHNSWFlat(dim, int(merged["M"]), m)
            elif storage in _SQ:
                inner = faiss.IndexHNSWSQ(dim, getattr(faiss.ScalarQuantizer, _SQ[storage]), int(merged["M"]), m)
            else:
                raise DressfinderError(f"hnsw storage {storage!r}: choose flat, fp16 or sq8")
            inner.hnsw.efConstruction = int(merged["efConstruction"])
            inner.hnsw.efSearch = int(merged["efSearch"])
            self.index = faiss.IndexIDMap2(inner)
        elif kind == "ivfpq" and merged.get("refine", "sq8") not in ("sq8", "fp16", "flat", "none", None):
            raise DressfinderError(f"ivfpq refine {merged['refine']!r}: choose sq8, fp16, flat or none")
        return self  # ivf and ivfpq are made by train(); sq8 storage is trained there too

    @classmethod
    def build(cls, kind: str, vectors: np.ndarray, ids: np.ndarray | None = None, metric: str = "ip",
              centroids: np.ndarray | None = None, **params: Any) -> "VectorIndex":
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or len(vectors) == 0:
            raise DressfinderError("cannot build an index from zero vectors")
        self = cls.create(kind, vectors.shape[1], metric, **params)
        if kind in ("ivf", "ivfpq") or (kind == "hnsw" and self.params.get("storage") == "sq8"):
            self.train(vectors, centroids=centroids)
        self.add(vectors, np.arange(len(vectors), dtype=np.int64) if ids is None else ids)
        return self

    def train(self, vectors: np.ndarray, centroids: np.ndarray | None = None) -> None:
        """ivf: cluster ``vectors`` (or take given ``centroids``) into the coarse quantizer.
        ivfpq: train the coarse quantizer, the product quantizer and the re-ranking quantizer on
        (a sample of) ``vectors``. hnsw with sq8 storage: learn each dimension's range."""
        if self.kind == "hnsw":
            inner = faiss.downcast_index(self.index.index)
            if not inner.is_trained:
                inner.train(np.ascontiguousarray(vectors, dtype=np.float32))
            return
        if self.kind == "ivfpq":
            self._train_ivfpq(np.ascontiguousarray(vectors, dtype=np.float32))
            return
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

    def _train_ivfpq(self, vectors: np.ndarray) -> None:
        p = self.params
        nlist, pq_m, nbits = _ivfpq_shape(len(vectors), self.dim, p)
        p.update(nlist=nlist, pq_m=pq_m, nbits=nbits)
        refine = p.get("refine") or "none"
        spec = f"IVF{nlist},PQ{pq_m}x{nbits}" + {"none": "", "flat": ",RFlat", "fp16": ",Refine(SQfp16)",
                                                  "sq8": ",Refine(SQ8)"}[refine]
        index = faiss.index_factory(self.dim, spec, _metric(self.metric))
        sample = vectors
        cap = max(64 * nlist, 65_536)
        if len(sample) > cap:  # k-means and PQ learn from a sample, not the whole catalogue
            rng = np.random.default_rng(int(p.get("seed", 1234)))
            sample = vectors[np.sort(rng.choice(len(vectors), cap, replace=False))]
        faiss.ParameterSpace().set_index_parameter(index, "verbose", 0)
        ivf = faiss.downcast_index(faiss.extract_index_ivf(index))
        ivf.cp.seed = int(p.get("seed", 1234))
        ivf.cp.niter = 10                      # coarse k-means: the lists only need to be roughly balanced
        ivf.cp.max_points_per_centroid = 64
        ivf.pq.cp.seed = int(p.get("seed", 1234))
        ivf.do_polysemous_training = False  # the factory's default: ~100 s of annealing, unused by our search
        # small training sets: many tiny parallel regions, where waking a second thread costs more
        # than the work (seconds instead of milliseconds on a busy CPU): train them on one thread
        with omp_threads(1 if len(sample) < SMALL_TRAIN else faiss.omp_get_max_threads()):
            index.train(sample)
        ivf.nprobe = min(int(p["nprobe"]), nlist)
        self.index = index

    def _ivfpq_base(self):
        return faiss.downcast_index(faiss.extract_index_ivf(self.index))

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
            raise DressfinderError(f"{self.kind} index must be trained before adding vectors")
        if not len(ids):
            return
        if self.kind == "ivfpq" and isinstance(self.index, faiss.IndexRefine):
            # the re-ranking copy is positional: ids must continue 0, 1, 2, ... (a store's rows do)
            start = int(self.index.ntotal)
            if not np.array_equal(ids, np.arange(start, start + len(ids), dtype=np.int64)):
                raise DressfinderError(f"ivfpq index takes consecutive ids from {start}")
            self.index.add(vectors)
        else:
            self.index.add_with_ids(vectors, ids)

    def remove(self, ids: np.ndarray) -> int:
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        if not len(ids):
            return 0
        if self.kind in TOMBSTONE_KINDS:  # graphs and re-ranked lists cannot drop vectors: tombstone them
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
        elif self.kind == "ivfpq":
            base = faiss.SearchParametersIVF()
            base.nprobe = int(nprobe or self.params["nprobe"])
            if sel is not None:
                base.sel = sel
            keep_alive.append(base)
            if isinstance(self.index, faiss.IndexRefine):
                params = faiss.IndexRefineSearchParameters()
                params.k_factor = float(self.params.get("k_factor") or 1)
                params.base_index_params = base
            else:
                params = base
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
        if n <= SMALL_BATCH and faiss.omp_get_max_threads() > 1:
            # one query at a time (the web app, the CLI): a single thread answers it faster than an
            # OpenMP team whose idle threads spin and steal the CPU from the encoder
            with omp_threads(1):
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
            self.index.nprobe = int(self.params.get("nprobe", DEFAULTS["ivf"]["nprobe"]))
        if self.kind == "hnsw":
            faiss.downcast_index(self.index.index).hnsw.efSearch = int(self.params["efSearch"])
        if self.kind == "ivfpq":
            self._ivfpq_base().nprobe = int(self.params.get("nprobe", DEFAULTS["ivfpq"]["nprobe"]))
            if isinstance(self.index, faiss.IndexRefine):
                self.index.k_factor = float(self.params.get("k_factor") or 1)
        if deleted is not None:
            self.deleted = set(int(i) for i in deleted)
        return self
