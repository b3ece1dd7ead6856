import numpy as np
import pytest

from dressfinder.encoders import available_encoders, get_encoder, load_encoder
from dressfinder.errors import EncoderError

from conftest import dress_image


@pytest.fixture(scope="module")
def effnet():
    return get_encoder("effnet-lite0")


def test_registry():
    assert {"effnet-tuned", "effnet-lite0", "autoencoder"} <= set(available_encoders())
    with pytest.raises(EncoderError, match="unknown encoder"):
        get_encoder("resnet-9000")


def test_effnet_vectors_are_unit_float32_and_batch_independent(effnet):
    ims = [dress_image(i) for i in range(5)]
    v = effnet.encode(ims, batch_size=2)
    assert v.shape == (5, effnet.dim) and v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-4)
    single = effnet.encode([ims[3]])
    assert np.allclose(single[0], v[3], atol=1e-4)
    # a resized, recompressed copy of a dress is nearer to it than any other dress is
    import io

    buf = io.BytesIO()
    ims[2].resize((120, 180)).save(buf, "JPEG", quality=60)
    copy = effnet.encode([buf.getvalue()])[0]
    sims = v @ copy
    assert sims.argmax() == 2 and sims[2] > 0.9


def test_default_encoder_is_the_shipped_tuned_model():
    from PIL import ImageOps

    enc = get_encoder()
    assert enc.name == "effnet-tuned" and enc.dim == 512 and enc.metric == "ip"
    ims = [dress_image(i) for i in range(12)]
    v = enc.encode(ims, batch_size=5)
    assert v.shape == (12, 512) and v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-4)
    assert np.allclose(enc.encode([ims[7]])[0], v[7], atol=1e-4)
    # the query side averages the photo and its mirror image: a mirrored photo gets (up to the
    # padding's rounding) the same vector, nearer than one pass each gives (the shipped model spreads
    # its cosines wider than the one before it: 0.995 here where that one gave 0.998)
    pair = [ims[4], ImageOps.mirror(ims[4])]
    q, q_mirror = enc.encode_query(pair)
    plain, plain_mirror = enc.encode(pair)
    assert np.isclose(np.linalg.norm(q), 1, atol=1e-4)
    assert q @ q_mirror > 0.99 and q @ q_mirror > plain @ plain_mirror
    # a photo-like copy (crop, smaller, JPEG, darker, on grey) still finds its dress first
    import io

    from PIL import Image, ImageEnhance

    photo = ImageEnhance.Brightness(ims[9].crop((10, 15, 150, 230))).enhance(0.8)
    canvas = Image.new("RGB", (260, 300), (120, 120, 110))
    canvas.paste(photo.resize((105, 165)), (70, 60))
    buf = io.BytesIO()
    canvas.save(buf, "JPEG", quality=40)
    assert (v @ enc.encode_query([buf.getvalue()])[0]).argmax() == 9
    assert load_encoder(enc.spec()).version == enc.version


def test_effnet_spec_round_trip(effnet):
    spec = effnet.spec()
    again = load_encoder(spec)
    assert again.version == effnet.version and again.dim == effnet.dim
    with pytest.raises(EncoderError, match="rebuild"):
        load_encoder({**spec, "version": "0-old"})


def test_autoencoder_architecture_is_the_seed():
    from dressfinder.encoders.autoencoder import build_autoencoder

    auto, enc = build_autoencoder()
    assert tuple(auto.input.shape[1:]) == (32, 32, 3)
    assert tuple(enc.output.shape[1:]) == (4, 4, 16)
    assert tuple(auto.output.shape[1:]) == (32, 32, 3)
    convs = [l for l in auto.layers if l.__class__.__name__ == "Conv2D"]
    assert [c.filters for c in convs] == [64, 32, 16, 16, 32, 64, 3]
    assert all(c.kernel_size == (3, 3) and c.padding == "same" for c in convs)
    assert [c.activation.__name__ for c in convs] == ["relu"] * 6 + ["sigmoid"]
    assert sum(l.__class__.__name__ == "MaxPooling2D" for l in auto.layers) == 3
    assert sum(l.__class__.__name__ == "UpSampling2D" for l in auto.layers) == 3
    assert auto.optimizer.__class__.__name__ == "Adam"


