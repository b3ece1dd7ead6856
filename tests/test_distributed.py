"""Distributed indexing on a real Dask LocalCluster (127.0.0.1, worker processes), compared with
the single-process build of the same catalogue."""

from __future__ import annotations

import numpy as np
import pytest

from dressfinder.store import Store

pytest.importorskip("distributed")

pytestmark = pytest.mark.slow


def _files(root):
    return sorted(p.relative_to(root).as_posix() for p in (root / "images").rglob("*") if p.is_file())


def test_dask_local_build_equals_single_process(tmp_path, catalog_dir, built_store):
    from dask.distributed import Client, LocalCluster

    from dressfinder.distributed import embed_with_dask

    single = Store.open(built_store)
    # the CLI path: --dask local starts (and stops) its own LocalCluster on 127.0.0.1
    dist = Store.build(catalog_dir / "catalog.csv", tmp_path / "dask", encoder="effnet-lite0", index="flat",
                       progress=False, dask="local")
    rep = dist.last_report
    assert rep.added == 24 and [pid for pid, _ in rep.skipped] == ["broken-0"]
    assert [p.id for p in dist.products()] == [p.id for p in single.products()]
    a = np.stack([single.vector(p.id) for p in single.products()])
    b = np.stack([dist.vector(p.id) for p in dist.products()])
    assert np.allclose(a, b, atol=1e-5)
    assert _files(built_store) == _files(tmp_path / "dask")  # the client stored the same images
    for q in ("dress-004.jpg", "dress-017.jpg"):
        h1 = single.search(catalog_dir / "images" / q, 5)
        h2 = dist.search(catalog_dir / "images" / q, 5)
        assert [h.id for h in h1] == [h.id for h in h2]
        assert np.allclose([h.score for h in h1], [h.score for h in h2], atol=1e-5)
    assert dist.image_file("sku-004").read_bytes() == single.image_file("sku-004").read_bytes()

    # an existing cluster, by address: batches smaller than the catalogue, bytes as sources, a
    # file the client cannot read
    with LocalCluster(host="127.0.0.1", dashboard_address=None, n_workers=1, threads_per_worker=1,
                      processes=True, local_directory=tmp_path / "scratch") as cluster, Client(cluster) as client:
        sources = [str(catalog_dir / "images" / f"dress-{i:03d}.jpg") for i in range(10)]
        sources[3] = (catalog_dir / "images" / "dress-003.jpg").read_bytes()
        sources.append(str(tmp_path / "missing.jpg"))
        res = embed_with_dask(single.encoder, sources, tmp_path / "imgs", cluster.scheduler_address,
                              progress=False, batch=4)
        assert res.mode == "dask" and res.workers == 1
        assert res.ok.tolist() == list(range(10))
        assert res.skipped[0][0] == 10 and "cannot read" in res.skipped[0][1]
        assert np.allclose(res.vectors, a[:10], atol=1e-5)
        assert all((tmp_path / "imgs" / f).is_file() for f in res.files)
        # the same client, passed in: nothing is started or closed by us
        again = embed_with_dask(single.encoder, sources[:2], None, "unused", progress=False, client=client)
        assert np.allclose(again.vectors, a[:2], atol=1e-5) and again.files == [None, None]


def test_dask_unreachable_scheduler_is_a_clear_error(tmp_path, catalog_dir, monkeypatch):
    import dressfinder.distributed as dist
    from dressfinder.errors import DressfinderError

    monkeypatch.setattr(dist, "CONNECT_TIMEOUT", "1s")

    with pytest.raises(DressfinderError, match="cannot reach the Dask scheduler"):
        Store.build(catalog_dir / "catalog.csv", tmp_path / "s", progress=False, dask="tcp://127.0.0.1:9")
