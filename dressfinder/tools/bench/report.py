"""The bench report as Markdown tables (``OUT/bench.md``)."""

from __future__ import annotations
from typing import Any

from .common import label


def precision_lines(ix: dict[str, Any], lat: dict[str, Any]) -> list[str]:
    """Markdown for float32 vs int8: indexing speed (``ix``), one-photo latency (``lat``)."""
    lines = ["## float32 and int8 variants of the encoder, same run", ""]
    bp = ix.get("by_precision") or {}
    if bp:
        lines += ["| same catalogue | indexing images/s end to end | build s |", "|---|---:|---:|"]
        lines += [f"| {k}{' (default here)' if v.get('default') else ''} | {v.get('images_per_second', '-')} | "
                  f"{v.get('build_seconds', v.get('error', '-'))} |" for k, v in bp.items()]
        lines += [""]
    for name, e in lat.items():
        bp = e.get("by_precision") or {}
        if bp:
            lines += [f"{name}, one photo in-process (decode, encode with the flip, search) by encoder variant: "
                      + "; ".join(f"{k} p50 {v['p50']} ms, p99 {v['p99']} ms" if "p50" in v else f"{k}: {v.get('error')}"
                                  for k, v in bp.items())
                      + f" (the store's: {e.get('precision')}).", ""]
    return lines if len(lines) > 2 else []


def _header(report: dict[str, Any]) -> list[str]:
    m = report["machine"]
    return ["# dressfinder benchmarks", "",
            f"Machine: {m['cpu']}, {m['cpus']} CPUs, {m['memory_gb']} GB; Python {m['python']}, "
            f"faiss {m['faiss']}, onnxruntime {m.get('onnxruntime', '?')}. Date: {report['date']}. "
            f"Command: `{report['command']}`. Load average (1/5/15 min) at start {report['load_start']}, "
            f"at end {report['load_end']}; total {report['seconds']:.0f} s.", ""]


def _indexing(ix: dict[str, Any]) -> list[str]:
    lines = ["## Indexing", "",
             f"{ix['indexed']} images of `{ix['catalogue']}` with {ix['encoder']} ({ix['encoder_dim']}-d), "
             f"{ix['mode']}, index `{ix['index_kind']}`: **{ix['images_per_second']} images/s** end to end "
             f"({ix['build_seconds']} s: encoding {ix['encode_seconds']} s = {ix['encode_images_per_second']} images/s, "
             f"index + commit {ix['index_and_commit_seconds']} s). Load {ix['load_before']} -> {ix['load_after']}.", ""]
    pr = ix.get("profile") or {}
    if pr:
        lines += ["Where the time goes (one thread, ms per image, "
                  f"{pr['images']} images; encoder batches of {pr['encode_batch']}):", "",
                  "| stage | ms/image | share |", "|---|---:|---:|"]
        lines += [f"| {k} | {v} | {pr['share'][k] * 100:.1f}% |" for k, v in pr["ms_per_image"].items()]
        lines += [f"| total | {pr['total_ms']} | = {pr['single_core_images_per_second']} images/s on one core |", ""]
    if ix.get("pipeline_cpu_seconds"):
        lines += ["Pipeline CPU-seconds by stage (summed over workers): "
                  + ", ".join(f"{k} {v}" for k, v in ix["pipeline_cpu_seconds"].items()), ""]
    if ix.get("modes"):
        lines += ["| same 1536 images | images/s | workers |", "|---|---:|---:|"]
        lines += [f"| {k} | {v['images_per_second']} | {v['workers']} |" for k, v in ix["modes"].items()]
        lines += [""]
    return lines


def _pp(s) -> str:
    return f"{s['p50']} / {s['p99']} ms" if s and s.get("n") else "-"


