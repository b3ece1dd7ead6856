"""The bench report as Markdown tables (``OUT/bench.md``)."""

from __future__ import annotations
from typing import Any

from ..machine import int8_note
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


def _int8_note(m: dict[str, Any]) -> str:
    """Which 8-bit dot-product instructions the CPU has (reports written before say nothing)."""
    if "int8_instructions" not in m:
        return "8-bit instructions not recorded"
    return int8_note(m["int8_instructions"])


def _header(report: dict[str, Any]) -> list[str]:
    m = report["machine"]
    return ["# dressfinder benchmarks", "",
            f"Machine: {m['cpu']}, {m['cpus']} CPUs, {_int8_note(m)}, {m['memory_gb']} GB; Python {m['python']}, "
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
        pictures = ((e.get("http") or {}).get("by_picture") or {}).items()
        for kind, st in pictures:
            lines.append(f"- {name}, HTTP POST /api/search, {kind.replace('_', ' ')}: p50 {st.get('p50')} ms, "
                         f"p99 {st.get('p99')} ms (n {st.get('n')}; a region searched in {st.get('region_used')})")
        lines += [""] if pictures else []
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
    sync = report.get("sync")
    if sync and "sync_seconds" in sync:
        lines += _sync(sync)
    return "\n".join(lines) + "\n"


def _sync(s: dict[str, Any]) -> list[str]:
    """Keeping a store in step with a feed (``dressfinder sync``) against building it."""
    return ["", "## Keeping a store current", "",
            f"{s['products']:,} generated products ({s['encoder']}): a full build, then `dressfinder sync` to the "
            f"same catalogue with {s['prices_changed']} prices changed (metadata only: {s['encoded']} pictures "
            "encoded).", "",
            "| full build | sync | sync / build |", "|---|---|---|",
            f"| {s['build_seconds']:.1f} s | {s['sync_seconds']:.2f} s | {s['sync_over_build']:.4f} |"]


def doc_body(report: dict[str, Any]) -> str:
    """The whole report for a hand-written page (docs/scaling.md): its sections one level down."""
    lines = markdown(report).splitlines()[2:]   # no "# dressfinder benchmarks" title
    return "\n".join("#" + ln if ln.startswith("## ") else ln for ln in lines) + "\n"


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}x" if a and b else "-"


def _variant_rows(report: dict[str, Any]) -> list[str]:
    """Rows of the int8 / float32 table: indexing and one photo in-process at each size."""
    rows = []
    ix = report.get("indexing") or {}
    bp = ix.get("by_precision") or {}
    if "int8" in bp and "fp32" in bp:
        i8, f32 = bp["int8"].get("images_per_second"), bp["fp32"].get("images_per_second")
        rows.append(f"| indexing {ix.get('indexed')} images, end to end | {i8} images/s | {f32} images/s | {_ratio(i8, f32)} |")
    for name, e in (report.get("latency") or {}).items():
        lp = e.get("by_precision") or {}
        if "p50" in lp.get("int8", {}) and "p50" in lp.get("fp32", {}):
            a, b = lp["int8"]["p50"], lp["fp32"]["p50"]
            rows.append(f"| one more photo in-process at {name} (decode, encode with the flip, search), p50 | "
                        f"{a} ms | {b} ms | {_ratio(a, b)} |")
    return rows


def _other_rows(report: dict[str, Any]) -> list[str]:
    """Rows of the second table: indexing (when not by variant), HTTP by picture, index kinds at scale."""
    rows = []
    ix = report.get("indexing") or {}
    if ix.get("images_per_second") and not ix.get("by_precision"):
        rows.append(f"| indexing {ix.get('indexed')} images, end to end | {ix['images_per_second']} images/s |")
    for name, e in (report.get("latency") or {}).items():
        for kind, st in ((e.get("http") or {}).get("by_picture") or {}).items():
            rows.append(f"| HTTP `POST /api/search` at {name} ({e.get('index')}), {kind.replace('_', ' ')}: p50 / p99 "
                        f"(a region searched in {st.get('region_used')} of {st.get('n')}) | "
                        f"{st.get('p50')} / {st.get('p99')} ms |")
    for sc in (report.get("scale") or {}).values():
        for kname, r in (sc.get("kinds") or {}).items():
            st = r.get("search_1_thread", {})
            rows.append(f"| {label(sc['size'])} vectors, `{kname}`: Recall@10 against exact search; search p50 "
                        f"(1 thread); size | {r.get('recall_at_10')}; {st.get('p50')} ms; "
                        f"{r.get('index_bytes', 0) / 2**20:.0f} MiB |")
    return rows


def summary(report: dict[str, Any]) -> str:
    """The short tables the README shows (spliced by ``--readme``): speed by encoder variant, HTTP
    latency by picture, each scale's index kinds, the seed side by side; and how it was made."""
    lines = []
    variants = _variant_rows(report)
    if variants:
        lines += ["| same run | int8 | float32 | int8 / float32 |", "|---|---:|---:|---:|"] + variants + [""]
    lines += ["| measurement (the default encoder variant here) | value |", "|---|---:|"] + _other_rows(report)
    seed = report.get("seed") or {}
    if "ratios_ours_over_seed" in seed:
        r = seed["ratios_ours_over_seed"]
        lines += ["", f"Against the seed's method in the same run (ours / seed): indexing "
                      f"{seed['ours']['images_per_second']} / {seed['indexing']['images_per_second']} images/s = "
                      f"**{r['indexing_images_per_second']}x**; query latency p50 {seed['ours']['search_p50_ms']} / "
                      f"{seed['query']['search']['p50']} ms = **{r['query_latency_p50']}x**."]
    m = report["machine"]
    lines += ["", f"{m['cpu']}, {m['cpus']} CPUs, {_int8_note(m)}, {m['memory_gb']} GB; {report['date']}; load average at start "
                  f"{report['load_start']}, at end {report['load_end']}; {report['seconds']:.0f} s. "
                  f"Measured by `{report['command']}`."]
    return "\n".join(lines) + "\n"
