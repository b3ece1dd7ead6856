"""Make docs/screenshots/inspect.png: a `dressfinder inspect` report, shot in headless Chromium.

    python scripts/inspect_screenshot.py [CATALOG_OR_STORE] [--out docs/screenshots/inspect.png]

CATALOG_OR_STORE defaults to ../shared/data/f21-dresses/catalog.csv. The committed screenshot shows
a store of all of ../shared/data::

    dressfinder index ../shared/data --store /tmp/shared-store
    python scripts/inspect_screenshot.py /tmp/shared-store --height 1500

Needs Debian's /usr/bin/chromium and Playwright (the `dev` extra; no browser download).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("source", nargs="?", default=str(REPO.parent / "shared" / "data" / "f21-dresses" / "catalog.csv"))
    ap.add_argument("--out", default=str(REPO / "docs" / "screenshots" / "inspect.png"))
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=1700)
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    a = ap.parse_args()

    from PIL import Image
    from playwright.sync_api import sync_playwright

    from dressfinder.tools.inspect import make_report

    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report"
        make_report(a.source, report, progress=True)
        shot = Path(tmp) / "shot.png"
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=a.chromium, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": a.width, "height": a.height})
            page.goto((report / "index.html").as_uri())
            page.wait_for_load_state("load")
            page.screenshot(path=str(shot), full_page=False)
            browser.close()
        out = Path(a.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        # a palette PNG keeps the screenshot well under 500 KB
        Image.open(shot).convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(out, optimize=True)
    print(f"wrote {out} ({out.stat().st_size // 1024} KB)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
