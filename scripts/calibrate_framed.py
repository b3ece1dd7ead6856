"""Calibrate ``Thresholds.framed_gap`` (``regions.framed_photo``) on the evaluation's own path.

A photo of a screen often keeps the whole picture as its query: the box head is sure where the
product's photo is (a small box: ``regions.framed``), but neither that box nor any other beats the
whole photo's best match by the margin, since on such a photo nothing matches well. The rule: when
the whole photo's best match is ``framed_gap`` or more below ``sure`` (it matches nothing), the best
of the head's boxes over that photo is used instead. A photo edit whose whole is right (a dress on
another backdrop) may show a framed box too, with a higher whole score: the gap keeps those whole.

This runs ``dressfinder evaluate``'s default config (the service's region search, float32) on
pictures made with another variant seed than the evaluation's (default: its + 7) and a random subset
of the sources, once per whole-photo line (``--lines``: ``off``: the rule never applies; ``all``: it
always does; a number: the whole photo's best match below which it does, on the model's scale), and
prints Recall@1 / @10 per kind, with the queries at rank one and in the first ten:

    PYTHONPATH=. python scripts/calibrate_framed.py ../shared/data --seed-offset 7 --max-sources 400
    PYTHONPATH=. python scripts/calibrate_framed.py ../shared/data --seed-offset 8 --max-sources 400 \\
        --kinds screen,scene,background,combo

About 12 minutes a line for 400 sources x 8 kinds on the 2-core machine (the evaluation's cache
keeps the catalogue's vectors and the pictures between lines).
"""

from __future__ import annotations

import argparse
import sys
from contextlib import contextmanager
from dataclasses import replace

from dressfinder.settings import cache_dir
from dressfinder.thresholds import Thresholds
from dressfinder.tools.evaluate.run_eval import evaluate
from dressfinder.tools.evaluate.variants import DEFAULT_SEED

KINDS = "screen,scene,social,shop,fabric,background,combo,crop"


@contextmanager
def whole_line(line: str):
    """Every encoder's thresholds with ``framed_gap`` set so that the rule applies below ``line``
    (``off``: never, ``all``: always, else a cosine)."""
    own = Thresholds.of.__func__

    def of(cls, encoder):
        th = own(cls, encoder)
        gap = 10.0 if line == "off" else -10.0 if line == "all" else th.sure - float(line)
        return replace(th, framed_gap=gap)

    Thresholds.of = classmethod(of)
    try:
        yield
    finally:
        Thresholds.of = classmethod(own)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("catalog")
    p.add_argument("--kinds", default=KINDS)
    p.add_argument("--seed-offset", type=int, default=7, help="variant seed: the evaluation's + this (default 7)")
    p.add_argument("--max-sources", type=int, default=400)
    p.add_argument("--lines", default="off,all,0.33", help="whole-photo lines to run (default off,all,0.33)")
    a = p.parse_args()
    for line in a.lines.split(","):
        with whole_line(line):
            rep = evaluate(a.catalog, ["default"], kinds=a.kinds.split(","), seed=DEFAULT_SEED + a.seed_offset,
                           max_sources=a.max_sources, style_prefix="auto", heldout=None, latency=0,
                           cache=cache_dir() / "eval", colour=False, progress=False)
        for kind, v in rep["results"][0]["per_kind"].items():
            n = v["n"]
            print(f"{line:>5}  {kind:10}  {v['recall@1']:.3f} / {v['recall@10']:.3f}  "
                  f"({round(v['recall@1'] * n)}, {round(v['recall@10'] * n)} of {n})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
