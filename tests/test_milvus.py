"""The Milvus backend, for real, against Milvus Lite (embedded; a temporary .db file per module)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dressfinder.catalog import Filters, Product
from dressfinder.errors import DressfinderError, NotFound, StoreError
from dressfinder.store import Store

pytest.importorskip("pymilvus")
pytest.importorskip("milvus_lite")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def milvus(tmp_path_factory, catalog_dir):
    from dressfinder.backends.milvus import MilvusStore

    root = tmp_path_factory.mktemp("milvus")
    store = MilvusStore.build(catalog_dir / "catalog.csv", str(root / "dresses.db"), "dresses",
                              encoder="effnet-lite0", images_dir=root / "images", progress=False)
    yield store
    store.close()


def test_build_and_search_match_the_faiss_store(milvus, built_store, catalog_dir):
    faiss_store = Store.open(built_store)
    rep = milvus.last_report
    assert rep.added == 24 and [pid for pid, _ in rep.skipped] == ["broken-0"]
    assert len(milvus) == 24
    info = milvus.info()
    assert info["backend"] == "milvus" and info["index"]["kind"] == "FLAT" and info["products"] == 24
    for q in ("dress-004.jpg", "dress-013.jpg"):
        a = faiss_store.search(catalog_dir / "images" / q, 6)
        b = milvus.search(catalog_dir / "images" / q, 6)
        assert [h.id for h in a] == [h.id for h in b]
        assert np.allclose([h.score for h in a], [h.score for h in b], atol=1e-4)
        assert b[0].product.title == a[0].product.title and b[0].product.price == a[0].product.price
        assert b[0].file == a[0].file and milvus.image_file(b[0].id).is_file()
    assert np.allclose(milvus.vector("sku-004"), faiss_store.vector("sku-004"), atol=1e-6)
    p = milvus.product("sku-005")
    assert (p.title, p.price, p.currency, p.shop, p.category) == ("Dress 5", 22.5, "EUR", "shop-b", "mini")
    with pytest.raises(NotFound):
        milvus.product("nope")


def test_filters_run_in_milvus_and_agree_with_sqlite(milvus, built_store, catalog_dir):
    faiss_store = Store.open(built_store)
    q = catalog_dir / "images" / "dress-010.jpg"
    for f in (Filters(min_price=20, max_price=40), Filters(shop="SHOP-A"), Filters(category="maxi"),
              Filters(shop="shop-b", category="Mini", max_price=55.5)):
        a = [h.id for h in faiss_store.search(q, 5, filters=f)]
        b = milvus.search(q, 5, filters=f)
        assert [h.id for h in b] == a and b, f
        for h in b:
            p = h.product
            assert f.min_price is None or p.price >= f.min_price
            assert f.max_price is None or p.price <= f.max_price
            assert f.shop is None or p.shop.lower() == f.shop.lower()
    sim = milvus.similar("sku-010", 4)
    assert "sku-010" not in [h.id for h in sim] and len(sim) == 4
    ranked = [h.id for h in milvus.search_vectors(milvus.vector("sku-010")[None], 5)[0] if h.id != "sku-010"]
    assert [h.id for h in sim] == ranked[:4]


def test_filter_values_cannot_inject_expressions(milvus, catalog_dir):
    from dressfinder.backends.milvus import filter_expr, literal_number

    q = catalog_dir / "images" / "dress-010.jpg"
    for evil in ('shop-a" or price >= 0 or store_key == "', "shop-a' or 1 == 1 or store_key == '",
                 'x\\" or id != \\"', "shop-a\nor price >= 0", "shop-a) or (price >= 0"):
        assert milvus.search(q, 5, filters=Filters(shop=evil)) == []
        assert milvus.search(q, 5, filters=Filters(category=evil)) == []
    assert filter_expr(Filters(shop='a"b\\c')) == 'shop_key == "a\\"b\\\\c"'
    assert filter_expr(Filters(min_price=1e-7, max_price=1e21)) == \
        "price >= 0.0000001 and price <= 1000000000000000000000.0"
    for bad in (float("nan"), float("inf"), "12 or 1"):
        with pytest.raises((DressfinderError, ValueError)):
            literal_number(bad)


def test_add_remove_and_reopen(milvus, catalog_dir, tmp_path):
    from dressfinder.backends.milvus import MilvusStore

    img = catalog_dir / "images"
    new = [Product(id="new-1", image=str(img / "dress-001.jpg"), title='Quote " and \\ slash', price=9.5,
                   shop="Shop-C", category="midi"),
           Product(id="sku-002", image=str(img / "dress-003.jpg"), title="replaced?")]
    rep = milvus.add(new)
    assert rep.added == 1 and rep.skipped == [("sku-002", "id already in the store")]
    assert len(milvus) == 25
    hits = milvus.search(img / "dress-001.jpg", 2, filters=Filters(shop="shop-c"))
    assert [h.id for h in hits] == ["new-1"] and hits[0].product.title == 'Quote " and \\ slash'
    rep = milvus.add([new[1]], replace=True)
    assert rep.added == 1 and rep.removed == 1 and milvus.product("sku-002").title == "replaced?"
    rep = milvus.remove(["new-1", "ghost"])
    assert rep.removed == 1 and rep.skipped == [("ghost", "no such product")]
    assert len(milvus) == 24
    with pytest.raises(NotFound):
        milvus.product("new-1")
    # a second client on the same collection: the encoder comes back from the collection's properties
    again = MilvusStore.open(milvus.uri, "dresses", client=milvus.client)
    assert again.meta["encoder"] == milvus.meta["encoder"] and again.encoder.dim == milvus.encoder.dim
    assert [h.id for h in again.search(img / "dress-007.jpg", 3)] == \
        [h.id for h in milvus.search(img / "dress-007.jpg", 3)]
    with pytest.raises(StoreError, match="no collection"):
        MilvusStore.open(milvus.uri, "absent", client=milvus.client)


def test_cli_index_and_search_with_milvus_backend(tmp_path, catalog_dir, capsys, monkeypatch):
    from dressfinder.cli import main

    monkeypatch.delenv("DRESSFINDER_MILVUS_URI", raising=False)

    db = str(tmp_path / "cli.db")
    assert main(["index", str(catalog_dir / "catalog.csv"), "--store", str(tmp_path / "imgs"), "--backend", "milvus",
                 "--milvus-uri", db, "--collection", "c1", "-q"]) == 0
    err = capsys.readouterr().err
    assert "indexed 24 products into Milvus collection c1" in err
    assert (tmp_path / "imgs" / "images").is_dir()
    assert main(["search", str(catalog_dir / "images" / "dress-004.jpg"), "--backend", "milvus", "--milvus-uri", db,
                 "--collection", "c1", "--json", "-k", "3", "--shop", "shop-a"]) == 0
    res = json.loads(capsys.readouterr().out)["results"]
    assert res[0]["id"] == "sku-004" and all(r["shop"] == "shop-a" for r in res) and len(res) == 3
    assert main(["search", "x.jpg", "--backend", "milvus"]) == 2
    assert "needs --milvus-uri" in capsys.readouterr().err


def test_a_collection_built_before_the_new_fields_still_reads(milvus, monkeypatch):
    """A collection made when products had no availability, brand, sale_price... (the fields then):
    it opens, reads its products (the new fields empty), gives its facets, takes new products (the new
    fields left out), and a filter on a facet it lacks is refused in one line."""
    from dressfinder import schema
    from dressfinder.backends import milvus as mv

    old_fields = tuple(f for f in schema.FIELDS if f.name in ("id", "image", "title", "price", "currency", "url",
                                                              "shop", "category"))
    old_facets = ("shop", "category")
    meta = {**milvus.meta, "dim": 4, "next_row": 1, "index_type": "FLAT"}
    with monkeypatch.context() as m:
        m.setattr(mv, "FIELDS", old_fields)
        m.setattr(mv, "FACETS", old_facets)
        mv.MilvusStore._create(milvus.client, "before", 4, meta, "Strong")
        mv.MilvusStore._insert(milvus.client, "before", 0, [Product(id="a", image="a.jpg", title="A", shop="S")],
                               ["f.jpg"], np.eye(4, dtype=np.float32)[:1])
    old = mv.MilvusStore.open(milvus.uri, "before", client=milvus.client)
    assert "availability" not in old.columns
    p = old.product("a")
    assert (p.title, p.shop, p.availability, p.brand, p.sale_price) == ("A", "S", None, None, None)
    assert old.facets() == {"shop": ["S"], "category": [], "availability": [], "brand": []}
    old._append([Product(id="b", image="b.jpg", availability="in_stock", brand="B", sale_price=1.0)], ["g.jpg"],
                np.eye(4, dtype=np.float32)[1:2])
    assert old.product("b").availability is None and len(old) == 2
    assert [h.id for h in old.search_vectors(np.eye(4, dtype=np.float32)[:1], 2, filters=Filters(shop="s"))[0]] == ["a"]
    with pytest.raises(StoreError, match="built before products had a brand"):
        old.search_vectors(np.eye(4, dtype=np.float32)[:1], 2, filters=Filters(brand="B"))
    milvus.client.drop_collection("before")
