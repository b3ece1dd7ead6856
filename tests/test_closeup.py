"""Close-ups of the fabric: the model's patch output, the store's patch vectors, the search's
close-up ranking (search.closeup_hits) and the evaluation's copy of it."""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from conftest import write_catalog
from dressfinder import boxhead, regions, search
from dressfinder.encoders import get_encoder
from dressfinder.schema import Product
from dressfinder.thresholds import DEFAULT_THRESHOLDS


@pytest.fixture(scope="module")
def encoder():
    return get_encoder("effnet-tuned", precision="fp32")


@pytest.fixture(scope="module")
def tuned_store(tmp_path_factory):
    """A store of the generated catalogue with the default encoder (which makes patch vectors)."""
    from dressfinder.store import Store

    folder = tmp_path_factory.mktemp("closeup")
    write_catalog(folder / "cat", n=16)
    with Store.build(folder / "cat" / "catalog.csv", folder / "store", index="flat", progress=False,
                     precision="fp32") as s:
        yield s


def test_patch_output_is_the_centre_of_the_maps_pooled_and_whitened_like_the_vector(encoder, catalog_dir):
    """The shipped model's ``patches`` against numpy: GeM over the centre cells of the two maps the
    vector pools whole, the same powers and whitening (read from the model file)."""
    onnx = pytest.importorskip("onnx")
    import onnxruntime as ort
    from onnx import numpy_helper

    from dressfinder.training.patches import CENTRE

    model = onnx.load(str(encoder.model_path))
    init = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    maps = {}
    for tag in ("head", "mid"):
        clip = next(n for n in model.graph.node if n.name == f"/gem_{tag}/Clip_1")
        maps[tag] = clip.input[0]
        model.graph.output.append(onnx.helper.make_empty_tensor_value_info(clip.input[0]))
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.stack([encoder.preprocess(encoder.load(catalog_dir / "images" / f"dress-{i:03d}.jpg")) for i in (1, 6)])
    out = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {"images": x})))
    parts = []
    for tag, scale in (("head", 1), ("mid", 2)):
        p = float(np.clip(init[f"gem_{tag}.p"], 1, 8))
        a, b = CENTRE[0] * scale, CENTRE[1] * scale
        g = (np.clip(out[maps[tag]][:, :, a:b, a:b], 1e-6, None) ** p).mean(axis=(2, 3)) ** (1 / p)
        parts.append(g / np.linalg.norm(g, axis=1, keepdims=True))
    proj = next(n for n in model.graph.node if n.name == "/proj/MatMul")
    want = (np.concatenate(parts, 1) - init["mean"]) @ init[proj.input[1]]
    want /= np.linalg.norm(want, axis=1, keepdims=True)
    np.testing.assert_allclose(out["patches"], want, atol=2e-5)
    wide = encoder.encode_catalogue_arrays(x)
    assert wide.shape == (2, 1024) and encoder.patch_dim == encoder.dim == 512
    np.testing.assert_allclose(wide[:, :512], encoder.encode_arrays(x), atol=1e-6)   # one pass, the same vectors
    np.testing.assert_allclose(wide[:, 512:], want, atol=2e-5)
    assert float(wide[0, :512] @ wide[0, 512:]) < 0.99    # the centre is not the whole picture


def test_the_tool_adds_the_output_without_touching_the_vector(encoder, tmp_path):
    onnx = pytest.importorskip("onnx")
    import onnxruntime as ort

    from dressfinder.training.patches import OUTPUT, PREFIX, main

    model = onnx.load(str(encoder.model_path))
    keep = [n for n in model.graph.node if not n.name.startswith(PREFIX)]
    del model.graph.node[:]
    model.graph.node.extend(keep)
    outs = [o for o in model.graph.output if o.name != OUTPUT]
    del model.graph.output[:]
    model.graph.output.extend(outs)
    path = tmp_path / "plain.onnx"
    onnx.save(model, str(path))
    assert main([str(path)]) == 0
    x = np.random.default_rng(1).uniform(-1, 1, (2, 3, 224, 224)).astype(np.float32)
    ours = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"images": x})
    shipped = ort.InferenceSession(str(encoder.model_path), providers=["CPUExecutionProvider"]).run(None, {"images": x})
    assert np.array_equal(ours[0], shipped[0])
    np.testing.assert_allclose(ours[1], shipped[1], atol=1e-6)
    assert main([str(tmp_path / "missing.onnx")]) == 1


def test_closeup_vector_is_a_unit_vector_and_none_without_patches(encoder, catalog_dir):
    im = Image.open(catalog_dir / "images" / "dress-002.jpg")
    v = encoder.encode_closeup(im)
    assert v.shape == (512,) and abs(float(np.linalg.norm(v)) - 1) < 1e-5
    assert get_encoder("effnet-lite0").encode_closeup(im) is None


