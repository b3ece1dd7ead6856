"""Smoke test of the benchmark code on a tiny generated catalogue (no timing assertions)."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from dressfinder.tools.bench import command, common, synthetic

pytestmark = pytest.mark.slow


def test_helpers():
    assert [common.parse_size(s) for s in ("10k", "1M", "2.5k", "300")] == [10_000, 1_000_000, 2_500, 300]
    with pytest.raises(ValueError):
        common.parse_size("lots")
    assert common.label(1_000_000) == "1M" and common.label(10_786) == "10.8k" and common.label(24) == "24"
    s = common.stats_ms([0.001, 0.002, 0.003])
    assert s["n"] == 3 and s["p50"] == 2.0 and s["min"] == 1.0
    real = np.random.default_rng(0).normal(size=(200, 16)).astype(np.float32)
    syn = synthetic.synthetic_vectors(real, 500, pca_dims=8, components=4, chunk=128)
    assert syn.shape == (500, 16) and np.allclose(np.linalg.norm(syn, axis=1), 1, atol=1e-5)
    base = np.concatenate([real / np.linalg.norm(real, axis=1, keepdims=True), syn])
    d, i = synthetic.exact_topk(base[:7], base, 5, block=64)
    assert (i[:, 0] == np.arange(7)).all() and np.allclose(d[:, 0], 1, atol=1e-5)
    assert synthetic.neighbour_recall(i, i, 5) == 1.0


def test_bench_quick_run_writes_json_and_markdown(tmp_path, catalog_dir):
    out = tmp_path / "out"
    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    doc, readme = tmp_path / "scaling.md", tmp_path / "README.md"
    doc.write_text("# Scale\n\nby hand\n<!-- bench:start -->\nold tables\n<!-- bench:end -->\nafter\n")
    readme.write_text("intro\n<!-- bench:start -->\nold\n<!-- bench:end -->\n")
    args = parser.parse_args(["--data", str(catalog_dir / "catalog.csv"), "--out", str(out), "--sizes", "24,300",
                              "--quick", "--queries", "4", "--doc", str(doc), "--readme", str(readme)])
    assert command.run(args) == 0
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
    # float32 and int8 side by side: indexing speed and one-photo latency, same run
    bp = report["indexing"]["by_precision"]
    assert set(bp) == {"fp32", "int8"} and all(v["images_per_second"] > 0 for v in bp.values()), bp
    assert sum(v["default"] for v in bp.values()) == 1
    assert all(lat["24"]["by_precision"][p]["n"] == 4 for p in ("fp32", "int8"))
    assert "## float32 and int8 variants" in md and "by encoder variant" in md
    assert not (out / "stores").exists()  # removed without --keep
    # the tables are spliced into the hand-written page and the README, the rest kept byte for byte
    text = doc.read_text()
    assert text.startswith("# Scale\n\nby hand\n<!-- bench:start -->\n") and text.endswith("<!-- bench:end -->\nafter\n")
    assert "old tables" not in text and "### Query latency" in text and "| ivfpq |" in text
    summary = readme.read_text()
    assert summary.startswith("intro\n<!-- bench:start -->\n| same run | int8 | float32 |") and "old" not in summary
    assert f"| indexing 24 images, end to end | {bp['int8']['images_per_second']} images/s | " in summary
    assert "screenshot 1080x2340" in summary and "ours / seed" in summary and report["command"] in summary
    # the machine line says whether the CPU has the 8-bit instructions that --precision auto looks for
    from dressfinder.encoders.onnx_runtime import int8_is_faster
    from dressfinder.tools.machine import describe_machine

    vnni = report["machine"]["int8_instructions"]
    assert bool(vnni) == int8_is_faster()
    note = ", ".join(vnni) or "no VNNI"
    assert f"CPUs, {note}," in md and f"CPUs, {note}," in summary and describe_machine().endswith(note)
    # --from-json writes the same Markdown again without measuring anything
    again = tmp_path / "again"
    args = parser.parse_args(["--from-json", str(out / "bench.json"), "--out", str(again), "--readme", str(readme)])
    readme.write_text("intro\n<!-- bench:start -->\n<!-- bench:end -->\n")
    assert command.run(args) == 0
    assert (again / "bench.md").read_text() == md and readme.read_text() == summary


def test_bench_refuses_a_doc_without_markers_before_measuring(tmp_path):
    from dressfinder.errors import DressfinderError

    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    plain = tmp_path / "plain.md"
    plain.write_text("no markers here\n")
    args = parser.parse_args(["--data", str(tmp_path / "nothing"), "--out", str(tmp_path / "o"), "--doc", str(plain)])
    with pytest.raises(DressfinderError, match="no <!-- bench:start --> ... <!-- bench:end --> block"):
        command.run(args)
    assert plain.read_text() == "no markers here\n" and not (tmp_path / "o").exists()
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    args = parser.parse_args(["--from-json", str(bad), "--out", str(tmp_path / "o")])
    with pytest.raises(DressfinderError, match="not a bench report"):
        command.run(args)


def test_sync_section_times_a_price_sync_against_a_build(tmp_path):
    """The sync section on a tiny catalogue with the stand-in encoder: the shape of its answer, no timings."""
    from dressfinder.tools.bench.report import _sync
    from dressfinder.tools.bench.sync import bench_sync
    from sync_fixtures import ColourEncoder

    entry = bench_sync(tmp_path, n=50, changed=0.1, encoder=ColourEncoder(), workers=1)
    assert (entry["products"], entry["prices_changed"], entry["updated"], entry["encoded"]) == (50, 5, 5, 0)
    assert entry["build_seconds"] > 0 and entry["sync_seconds"] > 0 and entry["sync_over_build"] > 0
    assert entry["generation"] == 2
    assert "| full build | sync | sync / build |" in _sync(entry)
