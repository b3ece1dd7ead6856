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


# --------------------------------------------------------------------------- sync

N = 40
PRICED, SOLD, REPLACED, GONE = range(10, 20), range(20, 25), (25, 26, 27), range(30, 40)


def shop_today(folder: Path) -> Path:
    """The shop's catalogue the store was built from: 40 products, two pictures each, one dress in three sizes."""
    return write_shop(folder, n=N, views=2, groups={3: 3})


def shop_tomorrow(folder: Path, new: int = 0) -> Path:
    """The next day's: 10 prices changed, 5 sold out, 3 pictures replaced (two main ones, one other), 10
    products gone, ``new`` products added (two pictures each)."""
    for i, view in zip(REPLACED, (0, 1, 0)):
        picture(5000 + i, 0).save(folder / "images" / f"p{i:03d}-{view}.png")     # new bytes, same file name
    overrides = {f"p-{i:03d}": {"price": f"{99 + i:.2f}"} for i in PRICED}
    return write_shop(folder, n=N + new, views=2, groups={3: 3}, sold_out=set(SOLD), overrides=overrides,
                      skip=set(GONE), name="tomorrow.csv")


def contents(store: Store) -> dict:
    """Every product's fields and, per picture, its stored file and vector."""
    snap = store.snapshot()
    out = {}
    for row, prod, file in snap.iter_products():
        pics = [(0, row, file)] + list(snap.pictures(row))
        vecs = snap.vectors(np.array([r for _, r, _ in pics] if pics[0][0] == 0 else [], np.int64))
        out[prod.id] = (prod.fields(), {k: v for k, v in prod.extra.items()},
                        [(n, f, v.tobytes()) for (n, _, f), v in zip(
                            [(0, row, file)] + [(n, r, f) for r, n, f in snap.pictures(row)], vecs)])
    return out


def assert_matches(store: Store, csv_path: Path) -> None:
    """The store holds exactly the catalogue's products, fields and pictures (bytes and vectors)."""
    want = {p.id: p for p in read_catalog(csv_path).products}
    assert {p.id for p in store.products()} == set(want)
    enc = ColourEncoder()
    for pid, p in want.items():
        got = store.product(pid)
        assert got.fields() == p.fields(), pid
        row = store.record(pid)[0]
        pics = [(0, row)] + [(n, r) for r, n, _ in store.snapshot().pictures(row)]
        paths = [p.image] + p.more_images.split()
        assert [n for n, _ in pics] == list(range(len(paths)))
        for (n, r), path in zip(pics, paths):
            assert store.image_file(pid, n).read_bytes() == Path(path).read_bytes(), (pid, n)
            np.testing.assert_allclose(store.snapshot().vectors(np.array([r]))[0], enc.encode([path])[0],
                                       atol=1e-6, err_msg=f"{pid} picture {n}")


