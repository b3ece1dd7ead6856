"""``dressfinder inspect`` on the command line: its arguments and ``run``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ...errors import DressfinderError
from .report import make_report


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", metavar="CATALOG_OR_STORE", help="catalogue folder or CSV, or a store folder")
    p.add_argument("--out", "-o", required=True, metavar="DIR", help="folder to write index.html and its pictures into")
    p.add_argument("--clusters", type=int, default=10, help="k-means clusters to show (default 10, as the seed; 0: none)")
    p.add_argument("--near", type=float, default=None,
                   help="cosine at or above which two different images are near duplicates "
                        "(default: the encoder's own near_duplicate_cosine: for effnet-tuned its model's .json says, "
                        "0.90 for the shipped model; 0.98 for effnet-lite0)")
    p.add_argument("--no-embed", action="store_true",
                   help="catalogue: do not encode the images (no near duplicates, no clusters; much faster)")
    p.add_argument("--encoder", default=None, help="catalogue: encoder for the embeddings (default: the default one)")
    p.add_argument("--max-shown", type=int, default=60, help="duplicate groups and pairs shown as pictures (default 60)")
    p.add_argument("--workers", type=int, default=None, help="image reading threads")
    p.add_argument("--seed", type=int, default=0, help="random seed for the contact sheets' random members")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    if args.near is not None and not 0 < args.near <= 1:
        raise DressfinderError("--near is a cosine between 0 and 1, e.g. 0.95")
    r = make_report(args.source, args.out, clusters=args.clusters, near=args.near, encode=not args.no_embed,
                    encoder=args.encoder, workers=args.workers, progress=not args.quiet, seed=args.seed,
                    max_shown=args.max_shown)
    print(f"{r['products']} products, {len(r['unreadable'])} unreadable, {len(r['exact_duplicates'])} exact "
          f"duplicate groups, {len(r['near_duplicates'])} near-duplicate pairs; report: "
          f"{Path(args.out) / 'index.html'}", file=sys.stderr)
    return 0
