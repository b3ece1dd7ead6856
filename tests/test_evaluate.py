"""dressfinder evaluate: the photo-like variants, the metrics, the side-by-side runner."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from conftest import dress_image, shared_data, write_catalog
from dressfinder.tools.evaluate import configs, metrics, report, variants
from dressfinder.images import load_image


def _diff(a: Image.Image, b: Image.Image) -> float:
    return float(np.abs(np.asarray(a, np.float32) - np.asarray(b, np.float32)).mean())


@pytest.mark.parametrize("orientation", [2, 3, 4, 5, 6, 7, 8])
def test_exif_variant_is_undone_by_the_loader(orientation):
    im = dress_image(3, (120, 200))
    stored = im.transpose(variants._EXIF_INVERSE[orientation])
    data = variants.jpeg_bytes(stored, 95, orientation)
    raw = Image.open(io.BytesIO(data))
    assert raw.getexif().get(variants.ORIENTATION) == orientation
    if orientation in (5, 6, 7, 8):
        assert raw.size == (200, 120)            # stored sideways ...
    back = load_image(data)
    assert back.size == im.size                  # ... and the loader turns it back
    assert _diff(back, im) < 6


def test_exif_kind_makes_rotated_pixels_with_a_tag():
    im = dress_image(5, (120, 200))
    seen = set()
    for i in range(12):
        data = variants.make_variant(im, "exif", variants.variant_rng(1, f"x{i}", "exif"))
        o = Image.open(io.BytesIO(data)).getexif().get(variants.ORIENTATION)
        assert o in range(2, 9)
        seen.add(o)
        assert _diff(load_image(data), im) < 8
    assert {6, 8} & seen


def test_every_kind_makes_a_decodable_deterministic_jpeg():
    im = dress_image(7)
    pool = [dress_image(50 + i) for i in range(3)]
    for kind in variants.KINDS:
        a = variants.make_variant(im, kind, variants.variant_rng(11, "sku-1", kind), pool)
        b = variants.make_variant(im, kind, variants.variant_rng(11, "sku-1", kind), pool)
        c = variants.make_variant(im, kind, variants.variant_rng(12, "sku-1", kind), pool)
        assert a == b, kind                       # same seed, same bytes
        assert a[:2] == b"\xff\xd8", kind         # a JPEG
        out = load_image(a)
        assert out.mode == "RGB" and min(out.size) >= 8, kind
        if kind not in ("flip",):                 # flip has no randomness besides JPEG quality
            assert a != c, kind


def _dress_coloured(pixels: np.ndarray, colour) -> np.ndarray:
    """Which pixels have the dress's colour, judged by its chroma (the colour less its smallest
    channel): what a screen's glare adds to every channel and its moire's few per cent leave alone."""
    chroma = pixels.astype(np.int16) - pixels.min(axis=-1, keepdims=True)
    return np.abs(chroma - (np.array(colour) - min(colour))).max(axis=-1) <= 25


def test_a_bigger_picture_has_the_dress_where_its_box_says():
    """The box comes from the generator, so it is checked against the pixels: the dress's colour
    (conftest.PALETTE[7], brown, on none of the pool's dresses) fills the box about as much as it
    fills the catalogue photo, and is next to nowhere outside it."""
    from conftest import PALETTE
    from dressfinder.tools.scenes import SCENE_KINDS

    im = dress_image(7)
    pool = [dress_image(50 + i) for i in range(3)]
    own = float(_dress_coloured(np.asarray(im), PALETTE[7]).mean())       # about 0.42 of the photo
    assert 0.3 < own < 0.6
    for kind in SCENE_KINDS:
        made = {}
        for seed in (11, 12):
            data, box = variants.picture_variant(im, kind, variants.variant_rng(seed, "sku-1", kind), pool)
            again = variants.picture_variant(im, kind, variants.variant_rng(seed, "sku-1", kind), pool)
            assert again == (data, box), kind                                    # same seed, same picture and box
            made[seed] = data
            assert data[:2] == b"\xff\xd8", kind
            assert 0 <= box[0] < box[2] <= 1 and 0 <= box[1] < box[3] <= 1, kind
            pic = np.asarray(load_image(data))
            h, w = pic.shape[:2]
            inside = np.zeros((h, w), bool)
            inside[int(box[1] * h):int(np.ceil(box[3] * h)), int(box[0] * w):int(np.ceil(box[2] * w))] = True
            like = _dress_coloured(pic, PALETTE[7])
            share_in = like[inside].mean()
            share_out = like[~inside].mean() if (~inside).any() else 0.0
            assert share_out <= share_in / 5, (kind, seed, share_in, share_out)   # measured: 1/6.7 at worst
            if kind == "fabric":      # a patch of the dress's middle, enlarged: the box is the whole picture
                assert box == (0.0, 0.0, 1.0, 1.0) and share_in > own
            else:                     # the whole photo, tightly: as much of the box as of the photo is dress
                assert abs(share_in - own) < 0.1, (kind, seed, share_in, own)
        assert made[11] != made[12], kind                                         # other seed, other picture


def test_variant_kinds_change_what_they_say():
    im = dress_image(9, (160, 240))
    r = lambda k: variants.variant_rng(3, "s", k)  # noqa: E731
    flip = load_image(variants.make_variant(im, "flip", r("flip")))
    assert _diff(flip, im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)) < 6
    gray = np.asarray(load_image(variants.make_variant(im, "grayscale", r("grayscale"))), np.int16)
    assert np.abs(gray[..., 0] - gray[..., 1]).max() <= 6
    crop = load_image(variants.make_variant(im, "crop", r("crop")))
    assert crop.size[0] * crop.size[1] < 0.9 * im.size[0] * im.size[1]
    bg = np.asarray(load_image(variants.make_variant(im, "background", r("background"))), np.int16)
    assert (bg.reshape(-1, 3) < 230).any(1).mean() > 0.5          # mostly not the white backdrop anymore


def test_foreground_mask_finds_the_dress():
    im = dress_image(2, (160, 240))
    mask = variants.foreground_mask(im)
    assert mask is not None and mask.shape == (240, 160)
    truth = (np.asarray(im, np.int16) < 240).any(2)
    inter = (mask & truth).sum() / truth.sum()
    assert inter > 0.9 and mask.mean() < truth.mean() * 1.3
    noisy = Image.fromarray(np.random.default_rng(0).integers(0, 256, (100, 80, 3), dtype=np.uint8))
    assert variants.foreground_mask(noisy) is None      # a scene, not a backdrop


def test_recall_rank_and_style_share_on_a_toy_case():
    ranked = np.array([[5, 1, 2], [1, 5, 3], [2, 3, 4], [7, 8, 9]])
    targets = [{5}, {5}, {9, 4}, {1}]
    assert metrics.hits_at(ranked, targets, 1).tolist() == [1, 0, 0, 0]
    assert metrics.hits_at(ranked, targets, 3).tolist() == [1, 1, 1, 0]
    assert metrics.first_rank(ranked, targets).tolist() == [1, 2, 3, 0]
    styles = {1: "a", 2: "a", 3: "b", 4: "b", 5: "a", 7: "a", 8: None, 9: "b"}
    st = [styles.get(i) for i in range(10)]
    share = metrics.style_share(ranked, targets, st, ["a", "a", None, "b"], k=2)
    assert share[0] == 1.0          # 1 and 2 are both "a" (the source 5 itself is not counted)
    assert share[1] == 0.5          # 1 ("a") and 3 ("b")
    assert np.isnan(share[2])
    assert share[3] == 0.0


def test_fused_weaves_the_whole_photos_rows_in_only_where_a_region_was_used():
    from dressfinder.search import HEAD_WEIGHT

    class Index:   # rows by the first coordinate of the whole photo's vector
        def search(self, q, k):
            rows = np.array([[int(v[0]) * 10 + j for j in range(k)] for v in q], np.int64)
            return np.zeros(rows.shape, np.float32), rows

    whole = np.array([[1.0, 0.0], [2.0, 0.0], [3.0, 0.0]], np.float32)
    used = whole.copy()
    used[1] = [9.0, 9.0]                                          # query 1 used a region
    found = np.array([[10, 11, 12, 13], [90, 91, -1, -1], [30, 31, 32, 33]], np.int64)
    got = configs.fused(Index(), found, used, whole, 4)
    assert got[0].tolist() == found[0].tolist() and got[2].tolist() == found[2].tolist()
    # by hand (search.FUSE_K0 = 1, WHOLE_WEIGHT = 0.3): 90: 1/1, 91: 1/2, 20: 0.3/1, 21: 0.3/2, 22: 0.3/3
    assert got[1].tolist() == [90, 91, 20, 21]
    heads = np.zeros_like(whole)
    heads[1] = [7.0, 0.0]                                         # and the box head's box was a second opinion
    heads[2] = [8.0, 0.0]                                         # (where no region was used: not searched)
    got = configs.fused(Index(), found, used, whole, 4, heads)
    assert got[0].tolist() == found[0].tolist() and got[2].tolist() == found[2].tolist()
    # by hand (HEAD_WEIGHT = 0.5): 90: 1, 91: 0.5, 70: 0.5/1 = 0.5 (a tie: the region's list first), 20: 0.3,
    # 71: 0.5/2 = 0.25, 21: 0.15
    assert HEAD_WEIGHT == 0.5 and got[1].tolist() == [90, 91, 70, 20]


def test_parse_config():
    seed = configs.parse_config("seed")
    assert (seed.encoder, seed.index, seed.index_params, seed.train_seed_autoencoder) == \
        ("autoencoder", "ivf", {"nlist": 10, "nprobe": 1}, True)
    assert configs.parse_config("base").encoder == "effnet-lite0"
    assert configs.parse_config("default").encoder is None
    assert configs.parse_config("default").precision == "fp32" and configs.parse_config("int8").precision == "int8"
    assert configs.parse_config("int8").describe("effnet-tuned") == "effnet-tuned int8 + flat"
    c = configs.parse_config("effnet-tuned@m.onnx+ivf:20/3")
    assert (c.encoder, c.model, c.index) == ("effnet-tuned", "m.onnx", "ivf")
    assert c.index_params == {"nlist": 20, "nprobe": 3}
    assert configs.parse_config("effnet-lite0+hnsw:64").index_params == {"efSearch": 64}
    from dressfinder.errors import DressfinderError

    with pytest.raises(DressfinderError):
        configs.parse_config("effnet-lite0+annoy")


def test_evaluate_end_to_end_with_cache(tmp_path):
    from dressfinder.cli import main

    cat = tmp_path / "cat"
    write_catalog(cat, n=12, with_csv=False)
    (cat / "images" / "dup.jpg").write_bytes((cat / "images" / "dress-000.jpg").read_bytes())
    md, js, readme = tmp_path / "t.md", tmp_path / "t.json", tmp_path / "README.md"
    readme.write_text(f"# Title\n\nbefore\n\n{report.README_START}\nold table\n{report.README_END}\n\nafter\n")
    args = ["evaluate", str(cat), "--queries", "images/dress-00*", "--configs", "base,effnet-lite0+ivf:2/1",
            "--kinds", "crop,flip,exif", "--latency", "3", "--cache", str(tmp_path / "cache"),
            "--markdown", str(md), "--out", str(js), "--readme", str(readme), "-q"]
    assert main(args) == 0
    text = readme.read_text()      # the README's table is rewritten in place, the rest kept
    assert text.startswith("# Title\n\nbefore\n\n") and text.endswith(f"{report.README_END}\n\nafter\n")
    assert "old table" not in text and "| base | effnet-lite0 + flat |" in text and "30 queries" in text
    no_markers = tmp_path / "plain.md"
    no_markers.write_text("# no markers\n")
    assert main(args[:-3] + ["--readme", str(no_markers), "-q"]) == 2      # refused before any work
    assert no_markers.read_text() == "# no markers\n"
    rep = json.loads(js.read_text())
    assert rep["catalog_images"] == 13 and rep["query_sources"] == 10 and rep["queries"] == 30
    assert rep["duplicate_groups"] == 1
    base = rep["results"][0]
    assert base["config"] == "base" and set(base["per_kind"]) == {"crop", "flip", "exif"}
    assert 0.5 <= base["recall@10"] <= 1.0 and base["recall@1"] <= base["recall@10"]
    assert base["per_kind"]["exif"]["recall@1"] == 1.0        # the loader undoes the rotation
    assert base["latency"]["n"] == 3 and base["latency"]["median_ms"] > 0
    text = md.read_text()
    assert "| base |" in text and "| exif |" in text and "Recall@1" in text
    # second run: queries and vectors come from the cache, same numbers
    assert main(args) == 0
    again = json.loads(js.read_text())
    assert again["results"][0]["recall@1"] == base["recall@1"]
    assert again["results"][0]["catalog_encode_seconds"] == base["catalog_encode_seconds"]
    assert not base["catalog_vectors_cached"] and again["results"][0]["catalog_vectors_cached"]
    assert "* = vectors from the cache" in md.read_text()


def test_seed_config_without_cache_trains_in_a_scratch_folder(tmp_path, monkeypatch):
    from dressfinder.cli import main

    cat = tmp_path / "cat"
    write_catalog(cat, n=8, with_csv=False)
    monkeypatch.setenv("DRESSFINDER_CACHE", str(tmp_path / "cache"))
    js = tmp_path / "t.json"
    assert main(["evaluate", str(cat), "--configs", "seed", "--kinds", "flip", "--epochs", "1", "--latency", "0",
                 "--no-cache", "--no-colour", "--out", str(js), "-q"]) == 0
    seed = json.loads(js.read_text())["results"][0]
    assert seed["describe"].startswith("autoencoder") and seed["index"]["kind"] == "ivf"
    assert 0.0 <= seed["recall@1"] <= seed["recall@10"] <= 1.0
    assert not (tmp_path / "cache" / "eval").exists()       # --no-cache kept nothing


def test_evaluate_rejects_bad_input(tmp_path):
    from dressfinder.cli import main

    cat = tmp_path / "cat"
    write_catalog(cat, n=3, with_csv=False)
    assert main(["evaluate", str(cat), "--queries", "nothing*", "--no-cache", "-q"]) == 2
    assert main(["evaluate", str(cat), "--kinds", "sepia", "--no-cache", "-q"]) == 2


@pytest.mark.shared_data
def test_variants_of_shared_data_photos():
    data = shared_data()
    files = sorted((data / "deepfashion-dresses").rglob("*.jpg"))[::200][:4]
    pool = [load_image(f) for f in sorted((data / "fashion-products-9k").glob("*.jpg"))[:3]]
    for f in files:
        im = load_image(f)
        for kind in ("background", "combo", "blur_jpeg"):
            out = load_image(variants.make_variant(im, kind, variants.variant_rng(5, str(f), kind), pool))
            assert min(out.size) >= 8
