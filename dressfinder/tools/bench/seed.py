"""The ``seed`` section: the seed's method (32x32 autoencoder, k-means 10 + k-NN in the predicted cluster) against ours, as ratios."""

from __future__ import annotations
import tempfile
import time
from pathlib import Path

from .common import query_photos, stats_ms


def bench_seed(base_root: Path, *, n_queries: int, quick: bool, ours: dict, entry: dict) -> None:
    """The seed's method end to end: 32x32 squash, the Keras autoencoder's bottleneck, KMeans(10)
    and a NearestNeighbors per cluster (scikit-learn); queries: predict the cluster, k-NN in it.

    The autoencoder's weights are untrained (``build_autoencoder``): its speed does not depend on
    them; retrieval quality is compared in docs/eval.md."""
    import numpy as np
    from ...extras import require

    KMeans = require("sklearn.cluster", "train", "the seed benchmark").KMeans
    NearestNeighbors = require("sklearn.neighbors", "train", "the seed benchmark").NearestNeighbors

    from ...encoders.autoencoder import INPUT_SIZE, Autoencoder, build_autoencoder, to_input
    from ...images import load_image
    from ...store import Store

    base = Store.open(base_root)
    paths = [p.image for p in base.products() if p.image and Path(p.image).is_file()]
    if quick:
        paths = paths[:200]
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "seed.keras"
        auto, _ = build_autoencoder()
        auto.save(model)
        enc = Autoencoder(model=str(model))
        enc.encode_arrays(np.zeros((1, INPUT_SIZE, INPUT_SIZE, 3), np.float32))  # load before timing
        t0 = time.perf_counter()
        arrays = [to_input(load_image(p)) for p in paths]  # as the seed: one by one, full decode, squash
        t1 = time.perf_counter()
        codes = enc.encode_arrays(np.stack(arrays))
        t2 = time.perf_counter()
        km = KMeans(n_clusters=10, n_init=10, random_state=0).fit(codes)
        nns = {}
        for c in range(10):
            members = np.flatnonzero(km.labels_ == c)
            if len(members):
                nns[c] = (members, NearestNeighbors(n_neighbors=min(10, len(members))).fit(codes[members]))
        t3 = time.perf_counter()
        total = t3 - t0
        entry["indexing"] = {"images": len(paths), "seconds": round(total, 2),
                             "images_per_second": round(len(paths) / total, 1),
                             "decode_seconds": round(t1 - t0, 2), "encode_seconds": round(t2 - t1, 2),
                             "kmeans+nn_seconds": round(t3 - t2, 2)}
        photos = query_photos(base, n_queries, seed=0)
        lat = []
        for p in photos:
            t = time.perf_counter()
            code = enc.encode_arrays(to_input(load_image(p))[None])
            c = int(km.predict(code)[0])
            members, nn = nns[c]
            nn.kneighbors(code, n_neighbors=min(10, len(members)))
            lat.append(time.perf_counter() - t)
        entry["query"] = {"search": stats_ms(lat)}
    ours_rate = ours.get("indexing", {}).get("images_per_second")
    ours_p50 = ours.get("latency_p50_ms")
    entry["ours"] = {"images_per_second": ours_rate, "search_p50_ms": ours_p50}
    entry["ratios_ours_over_seed"] = {
        "indexing_images_per_second": round(ours_rate / entry["indexing"]["images_per_second"], 3) if ours_rate else None,
        "query_latency_p50": round(ours_p50 / entry["query"]["search"]["p50"], 3) if ours_p50 else None}