def test_store_keeps_patch_vectors_row_aligned_through_changes(tuned_store, tmp_path, catalog_dir, encoder):
    import shutil

    from dressfinder.store import Store

    root = tmp_path / "copy"
    shutil.copytree(tuned_store.root, root)
    with Store.open(root) as s:
        snap = s.snapshot()
        assert s.manifest["files"]["patches"] and snap.patch_vectors(np.arange(3)).shape == (3, 512)
        im = catalog_dir / "images" / "dress-005.jpg"
        want = encoder.encode_catalogue_arrays(encoder.preprocess(encoder.load(im))[None])[0, 512:]
        row = snap.get("sku-005")[0]
        np.testing.assert_allclose(snap.patch_vectors(np.array([row]))[0], want, atol=1e-5)
        s.remove(["sku-001"])
        s.add_image(Product(id="new-5", title="again", image="x.jpg"), im.read_bytes())
        snap = s.snapshot()
        assert len(s.manifest["files"]["patches"]) == len(s.manifest["files"]["vectors"]) == 2
        new_row = snap.get("new-5")[0]
        np.testing.assert_allclose(snap.patch_vectors(np.array([new_row]))[0], want, atol=1e-5)
    with Store.open(root) as again:   # and after a reopen
        assert again.snapshot().patch_vectors(np.array([new_row])).shape == (1, 512)


def test_a_store_without_patch_vectors_has_none(built_store):
    from dressfinder.store import Store

    with Store.open(built_store) as s:   # effnet-lite0: no patch output
        assert s.manifest["files"].get("patches") is None
        assert s.snapshot().patch_vectors(np.arange(2)) is None


def closeup_of(path, box=(0.3, 0.4, 0.7, 0.7), zoom: float = 3.0) -> bytes:
    """The part ``box`` of a picture, enlarged ``zoom`` times (its shape kept): a phone's close-up."""
    im = Image.open(path).convert("RGB")
    w, h = im.size
    patch = im.crop((int(box[0] * w), int(box[1] * h), int(box[2] * w), int(box[3] * h)))
    buf = io.BytesIO()
    patch.resize((round(patch.width * zoom), round(patch.height * zoom)), Image.Resampling.BICUBIC).save(
        buf, "JPEG", quality=90)
    return buf.getvalue()


class TinySnapshot:
    """A catalogue of a few hand-made vectors, searched exhaustively in numpy (search.Snapshot's
    methods that the close-up path uses): products ``p0``, ``p1``, ... at rows 0, 1, ..."""

    metric = "ip"

    def __init__(self, vectors, patches=None, files=None):
        self.vec = np.asarray(vectors, np.float32)
        self.patches = None if patches is None else np.asarray(patches, np.float32)
        self.files = files or [None] * len(self.vec)
        self.n_rows = len(self.vec)

    def rows(self, filters=None):
        assert filters is None
        return np.arange(self.n_rows, dtype=np.int64)

    def vectors(self, rows):
        return self.vec[np.asarray(rows, np.int64)]

    def patch_vectors(self, rows):
        return None if self.patches is None else self.patches[np.asarray(rows, np.int64)]

    def candidates(self, queries, k, filters=None, nprobe=None):
        assert filters is None
        scores = np.asarray(queries, np.float32) @ self.vec.T
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        got = np.take_along_axis(scores, order, axis=1)
        pad = k - order.shape[1]
        return (np.pad(got, ((0, 0), (0, pad)), constant_values=-np.inf),
                np.pad(order, ((0, 0), (0, pad)), constant_values=-1))

    def records(self, rows):
        return {int(r): (Product(id=f"p{int(r)}", title=f"product {int(r)}"), self.files[int(r)]) for r in rows}

    # one picture a product: no row is another picture of a product
    def image_rows(self, rows):
        return {}

    def rows_of_products(self, product_rows):
        return np.asarray(product_rows, np.int64)

    def pictures(self, product_row):
        return []


# the photo's and the close-up's cosines to four products, all hand-made (4-d unit vectors):
#   photo (1, 0, 0, 0):  p0 (1, 0, 0, 0) 1.0   p1 (0.8, 0.6, 0, 0) 0.8   p2 (0.28, 0.96, 0, 0) 0.28   p3 (0, 0, 1, 0) 0
#   close-up (0, 0, 0, 1) to the patches:
#                        p0 (1, 0, 0, 0) 0     p1 (0, 0, 0.6, 0.8) 0.8   p2 (0, 0, 0, 1) 1.0         p3 (0, 1, 0, 0) 0
TINY_PHOTO, TINY_CLOSE = np.array([1.0, 0, 0, 0]), np.array([0, 0, 0, 1.0])
TINY = dict(vectors=[[1, 0, 0, 0], [0.8, 0.6, 0, 0], [0.28, 0.96, 0, 0], [0, 0, 1, 0]],
            patches=[[1, 0, 0, 0], [0, 0, 0.6, 0.8], [0, 0, 0, 1], [0, 1, 0, 0]])
TINY_TH = replace(DEFAULT_THRESHOLDS, sure=0.8, closeup_ramp=0.15, closeup_min_patch=0.5)


