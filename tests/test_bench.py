"""Smoke test of the benchmark code on a tiny generated catalogue (no timing assertions)."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from dressfinder import bench

pytestmark = pytest.mark.slow


def test_helpers():
    assert [bench.parse_size(s) for s in ("10k", "1M", "2.5k", "300")] == [10_000, 1_000_000, 2_500, 300]
    with pytest.raises(ValueError):
        bench.parse_size("lots")
    assert bench.label(1_000_000) == "1M" and bench.label(10_786) == "10.8k" and bench.label(24) == "24"
    s = bench.stats_ms([0.001, 0.002, 0.003])
    assert s["n"] == 3 and s["p50"] == 2.0 and s["min"] == 1.0
    real = np.random.default_rng(0).normal(size=(200, 16)).astype(np.float32)
    syn = bench.synthetic_vectors(real, 500, pca_dims=8, components=4, chunk=128)
    assert syn.shape == (500, 16) and np.allclose(np.linalg.norm(syn, axis=1), 1, atol=1e-5)
    base = np.concatenate([real / np.linalg.norm(real, axis=1, keepdims=True), syn])
    d, i = bench.exact_topk(base[:7], base, 5, block=64)
    assert (i[:, 0] == np.arange(7)).all() and np.allclose(d[:, 0], 1, atol=1e-5)
    assert bench.recall_at(i, i, 5) == 1.0


def test_bench_quick_run_writes_json_and_markdown(tmp_path, catalog_dir):
    out = tmp_path / "out"
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    args = parser.parse_args(["--data", str(catalog_dir / "catalog.csv"), "--out", str(out), "--sizes", "24,300",
                              "--quick", "--queries", "4"])
    assert bench.run(args) == 0
    report = json.loads((out / "bench.json").read_text())
    md = (out / "bench.md").read_text()
    assert report["indexing"]["indexed"] == 24 and report["indexing"]["images_per_second"] > 0
    assert set(report["indexing"]["profile"]["ms_per_image"]) >= {"decode", "resize", "encode", "index"}
    lat = report["latency"]
    assert set(lat) == {"24", "300"}
    for entry in lat.values():
        assert entry["in_process"]["search"]["n"] == 4
        assert entry["cli"]["cold_process"]["n"] == 2 and entry["cli"]["warm_per_photo"]["n"] == 3
        assert entry["http"]["status"] == {"200": 4}, entry["http"]
        pictures = entry["http"]["by_picture"]      # issue 12: a phone screenshot and a plain photo
        assert pictures["screenshot_1080x2340"]["n"] == pictures["plain_photo"]["n"] == 4
    assert lat["300"]["products"] == 300
    kinds = report["scale"]["300"]["kinds"]
    assert set(kinds) == {"flat", "hnsw", "ivfpq", "ivf"}
    assert kinds["flat"]["recall_at_10"] == 1.0 and 0 < kinds["hnsw"]["recall_at_10"] <= 1
    assert report["seed"]["ratios_ours_over_seed"]["indexing_images_per_second"] > 0
    assert "screenshot 1080x2340: p50" in md
    assert "## Query latency" in md and "| ivfpq |" in md and "ours / seed" in md
    assert not (out / "stores").exists()  # removed without --keep
