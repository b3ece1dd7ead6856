"""Run the test suite as `make test` does, and write what it did into README.md's ``tests`` block:
tests collected, passed, skipped (and why), the time it took, the machine and the date.

    python scripts/test_report.py --readme README.md       (make test-report)

tests/test_readme.py checks that the block's test count is the one pytest collects today.
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dressfinder.tools.machine import describe_machine  # noqa: E402
from dressfinder.tools.splice import splice  # noqa: E402

COMMAND = "python scripts/test_report.py --readme README.md"


def collected() -> int:
    """How many tests pytest collects here (what tests/test_readme.py compares the block with)."""
    out = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"],
                         cwd=REPO, capture_output=True, text=True).stdout
    m = re.search(r"^(\d+) tests? collected", out, re.M)
    if not m:
        raise SystemExit("test_report: pytest collected nothing: " + out.strip().splitlines()[-1:][0])
    return int(m.group(1))


def run_suite() -> tuple[dict[str, int], float, str]:
    """Run the suite once; counts by outcome, seconds, and the one line naming what was skipped."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=REPO,
                          capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    lines = proc.stdout.strip().splitlines()
    counts = {k: int(n) for n, k in re.findall(r"(\d+) (passed|failed|skipped|errors?|xfailed|xpassed)",
                                               lines[-1] if lines else "")}
    skipped = next((ln for ln in reversed(lines) if ln.startswith("skipped ")), "")
    for ln in lines:
        if ln.startswith(("FAILED ", "ERROR ")):
            print(ln, file=sys.stderr)
    return counts, seconds, skipped


def block(n: int, counts: dict[str, int], seconds: float, skipped: str) -> str:
    outcome = ", ".join(f"{v} {k}" for k, v in counts.items())
    minutes, secs = divmod(round(seconds), 60)
    text = (f"`make test` on {dt.date.today().isoformat()}: **{n} tests** collected; {outcome} in "
            f"{minutes} min {secs:02d} s ({describe_machine()}).")
    if skipped:
        text += f" What was skipped: {skipped.removeprefix('skipped ')}."
    return text + f" Written by `{COMMAND}`.\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--readme", default=None, help="write the tests block of this file (README.md)")
    a = ap.parse_args()
    n = collected()
    readme = Path(a.readme) if a.readme else None
    before = readme.read_text() if readme else None
    if readme:   # the suite's own tests/test_readme.py reads the block: it holds today's count while it runs
        splice(readme, f"`make test` on {dt.date.today().isoformat()}: **{n} tests** collected; the run is under "
                       f"way ({describe_machine()}). Written by `{COMMAND}`.\n", "tests")
    counts, seconds, skipped = run_suite()
    text = block(n, counts, seconds, skipped)
    print(text, end="")
    bad = counts.get("failed", 0) + counts.get("error", 0) + counts.get("errors", 0)
    if bad or not counts:
        if readme:
            readme.write_text(before)
        print("test_report: the suite did not pass; README.md left as it was", file=sys.stderr)
        return 1
    if readme:
        splice(readme, text, "tests")
    return 0


if __name__ == "__main__":
    sys.exit(main())