def test_closeup_hits_on_a_hand_made_catalogue():
    """The scores worked out by hand: the photo's cosine and the patch's, weighed by
    search.CLOSEUP_WEIGHT (1: their mean) or, for a surer whole photo, less (closeup_weight)."""
    snap = TinySnapshot(**TINY)
    assert search.CLOSEUP_WEIGHT == 1.0
    hits = search.closeup_hits(snap, TINY_PHOTO, TINY_CLOSE, 4, th=TINY_TH)
    # p1 (0.8 + 0.8) / 2 = 0.8, p2 (0.28 + 1) / 2 = 0.64, p0 (1 + 0) / 2 = 0.5, p3 (0 + 0) / 2 = 0
    assert [h.id for h in hits] == ["p1", "p2", "p0", "p3"]
    np.testing.assert_allclose([h.score for h in hits], [0.8, 0.64, 0.5, 0.0], atol=1e-6)
    assert [h.id for h in search.closeup_hits(snap, TINY_PHOTO, TINY_CLOSE, 2, th=TINY_TH)] == ["p1", "p2"]
    # a whole photo 0.05 below sure, a third of the ramp (0.15): the patch weighs 1/3,
    # score = (photo + patch / 3) / (4 / 3): p1 (0.8 + 0.8 / 3) * 3 / 4 = 0.8, p0 0.75, p2 0.21 + 0.25 = 0.46, p3 0
    nearly = search.closeup_hits(snap, TINY_PHOTO, TINY_CLOSE, 4, th=TINY_TH, whole_score=0.75)
    assert [h.id for h in nearly] == ["p1", "p0", "p2", "p3"]
    np.testing.assert_allclose([h.score for h in nearly], [0.8, 0.75, 0.46, 0.0], atol=1e-6)
    # a sure whole photo: the fabric weighs nothing, the photo's cosines alone
    sure = search.closeup_hits(snap, TINY_PHOTO, TINY_CLOSE, 4, th=TINY_TH, whole_score=0.8)
    assert [h.id for h in sure] == ["p0", "p1", "p2", "p3"]
    np.testing.assert_allclose([h.score for h in sure], [1.0, 0.8, 0.28, 0.0], atol=1e-6)
    # the region's vector (p3's) and the whole photo's: each product judged by the better one
    both = search.closeup_hits(snap, np.stack([TINY_PHOTO, [0, 0, 1.0, 0]]), TINY_CLOSE, 4, th=TINY_TH)
    # p3 (1 + 0) / 2 = 0.5 now, the others as before
    assert [h.id for h in both] == ["p1", "p2", "p0", "p3"]
    np.testing.assert_allclose([h.score for h in both], [0.8, 0.64, 0.5, 0.5], atol=1e-6)
    # the gate: the best patch (p2's, 1.0) must reach closeup_min_patch
    assert search.closeup_hits(snap, TINY_PHOTO, TINY_CLOSE, 4, th=replace(TINY_TH, closeup_min_patch=1.01)) is None
    other = np.array([0.6, 0, 0, 0.8])               # to the patches: 0.6, 0.8 * 0.8 = 0.64, 0.8, 0
    assert search.closeup_hits(snap, TINY_PHOTO, other, 4, th=replace(TINY_TH, closeup_min_patch=0.85)) is None
    assert search.closeup_hits(snap, TINY_PHOTO, other, 4, th=replace(TINY_TH, closeup_min_patch=0.75)) is not None
    no_patches = TinySnapshot(TINY["vectors"])
    assert search.closeup_hits(no_patches, TINY_PHOTO, TINY_CLOSE, 4, th=TINY_TH) is None


def test_closeup_hits_score_the_best_of_each_list_both_ways(monkeypatch):
    """Candidates are the photo's best and the close-up's best (search.CLOSEUP_FETCH of each),
    not the whole catalogue: with one of each, p0 (the photo's best) and p2 (the patches')."""
    monkeypatch.setattr(search, "CLOSEUP_FETCH", 1)
    hits = search.closeup_hits(TinySnapshot(**TINY), TINY_PHOTO, TINY_CLOSE, 4, th=TINY_TH)
    assert [h.id for h in hits] == ["p2", "p0"]                     # 0.64, 0.5; p1 (0.8) was in neither list
    np.testing.assert_allclose([h.score for h in hits], [0.64, 0.5], atol=1e-6)


def _cosines(vectors, v) -> np.ndarray:
    vectors, v = np.asarray(vectors, np.float64), np.asarray(v, np.float64)
    return vectors @ v / (np.linalg.norm(vectors, axis=1) * np.linalg.norm(v))