def test_autoencoder_trains_saves_and_embeds_the_bottleneck(tmp_path):
    from dressfinder.training.autoencoder import train_from_sources

    images = [dress_image(i) for i in range(40)]
    hist = train_from_sources(images, tmp_path / "ae.keras", epochs=3, batch_size=16, progress=False)
    assert set(hist) == {"loss", "val_loss"} and len(hist["loss"]) == 3
    assert hist["loss"][-1] < hist["loss"][0]
    enc = get_encoder("autoencoder", model=str(tmp_path / "ae.keras"))
    v = enc.encode(images[:4])
    assert v.shape == (4, 256) and enc.metric == "l2"
    assert np.isfinite(v).all() and (v >= 0).all()  # relu + max-pool bottleneck
    assert not np.allclose(v[0], v[1])
    # stored into a store folder, it is found again from the spec
    spec = enc.save_into(tmp_path / "store")
    again = load_encoder(spec, tmp_path / "store")
    assert np.allclose(again.encode(images[:4]), v, atol=1e-5)


def test_autoencoder_needs_a_model(tmp_path):
    with pytest.raises(EncoderError, match="--model"):
        get_encoder("autoencoder")
    with pytest.raises(EncoderError, match="no such"):
        get_encoder("autoencoder", model=str(tmp_path / "missing.keras"))
    (tmp_path / "bad.keras").write_bytes(b"not a model")
    with pytest.raises(EncoderError, match="cannot load"):
        get_encoder("autoencoder", model=str(tmp_path / "bad.keras")).encode([dress_image(0)])


# --------------------------------------------------------------------------- the int8 variant

@pytest.fixture(scope="module")
def tuned_pair():
    return get_encoder("effnet-tuned", precision="fp32"), get_encoder("effnet-tuned", precision="int8")


def test_int8_variant_vectors_are_close_to_fp32(tuned_pair):
    fp32, int8 = tuned_pair
    assert (fp32.precision, int8.precision) == ("fp32", "int8")
    assert int8.model_path.name == "effnet-tuned.int8.onnx" and int8.model_path.stat().st_size < 20 * 2**20
    assert int8.version != fp32.version and int8.dim == fp32.dim == 512
    ims = [dress_image(i) for i in range(16)]
    a, b = fp32.encode(ims), int8.encode(ims)
    cos = (a * b).sum(axis=1)
    # (340 catalogue photos: median 0.994, minimum 0.966; these flat drawings are far from the
    # calibration pictures, so their activations round a little worse)
    assert np.median(cos) > 0.97 and cos.min() > 0.9, cos
    # every int8 vector's nearest float32 vector is its own picture's
    assert ((b @ a.T).argmax(axis=1) == np.arange(len(ims))).all()
    qa, qb = fp32.encode_query(ims[:4]), int8.encode_query(ims[:4])
    assert ((qa * qb).sum(axis=1) > 0.9).all()


def test_precision_is_in_the_spec_and_round_trips(tuned_pair):
    fp32, int8 = tuned_pair
    assert fp32.spec()["precision"] == "fp32" and int8.spec()["precision"] == "int8"
    again = load_encoder(int8.spec())
    assert again.precision == "int8" and again.version == int8.version
    # stores from before the int8 variant recorded no precision: they are float32
    old = {k: v for k, v in fp32.spec().items() if k != "precision"}
    assert load_encoder(old).precision == "fp32"
    # an int8 spec with the float32 model's version (a mix-up) is refused, never silently used
    with pytest.raises(EncoderError, match="rebuild"):
        load_encoder({**int8.spec(), "version": fp32.version})


def test_auto_precision_follows_the_cpu_and_the_setting(monkeypatch, tmp_path):
    from dressfinder.encoders import effnet_tuned, onnx_runtime

    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f\n")
    assert not onnx_runtime.int8_is_faster(onnx_runtime.cpu_flags(info))
    info.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_vnni\n")
    assert onnx_runtime.int8_is_faster(onnx_runtime.cpu_flags(info))
    assert onnx_runtime.cpu_flags(tmp_path / "missing") == set()
    monkeypatch.delenv("DRESSFINDER_PRECISION", raising=False)
    for fast, expected in ((False, "fp32"), (True, "int8")):
        monkeypatch.setattr(effnet_tuned, "int8_is_faster", lambda fast=fast: fast)
        assert get_encoder().precision == expected
        assert get_encoder(precision="auto").precision == expected
    monkeypatch.setenv("DRESSFINDER_PRECISION", "fp32")
    assert get_encoder().precision == "fp32" and get_encoder(precision="int8").precision == "int8"
    monkeypatch.setenv("DRESSFINDER_PRECISION", "int4")
    with pytest.raises(EncoderError, match="DRESSFINDER_PRECISION"):
        get_encoder()


