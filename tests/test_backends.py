"""Both backends rank the same catalogue the same way: a FAISS store and a Milvus (Lite) store built
from one catalogue give the same search, similar and recommend answers, because both rank through
``dressfinder.search``. A Milvus store folder remembers its backend: --store opens it everywhere."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import write_catalog_with_duplicates
from dressfinder.backends import open_store
from dressfinder.catalog import Filters
from dressfinder.cli import main

pytest.importorskip("pymilvus")
pytest.importorskip("milvus_lite")

pytestmark = pytest.mark.slow

FILTERS = [None, Filters(shop="SHOP-A"), Filters(min_price=15, max_price=40), Filters(category="mini", shop="shop-b")]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """(faiss store folder, milvus store folder, catalogue folder), built by the CLI as a user would."""
    base = tmp_path_factory.mktemp("backends")
    csv_path = write_catalog_with_duplicates(base / "catalog")
    assert main(["index", str(csv_path), "--store", str(base / "faiss"), "--encoder", "effnet-lite0",
                 "--index", "flat", "-q"]) == 0
    assert main(["index", str(csv_path), "--store", str(base / "milvus"), "--encoder", "effnet-lite0",
                 "--backend", "milvus", "--milvus-uri", str(base / "m.db"), "--collection", "dresses", "-q"]) == 0
    return base / "faiss", base / "milvus", base / "catalog"


def same(a, b):
    assert [(h.id, h.row) for h in a] == [(h.id, h.row) for h in b]
    assert np.allclose([h.score for h in a], [h.score for h in b], rtol=0, atol=1e-6)
    assert [h.product for h in a] == [h.product for h in b]


def test_search_and_similar_agree(built):
    from dressfinder.backends.milvus import MilvusStore
    from dressfinder.store import Store

    faiss_root, milvus_root, catalog = built
    f, m = open_store(faiss_root), open_store(milvus_root)
    assert isinstance(f, Store) and isinstance(m, MilvusStore)
    assert len(f) == len(m) == 23 and f.facets() == m.facets()
    queries = [catalog / "images" / n for n in ("dress-003.jpg", "dress-007.jpg", "dress-012.jpg", "copy-a.jpg")]
    for q in queries:
        for flt in FILTERS:
            same(f.search(q, 8, filters=flt), m.search(q, 8, filters=flt))
    for p in f.products():
        for dup in (False, True):
            a = f.similar(p.id, 6, include_duplicates=dup)
            same(a, m.similar(p.id, 6, include_duplicates=dup))
            assert p.id not in [h.id for h in a]
        same(f.similar(p.id, 4, filters=Filters(shop="shop-b")), m.similar(p.id, 4, filters=Filters(shop="shop-b")))
    # the exact duplicates of dress 3 and 7 are left out on both, kept on both when asked
    assert not {"sku-dup-a", "sku-dup-b"} & {h.id for h in m.similar("sku-003", 10)}
    assert {"sku-dup-a", "sku-dup-b"} <= {h.id for h in m.similar("sku-003", 10, include_duplicates=True)}
    assert "sku-same-pixels" not in {h.id for h in m.similar("sku-007", 10)}
    m.close()


def test_recommend_exports_are_identical(built, tmp_path):
    faiss_root, milvus_root, _ = built
    outs = []
    for root in (faiss_root, milvus_root):
        out = tmp_path / f"{root.name}.csv"
        assert main(["recommend", "--store", str(root), "--k", "5", "--out", str(out), "-q"]) == 0
        outs.append(out.read_bytes())
    assert outs[0] == outs[1] and outs[0].count(b"\n") == 1 + 23 * 5


def test_milvus_store_folder_works_with_search_info_and_the_web_app(built, capsys):
    from fastapi.testclient import TestClient

    from dressfinder.web import create_app

    faiss_root, milvus_root, catalog = built
    photo = catalog / "images" / "dress-012.jpg"
    answers = []
    for root in (faiss_root, milvus_root):
        assert main(["search", "--store", str(root), "--json", "-k", "4", "--shop", "shop-a", str(photo)]) == 0
        answers.append(json.loads(capsys.readouterr().out)["results"])
    assert answers[0] == answers[1] and answers[0][0]["id"] == "sku-012"
    assert main(["info", "--store", str(milvus_root)]) == 0
    assert json.loads(capsys.readouterr().out)["backend"] == "milvus"
    with TestClient(create_app(milvus_root)) as client:
        r = client.post("/api/search", files={"file": ("d.jpg", photo.read_bytes(), "image/jpeg")}, data={"k": "3"})
        assert r.status_code == 200, r.text
        assert r.json()["results"][0]["id"] == "sku-012"
        img = client.get(r.json()["results"][0]["image"])
        assert img.status_code == 200 and img.content == photo.read_bytes()
    assert "milvus" in json.loads((milvus_root / "store.json").read_text())["backend"]