def test_closeup_hits_rank_by_the_combined_score_over_the_whole_catalogue(tuned_store, encoder, catalog_dir):
    """On the shipped model's vectors, what any weighing of the two cosines must give (the weights
    themselves: test_closeup_hits_on_a_hand_made_catalogue)."""
    snap = tuned_store.snapshot()
    photo = Image.open(io.BytesIO(closeup_of(catalog_dir / "images" / "dress-009.jpg")))
    vec = tuned_store.embed_query(photo)
    close = encoder.encode_closeup(photo)
    rows = snap.rows()
    photo_cos = dict(zip(rows.tolist(), _cosines(snap.vectors(rows), vec)))
    patch_cos = dict(zip(rows.tolist(), _cosines(snap.patch_vectors(rows), close)))
    best_patch = max(patch_cos.values())
    th = DEFAULT_THRESHOLDS
    hits = search.closeup_hits(snap, vec, close, 5, th=th)
    assert (hits is None) == (best_patch < th.closeup_min_patch)   # the gate
    th = replace(th, closeup_min_patch=best_patch - 1e-4)
    hits = search.closeup_hits(snap, vec, close, len(rows), th=th)
    assert hits is not None and sorted(h.row for h in hits) == sorted(rows.tolist())   # the whole catalogue
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True)
    for h in hits:            # a weighted mean of the two cosines lies between them
        lo, hi = sorted((photo_cos[h.row], patch_cos[h.row]))
        assert lo - 1e-6 <= h.score <= hi + 1e-6
    for i, a in enumerate(hits):  # no product ranks below one it beats on both cosines
        for b in hits[:i]:
            assert not (photo_cos[a.row] > photo_cos[b.row] and patch_cos[a.row] > patch_cos[b.row]), (a.id, b.id)
    assert [h.row for h in search.closeup_hits(snap, vec, close, 5, th=th)] == [h.row for h in hits[:5]]
    sub = search.closeup_hits(snap, vec, close, 5, th=th, filters=search.Filters(category="maxi"))
    assert sub is None or all(h.product.category == "maxi" for h in sub)
    sub = search.closeup_hits(snap, vec, close, 5, th=replace(th, closeup_min_patch=-1.0),
                              filters=search.Filters(category="maxi"))
    assert sub and all(h.product.category == "maxi" for h in sub)
    # a whole photo at sure: the fabric weighs nothing, the exhaustive ranking by the photo's cosine
    sure = search.closeup_hits(snap, vec, close, len(rows), th=th, whole_score=th.sure)
    by_photo = sorted(rows.tolist(), key=lambda r: (-photo_cos[r], r))
    assert [h.row for h in sure] == by_photo
    np.testing.assert_allclose([h.score for h in sure], [photo_cos[r] for r in by_photo], atol=1e-6)
    # nearly sure: every score moves from the full weighing toward the photo's cosine
    nearly_sure = search.closeup_hits(snap, vec, close, len(rows), th=th, whole_score=th.sure - th.closeup_ramp / 3)
    full = {h.row: h.score for h in hits}
    for h in nearly_sure:
        assert abs(h.score - photo_cos[h.row]) < abs(full[h.row] - photo_cos[h.row]) + 1e-9
        assert min(full[h.row], photo_cos[h.row]) - 1e-6 <= h.score <= max(full[h.row], photo_cos[h.row]) + 1e-6
    th = replace(th, closeup_min_patch=1.01)      # nothing matches that well
    assert search.closeup_hits(snap, vec, close, 5, th=th) is None


def test_a_closeup_is_judged_by_the_region_or_the_whole_photo_whichever_matches_better(tuned_store, encoder,
                                                                                       catalog_dir):
    """The box head may find a wrong box on a close-up: the product the whole photo matches must
    still be a candidate, and scored by the whole photo's cosine: with both vectors, each
    product's score is the better of its scores with each vector alone."""
    snap = tuned_store.snapshot()
    photo = Image.open(io.BytesIO(closeup_of(catalog_dir / "images" / "dress-009.jpg")))
    close = encoder.encode_closeup(photo)
    right, _, _ = search.find(snap, "sku-009")
    rows = snap.rows()
    whole = snap.vectors(np.array([right]))[0]             # the whole photo: the right product, plainly
    region = snap.vectors(rows)[int(np.argmin(snap.vectors(rows) @ whole))]   # a box that looks like anything else
    th = replace(DEFAULT_THRESHOLDS, closeup_min_patch=-1.0)
    alone = search.closeup_hits(snap, region, close, len(rows), th=th)
    by_whole = {h.row: h.score for h in search.closeup_hits(snap, whole, close, len(rows), th=th)}
    both = search.closeup_hits(snap, np.stack([region, whole]), close, len(rows), th=th)
    by_region = {h.row: h.score for h in alone}
    assert len(both) == len(rows)
    for h in both:
        assert h.score == pytest.approx(max(by_region[h.row], by_whole[h.row]), abs=1e-9), h.id
    place = lambda hits: [h.row for h in hits].index(right)  # noqa: E731
    assert place(both) == 0 < place(alone)


def test_the_fabric_weighs_less_the_surer_the_whole_photo_is():
    th = DEFAULT_THRESHOLDS
    top, ramp, sure = search.CLOSEUP_WEIGHT, th.closeup_ramp, th.sure
    assert search.closeup_weight(sure, th) == 0.0 and search.closeup_weight(0.95, th) == 0.0
    assert search.closeup_weight(sure - ramp, th) == pytest.approx(top)
    assert search.closeup_weight(0.1, th) == pytest.approx(top)
    assert search.closeup_weight(sure - ramp / 2, th) == pytest.approx(top / 2)
    assert search.closeup_weight(sure - ramp / 2, th, 3.0) == pytest.approx(1.5)
    steps = [search.closeup_weight(s, th) for s in np.linspace(0.3, 0.9, 61)]
    assert all(a >= b for a, b in zip(steps, steps[1:]))
    wide = replace(th, sure=0.6, closeup_ramp=0.3)      # another encoder's scale
    assert search.closeup_weight(0.6, wide) == 0.0 and search.closeup_weight(0.45, wide) == pytest.approx(top / 2)


