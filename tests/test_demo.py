import gzip
import os
import stat
import sys

import numpy as np
import pytest

from conftest import unavailable
from dressfinder import demo


def have_fashion_mnist() -> bool:
    return all((demo.DEBIAN_DIR / n).is_file() for pair in demo.FILES.values() for n in pair)


@pytest.fixture
def needs_fashion_mnist():
    """Fashion-MNIST from Debian's package: skipped without it here, a failure under CI=true."""
    if not have_fashion_mnist():
        unavailable(f"no Fashion-MNIST in {demo.DEBIAN_DIR}", "make dataset (apt-get install dataset-fashion-mnist)")


@pytest.mark.usefixtures("needs_fashion_mnist")
def test_fashion_mnist_dress_class():
    train, test = demo.dresses("train"), demo.dresses("t10k")
    assert train.shape == (6000, 28, 28) and test.shape == (1000, 28, 28)


@pytest.mark.usefixtures("needs_fashion_mnist")
def test_demo_builds_and_searches(tmp_path, capsys):
    rc = demo.main(["--data", str(tmp_path / "data"), "--store", str(tmp_path / "store"), "--limit", "60"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "indexed 60 dresses" in out and out.count("fmnist-") >= 15
    from dressfinder.store import Store

    store = Store.open(tmp_path / "store")
    assert len(store) == 60 and store.product("fmnist-00007").price is not None
    # a catalogue image finds itself
    assert store.search(tmp_path / "data" / "images" / "dress-00007.png", k=1)[0].id == "fmnist-00007"


# ------------------------------------------------------------------ getting the dataset
def _write_idx(path, arr: np.ndarray) -> None:
    head = bytes([0, 0, 8, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    with gzip.open(path, "wb") as f:
        f.write(head + arr.astype(np.uint8).tobytes())


def _fake_apt(bin_dir, log):
    """An apt-get that fails 'install' until 'update' ran (a fresh machine), then writes a tiny
    Fashion-MNIST (labels 0..9 repeated) into $DRESSFINDER_FASHION_MNIST."""
    bin_dir.mkdir()
    script = bin_dir / "apt-get"
    script.write_text(f"""#!{sys.executable}
import os, sys
from pathlib import Path
sys.path.insert(0, {str(os.path.dirname(__file__))!r})
from test_demo import write_tiny_dataset
log = Path({str(log)!r})
with log.open("a") as f:
    f.write(" ".join(sys.argv[1:]) + "\\n")
if sys.argv[1] == "update":
    (log.parent / "updated").touch()
elif sys.argv[1] == "install" and (log.parent / "updated").exists() and "dataset-fashion-mnist" in sys.argv:
    write_tiny_dataset(Path(os.environ["DRESSFINDER_FASHION_MNIST"]))
else:
    sys.exit(100)
""")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)


def write_tiny_dataset(folder) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", 40), ("t10k", 20)):
        images, labels = demo.FILES[split]
        rng = np.random.default_rng(n)
        _write_idx(folder / images, rng.integers(0, 256, size=(n, 28, 28)))
        _write_idx(folder / labels, np.arange(n) % 10)


def test_missing_dataset_stops_with_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DRESSFINDER_FASHION_MNIST", str(tmp_path / "empty"))
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))  # no apt-get
    rc = demo.main(["--get-dataset", "--data", str(tmp_path / "d"), "--store", str(tmp_path / "s")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1
    assert err[0].startswith("demo: error: Fashion-MNIST not found in " + str(tmp_path / "empty"))
    assert "train-images-idx3-ubyte.gz" in err[0] and "DRESSFINDER_FASHION_MNIST" in err[0]


@pytest.mark.skipif(os.geteuid() != 0, reason="the apt-get path as root")
def test_get_dataset_runs_apt_get_update_then_install(tmp_path, monkeypatch, capsys):
    log = tmp_path / "apt.log"
    _fake_apt(tmp_path / "bin", log)
    monkeypatch.setenv("DRESSFINDER_FASHION_MNIST", str(tmp_path / "fmnist"))
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    # without --get-dataset nothing is installed, and the line says what to run
    assert demo.main(["--dataset-only"]) == 2
    assert "apt-get install -y dataset-fashion-mnist" not in capsys.readouterr().err  # (override set)
    assert not log.exists()
    assert demo.main(["--get-dataset", "--dataset-only"]) == 0
    assert log.read_text().splitlines() == [
        "install -y -q --no-install-recommends dataset-fashion-mnist", "update -q",
        "install -y -q --no-install-recommends dataset-fashion-mnist"]
    assert demo.dresses("train").shape == (4, 28, 28)  # labels 3, 13, 23, 33
    rc = demo.main(["--data", str(tmp_path / "d"), "--store", str(tmp_path / "s")])
    assert rc == 0 and "indexed 4 dresses" in capsys.readouterr().out


def test_message_names_apt_get_on_debian(monkeypatch):
    monkeypatch.delenv("DRESSFINDER_FASHION_MNIST", raising=False)
    monkeypatch.setattr(demo, "DEBIAN_DIR", demo.Path("/nonexistent/fashion-mnist"))
    monkeypatch.setattr(demo.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(demo.os, "geteuid", lambda: 1000)
    msg = demo.missing_dataset_message()
    assert "run: sudo apt-get update && sudo apt-get install -y dataset-fashion-mnist" in msg
    assert "\n" not in msg
    # not root, no terminal: sudo must not wait for a password
    assert demo.apt_command() == ["/usr/bin/sudo", "-n", "/usr/bin/apt-get"]
