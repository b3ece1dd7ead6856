"""A shop's catalogue kept current: products with several pictures, variants, stock, and
`dressfinder sync` (one generation a sync, re-encoding only changed pictures, resumable)."""

from __future__ import annotations

import csv
import json
import shutil
import sqlite3
import threading
from pathlib import Path

import numpy as np
import pytest

from dressfinder.catalog import Filters, read_catalog
from dressfinder.store import Store

from sync_fixtures import ColourEncoder, picture, write_shop


def build(csv_path: Path, root: Path) -> Store:
    return Store.build(csv_path, root, encoder=ColourEncoder(), index="flat", progress=False, workers=1)


def query(store: Store, im, k: int = 10, **kw):
    return store.search_vectors(store.encoder.encode([im]), k, **kw)[0]


# --------------------------------------------------------------------------- several pictures

def test_a_product_is_found_from_any_of_its_pictures_once_with_the_picture_that_matched(tmp_path):
    shop = write_shop(tmp_path / "shop", n=20, views=3)
    store = build(shop, tmp_path / "store")
    assert len(store) == 20 and store.snapshot().n_rows == 60 and store.last_report.encoded == 60
    for i in (0, 7, 19):
        for view in range(3):
            hits = query(store, picture(i, view))
            assert hits[0].id == f"p-{i:03d}" and hits[0].image == view, (i, view)
            assert hits[0].score == pytest.approx(1.0)
            ids = [h.id for h in hits]
            assert len(ids) == len(set(ids)) == 10          # each product once, ten products
            assert store.image_file(hits[0].id, hits[0].image).read_bytes() == \
                (tmp_path / "shop" / "images" / f"p{i:03d}-{view}.png").read_bytes()
    # the whole query path (search_regions) too, and the JSON says which picture
    hit = store.search(tmp_path / "shop" / "images" / "p007-2.png", 5, detect=False)[0]
    assert (hit.id, hit.image, hit.to_dict()["matched_image"]) == ("p-007", 2, 2)
    # similar: by the main picture, never the product itself (nor its other pictures)
    assert "p-007" not in [h.id for h in store.similar("p-007", 19)]
    assert len(store.similar("p-007", 30)) == 19


def test_removing_a_product_takes_all_its_pictures(tmp_path):
    shop = write_shop(tmp_path / "shop", n=10, views=3)
    store = build(shop, tmp_path / "store")
    gone = {store.image_file("p-003", n).name for n in range(3)}
    store.remove(["p-003"])
    assert all(h.id != "p-003" for v in range(3) for h in query(store, picture(3, v)))
    assert len(store.snapshot().rows()) == 27
    store.remove(["p-004"])           # released files go with the next change (readers of the last may use them)
    files = {f.name for f in (tmp_path / "store" / "images").rglob("*.png")}
    assert len(files) == 27 and not gone & files             # p-003's three pictures are gone


def test_an_old_store_with_one_vector_a_product_opens_searches_and_changes(tmp_path, built_store, catalog_dir):
    root = tmp_path / "old"
    shutil.copytree(built_store, root)
    manifest = json.loads((root / "store.json").read_text())
    with sqlite3.connect(root / manifest["files"]["catalog"]) as db:   # as written before the images table
        db.execute("DROP TABLE images")
    store = Store.open(root)
    assert not store.snapshot().db.has_images
    hits = store.search(catalog_dir / "images" / "dress-005.jpg", 5, detect=False)
    assert hits[0].id == "sku-005" and hits[0].image == 0
    assert [h.id for h in store.similar("sku-005", 5)]
    store.remove(["sku-001"])                                # the next generation gets the table
    assert store.snapshot().db.has_images and len(store) == 23


# --------------------------------------------------------------------------- variants