def test_search_reads_a_photo_as_a_closeup_only_when_nothing_is_sure(tuned_store, catalog_dir, encoder,
                                                                      monkeypatch):
    """Close-ups of eight catalogue dresses, with the encoder's own gate and with the gate open:
    what is read as a close-up has an unsure whole photo, no region that explains it and a patch
    that passes the gate; the gate is all that tells the two runs apart; and a photo read as a
    close-up finds the dress it was cut from."""
    snap = tuned_store.snapshot()
    patches = snap.patch_vectors(snap.rows())
    th = tuned_store.encoder.thresholds
    read = {}
    for i in range(8, 16):
        data = closeup_of(catalog_dir / "images" / f"dress-{i:03d}.jpg")
        best_patch = float((patches @ encoder.encode_closeup(Image.open(io.BytesIO(data)))).max())
        whole = tuned_store.search_regions(data, 3, detect=False)    # the whole photo's best match
        assert not whole.closeup and whole.region_dict()["closeup"] is False
        for gate in (th.closeup_min_patch, -1.0):   # as shipped (the encoder's own), and with the gate open
            monkeypatch.setattr(tuned_store.encoder, "thresholds", replace(th, closeup_min_patch=gate))
            found = tuned_store.search_regions(data, 3)
            assert found.region_dict()["closeup"] is found.closeup
            read[i, gate] = found.closeup
            if found.closeup:
                assert whole.hits[0].score < th.sure and best_patch >= gate
                assert found.score is None or found.score - whole.hits[0].score < th.closeup_max_gain
                assert f"sku-{i:03d}" in [h.id for h in found.hits], (i, gate)
                read[i, gate, "first"] = found.hits[0].id == f"sku-{i:03d}"
            assert not tuned_store.search_regions(data, 3, crop=(0, 0, 1, 1)).closeup
        assert read[i, th.closeup_min_patch] == (read[i, -1.0] and best_patch >= th.closeup_min_patch)
    opened = [i for i in range(8, 16) if read[i, -1.0]]
    assert len(opened) >= 4                              # measured: all eight
    assert sum(read[i, -1.0, "first"] for i in opened) >= len(opened) - 1   # measured: every one
    plain = tuned_store.search_regions(catalog_dir / "images" / "dress-004.jpg", 3)   # sure: no close-up
    assert not plain.closeup and plain.hits[0].id == "sku-004"


class Proposing:
    """A box head that always sees one product photo, at ``box``."""

    def __init__(self, box, digest: str):
        self.box, self.digest = box, digest

    def __call__(self, im):
        return [(self.box, 0.9)]


def test_a_picture_with_a_small_product_photo_in_it_is_not_read_as_a_closeup(tuned_store, catalog_dir,
                                                                               monkeypatch):
    """When the box head sees a product's photo framed in the picture (a screen, a scene), the
    service and the evaluation leave the close-up reading out, the gate open or not."""
    from dressfinder.tools.evaluate.configs import closeups

    th = replace(tuned_store.encoder.thresholds, closeup_min_patch=-1.0)
    monkeypatch.setattr(tuned_store.encoder, "thresholds", th)
    photos = [closeup_of(catalog_dir / "images" / f"dress-{i:03d}.jpg") for i in range(8, 16)]
    snap = tuned_store.snapshot()
    cat = snap.vectors(snap.rows()).astype(np.float32)
    whole = np.stack([tuned_store.embed_query(p) for p in photos])
    unsure = [i for i, v in enumerate(whole) if (cat @ v).max() < th.sure]
    read, picked = {}, {}
    for name, box in (("filling", (0.02, 0.02, 0.98, 0.98)), ("framed", (0.4, 0.3, 0.7, 0.8))):
        monkeypatch.setattr(boxhead, "shipped", lambda box=box, name=name: Proposing(box, name))
        read[name] = [tuned_store.search_regions(p, 3).closeup for p in photos]
        picked[name] = sorted(closeups(tuned_store.encoder, photos, whole, whole, cat, None, False))
    assert unsure and any(read["filling"]) and picked["filling"] == unsure
    assert not any(read["framed"]) and picked["framed"] == []


def test_closeups_find_real_dresses_better_than_the_photo_alone(tmp_path_factory):
    """Close-ups of the middle of 40 of the 1,083 DeepFashion dresses of ../shared/data, searched
    against all of them."""
    from conftest import shared_data
    from dressfinder.store import Store

    data = shared_data() / "deepfashion-dresses"
    root = tmp_path_factory.mktemp("deepfashion") / "store"
    with Store.build(data, root, index="flat", progress=False, precision="fp32") as s:
        ids = [p.id for p in s.products()][::27]
        both = alone = used = 0
        for pid in ids:
            q = closeup_of(s.image_file(pid), (0.28, 0.38, 0.72, 0.68))
            found = s.search_regions(q, 1)
            used += found.closeup
            both += found.hits[0].id == pid
            alone += s.search_regions(q, 1, detect=False).hits[0].id == pid
    print(f"close-ups read as such {used}, first right: {both} (the photo alone: {alone}) of {len(ids)}")
    assert used >= len(ids) // 3
    assert both > alone and both >= len(ids) // 2   # shipped model, 2026-12-05: 29 against 26 of 41


