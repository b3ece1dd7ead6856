import json
import os
from contextlib import contextmanager

import numpy as np
import pytest

from dressfinder.catalog import Filters, Product
from dressfinder.errors import DressfinderError, NotFound, StoreError
from dressfinder.store import Store

from conftest import dress_image, write_catalog


def test_build_skips_broken_images_and_finds_each_product(built_store, catalog_dir):
    store = Store.open(built_store)
    assert len(store) == 24  # the broken file was skipped
    assert store.manifest["built"]["skipped"] == 1
    for i in (0, 7, 19):
        hits = store.search(catalog_dir / "images" / f"dress-{i:03d}.jpg", k=3)
        assert hits[0].id == f"sku-{i:03d}" and hits[0].score > 0.99
        assert hits[0].product.title == f"Dress {i}" and hits[0].product.currency == "EUR"
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_store_folder_is_complete_and_self_contained(built_store):
    m = json.loads((built_store / "store.json").read_text())
    assert m["encoder"]["name"] == "effnet-lite0" and m["index"]["kind"] == "flat"
    for key in ("catalog", "index"):
        assert (built_store / m["files"][key]).is_file()
    vec = np.load(built_store / m["files"]["vectors"][0])
    assert vec.shape == (24, 1280)
    store = Store.open(built_store)
    f = store.image_file("sku-003")
    assert f.is_file() and f.is_relative_to(built_store / "images")
    assert not (built_store / ".work").exists()


def test_similar_excludes_itself_and_filters(built_store):
    store = Store.open(built_store)
    hits = store.similar("sku-004", k=5)
    assert len(hits) == 5 and "sku-004" not in [h.id for h in hits]
    cheap = store.search(dress_image(5), k=30, filters=Filters(max_price=25))
    assert cheap and all(h.product.price <= 25 for h in cheap)
    assert {h.id for h in cheap} == {f"sku-{i:03d}" for i in range(7)}  # prices 10..25
    shop = store.search(dress_image(5), k=3, filters=Filters(shop="shop-b", category="mini"))
    assert all(h.product.shop == "shop-b" and h.product.category == "mini" for h in shop)
    assert store.search(dress_image(5), k=3, filters=Filters(shop="nobody")) == []
    with pytest.raises(NotFound):
        store.similar("nope")
    with pytest.raises(DressfinderError):
        store.search(dress_image(1), k=0)


def test_add_and_remove_without_rebuild(store_copy, tmp_path):
    store = store_copy
    vectors_before = set(os.listdir(store.root))
    new = tmp_path / "new.png"
    dress_image(500).save(new)
    rep = store.add([Product(id="new-1", image=str(new), title="Fresh", price=5.0)])
    assert rep.added == 1 and len(store) == 25
    assert store.search(new, k=1)[0].id == "new-1"
    # the first vectors segment was not rewritten: the add appended a segment
    m = store.manifest
    assert len(m["files"]["vectors"]) == 2 and m["files"]["vectors"][0] in vectors_before
    # another process sees it
    assert Store.open(store.root).search(new, k=1)[0].id == "new-1"
    # ids already present are skipped, not duplicated
    rep = store.add([Product(id="new-1", image=str(new))])
    assert rep.added == 0 and rep.skipped == [("new-1", "id already in the store")]
    rep = store.remove(["new-1", "sku-000", "ghost"])
    assert rep.removed == 2 and rep.skipped == [("ghost", "no such product")]
    assert len(store) == 23
    assert all(h.id not in ("new-1", "sku-000") for h in store.search(new, k=23))
    with pytest.raises(NotFound):
        store.product("sku-000")


def test_add_image_bytes_and_bad_bytes(store_copy):
    import io

    buf = io.BytesIO()
    dress_image(77).save(buf, "WEBP")
    store_copy.add_image(Product(id="web-1", title="From API"), buf.getvalue())
    assert store_copy.search(buf.getvalue(), k=1)[0].id == "web-1"
    with pytest.raises(DressfinderError, match="already exists"):
        store_copy.add_image(Product(id="web-1"), buf.getvalue())
    with pytest.raises(DressfinderError):
        store_copy.add_image(Product(id="web-2"), b"<svg></svg>")
    assert len(store_copy) == 25


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_other_index_kinds_support_updates(tmp_path, catalog_dir, kind):
    store = Store.build(catalog_dir / "catalog.csv", tmp_path / kind, index=kind,
                        index_params={"nprobe": 10} if kind == "ivf" else None, progress=False)
    assert store.manifest["index"]["kind"] == kind
    q = catalog_dir / "images" / "dress-005.jpg"
    assert store.search(q, k=1)[0].id == "sku-005"
    store.remove(["sku-005"])
    assert "sku-005" not in [h.id for h in Store.open(store.root).search(q, k=5)]


