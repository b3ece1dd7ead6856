"""Contrastive adaptation of EfficientNet-Lite0 (dressfinder/training/) and the effnet-tuned encoder."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
from PIL import Image

from conftest import dress_image
from dressfinder.training import augment, network
from dressfinder.training.config import FitConfig, holdout_ids
from dressfinder.training.fit import fit_model
from dressfinder.training.whitening import learned_whitening


def test_learned_whitening_removes_what_augmentation_changes():
    rng = np.random.default_rng(0)
    n, d = 400, 12
    clean = rng.normal(size=(n, d))
    noise = np.zeros((n, d))
    noise[:, :3] = rng.normal(scale=3.0, size=(n, 3))      # augmentation moves dims 0-2 a lot
    views = clean + noise + rng.normal(scale=0.05, size=(n, d))
    mean, proj = learned_whitening(clean, views, np.arange(n), dim=6)
    assert mean.shape == (d,) and proj.shape == (6, d)

    def emb(x):
        y = (x - mean) @ proj.T
        return y / np.linalg.norm(y, axis=1, keepdims=True)
    ce, ve = emb(clean), emb(views)
    r1 = (np.argmax(ve @ ce.T, axis=1) == np.arange(n)).mean()
    raw = (np.argmax(views @ clean.T, axis=1) == np.arange(n)).mean()
    assert r1 > 0.95 and r1 > raw
    assert np.abs(proj[:, :3]).max() < 0.2 * np.abs(proj[:, 3:]).max()   # the noisy dims are damped


def test_photo_augment_is_deterministic_and_varied():
    im = dress_image(4, (160, 240))
    aug = augment.PhotoAugment([dress_image(40), dress_image(41)])
    a = aug(im, random.Random("s:1"))
    b = aug(im, random.Random("s:1"))
    assert a.mode == "RGB" and np.array_equal(np.asarray(a), np.asarray(b))
    outs = {np.asarray(network.to_array(aug(im, random.Random(f"s:{i}")))).tobytes() for i in range(6)}
    assert len(outs) == 6
    x = network.to_array(a)
    assert x.shape == (3, 224, 224) and x.dtype == np.float32 and -1.0 <= x.min() and x.max() <= 1.0
    mask = augment.corner_mask(im)
    assert mask is not None and 0.05 < mask.mean() < 0.8


def test_screen_and_closeup_views_only_when_asked():
    im = dress_image(4, (160, 240))
    plain = augment.PhotoAugment([dress_image(40)])
    screens = augment.PhotoAugment([dress_image(40)], screen_views=1.0)
    closeups = augment.PhotoAugment([dress_image(40)], closeup_views=1.0)
    for i in range(4):
        a = np.asarray(plain(im, random.Random(f"v:{i}")))
        b = np.asarray(screens(im, random.Random(f"v:{i}")))
        c = closeups(im, random.Random(f"v:{i}"))
        assert a.shape != b.shape or not np.array_equal(a, b)
        assert c.size[0] * c.size[1] < 0.5 * 160 * 240        # always a small piece


def test_screen_photo_keeps_the_picture_but_changes_its_look():
    im = dress_image(5, (200, 280))
    src = np.asarray(im, np.float32)
    screen = augment.ScreenPhoto()
    a = np.asarray(screen(im, random.Random("scr:1")), np.float32)
    assert a.shape == src.shape
    assert np.array_equal(a, np.asarray(screen(im, random.Random("scr:1")), np.float32))
    corr, diff = [], []
    for i in range(12):
        out = np.asarray(screen(im, random.Random(f"scr:{i}")), np.float32)
        corr.append(np.corrcoef(out.mean(2).ravel(), src.mean(2).ravel())[0, 1])
        diff.append(np.abs(out - src).mean())
    assert min(diff) > 3                    # always a visible change (black level, noise, ...)
    assert np.median(corr) > 0.6            # but the dress is still there
    m = augment.ScreenPhoto.moire((64, 96), random.Random(3))
    assert m.shape == (64, 96, 3) and 0.85 < m.min() < 1 < m.max() < 1.15
    g = augment.ScreenPhoto.glare((64, 96), random.Random(4))
    assert g.shape == (64, 96) and 0 <= g.min() and 0.05 < g.max() <= 0.8


def test_closeup_is_a_small_piece_of_the_middle():
    im = dress_image(6, (300, 400))
    for i in range(20):
        c = augment.PhotoAugment.closeup(im, random.Random(i))
        share = c.size[0] * c.size[1] / (300 * 400)
        assert 0.04 < share < 0.35
        full = np.asarray(im)
        part = np.asarray(c)
        hits = [(x, y) for y in range(0, 400 - part.shape[0] + 1) for x in range(0, 300 - part.shape[1] + 1)
                if np.array_equal(full[y:y + 2, x:x + 2], part[:2, :2])
                and np.array_equal(full[y:y + part.shape[0], x:x + part.shape[1]], part)]
        assert hits                          # a true crop, not a resample
        x, y = hits[0]
        assert 0.1 < (x + part.shape[1] / 2) / 300 < 0.9 and 0.1 < (y + part.shape[0] / 2) / 400 < 0.9
    tiny = Image.new("RGB", (20, 14), (200, 10, 10))
    for i in range(30):                      # a tiny picture: at least 8 pixels a side, never past its edge
        c = augment.PhotoAugment.closeup(tiny, random.Random(i))
        assert 8 <= c.size[0] <= 20 and 8 <= c.size[1] <= 14
        assert c.getextrema()[0] == (200, 200)     # no padding from outside the picture


def test_holdout_is_deterministic_and_only_dresses():
    ids = [f"dresses/{i}.jpg" for i in range(200)] + [f"shoes/{i}.jpg" for i in range(200)]
    h = holdout_ids(ids, 0.1)
    assert h == holdout_ids(list(reversed(ids)), 0.1)
    assert all("dress" in i for i in h) and 8 <= len(h) <= 35
    assert holdout_ids(ids, 0) == set()


def test_network_shapes_split_and_normalisation():
    import torch

    net = network.make_net(dim=32)
    x = torch.from_numpy(np.stack([network.to_array(dress_image(i)) for i in range(2)]))
    with torch.no_grad():
        z = net(x)
        raw = net.raw_from(net.trunk(x, 0), 0)
        for split in (5, 8, 11):       # running the trunk and the rest apart gives the same vectors
            assert torch.allclose(net.embed_raw(net.raw_from(net.trunk(x, split), split)), z, atol=1e-5)
    assert z.shape == (2, 32) and raw.shape == (2, network.RAW_DIM)
    assert torch.allclose(z.norm(dim=1), torch.ones(2), atol=1e-5)
    # Lite0 uses ReLU6 (a Swish swap would break the ImageNet weights)
    assert isinstance(net.net._blocks[3]._swish, torch.nn.ReLU6)


@pytest.mark.slow
def test_fit_resume_export_and_encoder(tmp_path):
    """A couple of contrastive steps on tiny images: stops on a time budget, resumes, exports, loads."""
    from dressfinder.encoders import get_encoder
    from dressfinder.errors import DressfinderError

    paths, ids = [], []
    for i in range(14):
        p = tmp_path / f"dress-{i:02d}.jpg"
        dress_image(i, (64, 96)).save(p, quality=90)
        paths.append(str(p))
        ids.append(p.name)
    out = tmp_path / "m.onnx"
    steps = (14 - len(holdout_ids(ids, 0.2))) // 4
    assert steps >= 2
    cfg = FitConfig(dim=16, epochs=1, batch=4, views=1, holdout=0.2, val_every=1, ckpt_every=1,
                    backdrops=4, time_budget=1e-9, refit_whitening=False)
    with pytest.raises(DressfinderError, match="resume"):
        fit_model(paths, ids, out, config=cfg, progress=False)     # stops after one step
    ck = tmp_path / "m.onnx.work" / "checkpoint.pt"
    assert ck.exists()
    cfg.time_budget = None
    meta = fit_model(paths, ids, out, config=cfg, progress=False)   # resumes: one step left
    assert meta["steps"] == steps and meta["held_out"] >= 1
    hist = json.loads((tmp_path / "m.onnx.work" / "history.json").read_text())
    assert [v["step"] for v in hist["val"]] == list(range(steps + 1)) and len(hist["loss"]) == steps
    assert (tmp_path / "m.heldout.txt").read_text().split() == sorted(holdout_ids(ids, 0.2))
    enc = get_encoder("effnet-tuned", model=str(out))
    assert enc.dim == 16
    v = enc.encode(paths[:3])
    q = enc.encode_query(paths[:3])
    assert v.shape == q.shape == (3, 16)
    assert np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-4)
    assert np.allclose(np.linalg.norm(q, axis=1), 1, atol=1e-4)
    assert (v * q).sum(1).min() > 0.8          # a photo and its mirror image agree
    assert enc.spec()["model"] == str(out)
    # a store built with it keeps its own copy (and the settings beside it): moving the model is harmless
    import shutil

    from dressfinder.store import Store

    cat = tmp_path / "cat"
    cat.mkdir()
    for p in paths:
        shutil.copy(p, cat)
    store = Store.build(cat, tmp_path / "store", encoder="effnet-tuned", model=str(out), index="flat", progress=False)
    kept = tmp_path / "store" / store.manifest["encoder"]["model"]
    assert kept.is_file() and kept.with_suffix(".json").is_file() and kept.read_bytes() == out.read_bytes()
    out.rename(tmp_path / "moved.onnx")
    again = Store.open(tmp_path / "store")
    assert again.search(paths[5], k=1)[0].id == store.search(paths[5], k=1)[0].id


def test_serving_never_imports_training_and_training_imports_torch_late():
    """index/search/serve with the default encoder do not load the training package; the training
    modules load torch and Keras only when a model is made."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import dressfinder.store, dressfinder.web, dressfinder.cli\n"
        "from dressfinder.encoders import get_encoder\n"
        "get_encoder('effnet-tuned')\n"
        "print(sorted(m for m in sys.modules if m.startswith('dressfinder.training')))\n"
        "import dressfinder.training.command, dressfinder.training.fit, dressfinder.training.autoencoder\n"
        "print(sorted(m for m in ('torch', 'keras') if m in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[:2] == ["[]", "[]"]


