"""Crashes: kill -9 of real `dressfinder` processes in the middle of index, add and remove.

After each kill the previous store must open and answer exactly as before, and the next run
must finish cleanly (resuming the build's finished chunks, sweeping orphaned files).
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dressfinder.store import Store

from conftest import REPO, dress_image, write_catalog

pytestmark = pytest.mark.slow


# Runs the CLI with a pause just before a writer replaces store.json: its new files are written, the
# manifest is not. The seam is in the test (a wrapped os.replace), not in the commit path.
PAUSED_CLI = """
import os, sys, time
real_replace = os.replace
def replace(src, dst, *a, **kw):
    if str(dst).endswith("store.json"):
        print("pausing before commit", file=sys.stderr, flush=True)
        time.sleep(30)
    return real_replace(src, dst, *a, **kw)
os.replace = replace
from dressfinder.cli import main
sys.exit(main(sys.argv[1:]))
"""


def start(*args, pause_before_commit=False):
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    head = ["-c", PAUSED_CLI] if pause_before_commit else ["-m", "dressfinder"]
    return subprocess.Popen([sys.executable, *head, *map(str, args)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(predicate, timeout=120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def kill9(proc):
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def answers(root: Path, probes) -> list[list[str]]:
    store = Store.open(root)
    return [[h.id for h in store.search(p, k=5)] for p in probes]


@pytest.fixture(scope="module")
def big_catalog(tmp_path_factory):
    """600 small generated images: more than one 512-image chunk, so a build can be cut mid-way."""
    folder = tmp_path_factory.mktemp("big")
    write_catalog(folder, n=600)
    return folder / "catalog.csv"


def test_kill_during_rebuild_keeps_old_store_then_resumes(tmp_path, built_store, big_catalog):
    root = tmp_path / "s"
    shutil.copytree(built_store, root)
    probes = [dress_image(i) for i in (1, 8, 15)]
    before = answers(root, probes)
    manifest_before = (root / "store.json").read_bytes()

    proc = start("index", big_catalog, "--store", root, "--quiet")
    chunks = lambda: list((root / ".work").glob("*/chunk-*.npz"))  # noqa: E731
    assert wait_for(lambda: chunks() or proc.poll() is not None), "no chunk was written"
    assert proc.poll() is None, proc.communicate()
    kill9(proc)

    assert (root / "store.json").read_bytes() == manifest_before
    assert answers(root, probes) == before          # the old store is fully usable
    assert len(Store.open(root)) == 24

    done = start("index", big_catalog, "--store", root, "--quiet")
    out, err = done.communicate(timeout=300)
    assert done.returncode == 0, err
    store = Store.open(root)
    assert len(store) == 600 and store.generation == 2
    assert not (root / ".work").exists()


@pytest.mark.parametrize("delay", [0.3, 1.2, 2.5])
def test_kill_during_add_never_breaks_the_store(tmp_path, built_store, big_catalog, delay):
    root = tmp_path / "s"
    shutil.copytree(built_store, root)
    probes = [dress_image(i) for i in (2, 9)]
    before = answers(root, probes)
    more = tmp_path / "more"
    more.mkdir()
    for i in range(120):
        dress_image(1000 + i).save(more / f"n{i}.jpg")
    proc = start("add", more, "--store", root, "--quiet")
    time.sleep(delay)
    if proc.poll() is None:
        kill9(proc)
    store = Store.open(root)
    assert len(store) in (24, 144)                  # all or nothing
    if len(store) == 24:
        assert answers(root, probes) == before
    rep = store.add(more)                           # the next run finishes the job
    assert len(store) == 144 and rep.added in (0, 120)


def test_kill_inside_commit_window_of_remove(tmp_path, built_store):
    root = tmp_path / "s"
    shutil.copytree(built_store, root)
    manifest_before = json.loads((root / "store.json").read_text())
    proc = start("remove", "--store", root, "sku-001", "sku-002", pause_before_commit=True)
    # the new catalogue and index are written; the manifest is not yet replaced
    assert wait_for(lambda: len(list(root.glob("catalog-*.sqlite"))) == 2 or proc.poll() is not None)
    assert proc.poll() is None
    time.sleep(0.2)
    kill9(proc)
    orphans = {p.name for p in root.glob("*-*.*")} - {manifest_before["files"]["catalog"],
                                                     manifest_before["files"]["index"],
                                                     *manifest_before["files"]["vectors"]}
    assert orphans, "the killed writer should have left uncommitted files"
    store = Store.open(root)
    assert len(store) == 24 and store.product("sku-001").title == "Dress 1"
    # the lock died with the process; the next writer proceeds and sweeps the orphans
    assert store.remove(["sku-001", "sku-002"]).removed == 2
    assert not any((root / o).exists() for o in orphans)
    assert len(Store.open(root)) == 22