def test_bad_or_unavailable_precisions_are_refused(tmp_path):
    with pytest.raises(EncoderError, match="precision must be one of"):
        get_encoder("effnet-tuned", precision="int16")
    with pytest.raises(EncoderError, match="no int8 variant"):
        get_encoder("effnet-lite0", precision="int8")
    assert get_encoder("effnet-lite0", precision="auto").precision == "fp32"
    # a model file of one's own without an int8 file beside it: int8 is refused, auto is fp32
    from dressfinder.encoders.effnet_tuned import DEFAULT_MODEL

    own = tmp_path / "mine.onnx"
    own.write_bytes(DEFAULT_MODEL.read_bytes())
    with pytest.raises(EncoderError, match="no int8 variant of the model"):
        get_encoder("effnet-tuned", model=str(own), precision="int8")
    assert get_encoder("effnet-tuned", model=str(own), precision="auto").precision == "fp32"


def own_model(tmp_path, thresholds) -> str:
    """A copy of the shipped model with a ``.json`` of its own carrying ``thresholds``."""
    import json

    from dressfinder.encoders.effnet_tuned import DEFAULT_MODEL

    own = tmp_path / "mine.onnx"
    own.write_bytes(DEFAULT_MODEL.read_bytes())
    meta = json.loads(DEFAULT_MODEL.with_suffix(".json").read_text())
    (tmp_path / "mine.json").write_text(json.dumps({**meta, "thresholds": thresholds}))
    return str(own)


def test_a_model_brings_its_own_thresholds_and_a_store_keeps_them(tmp_path):
    from dressfinder.store import Store
    from dressfinder.thresholds import DEFAULT_THRESHOLDS, Thresholds

    from conftest import write_catalog

    import json

    from dressfinder.encoders.effnet_tuned import DEFAULT_MODEL

    shipped = json.loads(DEFAULT_MODEL.with_suffix(".json").read_text()).get("thresholds")
    assert get_encoder("effnet-tuned", precision="fp32").thresholds == Thresholds.from_dict(shipped)
    assert get_encoder("effnet-tuned", model=own_model(tmp_path, None), precision="fp32").thresholds \
        == DEFAULT_THRESHOLDS                                          # a model without: the defaults
    model = own_model(tmp_path, {"sure": 0.64, "closeup_min_patch": 0.38})
    enc = get_encoder("effnet-tuned", model=model, precision="fp32")
    assert Thresholds.of(enc) == Thresholds(sure=0.64, closeup_min_patch=0.38)
    assert enc.thresholds.margin == DEFAULT_THRESHOLDS.margin          # the ones not given keep their defaults
    csv = write_catalog(tmp_path / "cat", n=6)
    Store.build(csv, tmp_path / "store", encoder=enc, index="flat", progress=False).close()
    (tmp_path / "mine.json").unlink()                                  # the store has its own copy
    with Store.open(tmp_path / "store") as s:
        assert s.encoder.thresholds == Thresholds(sure=0.64, closeup_min_patch=0.38)


@pytest.mark.parametrize("bad, message", [
    ({"sure": "high"}, "threshold sure must be a number"),
    ({"sur": 0.7}, "unknown thresholds: sur"),
    ({"margin": float("nan")}, "threshold margin must be a number"),
    ([0.8], "must be an object"),
])
def test_bad_thresholds_in_a_models_json_are_refused_with_the_file_named(tmp_path, bad, message):
    with pytest.raises(EncoderError, match=f"mine.json: .*{message}"):
        get_encoder("effnet-tuned", model=own_model(tmp_path, bad), precision="fp32")


def test_the_near_duplicate_line_is_the_models_own(tmp_path):
    import json

    from dressfinder.encoders.effnet_tuned import DEFAULT_MODEL, TunedEffNet

    shipped = json.loads(DEFAULT_MODEL.with_suffix(".json").read_text())
    assert get_encoder("effnet-tuned", precision="fp32").near_duplicate_cosine == shipped["near_duplicate_cosine"]
    bare = tmp_path / "bare.onnx"                       # a model whose .json does not say: the class's line
    bare.write_bytes(DEFAULT_MODEL.read_bytes())
    (tmp_path / "bare.json").write_text(json.dumps({"dim": 512}))
    assert get_encoder("effnet-tuned", model=str(bare), precision="fp32").near_duplicate_cosine \
        == TunedEffNet.near_duplicate_cosine
