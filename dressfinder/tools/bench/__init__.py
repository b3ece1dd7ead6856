"""``dressfinder bench``: indexing speed, query latency, recall at scale, and the seed side by side.

::

    dressfinder bench --data ../shared/data --out bench/out [--sizes 10k,1M] [--quick]

Writes ``OUT/bench.json`` (every number, the machine, its load while measuring) and ``OUT/bench.md``
(the same as tables). Sections (``--skip`` any of them):

``indexing``  ``Store.build`` of the catalogue with the default encoder: images/s end to end
              (read + decode + encode + index + commit), the pipeline's per-stage seconds, a
              single-thread profile per stage (read, decode, resize, normalise, store, encode,
              index), and threads vs worker processes on a subset.
``latency``   per size: one photo at a time, end to end in-process (decode / encode / search),
              through the CLI (a fresh process per photo, and one process answering many) and
              through HTTP (``dressfinder serve`` on 127.0.0.1, ``POST /api/search`` with the photo).
``scale``     sizes above the catalogue's: synthetic vectors (a Gaussian mixture fitted to the real
              vectors in PCA space, see ``synthetic_vectors``) added to the real ones; per index kind
              build time, memory, single-query p50/p99 and Recall@10 against exact search, for
              queries that are encoded, photo-like variants of catalogue images; then a store of
              that size for the CLI and HTTP latency.
``seed``      the seed's method (32x32 autoencoder, scikit-learn KMeans(10) + NearestNeighbors in
              the predicted cluster) against ours on the same catalogue, as ratios.

One module a section (``indexing``, ``latency``, ``scale``, ``seed``), with ``common``,
``synthetic``, ``report`` and ``command`` beside them.

Nothing here asserts a speed: tests run it on a tiny catalogue (tests/test_bench.py).
"""