def test_a_dress_in_eight_sizes_takes_one_place_unless_variants_are_kept_apart(tmp_path):
    shop = write_shop(tmp_path / "shop", n=20, views=1, groups={4: 8})
    store = build(shop, tmp_path / "store")
    assert len(store) == 27
    hits = query(store, picture(4))
    ids = [h.id for h in hits]
    assert ids[0] == "p-004-S1" and hits[0].product.item_group_id == "g-004"   # the best variant, named
    assert sum(i.startswith("p-004-") for i in ids) == 1 and len(ids) == 10
    apart = [h.id for h in query(store, picture(4), variants=True)]
    assert sorted(apart[:8]) == [f"p-004-S{s}" for s in range(1, 9)]
    # similar: none of the dress's own sizes, and the dress once among another's
    assert not any(h.id.startswith("p-004-") for h in store.similar("p-004-S3", 10))
    near = [h.id for h in store.similar("p-005", 19)]
    assert sum(i.startswith("p-004-") for i in near) == 1 and len(near) == 19
    assert sum(i.startswith("p-004-") for i in
               [h.id for h in store.similar("p-005", 30, variants=True, include_duplicates=True)]) == 8


# --------------------------------------------------------------------------- in stock

def test_similar_and_recommend_leave_out_what_cannot_be_bought_by_default(tmp_path):
    from dressfinder.tools.recommend import export

    sold = {1, 2, 3, 4, 5}
    shop = write_shop(tmp_path / "shop", n=20, views=1, sold_out=sold,
                      overrides={"p-006": {"availability": "preorder"}, "p-007": {"availability": "backorder"}})
    store = build(shop, tmp_path / "store")
    out = {f"p-{i:03d}" for i in sold}
    hits = store.similar("p-000", 19)
    assert len(hits) == 14 and not out & {h.id for h in hits}
    assert {"p-006", "p-007"} <= {h.id for h in hits}         # preorder and backorder can be bought
    assert out <= {h.id for h in store.similar("p-000", 19, in_stock=False)}
    # search shows everything unless asked
    assert out <= {h.id for h in query(store, picture(3), k=20)}
    assert not out & {h.id for h in query(store, picture(3), k=20, filters=Filters(in_stock=True))}
    export(store, tmp_path / "rec.csv", k=19, progress=False)
    with open(tmp_path / "rec.csv") as f:
        rows = list(csv.DictReader(f))
    assert rows and not out & {r["similar_id"] for r in rows}
    export(store, tmp_path / "all.csv", k=19, progress=False, in_stock=False)
    with open(tmp_path / "all.csv") as f:
        assert out <= {r["similar_id"] for r in csv.DictReader(f)}


# --------------------------------------------------------------------------- the API

def test_the_api_shows_the_picture_that_matched_keeps_variants_apart_and_leaves_sold_out_out_of_similar(tmp_path):
    from fastapi.testclient import TestClient
    from webfixtures import make_app

    shop = write_shop(tmp_path / "shop", n=12, views=3, groups={2: 4}, sold_out={5, 6})
    build(shop, tmp_path / "store")
    png = (tmp_path / "shop" / "images" / "p009-2.png").read_bytes()
    with TestClient(make_app(tmp_path / "store")) as c:
        r = c.post("/api/search", files={"file": ("q.png", png, "image/png")}, data={"k": "5", "detect": "false"})
        assert r.status_code == 200, r.text
        top = r.json()["results"][0]
        assert (top["id"], top["matched_image"]) == ("p-009", 2) and "n=2" in top["image"]
        assert c.get(top["image"]).content == png                      # the picture that matched
        ids = [h["id"] for h in r.json()["results"]]
        assert len(ids) == len(set(ids))
        one = c.get("/api/products/p-000/similar?k=20").json()["results"]
        assert not {"p-005", "p-006"} & {h["id"] for h in one}
        assert sum(h["id"].startswith("p-002-") for h in one) == 1
        every = c.get("/api/products/p-000/similar?k=20&include_sold_out=true&variants=true").json()["results"]
        assert {"p-005", "p-006"} <= {h["id"] for h in every}
        assert sum(h["id"].startswith("p-002-") for h in every) == 4