def test_evaluation_ranks_closeups_as_the_service_does():
    """The evaluation's close-up ranking (configs.closeup_ranked, over arrays) against the
    service's (search.closeup_hits, through a snapshot) on the same 30 random products."""
    from dressfinder.tools.evaluate.configs import closeup_ranked

    rng = np.random.default_rng(0)
    cat = rng.normal(size=(30, 64)).astype(np.float32)
    cat /= np.linalg.norm(cat, axis=1, keepdims=True)
    patches = rng.normal(size=(30, 64)).astype(np.float32)
    patches /= np.linalg.norm(patches, axis=1, keepdims=True)
    used = cat[[3, 4]] + 0.01                             # the searched regions' vectors
    whole = 0.3 * cat[[3, 4]] + 0.1                      # the whole photos', less sure
    found = np.tile(np.arange(10), (2, 1))
    th = DEFAULT_THRESHOLDS
    out = closeup_ranked(found, {1: patches[17]}, used, whole, cat, patches, np.arange(100, 130), 10, th)
    assert out[0].tolist() == found[0].tolist()          # not a close-up: unchanged
    whole_score = float((cat @ whole[1]).max())
    assert whole_score < th.sure                          # unsure: the fabric weighs in
    service = search.closeup_hits(TinySnapshot(cat, patches), np.stack([used[1], whole[1]]), patches[17], 10, th=th,
                                  whole_score=whole_score)
    assert out[1].tolist() == [100 + h.row for h in service]
    assert out[1][0] in (104, 117)                        # the region's product or the fabric's


def test_api_and_page_say_when_the_photo_was_read_as_a_closeup(tuned_store, catalog_dir):
    from fastapi.testclient import TestClient

    from webfixtures import make_app

    data = closeup_of(catalog_dir / "images" / "dress-009.jpg")
    found = tuned_store.search_regions(data, 5)
    with TestClient(make_app(tuned_store.root)) as c:
        r = c.post("/api/search", files={"file": ("c.jpg", data, "image/jpeg")}, data={"k": "5"})
        assert r.status_code == 200
        body = r.json()
        assert body["region"]["closeup"] is found.closeup
        assert [h["id"] for h in body["results"]] == [h.id for h in found.hits]
        page = c.post("/search", files={"file": ("c.jpg", data, "image/jpeg")}, data={"k": "5"})
        assert page.status_code == 200 and ('id="closeup-note"' in page.text) is found.closeup
        off = c.post("/api/search", files={"file": ("c.jpg", data, "image/jpeg")}, data={"detect": "false"})
        assert off.json()["region"]["closeup"] is False


# --------------------------------------------------------------------------- looked at closer

@settings(max_examples=60, deadline=None)
@given(st.integers(20, 2000), st.integers(20, 2000), st.floats(0.2, 5.0))
def test_closeup_views_have_the_closeups_shape_and_stay_inside_the_image(w, h, aspect):
    from dressfinder import regions

    boxes = regions.closeup_views((w, h), aspect)
    grid = len(regions.CLOSEUP_VIEW_HEIGHTS) * len(regions.CLOSEUP_VIEW_X) * len(regions.CLOSEUP_VIEW_Y)
    assert 0 < len(boxes) <= grid and len(set(boxes)) == len(boxes)
    for l, t, r, b in boxes:
        assert 0 <= l < r <= 1 and 0 <= t < b <= 1
        assert any(abs((b - t) - min(1.0, hf)) < 1e-3 for hf in regions.CLOSEUP_VIEW_HEIGHTS)
        shape = (r - l) * w / ((b - t) * h)
        assert shape == pytest.approx(aspect, rel=0.01, abs=1e-3) or (r - l > 0.999 and shape < aspect)
    hf, cx, cy = regions.CLOSEUP_VIEW_HEIGHTS[0], regions.CLOSEUP_VIEW_X[0], regions.CLOSEUP_VIEW_Y[1]
    bw = hf * h * aspect / w
    if bw <= 2 * min(cx, 1 - cx) and hf <= 2 * min(cy, 1 - cy):    # fits around the grid point: centred on it
        assert any(abs((l + r) / 2 - cx) < 1e-3 and abs((t + b) / 2 - cy) < 1e-3 for l, t, r, b in boxes)
    assert regions.closeup_views((0, h), aspect) == [] and regions.closeup_views((w, h), 0.0) == []


def test_checked_scores_take_the_better_of_vector_and_views():
    s = search.checked_scores(np.array([0.5, 0.4, 0.6]), np.array([0.3, 0.2, 0.7]), np.array([np.nan, 0.9, 0.5]))
    np.testing.assert_allclose(s, [(0.5 + 0.3) / 2, (0.4 + 0.9) / 2, (0.6 + 0.7) / 2])


