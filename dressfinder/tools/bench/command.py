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
from ..splice import check, splice
from .report import doc_body, markdown, summary
from .scale import bench_scale
from .seed import bench_seed
from .sync import bench_sync


SECTIONS = ("indexing", "latency", "scale", "seed", "sync")


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
    p.add_argument("--sync-size", default="10k",
                   help="sync section: generated products built, then synced with 1%% of prices changed (default 10k)")
    p.add_argument("--limit", type=int, default=None, help="index only the first N catalogue images")
    p.add_argument("--skip", default="", help=f"comma-separated sections to leave out: {', '.join(SECTIONS)}, cli, http")
    p.add_argument("--keep", action="store_true", help="keep the stores built under OUT/stores")
    p.add_argument("--doc", default=None, metavar="FILE.md",
                   help="also put the tables between <!-- bench:start --> and <!-- bench:end --> in this file")
    p.add_argument("--readme", default=None, metavar="FILE.md",
                   help="put a summary table between <!-- bench:start --> and <!-- bench:end --> in this file")
    p.add_argument("--from-json", default=None, metavar="BENCH.json",
                   help="measure nothing: write OUT/bench.md, --doc and --readme from this earlier run's report")


class BenchRun:
    """One ``dressfinder bench``: the report so far (saved after every section) and its stores."""

    def __init__(self, args: argparse.Namespace):
        self.args, self.out = args, Path(args.out)
        self.stores = self.out / "stores"
        self.stores.mkdir(parents=True, exist_ok=True)
        self.base_root = self.stores / "catalogue"
        self.skip = {s.strip() for s in args.skip.split(",") if s.strip()}
        self.quick = bool(args.quick)
        self.n_queries = args.queries or (10 if self.quick else 200)
        self.t_start = time.perf_counter()
        command = ("dressfinder bench " + " ".join(sys.argv[2:]) if sys.argv[1:2] == ["bench"]
                   else f"dressfinder bench --data {args.data} --out {args.out} --sizes {args.sizes}"
                   + (" --quick" if self.quick else ""))
        self.report: dict[str, Any] = {"command": command, "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
                                       "machine": machine(), "load_start": load(), "quick": self.quick}
        self.ours: dict[str, Any] = {}

    def save(self) -> None:
        self.report["load_end"] = load()
        self.report["seconds"] = round(time.perf_counter() - self.t_start, 1)
        (self.out / "bench.json").write_text(json.dumps(self.report, indent=2, default=str))
        (self.out / "bench.md").write_text(markdown(self.report))

    def indexing(self, data: Path) -> None:
        if "indexing" not in self.skip or not (self.base_root / "store.json").exists():
            with section(self.report, "indexing") as entry:
                bench_indexing(data, self.base_root, quick=self.quick, limit=self.args.limit, entry=entry)
            self.ours["indexing"] = self.report["indexing"]
            self.save()

    def one_size(self, size: int, n_real: int, photos: list[Path], kinds: list[str]) -> None:
        """Latency at ``size`` products (above the catalogue's: the scale section first)."""
        name = label(max(size, n_real)) if size > n_real else label(n_real)
        root = self.base_root
        if size > n_real:
            if "scale" in self.skip:
                return
            with section(self.report.setdefault("scale", {}), name) as entry:
                root = bench_scale(self.base_root, size, kinds=kinds, quick=self.quick, out_root=self.stores,
                                   n_queries=max(self.n_queries, 100 if self.quick else 500), entry=entry)
            self.save()
        if "latency" not in self.skip:
            with section(self.report.setdefault("latency", {}), name) as entry:
                bench_latency(root, photos, n_queries=self.n_queries, cli_cold=2 if self.quick else 10,
                              skip=self.skip, entry=entry)
            if root == self.base_root:
                self.ours["latency_p50_ms"] = entry["in_process"]["search"]["p50"]
            self.save()
        if root != self.base_root and not self.args.keep:
            shutil.rmtree(root, ignore_errors=True)

    def seed(self) -> None:
        if "seed" not in self.skip:
            with section(self.report, "seed") as entry:
                bench_seed(self.base_root, n_queries=self.n_queries, quick=self.quick, ours=self.ours, entry=entry)
            self.save()


    def sync(self) -> None:
        if "sync" not in self.skip:
            n = parse_size(self.args.sync_size) if not self.quick else min(parse_size(self.args.sync_size), 200)
            with section(self.report, "sync") as entry:
                bench_sync(self.stores / "sync", n=n, entry=entry)
            self.save()


def publish(report: dict[str, Any], args: argparse.Namespace) -> None:
    """Splice the report into ``--doc`` (all tables) and ``--readme`` (the summary)."""
    if args.doc:
        splice(Path(args.doc), doc_body(report), "bench")
    if args.readme:
        splice(Path(args.readme), summary(report), "bench")


def from_json(args: argparse.Namespace) -> int:
    from ...errors import DressfinderError

    try:
        report = json.loads(Path(args.from_json).read_text())
        text = markdown(report)
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise DressfinderError(f"{args.from_json} is not a bench report ({e})") from None
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.md").write_text(text)
    publish(report, args)
    print(f"bench: wrote {out / 'bench.md'} from {args.from_json}", file=sys.stderr)
    return 0


def run(args: argparse.Namespace) -> int:
    from ...errors import DressfinderError
    from ...store import Store

    for path in (args.doc, args.readme):   # before the long run, not after it
        if path:
            check(Path(path), "bench")
    if args.from_json:
        return from_json(args)
    data = Path(args.data)
    if not data.exists():
        raise DressfinderError(f"no catalogue at {data}")
    bench = BenchRun(args)
    try:
        bench.indexing(data)
        n_real = len(Store.open(bench.base_root))
        photos = query_photos(Store.open(bench.base_root), bench.n_queries, seed=0)
        kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
        for size in [parse_size(s) for s in args.sizes.split(",") if s.strip()]:
            bench.one_size(size, n_real, photos, kinds)
        bench.seed()
        bench.sync()
    finally:
        bench.save()
        if not args.keep:
            shutil.rmtree(bench.stores, ignore_errors=True)
    publish(bench.report, args)
    print(f"bench: wrote {bench.out / 'bench.json'} and {bench.out / 'bench.md'} "
          f"({bench.report['seconds']:.0f} s)", file=sys.stderr)
    return 0
