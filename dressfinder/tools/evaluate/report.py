"""The evaluation's report: the machine, the summary table that ``make eval`` splices into the README, and the Markdown page (docs/eval.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any
import numpy as np

from ..splice import markers, splice



def _pct(x: float | None) -> str:
    return "–" if x is None or not np.isfinite(x) else f"{x:.3f}"


README_START, README_END = markers("eval")


def to_summary(report: dict[str, Any]) -> str:
    """The short table a README shows: one row per config, held-out rows, ratios, how it was made."""
    rs = report["results"]
    lines = ["| config | encoder + index | Recall@1 | Recall@10 | same style@10 | query ms (median) |",
             "|---|---|---:|---:|---:|---:|"]
    for r in rs:
        lat = r.get("latency") or {}
        ms = f"{lat['median_ms']:.1f}" if lat.get("n") else "–"
        lines.append(f"| {r['config']} | {r['describe']} | {_pct(r['recall@1'])} | {_pct(r['recall@10'])} | "
                     f"{_pct(r['same_style@10'])} | {ms} |")
    for r in rs:
        held = (r.get("splits") or {}).get("held-out sources")
        if held and r["config"] in ("default", "int8"):
            lines.append(f"| *{r['config']}, sources held out of training ({held['n']:,} queries)* | | "
                         f"*{_pct(held['recall@1'])}* | *{_pct(held['recall@10'])}* | | |")
    by = {r["config"]: r for r in rs}
    ratios = []
    if "default" in by and "seed" in by and by["seed"]["recall@1"] > 0:
        ratios.append(f"Recall@1 default / seed: **{by['default']['recall@1'] / by['seed']['recall@1']:.2f}x**")
    if "default" in by and "base" in by and by["default"]["recall@1"] < 1:
        ratios.append("misses at rank 1, base / default: "
                      f"**{(1 - by['base']['recall@1']) / (1 - by['default']['recall@1']):.1f}x**")
    lines.append("")
    if ratios:
        lines += ["; ".join(ratios) + ".", ""]
    lines.append(f"{report['queries']:,} queries from {report['query_sources']:,} sources against "
                 f"{report['catalog_images']:,} images; {report['machine']}; "
                 f"{report.get('date', '')}; run took {report['seconds']:.0f} s"
                 + (" (vectors from the cache of an earlier run)" if any(r.get("catalog_vectors_cached") for r in rs)
                    else "") + ". Made by "
                 f"`{report.get('command') or 'dressfinder evaluate'}`.")
    return "\n".join(lines) + "\n"


def splice_readme(path: Path, summary: str) -> None:
    """Put ``summary`` between the README markers (atomically); a clear error when they are missing."""
    splice(path, summary, "eval")


def to_markdown(report: dict[str, Any], command: str | None = None) -> str:
    rs = report["results"]
    lines = []
    if command:
        lines += [f"Command: `{command}`", ""]
    lines += [f"Catalogue: {report['catalog_images']:,} images; {report['query_sources']:,} query sources x "
              f"{len(report['kinds'])} kinds x {report['per_source']} = {report['queries']:,} queries "
              f"(variant seed {report['seed']}); machine: {report['machine']}; run took {report['seconds']:.0f} s.",
              ""]
    lines.append("| config | encoder + index | Recall@1 | Recall@10 | same style@10 | same colour@10 "
                 "| query ms (median / p95) | catalogue img/s |")
    lines.append("|---|---|---:|---:|---:|---:|---:|---:|")
    for r in rs:
        lat = r.get("latency") or {}
        lat_s = f"{lat['median_ms']:.1f} / {lat['p95_ms']:.1f}" if lat.get("n") else "–"
        ips = r.get("catalog_images_per_second")
        lines.append(f"| {r['config']} | {r['describe']} | {_pct(r['recall@1'])} | {_pct(r['recall@10'])} | "
                     f"{_pct(r['same_style@10'])} | {_pct(r.get('same_colour@10'))} | {lat_s} | "
                     f"{ips if ips else '–'}{' *' if r.get('catalog_vectors_cached') else ''} |")
    lines += ["", "catalogue img/s: decode + preprocess + encode of the catalogue images (the indexer's pipeline)"
              + ("; * = vectors from the cache, speed as measured when they were computed"
                 if any(r.get("catalog_vectors_cached") for r in rs) else "") + ".",
              "", "Recall@1 / Recall@10 per kind of photo change:", ""]
    lines.append("| kind | n | " + " | ".join(r["config"] for r in rs) + " |")
    lines.append("|---|---:|" + "---:|" * len(rs))
    for kname in report["kinds"]:
        n = rs[0]["per_kind"][kname]["n"]
        cells = [f"{_pct(r['per_kind'][kname]['recall@1'])} / {_pct(r['per_kind'][kname]['recall@10'])}" for r in rs]
        lines.append(f"| {kname} | {n} | " + " | ".join(cells) + " |")
    splits = [s for s in (rs[0].get("splits") or {})]
    if splits:
        for s in splits:
            cells = []
            for r in rs:
                sp = (r.get("splits") or {}).get(s)
                cells.append(f"{_pct(sp['recall@1'])} / {_pct(sp['recall@10'])}" if sp else "–")
            n = rs[0]["splits"][s]["n"]
            lines.append(f"| *{s}* | {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
