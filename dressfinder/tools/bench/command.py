"""``dressfinder bench``: the command line and the order of the sections."""

from __future__ import annotations
import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from ..machine import machine
from .common import label, load, parse_size, query_photos, section
from .indexing import bench_indexing
from .latency import bench_latency
from .report import markdown
from .scale import bench_scale
from .seed import bench_seed


SECTIONS = ("indexing", "latency", "scale", "seed")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default="../shared/data", help="catalogue (folder or CSV) to index (default ../shared/data)")
    p.add_argument("--out", default="bench/out", help="folder for bench.json, bench.md and the stores (default bench/out)")
    p.add_argument("--sizes", default="10k,1M",
                   help="catalogue sizes for latency/recall, e.g. 10k,1M: the catalogue itself when a size is not "
                        "above it, else padded with synthetic vectors (default 10k,1M)")
    p.add_argument("--quick", action="store_true", help="few queries and runs (a smoke test, not a measurement)")
    p.add_argument("--queries", type=int, default=None, help="queries per measurement (default 200; quick 10)")
    p.add_argument("--kinds", default="flat,hnsw,ivfpq,ivf",
                   help="index kinds compared at sizes above the catalogue (default flat,hnsw,ivfpq,ivf); "
                        "hnsw:flat / hnsw:sq8 name other vector storages")
    p.add_argument("--limit", type=int, default=None, help="index only the first N catalogue images")
    p.add_argument("--skip", default="", help=f"comma-separated sections to leave out: {', '.join(SECTIONS)}, cli, http")
    p.add_argument("--keep", action="store_true", help="keep the stores built under OUT/stores")


def run(args: argparse.Namespace) -> int:
    from ...errors import DressfinderError

    data = Path(args.data)
    if not data.exists():
        raise DressfinderError(f"no catalogue at {data}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stores = out / "stores"
    stores.mkdir(exist_ok=True)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    quick = bool(args.quick)
    n_queries = args.queries or (10 if quick else 200)
    sizes = [parse_size(s) for s in args.sizes.split(",") if s.strip()]
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    t_start = time.perf_counter()
    report: dict[str, Any] = {"command": "dressfinder bench " + " ".join(sys.argv[2:]) if sys.argv[1:2] == ["bench"]
                              else f"dressfinder bench --data {args.data} --out {args.out} --sizes {args.sizes}"
                              + (" --quick" if quick else ""),
                              "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "machine": machine(),
                              "load_start": load(), "quick": quick}

    def save() -> None:
        report["load_end"] = load()
        report["seconds"] = round(time.perf_counter() - t_start, 1)
        (out / "bench.json").write_text(json.dumps(report, indent=2, default=str))
        (out / "bench.md").write_text(markdown(report))

    base_root = stores / "catalogue"
    ours: dict[str, Any] = {}
    try:
        if "indexing" not in skip or not (base_root / "store.json").exists():
            with section(report, "indexing") as entry:
                bench_indexing(data, base_root, quick=quick, limit=args.limit, entry=entry)
            ours["indexing"] = report["indexing"]
            save()
        from ...store import Store

        n_real = len(Store.open(base_root))
        photos = query_photos(Store.open(base_root), n_queries, seed=0)
        for size in sizes:
            name = label(max(size, n_real)) if size > n_real else label(n_real)
            root = base_root
            if size > n_real:
                if "scale" in skip:
                    continue
                with section(report.setdefault("scale", {}), name) as entry:
                    root = bench_scale(base_root, size, kinds=kinds, n_queries=max(n_queries, 100 if quick else 500),
                                       quick=quick, out_root=stores, entry=entry)
                save()
            if "latency" not in skip:
                with section(report.setdefault("latency", {}), name) as entry:
                    bench_latency(root, photos, n_queries=n_queries, cli_cold=2 if quick else 10, skip=skip,
                                  entry=entry)
                if root == base_root:
                    ours["latency_p50_ms"] = entry["in_process"]["search"]["p50"]
                save()
            if root != base_root and not args.keep:
                shutil.rmtree(root, ignore_errors=True)
        if "seed" not in skip:
            with section(report, "seed") as entry:
                bench_seed(base_root, n_queries=n_queries, quick=quick, ours=ours, entry=entry)
            save()
    finally:
        save()
        if not args.keep:
            shutil.rmtree(stores, ignore_errors=True)
    print(f"bench: wrote {out / 'bench.json'} and {out / 'bench.md'} ({report['seconds']:.0f} s)", file=sys.stderr)
    return 0
