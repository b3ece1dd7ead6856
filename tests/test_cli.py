"""The command line, run as a user runs it: real subprocesses."""

import json
import os
import subprocess
import sys

import pytest
from PIL import Image

from conftest import REPO, dress_image, shared_data

ENV = {**os.environ, "PYTHONWARNINGS": "ignore"}


def cli(*args, check=True, timeout=300):
    proc = subprocess.run([sys.executable, "-m", "dressfinder", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, env=ENV, cwd=REPO)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def format_queries(base: Image.Image, d) -> list:
    """``base`` as JPEG, PNG with alpha, WebP, grayscale JPEG and EXIF-rotated JPEG, in folder ``d``."""
    base = base.convert("RGB")
    base.save(d / "q.jpg", quality=90)
    rgba = base.convert("RGBA")
    rgba.putalpha(Image.new("L", base.size, 255))
    rgba.save(d / "q-alpha.png")
    base.save(d / "q.webp")
    base.convert("L").save(d / "q-gray.jpg")
    exif = Image.Exif()
    exif[0x0112] = 8  # displayed after a 90 degree counter-clockwise turn
    base.rotate(-90, expand=True).save(d / "q-exif.jpg", exif=exif.tobytes(), quality=90)
    return [d / n for n in ("q.jpg", "q-alpha.png", "q.webp", "q-gray.jpg", "q-exif.jpg")]


@pytest.fixture(scope="module")
def queries(tmp_path_factory):
    """One photo per kind the issue names, each a variant of catalogue dress 6."""
    return format_queries(dress_image(6), tmp_path_factory.mktemp("queries"))


def test_index_then_search_json_all_formats(built_store, queries):
    proc = cli("search", "--store", built_store, "--json", "-k", "3", *queries)
    lines = [json.loads(l) for l in proc.stdout.splitlines()]
    assert [l["query"] for l in lines] == [str(q) for q in queries]
    for line in lines:
        res = line["results"]
        assert len(res) == 3
        assert set(res[0]) >= {"id", "score", "image", "title", "price", "url"}
        assert [r["score"] for r in res] == sorted((r["score"] for r in res), reverse=True)
    top = [l["results"][0]["id"] for l in lines]
    assert top[:3] == ["sku-006"] * 3, top  # exact copies
    assert top[4] == "sku-006", "EXIF rotation must be undone before encoding"


def test_index_reports_speed_and_skips(tmp_path, catalog_dir):
    proc = cli("index", catalog_dir / "catalog.csv", "--store", tmp_path / "s", "--quiet")
    assert "images/s" in proc.stderr and "indexed 24 products" in proc.stderr
    assert "skipped broken-0" in proc.stderr


@pytest.mark.parametrize("kind", ["flat", "ivf", "hnsw"])
def test_autoencoder_seed_pipeline_each_index(tmp_path, catalog_dir, kind):
    """No --model: index trains the seed autoencoder on the catalogue first and keeps it."""
    store = tmp_path / kind
    cli("index", catalog_dir / "catalog.csv", "--store", store, "--encoder", "autoencoder", "--index", kind,
        "--epochs", "2", "--quiet")
    m = json.loads((store / "store.json").read_text())
    assert m["encoder"]["name"] == "autoencoder" and (store / m["encoder"]["model"]).is_file()
    assert m["index"]["kind"] == kind
    if kind == "ivf":
        assert m["index"]["params"]["nlist"] == 10 and m["index"]["params"]["nprobe"] == 1
    out = cli("search", "--store", store, "--json", "-k", "2", catalog_dir / "images" / "dress-004.jpg").stdout
    res = json.loads(out)["results"]
    assert res[0]["id"] == "sku-004" and 0 < res[0]["score"] <= 1


def test_train_then_index_with_model(tmp_path, catalog_dir):
    model = tmp_path / "seed.keras"
    proc = subprocess.run([sys.executable, "train.py", catalog_dir / "catalog.csv", "--out", model, "--epochs", "2"],
                          capture_output=True, text=True, env=ENV, cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert model.is_file()
    proc = subprocess.run([sys.executable, "encode.py", catalog_dir / "catalog.csv", "--store", tmp_path / "s",
                           "--encoder", "autoencoder", "--model", model, "--index", "ivf", "--quiet"],
                          capture_output=True, text=True, env=ENV, cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "indexed 24 products" in proc.stderr


def test_add_remove_info(tmp_path, built_store):
    import shutil

    store = tmp_path / "s"
    shutil.copytree(built_store, store)
    more = tmp_path / "more"
    more.mkdir()
    dress_image(900).save(more / "extra.png")
    cli("index", more, "--store", store, "--add", "--quiet")
    info = json.loads(cli("info", "--store", store).stdout)
    assert info["products"] == 25
    res = json.loads(cli("search", "--store", store, "--json", "-k", "1", more / "extra.png").stdout)
    assert res["results"][0]["id"] == "extra.png"
    cli("remove", "--store", store, "extra.png")
    assert json.loads(cli("info", "--store", store).stdout)["products"] == 24


@pytest.mark.parametrize("args,message", [
    (["search", "--store", "/nonexistent/store", "x.jpg"], "no store at"),
    (["index", "/nonexistent/catalog", "--store", "/tmp/x"], "no such catalogue"),
    (["index", ".", "--store", "/tmp/x", "--encoder", "nope"], "unknown encoder"),
])
def test_errors_are_one_line(args, message):
    proc = cli(*args, check=False)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in proc.stderr


def test_bad_query_image_is_reported_and_others_still_answered(built_store, tmp_path, queries):
    bad = tmp_path / "bad.jpg"
    bad.write_text("<html>nope</html>")
    proc = cli("search", "--store", built_store, "--json", bad, queries[0], check=False)
    assert proc.returncode == 1
    first, second = (json.loads(l) for l in proc.stdout.splitlines())
    assert "error" in first and second["results"][0]["id"] == "sku-006"
    assert "Traceback" not in proc.stderr


@pytest.mark.shared_data
def test_shared_store_catalogue_with_metadata(tmp_path):
    data = shared_data()
    store = tmp_path / "f21"
    cli("index", data / "f21-dresses" / "catalog.csv", "--store", store, "--quiet")
    q = sorted((data / "f21-dresses" / "images").iterdir())[5]
    res = json.loads(cli("search", "--store", store, "--json", "-k", "3", q).stdout)["results"]
    assert res[0]["image"] == str(q) and res[0]["title"] and res[0]["url"].startswith("https://")


@pytest.fixture(scope="module")
def real_queries(tmp_path_factory):
    """A real catalogue photo as JPEG, PNG with alpha, WebP, grayscale and EXIF-rotated JPEG."""
    src = sorted((shared_data() / "f21-dresses" / "images").glob("*.jpg"))[17]
    return src, format_queries(Image.open(src), tmp_path_factory.mktemp("real-queries"))


@pytest.mark.shared_data
@pytest.mark.parametrize("encoder,kind", [("effnet-tuned", "flat"), ("effnet-tuned", "ivf"), ("effnet-tuned", "hnsw"),
                                          ("autoencoder", "ivf")])
def test_shared_photos_every_format_encoder_and_index(tmp_path, real_queries, encoder, kind):
    """Real store photos (../shared/data/f21-dresses, a folder: ids are relative paths) through the
    CLI with both encoders and all three index kinds; every query format finds the photo's product."""
    src, queries = real_queries
    folder = shared_data() / "f21-dresses"
    store = tmp_path / "s"
    extra = ["--epochs", "5"] if encoder == "autoencoder" else []
    cli("index", folder, "--store", store, "--encoder", encoder, "--index", kind, "--quiet", *extra)
    m = json.loads((store / "store.json").read_text())
    assert m["encoder"]["name"] == encoder and m["index"]["kind"] == kind
    lines = [json.loads(l) for l in cli("search", "--store", store, "--json", "-k", "5", *queries).stdout.splitlines()]
    assert [l["query"] for l in lines] == [str(q) for q in queries]
    want = src.relative_to(folder).as_posix()
    for line in lines:
        ids = [r["id"] for r in line["results"]]
        assert len(ids) == 5 and ids[0] == want, (line["query"], ids)


def test_train_refuses_bad_options_with_one_line(tmp_path, catalog_dir):
    for args, msg in ((["--method", "contrastive", "--out", tmp_path / "m.keras"], "must end in .onnx"),
                      (["--method", "autoencoder", "--out", tmp_path / "m.onnx"], "must end in .keras"),
                      (["--method", "contrastive", "--out", tmp_path / "m.onnx", "--holdout", "1.5"], "--holdout"),
                      (["--method", "contrastive", "--out", tmp_path / "m.onnx", "--screen-views", "1.5"],
                       "--screen-views")):
        proc = cli("train", catalog_dir / "catalog.csv", *args, check=False)
        assert proc.returncode == 2 and msg in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
        assert not list(tmp_path.iterdir())       # nothing written


def test_precision_option_is_recorded_checked_and_validated(tmp_path, catalog_dir, queries):
    store = tmp_path / "s8"
    proc = cli("index", catalog_dir / "catalog.csv", "--store", store, "--precision", "int8", "--quiet")
    assert "effnet-tuned (int8)" in proc.stderr
    assert json.loads(cli("info", "--store", store).stdout)["encoder"]["precision"] == "int8"
    res = json.loads(cli("search", "--store", store, "--json", "-k", "1", "--precision", "int8", queries[0]).stdout)
    assert res["results"][0]["id"] == "sku-006"
    # asking a store for the other variant is refused in one line, not silently mixed
    proc = cli("search", "--store", store, "--precision", "fp32", queries[0], check=False)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and "int8" in lines[0] and "Traceback" not in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "dressfinder", "search", "--store", str(store), str(queries[0])],
                          capture_output=True, text=True, env={**ENV, "DRESSFINDER_PRECISION": "fp32"}, cwd=REPO)
    assert proc.returncode == 2 and "encoded with the int8 variant" in proc.stderr
    # bad values: argparse refuses --precision, the environment setting is refused in one line
    proc = cli("search", "--store", store, "--precision", "int4", queries[0], check=False)
    assert proc.returncode == 2 and "invalid choice: 'int4'" in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "dressfinder", "search", "--store", str(store), str(queries[0])],
                          capture_output=True, text=True, env={**ENV, "DRESSFINDER_PRECISION": "half"}, cwd=REPO)
    assert proc.returncode == 2 and "DRESSFINDER_PRECISION must be one of" in proc.stderr.strip().splitlines()[-1]