@contextmanager
def power_cut_before_commit(monkeypatch):
    """The writer inside dies (KeyboardInterrupt) where it would commit: new files written, manifest not."""
    def boom(*a, **k):
        raise KeyboardInterrupt("power cut")

    monkeypatch.setattr(Store, "_write_manifest", staticmethod(boom))
    try:
        with pytest.raises(KeyboardInterrupt):
            yield
    finally:
        monkeypatch.undo()


def test_crash_before_commit_leaves_previous_store(store_copy, tmp_path, monkeypatch):
    store = store_copy
    before = [h.id for h in store.search(dress_image(3), k=5)]
    new = tmp_path / "n.jpg"
    dress_image(300).save(new)

    with power_cut_before_commit(monkeypatch):
        store.add([Product(id="lost", image=str(new))])
    again = Store.open(store.root)
    assert len(again) == 24 and [h.id for h in again.search(dress_image(3), k=5)] == before
    # the next change works and sweeps the orphaned files of the failed one
    again.add([Product(id="kept", image=str(new))])
    names = set(os.listdir(store.root))
    live = again.manifest["files"]
    prev = again.manifest["previous"]
    allowed = {live["catalog"], live["index"], *live["vectors"], prev["catalog"], prev["index"], *prev["vectors"]}
    assert {n for n in names if n.split("-")[0] in ("catalog", "index", "vectors")} <= allowed


def test_stored_images_go_one_change_after_their_products(store_copy, tmp_path, monkeypatch):
    """A removed product's image stays while the previous generation may still serve it, and goes at
    the next change, unless a product uses the same picture again; images a crashed add left behind
    go at the next change too."""
    store = store_copy
    images = store.root / "images"
    gone, reused = store.image_file("sku-003"), store.image_file("sku-004")
    store.remove(["sku-003", "sku-004"])
    assert gone.is_file() and reused.is_file()                       # the previous generation names them
    assert store.manifest["files"]["released"] == sorted(f"{p.parent.name}/{p.name}" for p in (gone, reused))
    again = tmp_path / "again.jpg"
    again.write_bytes(reused.read_bytes())
    store.add([Product(id="same-picture", image=str(again))])
    assert not gone.exists() and reused.is_file()                    # swept / used again
    assert store.image_file("same-picture") == reused
    # a writer dies after storing a new image and before committing: the next change sweeps it
    before = {p for p in images.rglob("*") if p.is_file()}
    new = tmp_path / "n.jpg"
    dress_image(301).save(new)

    with power_cut_before_commit(monkeypatch):
        store.add([Product(id="lost", image=str(new))])
    orphans = {p for p in images.rglob("*") if p.is_file()} - before
    assert len(orphans) == 1 and (store.root / ".images-pending").exists()
    Store.open(store.root).remove(["sku-010"])
    assert not any(p.exists() for p in orphans) and not (store.root / ".images-pending").exists()
    assert all(Store.open(store.root).image_file(pid).is_file() for pid in ("sku-000", "same-picture"))


def test_rebuild_replaces_atomically_and_readers_keep_working(tmp_path, catalog_dir):
    root = tmp_path / "s"
    Store.build(catalog_dir / "catalog.csv", root, progress=False)
    reader = Store.open(root)
    gen = reader.generation
    small = tmp_path / "small"
    write_catalog(small, n=6)
    Store.build(small / "catalog.csv", root, progress=False)
    assert len(reader) == 24  # the old snapshot stays usable while open
    assert reader.reload() and len(reader) == 6 and reader.generation == gen + 1
    assert not reader.reload()


