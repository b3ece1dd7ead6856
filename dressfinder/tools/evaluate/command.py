"""``dressfinder evaluate``: the command line."""

from __future__ import annotations
import argparse
import json
import sys
import time
from pathlib import Path

from .configs import AUTO_STYLE_PREFIX
from ..splice import check
from .report import README_END, README_START, splice_readme, to_markdown, to_summary
from .run_eval import evaluate
from .variants import DEFAULT_SEED, KINDS


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("catalog", help="catalogue folder or CSV: everything a query may bring back")
    p.add_argument("--queries", nargs="+", default=[], metavar="GLOB",
                   help="catalogue ids to make query photos from (shell patterns on ids; default: the ids that "
                        "contain 'dress', or all when none does)")
    p.add_argument("--configs", default="seed,base,default,int8",
                   help="comma-separated: seed (autoencoder trained here + ivf 10/1), base (effnet-lite0 + flat), "
                        "default (the default encoder, float32, + flat), int8 (its 8-bit variant + flat), "
                        "or ENCODER[@MODEL][+flat|+hnsw|+ivf:NLIST/NPROBE]")
    p.add_argument("--kinds", default=",".join(KINDS), help=f"variant kinds (default: {','.join(KINDS)})")
    p.add_argument("--per-source", type=int, default=1, help="variants per kind per source (default 1)")
    p.add_argument("--max-sources", type=int, default=None, help="evaluate a random subset of the sources")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"variant seed (default {DEFAULT_SEED})")
    p.add_argument("--style-prefix", default="auto", metavar="PREFIX",
                   help="ids PREFIX<style>/... have a style folder: report the same-style share of the top 10 "
                        f"(default auto: {AUTO_STYLE_PREFIX} when the catalogue has it; none: off)")
    p.add_argument("--heldout", default="auto", metavar="FILE",
                   help="ids (one a line) an encoder was not trained on: report them and the rest separately "
                        "(default auto: the shipped model's list; none: off)")
    p.add_argument("--latency", type=int, default=200, help="single queries timed end to end (default 200; 0: none)")
    p.add_argument("--epochs", type=int, default=20, help="seed config: autoencoder epochs (default 20)")
    p.add_argument("--cache", default=None,
                   help="cache folder for queries and vectors (default $DRESSFINDER_CACHE/eval)")
    p.add_argument("--no-cache", action="store_true", help="recompute everything, keep nothing")
    p.add_argument("--out", default=None, metavar="FILE.json", help="write the full report as JSON")
    p.add_argument("--markdown", default=None, metavar="FILE.md", help="write the tables as Markdown")
    p.add_argument("--readme", default=None, metavar="FILE.md",
                   help=f"replace the summary table between {README_START} and {README_END} in this file")
    p.add_argument("--examples", default=None, metavar="DIR", help="save some query photos here to look at")
    p.add_argument("--no-colour", dest="colour", action="store_false",
                   help="skip the same-colour share (dominant colour of each catalogue image)")
    p.add_argument("--no-detect", dest="detect", action="store_false",
                   help="search each query photo whole (no region search), as before issue 12")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    import shlex

    from ...errors import DressfinderError
    from ...settings import cache_dir

    if args.per_source < 1:
        raise DressfinderError("--per-source must be at least 1")
    if args.readme:   # before the long run, not after it
        check(Path(args.readme), "eval")
    cache = None if args.no_cache else Path(args.cache) if args.cache else cache_dir() / "eval"
    configs = [c for c in args.configs.split(",") if c.strip()]
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    style = None if args.style_prefix in ("", "none") else args.style_prefix
    report = evaluate(args.catalog, configs, queries=args.queries, kinds=kinds, seed=args.seed,
                      per_source=args.per_source, max_sources=args.max_sources, style_prefix=style,
                      heldout=None if args.heldout in ("", "none") else args.heldout, latency=args.latency,
                      cache=cache, epochs=args.epochs,
                      progress=not args.quiet, examples=Path(args.examples) if args.examples else None,
                      colour=args.colour, detect=args.detect)
    argv = sys.argv[1:]
    command = ("dressfinder " + " ".join(shlex.quote(a) for a in argv[argv.index("evaluate"):])) \
        if "evaluate" in argv else None
    report["command"] = command
    report["date"] = time.strftime("%Y-%m-%d", time.gmtime())
    md = to_markdown(report, command)
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    if args.markdown:
        Path(args.markdown).write_text(md)
    if args.readme:
        splice_readme(Path(args.readme), to_summary(report))
    print(md)
    return 0
