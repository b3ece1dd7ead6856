"""The report folder: ``index.html`` (the Jinja2 template ``tools/templates/inspect.html``), the
pictures it shows beside it (``charts/*.png``, ``thumbs/*.jpg``, ``clusters/*.png``) and the
numbers as ``report.json``. Nothing in it refers to anything outside it."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from ...errors import DressfinderError
from .analysis import SHEET_NEAREST, SHEET_RANDOM, Analysis, Item, analyse, progress_bar, summarise
from .charts import bar_chart, contact_sheet, histogram, thumbnail

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
TEMPLATE_NAME = "inspect.html"
MAX_ROWS = 500              # table rows shown per list (unreadable files, skipped rows); all in report.json


def make_report(source: str | Path, out: str | Path, *, max_shown: int = 60, progress: bool = True,
                **kw: Any) -> dict[str, Any]:
    """Analyse ``source`` (catalogue or store) and write the report into ``out``; returns its numbers."""
    return write_report(analyse(source, progress=progress, **kw), out, max_shown=max_shown, progress=progress)


def write_report(a: Analysis, out: str | Path, *, max_shown: int = 60, progress: bool = True) -> dict[str, Any]:
    """Write ``out/index.html`` (+ charts, thumbnails, contact sheets, report.json). Returns the numbers."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DressfinderError(f"--out {out} is a file; give a folder")
    out.mkdir(parents=True, exist_ok=True)
    r = summarise(a)
    charts = draw_charts(a, r, out)
    dups, thumbs = plan_duplicates(a, r, out, max_shown)
    sheets = plan_sheets(a)
    draw_pictures(a, out, thumbs, sheets, progress)
    page = render_html(r, charts, dups, sheets)
    write_atomic(out / "report.json", json.dumps(r, indent=1, ensure_ascii=False))
    write_atomic(out / "index.html", page)
    return r


# --------------------------------------------------------------------------- pictures

def draw_charts(a: Analysis, r: dict[str, Any], out: Path) -> dict[str, list[dict[str, str]]]:
    """Formats, width, height and file size charts, and the price histograms of the 3 commonest
    currencies, under ``out/charts``; returns what the page shows per group (src, alt)."""
    charts: dict[str, list[dict[str, str]]] = {"images": [], "prices": []}

    def chart(name: str, make, alt: str, group: str = "images") -> None:
        make(out / "charts" / name)
        charts[group].append({"src": f"charts/{name}", "alt": alt})

    ok = [it for it in a.items if it.ok]
    if r["formats"]:
        chart("formats.png", lambda p: bar_chart(p, list(r["formats"]), list(r["formats"].values()),
                                                 "Images per format"), "images per format")
    for key, title, xl, scale in (("width", "Image width", "pixels", 1), ("height", "Image height", "pixels", 1),
                                  ("bytes", "File size", "KB", 1 / 1024)):
        vals = [getattr(it, "nbytes" if key == "bytes" else key) for it in ok]
        vals = [v * scale for v in vals if v]
        if vals:
            chart(f"{key}.png", lambda p, v=vals, t=title, x=xl: histogram(p, v, t, xlabel=x), title.lower())
    for n, (cur, _) in enumerate(list(r["prices"].items())[:3]):
        vals = [float(it.product.price) for it in a.items
                if it.product.price is not None and (it.product.currency or "?") == cur]
        chart(f"price-{n}.png", lambda p, v=vals, c=cur: histogram(p, v, f"Price ({c})", xlabel=c),
              f"price distribution {cur}", "prices")
    return charts


def _meta(it: Item) -> str:
    bits = []
    if it.width:
        bits.append(f"{it.width}x{it.height}")
    if it.nbytes:
        bits.append(f"{it.nbytes / 1024:.0f} KB")
    return ", ".join(bits)


def plan_duplicates(a: Analysis, r: dict[str, Any], out: Path,
                    max_shown: int) -> tuple[dict[str, list[Any]], list[tuple[Path, str]]]:
    """The duplicate groups and pairs the page shows as pictures (at most ``max_shown`` of each),
    and the thumbnails to draw for them: (destination, source image), one per distinct file."""
    items = a.items
    by_id = {it.id: it for it in items}
    thumbs: list[tuple[Path, str]] = []

    def fig(it: Item) -> dict[str, str]:
        name = f"thumbs/{(it.sha256 or hashlib.sha256(it.id.encode()).hexdigest())[:20]}.jpg"
        thumbs.append((out / name, it.path))
        return {"id": it.id, "src": name, "meta": _meta(it)}

    dups = {"exact": [[fig(by_id[i]) for i in g["ids"][:6]] for g in r["exact_duplicates"][:max_shown]],
            "near": [{"a": fig(items[i]), "b": fig(items[j]), "cosine": s} for i, j, s in a.near[:max_shown]]}
    return dups, thumbs


def plan_sheets(a: Analysis) -> list[dict[str, Any]]:
    """One contact sheet per cluster: its members shown, file name, size, how many are marked."""
    sheets = []
    for n, c in enumerate(a.clusters):
        members = c["nearest"] + c["random"]
        sheets.append({"members": members, "name": f"clusters/cluster-{n + 1:02d}.png", "cluster": n + 1,
                       "size": c["size"], "marked": len(c["nearest"]), "ids": [a.items[i].id for i in members]})
    return sheets


def draw_pictures(a: Analysis, out: Path, thumbs: list[tuple[Path, str]], sheets: list[dict[str, Any]],
                  progress: bool) -> None:
    """Draw the thumbnails and the contact sheets; each sheet gets its src, width and height."""
    from PIL import Image

    bar = progress_bar(len(set(thumbs)) + len(sheets), "writing report", progress)
    seen = set()
    for path, src in thumbs:
        if path not in seen:
            seen.add(path)
            thumbnail(path, src)
            bar.update(1)
    total = max(1, sum(s["size"] for s in sheets))
    for s in sheets:
        title = f"Cluster {s['cluster']} of {len(sheets)}: {s['size']} products ({100 * s['size'] / total:.1f}%)"
        contact_sheet(out / s["name"], [a.items[i].path for i in s["members"]], title, marked=s["marked"])
        with Image.open(out / s["name"]) as im:
            s["width"], s["height"] = im.size
        s["src"] = s["name"]
        bar.update(1)
    bar.close()


# --------------------------------------------------------------------------- page

def render_html(r: dict[str, Any], charts: dict[str, Any], dups: dict[str, Any], sheets: list[dict[str, Any]]) -> str:
    """The page, from the template ``tools/templates/inspect.html``."""
    import jinja2

    from ... import __version__

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                             undefined=jinja2.StrictUndefined)
    return env.get_template(TEMPLATE_NAME).render(r=r, charts=charts, dups=dups, sheets=sheets, version=__version__,
                                                  max_rows=MAX_ROWS, nearest=SHEET_NEAREST, random=SHEET_RANDOM)


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to a temporary name beside ``path``, then rename it (readers never see half)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
