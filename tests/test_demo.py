import pytest

from dressfinder import demo


def have_fashion_mnist() -> bool:
    return all((demo.DEBIAN_DIR / n).is_file() for pair in demo.FILES.values() for n in pair)


pytestmark = pytest.mark.skipif(not have_fashion_mnist(),
                                reason="apt-get install dataset-fashion-mnist (CI installs it)")


def test_fashion_mnist_dress_class():
    train, test = demo.dresses("train"), demo.dresses("t10k")
    assert train.shape == (6000, 28, 28) and test.shape == (1000, 28, 28)


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
