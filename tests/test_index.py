import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.neighbors import NearestNeighbors

from dressfinder.errors import DressfinderError
from dressfinder.index import KINDS, VectorIndex


def unit(n, d=32, seed=0):
    x = np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def raw(n, d=16, seed=0):
    # clustered data, as autoencoder bottlenecks are: 10 blobs
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=5, size=(10, d))
    return (centres[rng.integers(0, 10, n)] + rng.normal(size=(n, d))).astype(np.float32)


@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_ivf_10_1_equals_sklearn_kmeans_plus_knn_in_cluster(metric):
    """The seed: KMeans(10) + NearestNeighbors restricted to the query's predicted cluster."""
    x = raw(1500) if metric == "l2" else unit(1500)
    q = raw(60, seed=1) if metric == "l2" else unit(60, seed=1)
    km = KMeans(n_clusters=10, n_init=3, random_state=0).fit(x)
    ix = VectorIndex.build("ivf", x, metric=metric, centroids=km.cluster_centers_, nlist=10, nprobe=1)
    scores, ids = ix.search(q, 5)
    pred = km.predict(q)
    assert (ix.assign(q) == pred).all()
    for qi in range(len(q)):
        members = np.flatnonzero(km.labels_ == pred[qi])
        nn = NearestNeighbors(n_neighbors=min(5, len(members)),
                              metric="euclidean" if metric == "l2" else "cosine").fit(x[members])
        dist, local = nn.kneighbors(q[qi:qi + 1])
        expected = members[local[0]]
        got = ids[qi][ids[qi] >= 0]
        assert got.tolist() == expected.tolist()
        if metric == "l2":
            assert np.allclose(scores[qi][: len(got)], 1 / (1 + dist[0]), atol=1e-4)
        else:
            assert np.allclose(scores[qi][: len(got)], 1 - dist[0], atol=1e-4)


def test_ivf_own_kmeans_searches_only_the_predicted_cluster():
    x, q = raw(2000), raw(40, seed=3)
    ix = VectorIndex.build("ivf", x, metric="l2")
    labels = ix.assign(x)
    assert len(np.unique(labels)) == 10
    _, ids = ix.search(q, 8)
    for qi, c in enumerate(ix.assign(q)):
        members = np.flatnonzero(labels == c)
        d = ((x[members] - q[qi]) ** 2).sum(1)
        assert ids[qi].tolist() == members[np.argsort(d, kind="stable")[:8]].tolist()
    # probing every list is exact search
    exact = VectorIndex.build("flat", x, metric="l2").search(q, 8)[1]
    assert (ix.search(q, 8, nprobe=10)[1] == exact).all()


@pytest.mark.parametrize("kind", KINDS)
def test_search_add_remove_filter_save_load(kind, tmp_path):
    x = unit(600)
    ix = VectorIndex.build(kind, x[:500], metric="ip", nprobe=10)
    _, ids = ix.search(x[:20], 1)
    assert (ids[:, 0] == np.arange(20)).mean() >= 0.95
    ix.add(x[500:], np.arange(500, 600))
    assert ix.ntotal == 600
    _, ids = ix.search(x[550:560], 1)
    assert (ids[:, 0] == np.arange(550, 560)).all()
    assert ix.remove(np.array([550, 551])) == 2
    _, ids = ix.search(x[550:552], 5)
    assert 550 not in ids and 551 not in ids
    allowed = np.arange(100, 140)
    _, ids = ix.search(x[100:105], 5, allowed=allowed)
    assert set(ids[ids >= 0].tolist()) <= set(allowed.tolist())
    ix.save(tmp_path / "i.faiss")
    again = VectorIndex.load(tmp_path / "i.faiss", ix.meta(), np.array(sorted(ix.deleted), np.int64))
    assert (again.search(x[:50], 5)[1] == ix.search(x[:50], 5)[1]).all()
    assert again.ntotal == 598


def test_scores_higher_is_better_and_missing_results():
    x = unit(30)
    for metric in ("ip", "l2"):
        s, ids = VectorIndex.build("flat", x, metric=metric).search(x[:3], 40)
        assert (np.diff(s[:, :30], axis=1) <= 1e-6).all()
        assert (ids[:, 30:] == -1).all() and np.isneginf(s[:, 30:]).all()


def test_errors():
    with pytest.raises(DressfinderError):
        VectorIndex.create("lsh", 8)
    with pytest.raises(DressfinderError):
        VectorIndex.build("flat", np.zeros((0, 8), np.float32))
    ix = VectorIndex.build("flat", unit(5, 8))
    with pytest.raises(DressfinderError):
        ix.add(unit(2, 4), np.array([7, 8]))