def test_views_are_judged_by_the_better_of_the_photos_vectors(encoder, catalog_dir):
    ims = [Image.open(catalog_dir / "images" / f"dress-{i:03d}.jpg").convert("RGB") for i in (2, 7)]
    v1, v2 = np.asarray(encoder.encode(ims), np.float64)
    one, two = search.view_cosines(encoder, v1, ims, 0.8), search.view_cosines(encoder, v2, ims, 0.8)
    np.testing.assert_allclose(search.view_cosines(encoder, np.stack([v1, v2]), ims, 0.8), np.maximum(one, two),
                               atol=1e-6)
    assert one[0] > one[1] and two[1] > two[0]           # a picture's views are nearer its own vector
    gap = search.view_cosines(encoder, v1, [None, ims[0]], 0.8)
    assert np.isnan(gap[0]) and gap[1] == pytest.approx(one[0], abs=1e-6)
    assert np.isnan(search.view_cosines(encoder, v1, [None], 0.8)).all()


class ColourEncoder:
    """Encodes a picture as its mean colour, a unit RGB vector: every view of a red image is (1, 0, 0)."""

    def encode(self, ims):
        out = np.array([np.asarray(im.convert("RGB"), np.float64).reshape(-1, 3).mean(axis=0) for im in ims])
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def test_closeup_checked_on_a_hand_made_catalogue(tmp_path, monkeypatch):
    """Worked out by hand: the photo is red, (1, 0, 0); a candidate's score becomes the mean of its
    close-up score and the better of its vector's cosine to the photo and its image's views'; only
    the first search.CLOSEUP_CHECK (2 here) are looked at."""
    monkeypatch.setattr(search, "CLOSEUP_CHECK", 2)
    for name, colour in (("green.png", (0, 255, 0)), ("red.png", (255, 0, 0))):
        Image.new("RGB", (64, 64), colour).save(tmp_path / name)
    (tmp_path / "broken.png").write_bytes(b"not a picture")
    # p0: vector (0.6, 0.8, 0), cosine 0.6, image green (views 0); p1: (0, 1, 0), cosine 0, image red (views 1);
    # p2: (0.8, 0.6, 0), cosine 0.8, image red, but third: not looked at
    snap = TinySnapshot([[0.6, 0.8, 0], [0, 1, 0], [0.8, 0.6, 0]])
    photo = np.array([1.0, 0, 0])

    def hits(p1_file):
        files = {0: "green.png", 1: p1_file, 2: "red.png"}
        return [search.Hit(f"p{r}", s, Product(id=f"p{r}"), r, files[r]) for r, s in ((0, 0.9), (1, 0.8), (2, 0.6))]

    got = search.closeup_checked(snap, ColourEncoder(), photo, hits("red.png"), tmp_path, 1.0)
    # p1 (0.8 + max(0, 1)) / 2 = 0.9, p0 (0.9 + max(0.6, 0)) / 2 = 0.75, p2 (0.6 + 0.8) / 2 = 0.7
    assert [h.id for h in got] == ["p1", "p0", "p2"]
    np.testing.assert_allclose([h.score for h in got], [0.9, 0.75, 0.7], atol=1e-6)
    # no stored images, or p1's unreadable: its vector alone, (0.8 + 0) / 2 = 0.4
    for images, p1_file in ((tmp_path / "nothing", "red.png"), (tmp_path, "broken.png")):
        got = search.closeup_checked(snap, ColourEncoder(), photo, hits(p1_file), images, 1.0)
        assert [h.id for h in got] == ["p0", "p2", "p1"]
        np.testing.assert_allclose([h.score for h in got], [0.75, 0.7, 0.4], atol=1e-6)
    monkeypatch.setattr(search, "CLOSEUP_CHECK", 3)    # p2 looked at too: (0.6 + max(0.8, 1)) / 2 = 0.8
    got = search.closeup_checked(snap, ColourEncoder(), photo, hits("red.png"), tmp_path, 1.0)
    assert [h.id for h in got] == ["p1", "p2", "p0"]
    np.testing.assert_allclose([h.score for h in got], [0.9, 0.8, 0.75], atol=1e-6)


