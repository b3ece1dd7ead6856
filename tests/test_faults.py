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


# Runs the CLI with seams the test owns (wrapped functions, not hooks in the store's code): when the
# process reaches the point named by DRESSFINDER_TEST_PAUSE_AT it writes the marker file named by
# DRESSFINDER_TEST_MARKER and stops there, so the test's kill -9 lands at exactly that point, however
# slow or busy the machine is. The points:
#   chunk-saved    a build has written its first finished chunk to .work/ (more chunks to go)
#   mid-encode     the first batch of images is encoded (and its images stored), the rest are not
#   before-commit  the new files are written, store.json is not yet replaced
#   after-commit   store.json is replaced; nothing after it (the clean-up, the lock's release) has run
HOOKED_CLI = """
import os, sys, time
marker, point = os.environ["DRESSFINDER_TEST_MARKER"], os.environ["DRESSFINDER_TEST_PAUSE_AT"]

def reached(name):
    if name == point:
        open(marker, "w").close()
        print("paused at", name, file=sys.stderr, flush=True)
        time.sleep(600)          # the test kills this process here

real_replace = os.replace
def replace(src, dst, *a, **kw):
    commit = str(dst).endswith("store.json")
    if commit:
        reached("before-commit")
    out = real_replace(src, dst, *a, **kw)
    if commit:
        reached("after-commit")
    return out
os.replace = replace

import dressfinder.embed as embed
real_save, real_collect = embed.ChunkCache.save, embed._collect
def save(self, start, chunk):
    real_save(self, start, chunk)
    if self.dir is not None:
        reached("chunk-saved")
def collect(results, *a, **kw):
    def seen():
        for r in results:
            reached("mid-encode")
            yield r
    return real_collect(seen(), *a, **kw)
embed.ChunkCache.save, embed._collect = save, collect

from dressfinder.cli import main
sys.exit(main(sys.argv[1:]))
"""


def start(*args, pause_at=None, marker=None):
    """Run the CLI; with ``pause_at``, under HOOKED_CLI, which writes ``marker`` and stops there."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    head = ["-m", "dressfinder"]
    if pause_at:
        env.update(DRESSFINDER_TEST_PAUSE_AT=pause_at, DRESSFINDER_TEST_MARKER=str(marker))
        head = ["-c", HOOKED_CLI]
    return subprocess.Popen([sys.executable, *head, *map(str, args)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(predicate, timeout=300.0):
    """Poll for a condition (a generous deadline: only a process that never gets there trips it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def kill_at(marker: Path, proc):
    """Wait until the process reports (by its marker) that it reached its point, then kill -9 it there."""
    try:
        reached = wait_for(lambda: marker.exists() or proc.poll() is not None)
        assert reached and marker.exists() and proc.poll() is None, \
            f"the process did not report its point (exit {proc.poll()}): {proc.stderr.read() if proc.poll() is not None else ''}"
    finally:
        if proc.poll() is None:
            kill9(proc)


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

    marker = tmp_path / "reached"
    proc = start("index", big_catalog, "--store", root, "--quiet", pause_at="chunk-saved", marker=marker)
    kill_at(marker, proc)                           # one chunk of two is finished, the build is not
    assert len(list((root / ".work").glob("*/chunk-*.npz"))) == 1

    assert (root / "store.json").read_bytes() == manifest_before
    assert answers(root, probes) == before          # the old store is fully usable
    assert len(Store.open(root)) == 24

    done = start("index", big_catalog, "--store", root, "--quiet")
    out, err = done.communicate(timeout=300)
    assert done.returncode == 0, err
    store = Store.open(root)
    assert len(store) == 600 and store.generation == 2
    assert not (root / ".work").exists()


# where the add is killed, and how many products the store then has: all or nothing
@pytest.mark.parametrize("point,count", [("mid-encode", 24), ("before-commit", 24), ("after-commit", 144)])
def test_kill_during_add_never_breaks_the_store(tmp_path, built_store, point, count):
    root = tmp_path / "s"
    shutil.copytree(built_store, root)
    probes = [dress_image(i) for i in (2, 9)]
    before = answers(root, probes)
    more = tmp_path / "more"
    more.mkdir()
    for i in range(120):
        dress_image(1000 + i).save(more / f"n{i}.jpg")
    marker = tmp_path / "reached"
    proc = start("add", more, "--store", root, "--quiet", pause_at=point, marker=marker)
    kill_at(marker, proc)
    store = Store.open(root)
    assert len(store) == count
    if count == 24:
        assert answers(root, probes) == before
    rep = store.add(more)                           # the next run finishes the job
    assert len(store) == 144 and rep.added == 144 - count
    assert len(Store.open(root)) == 144


def test_kill_inside_commit_window_of_remove(tmp_path, built_store):
    root = tmp_path / "s"
    shutil.copytree(built_store, root)
    manifest_before = json.loads((root / "store.json").read_text())
    marker = tmp_path / "reached"
    proc = start("remove", "--store", root, "sku-001", "sku-002", pause_at="before-commit", marker=marker)
    kill_at(marker, proc)          # the new catalogue and index are written; the manifest is not yet replaced
    assert len(list(root.glob("catalog-*.sqlite"))) == 2
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