def test_quantize_keeps_the_first_blocks_float_and_stays_close_to_float32(tmp_path, catalog_dir):
    """The int8 tool (scripts/quantize_default_model.sh) on the shipped model, calibrated on a few
    catalogue pictures: the first FLOAT_FIRST convolutions and the last one keep float weights,
    every other one reads 8-bit weights, and the vectors stay close to the float32 model's."""
    import onnx

    from dressfinder.encoders.effnet_tuned import DEFAULT_MODEL, TunedEffNet
    from dressfinder.training import quantize

    src = tmp_path / "m.onnx"             # the shipped model, with thresholds of its own in its .json
    src.write_bytes(DEFAULT_MODEL.read_bytes())
    src.with_suffix(".json").write_text(json.dumps({**json.loads(DEFAULT_MODEL.with_suffix(".json").read_text()),
                                                    "thresholds": {"sure": 0.7}}))
    out = tmp_path / "m.int8.onnx"
    assert quantize.main([str(catalog_dir / "images"), "--images", "4", "--model", str(src), "--out", str(out)]) == 0
    meta = json.loads(out.with_name("m.int8.json").read_text())
    assert meta["precision"] == "int8" and meta["calibration_images"] == 4 and meta["dim"] == 512
    assert meta["thresholds"] == {"sure": 0.7}      # the int8 variant keeps the model's thresholds
    graph = onnx.load(str(out)).graph
    made_by = {o: n.op_type for n in graph.node for o in n.output}
    weights_from = [made_by.get(n.input[1], "float") for n in graph.node if n.op_type == "Conv"]
    keep = quantize.FLOAT_FIRST
    assert weights_from[:keep] + weights_from[-1:] == ["float"] * (keep + 1)
    assert set(weights_from[keep:-1]) == {"DequantizeLinear"} and len(weights_from) > 40
    photos = [dress_image(i) for i in range(6)]
    fp32, int8 = TunedEffNet(precision="fp32"), TunedEffNet(model=out, precision="int8")
    a, b = np.asarray(fp32.encode(photos)), np.asarray(int8.encode(photos))
    cos = np.sum(a * b, axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cos.min() > 0.98, cos
    assert DEFAULT_MODEL.is_file()
    assert quantize.main([str(tmp_path / "missing"), "--out", str(out)]) == 2


def test_thresholds_carried_to_another_models_scale_by_rank():
    """A model whose cosines are the shipped one's squeezed and shifted (0.8 x - 0.1, by rank the
    same order): the lines move with the scores, the differences shrink by 0.8."""
    from dressfinder.thresholds import DEFAULT_THRESHOLDS as ref
    from dressfinder.training.fit_thresholds import fit

    rng = np.random.default_rng(0)
    ref_whole, ref_patch = rng.uniform(0.2, 1.0, 20000), rng.uniform(0.1, 0.9, 20000)
    th, stretch = fit(ref, ref_whole, 0.8 * ref_whole - 0.1, ref_patch, 0.8 * ref_patch - 0.1)
    assert stretch == pytest.approx(0.8, abs=0.01)
    for name in ("sure", "content_sure", "other_min", "closeup_min_patch"):
        assert getattr(th, name) == pytest.approx(0.8 * getattr(ref, name) - 0.1, abs=0.005), name
    for name in ("margin", "tie", "closeup_max_gain", "closeup_ramp", "framed_gap"):
        assert getattr(th, name) == pytest.approx(0.8 * getattr(ref, name), abs=0.005), name
    same, one = fit(ref, ref_whole, ref_whole, ref_patch, ref_patch)     # the same scale: nothing moves
    assert one == pytest.approx(1.0, abs=0.01)
    for name, v in ref.to_dict().items():
        assert getattr(same, name) == pytest.approx(v, abs=0.005), name


def test_fitted_thresholds_are_written_into_the_model_and_its_int8_json(tmp_path):
    from dressfinder.thresholds import Thresholds
    from dressfinder.training.fit_thresholds import write

    model = tmp_path / "m.onnx"
    model.write_bytes(b"onnx")
    (tmp_path / "m.json").write_text(json.dumps({"dim": 512}))
    (tmp_path / "m.int8.onnx").write_bytes(b"int8")
    (tmp_path / "m.int8.json").write_text(json.dumps({"dim": 512, "precision": "int8"}))
    written = write(model, Thresholds(sure=0.64), {"photos": 3})
    assert sorted(p.name for p in written) == ["m.int8.json", "m.json"]
    meta = json.loads((tmp_path / "m.int8.json").read_text())
    assert meta["precision"] == "int8" and Thresholds.from_dict(meta["thresholds"]) == Thresholds(sure=0.64)
    assert json.loads((tmp_path / "m.json").read_text())["dim"] == 512