def test_a_closeup_looked_at_closer_finds_the_dress_it_was_cut_from(tuned_store, catalog_dir, encoder,
                                                                   tmp_path):
    """On the shipped model: the dress first, the same products, a closer look that only raises
    the scores of those looked at (the weights: test_closeup_checked_on_a_hand_made_catalogue)."""
    snap = tuned_store.snapshot()
    th = replace(DEFAULT_THRESHOLDS, closeup_min_patch=-1.0)
    for i in (3, 9, 14):
        data = closeup_of(catalog_dir / "images" / f"dress-{i:03d}.jpg", (0.3, 0.35, 0.7, 0.6))
        photo = Image.open(io.BytesIO(data))
        vec = tuned_store.embed_query(photo)
        hits = search.closeup_hits(snap, vec, encoder.encode_closeup(photo), 14, th=th)
        aspect = photo.width / photo.height
        checked = search.closeup_checked(snap, encoder, vec, hits, tuned_store.images_dir, aspect)
        assert checked[0].id == f"sku-{i:03d}"
        assert sorted(h.row for h in checked) == sorted(h.row for h in hits)     # the same products
        assert [h.score for h in checked] == sorted((h.score for h in checked), reverse=True)
        n = min(search.CLOSEUP_CHECK, len(hits))
        assert n < len(hits)          # some candidates are judged by their vector alone
        blind = search.closeup_checked(snap, encoder, vec, hits, tmp_path / "nothing", aspect)  # no stored images
        seen, unseen = {h.row: h.score for h in checked}, {h.row: h.score for h in blind}
        for j, h in enumerate(hits):  # looking closer only raises a score, and only of those looked at
            if j < n:
                assert seen[h.row] >= unseen[h.row] - 1e-9, h.id
            else:
                assert seen[h.row] == pytest.approx(unseen[h.row], abs=1e-12), h.id
        photo_cos = dict(zip((h.row for h in hits), _cosines(snap.vectors(np.array([h.row for h in hits])), vec)))
        close = {h.row: h.score for h in hits}
        for j, h in enumerate(blind):  # judged by the close-up score and the photo's cosine: between them,
            lo, hi = sorted((close[h.row], photo_cos[h.row]))
            assert lo - 1e-6 <= h.score <= hi + 1e-6
            for above in blind[:j]:    # never below one it beats on both
                assert not (close[h.row] > close[above.row] and photo_cos[h.row] > photo_cos[above.row])
        src = [h.id for h in hits[:n]].index(f"sku-{i:03d}") if f"sku-{i:03d}" in [h.id for h in hits[:n]] else None
        if src is not None:   # its views match the close-up better than its whole picture does: it rises
            row = hits[src].row
            views = search.view_cosines(encoder, vec, [Image.open(tuned_store.images_dir / hits[src].file)], aspect)
            assert views[0] > photo_cos[row] and seen[row] > unseen[row] + 1e-3


def test_search_looks_at_a_closeup_closer_when_it_has_the_images(tuned_store, catalog_dir, monkeypatch, tmp_path):
    th = tuned_store.encoder.thresholds
    monkeypatch.setattr(tuned_store.encoder, "thresholds", replace(th, closeup_min_patch=-1.0))
    calls = []
    real = search.closeup_checked

    def spy(*a, **kw):
        out = real(*a, **kw)
        calls.append((a[3], out))
        return out

    monkeypatch.setattr(search, "closeup_checked", spy)
    data = closeup_of(catalog_dir / "images" / "dress-011.jpg", (0.3, 0.35, 0.7, 0.6))
    found = tuned_store.search_regions(data, 5)
    assert found.closeup and len(calls) == 1
    pool, checked = calls[0]
    assert len(pool) == min(search.CLOSEUP_POOL, len(tuned_store))      # the pool, cut to k after
    assert [h.id for h in found.hits] == [h.id for h in checked[:5]] and found.hits[0].id == "sku-011"
    monkeypatch.setattr(tuned_store, "images_dir", tmp_path / "nothing")   # the stored images gone
    blind = tuned_store.search_regions(data, 5)
    assert blind.closeup and len(calls) == 2 and [h.id for h in calls[1][0]] == [h.id for h in pool]
    unseen = {h.id: h.score for h in calls[1][1]}
    assert all(h.score >= unseen[h.id] - 1e-9 for h in checked)          # a closer look only raises scores
    assert found.hits[0].score > unseen["sku-011"] + 1e-3                # and the dress's most


def test_evaluation_looks_at_closeups_closer_as_the_service_does(tuned_store, encoder, tmp_path):
    from dressfinder.tools.evaluate.configs import closeup_checked_ranked

    snap = tuned_store.snapshot()
    rows = snap.rows()
    records = snap.records(rows.tolist())
    images = [str(tuned_store.images_dir / records[int(r)][1]) for r in rows]
    cat = snap.vectors(rows).astype(np.float32)
    th = replace(DEFAULT_THRESHOLDS, closeup_min_patch=-1.0)
    photos, found, scores, whole, want = [], [], {}, [], []
    for n, i in enumerate((4, 12)):
        data = closeup_of(Path(images[i]), (0.25, 0.3, 0.65, 0.6))
        photo = Image.open(io.BytesIO(data))
        vec = tuned_store.embed_query(photo)
        hits = search.closeup_hits(snap, vec, encoder.encode_closeup(photo), 16, th=th)
        photos.append(data)
        whole.append(vec)
        found.append([h.row for h in hits[:10]])
        scores[n] = (np.array([h.row for h in hits]), np.array([h.score for h in hits]))
        want.append([h.row for h in search.closeup_checked(snap, encoder, vec, hits, tuned_store.images_dir,
                                                             photo.width / photo.height)][:10])
    photos.append(photos[0])       # a photo not read as a close-up: left as it is
    whole.append(whole[0])
    found.append(list(range(10)))
    out = closeup_checked_ranked(encoder, photos, np.array(found), scores, np.array(whole), cat, rows,
                                 images, tmp_path, False)
    assert out[0].tolist() == want[0] and out[1].tolist() == want[1] and out[2].tolist() == list(range(10))
    again = closeup_checked_ranked(encoder, photos, np.array(found), scores, np.array(whole), cat, rows,
                                   images, tmp_path, False)    # from the cache
    assert (again == out).all() and len(list(tmp_path.glob("checks-*.npy"))) == 1
