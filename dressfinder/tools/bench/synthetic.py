"""Synthetic vectors for sizes above the catalogue's (a Gaussian mixture fitted to the real vectors in PCA space), exact top-k as the truth, and ``neighbour_recall``: the share of the exact k nearest an index finds (not ``evaluate``'s hits, which ask whether the source came back)."""

from __future__ import annotations



def synthetic_vectors(real, n: int, *, seed: int = 0, pca_dims: int = 256, components: int = 200,
                      normalize: bool = True, chunk: int = 100_000, out=None):
    """``n`` vectors drawn from a model of ``real`` (an (m, d) array of encoder vectors).

    The model: PCA of the real vectors; a mixture of ``components`` full-covariance Gaussians on
    the top ``pca_dims`` coordinates, where the catalogue's structure lives (styles, colours),
    fitted by k-means (each cluster's mean, covariance and share); independent Gaussian noise
    with the real residual's per-dimension variance for the other directions; L2-normalised, as
    the encoder's vectors are. Neighbourhoods are as crowded as the real ones in the main
    directions, and no synthetic vector copies a real one. ``out``: an (n, d) float32 array to
    fill (no second copy of a large set).
    """
    import numpy as np
    from threadpoolctl import threadpool_limits

    real = np.asarray(real, np.float32)
    m, d = real.shape
    rng = np.random.default_rng(seed)
    # one BLAS thread: the factorisations are small, and random numbers, not products, bound the
    # sampling (measured: a second thread only adds waiting on a busy 2-core machine)
    with threadpool_limits(1):
        return _sample(real, n, rng, normalize, chunk, out, *_fit_mixture(real, pca_dims, components, seed))


def _sample(real, n, rng, normalize, chunk, out, mean, basis, resid_sd, means, chols, w):
    import numpy as np

    d = real.shape[1]
    k = len(basis)
    out = np.empty((n, d), np.float32) if out is None else out
    for start in range(0, n, chunk):
        size = min(chunk, n - start)
        comp = rng.choice(len(chols), size=size, p=w)
        zs = np.empty((size, k), np.float32)
        for c, chol in enumerate(chols):
            sel = np.flatnonzero(comp == c)
            zs[sel] = means[c] + rng.standard_normal((len(sel), k), np.float32) @ chol.T
        x = mean + zs @ basis + rng.standard_normal((size, d), np.float32) * resid_sd
        if normalize:
            x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        out[start:start + size] = x
    return out


def _fit_mixture(real, pca_dims: int, components: int, seed: int):
    import faiss
    import numpy as np

    m, d = real.shape
    mean = real.mean(axis=0)
    xc = real - mean
    k = max(1, min(pca_dims, m - 1, d))
    _, vecs = np.linalg.eigh((xc.T @ xc).astype(np.float64) / max(1, m - 1))
    basis = vecs[:, ::-1][:, :k].T.astype(np.float32)   # (k, d), the top principal directions
    z = xc @ basis.T
    resid_sd = (xc - z @ basis).std(axis=0)
    n_comp = max(1, min(components, m // 50 or 1))
    km = faiss.Kmeans(k, n_comp, niter=20, seed=seed, verbose=False)
    km.train(np.ascontiguousarray(z))
    _, labels = km.index.search(np.ascontiguousarray(z), 1)
    labels = labels[:, 0]
    means, chols, weights = [], [], []
    reg = 1e-3 * float(z.var(axis=0).mean())
    for c in range(n_comp):
        zc = z[labels == c].astype(np.float64)
        if len(zc) < 2:
            continue
        cov = np.cov(zc, rowvar=False).reshape(k, k) + reg * np.eye(k)
        means.append(zc.mean(axis=0).astype(np.float32))
        chols.append(np.linalg.cholesky(cov).astype(np.float32))
        weights.append(len(zc))
    w = np.asarray(weights, np.float64) / np.sum(weights)
    return mean, basis, resid_sd, means, chols, w


def exact_topk(queries, base, k: int, metric: str = "ip", block: int = 200_000):
    """(scores, ids) of the exact ``k`` nearest, by blocks of the base (no copy of the whole base)."""
    import faiss
    import numpy as np

    q = np.ascontiguousarray(queries, np.float32)
    best_d = np.full((len(q), k), -np.inf if metric == "ip" else np.inf, np.float32)
    best_i = np.full((len(q), k), -1, np.int64)
    fm = faiss.METRIC_INNER_PRODUCT if metric == "ip" else faiss.METRIC_L2
    for start in range(0, len(base), block):
        part = np.ascontiguousarray(base[start:start + block], np.float32)
        dd, ii = faiss.knn(q, part, min(k, len(part)), metric=fm)
        dd = np.concatenate([best_d, dd], axis=1)
        ii = np.concatenate([best_i, ii + start], axis=1)
        order = np.argsort(-dd if metric == "ip" else dd, axis=1, kind="stable")[:, :k]
        best_d, best_i = np.take_along_axis(dd, order, 1), np.take_along_axis(ii, order, 1)
    return best_d, best_i


def neighbour_recall(found, truth, k: int = 10) -> float:
    """Mean share of each query's exact ``k`` nearest (``truth``) among the ``k`` an index found."""
    import numpy as np

    hits = [len(set(f[:k][f[:k] >= 0].tolist()) & set(t[:k].tolist())) for f, t in zip(found, truth)]
    return round(float(np.mean(hits)) / k, 4)