def test_sync_updates_in_place_reencodes_only_replaced_pictures_and_readers_never_see_a_mix(tmp_path):
    folder = tmp_path / "shop"
    root = tmp_path / "store"
    build(shop_today(folder), root)
    before = {p.id: (p.price, p.availability) for p in Store.open(root).products()}
    tomorrow = shop_tomorrow(folder)
    after = {p.id: (p.price, p.availability) for p in read_catalog(tomorrow).products}
    store = Store.open(root)
    gen0 = store.generation
    expect = {gen0: before, gen0 + 1: after}

    plan = store.sync(tomorrow, dry_run=True)
    assert (plan.added, plan.updated, plan.reencoded, plan.removed, plan.encoded) == (0, 15, 3, 10, 3)
    assert store.generation == gen0 and len(Store.open(root)) == 42          # a dry run changes nothing

    seen, errors, stop = [], [], threading.Event()
    probe = store.encoder.encode([picture(12), picture(27)])

    def reader():
        from dressfinder.search import search_vectors
        other = Store.open(root)
        while True:
            last = stop.is_set()          # one more answer after the sync has returned
            try:
                fresh = Store.open(root) if len(seen) % 2 else (other.reload(), other)[1]
                snap = fresh.snapshot()
                gen = snap.manifest["generation"]
                for hits in search_vectors(snap, probe, 100, variants=True):
                    got = {h.id: (h.product.price, h.product.availability) for h in hits}
                    assert got == expect[gen], f"generation {gen} answered a mix"
                seen.append(gen)
            except Exception as e:     # noqa: BLE001 - the test's point: none at all
                errors.append(repr(e))
                return
            if last:
                return

    t = threading.Thread(target=reader)
    t.start()
    encoded = ColourEncoder.encoded
    rep = store.sync(tomorrow)
    stop.set()
    t.join(60)
    assert not errors, errors[0]
    assert set(seen) <= {gen0, gen0 + 1} and seen[-1] == gen0 + 1

    assert (rep.added, rep.updated, rep.reencoded, rep.removed, rep.unchanged) == (0, 15, 3, 10, 14)
    assert rep.encoded == 3 and ColourEncoder.encoded - encoded == 3     # only the replaced pictures
    assert store.generation == gen0 + 1                                  # one generation
    assert "updated 15, re-encoded 3 (3 pictures encoded)" in rep.format_sync()
    assert_matches(store, tomorrow)
    assert_matches(Store.open(root), tomorrow)
    hits = query(store, picture(5000 + 26, 0))                           # the new picture finds its product
    assert (hits[0].id, hits[0].image) == ("p-026", 1)
    assert not (tmp_path / "store" / ".work").exists() or not any((tmp_path / "store" / ".work").iterdir())
    # in step: a second sync changes nothing
    again = store.sync(tomorrow)
    assert (again.added, again.updated, again.reencoded, again.removed, again.encoded) == (0, 0, 0, 0, 0)
    assert store.generation == gen0 + 1