def _latency(lat: dict[str, Any], ix: dict[str, Any]) -> list[str]:
    lines = ["## Query latency (one photo at a time, k=10)", "",
             "| products | index | in-process p50 / p99 | decode p50 | encode p50 | index+metadata p50 | "
             "CLI fresh process p50 / p99 | CLI warm p50 / p99 | HTTP POST /api/search p50 / p99 |",
             "|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    for e in lat.values():
        ip, cli, http = e.get("in_process", {}), e.get("cli", {}), e.get("http", {})
        cli_cold = _pp(cli.get("cold_process")) if "error" not in cli else "error"
        cli_warm = _pp(cli.get("warm_per_photo")) if "error" not in cli else "error"
        http_s = _pp(http.get("post_api_search")) if "error" not in http else "error"
        lines.append(f"| {e.get('products')} | {e.get('index')} | {_pp(ip.get('search'))} | "
                     f"{ip.get('decode', {}).get('p50', '-')} | {ip.get('preprocess+encode', {}).get('p50', '-')} | "
                     f"{ip.get('index+metadata', {}).get('p50', '-')} | {cli_cold} | {cli_warm} | {http_s} |")
    lines += [""] + precision_lines(ix, lat)
    for name, e in lat.items():
        for kind, st in ((e.get("http") or {}).get("by_picture") or {}).items():
            lines.append(f"- HTTP POST /api/search, {kind.replace('_', ' ')}: p50 {st.get('p50')} ms, "
                         f"p99 {st.get('p99')} ms (n {st.get('n')}; a region searched in {st.get('region_used')})")
        for part in ("cli", "http"):
            if (e.get(part) or {}).get("error"):
                lines += [f"{name} {part}: {e[part]['error']}", ""]
    return lines


def _scale(sc: dict[str, Any]) -> list[str]:
    lines = [f"## {label(sc['size'])} vectors: index kinds against exact search", "",
             f"{sc['real']} real + {sc['synthetic']} synthetic vectors of dimension {sc['dim']} "
             f"({sc['vectors_gb']} GB as float32); {sc['queries']} queries: encoded photo-like variants of "
             f"catalogue photos (not in the index). Median score of a query's 10th neighbour: "
             f"{sc['tenth_neighbour_score']}. Load {sc.get('load_before')} -> {sc.get('load_after')}.", "",
             "| kind | params | build s | index MiB | search p50 / p99 (1 thread) | Recall@10 |",
             "|---|---|---:|---:|---:|---:|"]
    for kname, r in sc["kinds"].items():
        s = r.get("search_1_thread", {})
        params = ", ".join(f"{k}={v}" for k, v in r.get("params", {}).items() if k not in ("seed", "niter", "nredo"))
        lines.append(f"| {kname} | {params} | {r.get('build_seconds')} | {r.get('index_bytes', 0) / 2**20:.0f} | "
                     f"{s.get('p50')} / {s.get('p99')} ms | {r.get('recall_at_10')} |")
    lines += [""]
    for kname, r in sc["kinds"].items():
        if r.get("sweep"):
            lines.append(f"{kname} sweep: " + "; ".join(
                f"{k}: R@10 {v['recall_at_10']}, p50 {v['search_1_thread']['p50']} ms" for k, v in r["sweep"].items()))
    return lines + [""]


def _seed(seed: dict[str, Any]) -> list[str]:
    r = seed["ratios_ours_over_seed"]
    return ["## The seed's method vs ours (same catalogue, same run)", "",
            "| | seed (32x32 autoencoder + KMeans(10) + NearestNeighbors) | ours | ours / seed |",
            "|---|---:|---:|---:|",
            f"| indexing images/s | {seed['indexing']['images_per_second']} | {seed['ours']['images_per_second']} | "
            f"{r['indexing_images_per_second']} |",
            f"| query latency p50 (in-process) | {seed['query']['search']['p50']} ms | {seed['ours']['search_p50_ms']} ms | "
            f"{r['query_latency_p50']} |", ""]


def markdown(report: dict[str, Any]) -> str:
    """The report as Markdown: machine, indexing, latency, each scale, the seed side by side."""
    lines = _header(report)
    ix = report.get("indexing")
    if ix and "images_per_second" in ix:
        lines += _indexing(ix)
    if report.get("latency"):
        lines += _latency(report["latency"], ix or {})
    for sc in (report.get("scale") or {}).values():
        if "kinds" in sc:
            lines += _scale(sc)
    seed = report.get("seed")
    if seed and "indexing" in seed:
        lines += _seed(seed)
    return "\n".join(lines) + "\n"