def test_build_resumes_from_finished_chunks(tmp_path, catalog_dir, monkeypatch):
    import dressfinder.embed as embed_mod

    monkeypatch.setattr(embed_mod, "CHUNK", 8)
    calls = {"n": 0}
    real = embed_mod.prepare_one

    def crash_after_16(encoder, src, images_dir=None):
        calls["n"] += 1
        if calls["n"] > 16:
            raise KeyboardInterrupt
        return real(encoder, src, images_dir)

    monkeypatch.setattr(embed_mod, "prepare_one", crash_after_16)
    with pytest.raises(KeyboardInterrupt):
        Store.build(catalog_dir / "catalog.csv", tmp_path / "r", progress=False, workers=1)
    assert not (tmp_path / "r" / "store.json").exists()
    with pytest.raises(StoreError, match="not a finished store"):
        Store.open(tmp_path / "r")
    calls["n"] = -10**6  # no more crashes; count what the second run decodes
    store = Store.build(catalog_dir / "catalog.csv", tmp_path / "r", progress=False, workers=1)
    assert calls["n"] + 10**6 == 25 - 16  # the two finished chunks of 8 were reused
    assert len(store) == 24


def test_open_errors(tmp_path):
    with pytest.raises(StoreError, match="no store"):
        Store.open(tmp_path / "missing")
    (tmp_path / "half").mkdir()
    with pytest.raises(StoreError, match="not a finished store"):
        Store.open(tmp_path / "half")
    (tmp_path / "half" / "store.json").write_text("{not json")
    with pytest.raises(StoreError, match="cannot read"):
        Store.open(tmp_path / "half")


def test_empty_catalogue_is_an_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DressfinderError, match="no images"):
        Store.build(tmp_path / "empty", tmp_path / "s", progress=False)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "x.jpg").write_bytes(b"nope")
    with pytest.raises(DressfinderError, match="no readable images"):
        Store.build(tmp_path / "broken", tmp_path / "s2", progress=False)
    assert not (tmp_path / "s2" / "store.json").exists()


def test_store_records_the_encoder_precision_and_queries_use_it(tmp_path):
    from dressfinder.encoders import refuse_precision_mismatch
    from dressfinder.errors import EncoderError

    write_catalog(tmp_path / "cat", n=8)
    stores = {}
    for precision in ("int8", "fp32"):
        root = tmp_path / precision
        Store.build(tmp_path / "cat" / "catalog.csv", root, encoder="effnet-tuned", precision=precision,
                    progress=False)
        m = json.loads((root / "store.json").read_text())
        assert m["encoder"]["precision"] == precision
        store = Store.open(root)
        assert store.encoder.precision == precision
        assert store.search(tmp_path / "cat" / "images" / "dress-005.jpg", k=1)[0].id == "sku-005"
        stores[precision] = store
    spec8 = stores["int8"].manifest["encoder"]
    refuse_precision_mismatch(spec8, "int8")
    refuse_precision_mismatch(spec8, "auto")
    refuse_precision_mismatch(spec8, None)
    with pytest.raises(EncoderError, match="encoded with the int8 variant"):
        refuse_precision_mismatch(spec8, "fp32")
    # a store from before int8 variants (no precision recorded) is float32, and opens as such
    root = tmp_path / "fp32"
    m = json.loads((root / "store.json").read_text())
    del m["encoder"]["precision"]
    (root / "store.json").write_text(json.dumps(m))
    old = Store.open(root)
    assert old.encoder.precision == "fp32"
    with pytest.raises(EncoderError, match="encoded with the fp32 variant"):
        refuse_precision_mismatch(old.manifest["encoder"], "int8")


def test_one_picture_stored_by_many_threads_at_once(tmp_path):
    """Products that share one picture (a feed's variants) are decoded side by side: each thread
    stores the same bytes without tripping over another's temporary file."""
    import threading

    from dressfinder.embed import store_image_bytes

    dress_image(3).save(tmp_path / "d.jpg")
    data = (tmp_path / "d.jpg").read_bytes()
    for round_ in range(20):
        images = tmp_path / f"images-{round_}"
        barrier, names, errors = threading.Barrier(8), [], []

        def store():
            barrier.wait()
            try:
                names.append(store_image_bytes(data, images))
            except OSError as e:        # the race: another thread's os.replace took the shared temporary file
                errors.append(e)

        threads = [threading.Thread(target=store) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == [] and len(set(names)) == 1 and (images / names[0]).read_bytes() == data
        assert [p.name for p in (images / names[0]).parent.iterdir()] == [os.path.basename(names[0])]  # no leftovers