def test_sync_adds_new_products_reusing_pictures_the_store_has(tmp_path):
    folder = tmp_path / "shop"
    root = tmp_path / "store"
    store = build(write_shop(folder, n=10, views=2), root)
    rows = list(csv.DictReader(open(folder / "catalog.csv")))
    rows.append({**rows[2], "id": "p-002-copy", "title": "The same pictures"})    # a new id, known pictures
    with open(folder / "more.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    encoded = ColourEncoder.encoded
    rep = store.sync(folder / "more.csv")
    assert (rep.added, rep.encoded, ColourEncoder.encoded - encoded) == (1, 0, 0)
    assert_matches(store, folder / "more.csv")


def test_index_add_resumes_after_a_crash_without_reencoding_finished_chunks(tmp_path, monkeypatch):
    from dressfinder import embed

    store = build(write_shop(tmp_path / "a", n=5, views=1), tmp_path / "store")
    more = write_shop(tmp_path / "b", n=30, views=1, skip=set(range(5)))      # 25 new products
    monkeypatch.setattr(embed, "CHUNK", 4)
    real = ColourEncoder.encode_arrays
    calls = {"n": 0}

    def crash_on_third(self, batch):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("killed")
        return real(self, batch)

    monkeypatch.setattr(ColourEncoder, "encode_arrays", crash_on_third)
    with pytest.raises(RuntimeError):
        store.add(more)
    assert len(Store.open(tmp_path / "store")) == 5
    assert len(list((tmp_path / "store" / ".work").glob("add-*/chunk-*.npz"))) == 2
    monkeypatch.setattr(ColourEncoder, "encode_arrays", real)
    encoded = ColourEncoder.encoded
    rep = store.add(more)
    assert rep.added == 25 and ColourEncoder.encoded - encoded == 25 - 8     # two chunks of 4 were done
    assert not list((tmp_path / "store" / ".work").glob("add-*"))


# --------------------------------------------------------------------------- kill -9 in the middle of a sync

# The child runs the CLI with the test's own seams: the stand-in encoder registered, chunks of 4
# pictures (so the sync has several), and a pause after the first finished chunk is saved, where it
# writes the marker file and waits for the test's kill -9.
HOOKED_SYNC = """
import os, sys, time
sys.path.insert(0, os.environ["DRESSFINDER_TEST_DIR"])
import sync_fixtures                       # registers test-colour
import dressfinder.embed as embed
embed.CHUNK = 4
real_save = embed.ChunkCache.save
def save(self, start, chunk):
    real_save(self, start, chunk)
    if self.dir is not None:
        open(os.environ["DRESSFINDER_TEST_MARKER"], "w").close()
        time.sleep(600)
embed.ChunkCache.save = save
from dressfinder.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_kill_9_in_the_middle_of_a_sync_then_it_resumes_and_ends_as_an_uninterrupted_one(tmp_path, monkeypatch):
    import os
    import subprocess
    import sys

    from conftest import REPO
    from dressfinder import embed
    from test_faults import kill_at

    folder = tmp_path / "shop"
    root, twin = tmp_path / "store", tmp_path / "twin"
    build(shop_today(folder), root)
    shutil.copytree(root, twin)
    tomorrow = shop_tomorrow(folder, new=10)                # 10 new products: 20 pictures, and 3 replaced
    manifest = (root / "store.json").read_bytes()

    marker = tmp_path / "reached"
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "DRESSFINDER_TEST_MARKER": str(marker),
           "DRESSFINDER_TEST_DIR": str(Path(__file__).parent)}
    proc = subprocess.Popen([sys.executable, "-c", HOOKED_SYNC, "sync", str(tomorrow), "--store", str(root),
                             "--quiet"], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    kill_at(marker, proc)                                    # one chunk of 4 pictures is done, the sync is not
    assert (root / "store.json").read_bytes() == manifest    # the store is as it was
    assert len(list((root / ".work").glob("sync-*/chunk-*.npz"))) == 1
    assert len(Store.open(root)) == 42

    monkeypatch.setattr(embed, "CHUNK", 4)                  # the same chunks as the killed run
    encoded = ColourEncoder.encoded
    rep = Store.open(root).sync(tomorrow)
    assert (rep.resumed, rep.encoded, ColourEncoder.encoded - encoded) == (4, 19, 19)
    assert (rep.added, rep.updated, rep.reencoded, rep.removed) == (10, 15, 3, 10)

    whole = Store.open(twin).sync(tomorrow)                 # the same sync, never interrupted
    assert whole.encoded == 23
    assert contents(Store.open(root)) == contents(Store.open(twin))
    assert Store.open(root).generation == Store.open(twin).generation
    assert_matches(Store.open(root), tomorrow)



@pytest.mark.slow
def test_kill_9_in_the_middle_of_index_add_then_it_resumes_and_ends_as_an_uninterrupted_one(tmp_path, monkeypatch):
    import os
    import subprocess
    import sys

    from conftest import REPO
    from dressfinder import embed
    from test_faults import kill_at

    root, twin = tmp_path / "store", tmp_path / "twin"
    build(write_shop(tmp_path / "a", n=5, views=1), root)
    shutil.copytree(root, twin)
    more = write_shop(tmp_path / "b", n=30, views=1, skip=set(range(5)))       # 25 new products, 25 pictures
    manifest = (root / "store.json").read_bytes()

    marker = tmp_path / "reached"
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "DRESSFINDER_TEST_MARKER": str(marker),
           "DRESSFINDER_TEST_DIR": str(Path(__file__).parent)}
    proc = subprocess.Popen([sys.executable, "-c", HOOKED_SYNC, "index", str(more), "--store", str(root), "--add",
                             "--quiet"], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    kill_at(marker, proc)                                     # one chunk of 4 pictures is done, the add is not
    assert (root / "store.json").read_bytes() == manifest     # the store is as it was
    assert len(list((root / ".work").glob("add-*/chunk-*.npz"))) == 1
    assert len(Store.open(root)) == 5

    monkeypatch.setattr(embed, "CHUNK", 4)                   # the same chunks as the killed run
    encoded = ColourEncoder.encoded
    rep = Store.open(root).add(more)
    assert rep.added == 25 and ColourEncoder.encoded - encoded == 25 - 4      # the finished chunk is not redone
    assert not list((root / ".work").glob("add-*"))

    Store.open(twin).add(more)                               # the same add, never interrupted
    assert contents(Store.open(root)) == contents(Store.open(twin))
    assert Store.open(root).generation == Store.open(twin).generation


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
