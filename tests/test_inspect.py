"""`dressfinder inspect`: the report's numbers against a catalogue built here (known counts, a known
duplicate pair, a near-duplicate, broken and missing files), the HTML (self-contained, every picture
there), the store variant (contact sheets per cluster), the CLI, and the page in headless Chromium."""

from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

import pytest
from PIL import Image

from conftest import CHROMIUM, dress_image, playwright_api, write_catalog
from dressfinder.cli import main

N = 12  # generated dresses sku-000 .. sku-011


def _append_rows(csv_path: Path, rows: list[dict]) -> None:
    with open(csv_path, newline="") as f:
        fields = next(csv.reader(f))
    with open(csv_path, "a", newline="") as f:
        csv.DictWriter(f, fieldnames=fields).writerows([{k: r.get(k, "") for k in fields} for r in rows])


@pytest.fixture(scope="module")
def test_catalog(tmp_path_factory) -> Path:
    """12 dresses + 1 corrupt JPEG (write_catalog), plus: an exact copy of dress 3, dress 5 decoded and
    saved again at JPEG quality 98 (a near duplicate: other bytes, same picture), a larger PNG with no
    title, and a row whose file is missing."""
    folder = tmp_path_factory.mktemp("inspect-catalog")
    csv_path = write_catalog(folder, n=N, broken=1)
    img = folder / "images"
    shutil.copyfile(img / "dress-003.jpg", img / "copy-of-003.jpg")
    with Image.open(img / "dress-005.jpg") as im:
        im.convert("RGB").save(img / "near-005.jpg", "JPEG", quality=98)
    dress_image(40, size=(200, 300)).save(img / "dress-040.png", "PNG")
    _append_rows(csv_path, [
        {"id": "sku-dup", "image": "images/copy-of-003.jpg", "title": "Copy", "price": "99.00", "currency": "EUR"},
        {"id": "sku-near", "image": "images/near-005.jpg", "title": "Near"},
        {"id": "sku-png", "image": "images/dress-040.png", "price": "5", "currency": "USD"},
        {"id": "sku-missing", "image": "images/not-there.jpg", "title": "Gone"},
    ])
    return csv_path


@pytest.fixture(scope="module")
def catalog_report(test_catalog, tmp_path_factory):
    from dressfinder.tools.inspect import make_report

    out = tmp_path_factory.mktemp("inspect-out") / "report"
    # generated dresses are flat colours, more alike than photos: a stricter threshold than the
    # encoder's default (0.97) separates the re-saved copy (~0.99) from distinct dresses (<= ~0.971)
    r = make_report(test_catalog, out, clusters=3, encoder="effnet-lite0", near=0.98, progress=False)
    return out, r


def test_catalog_counts(catalog_report):
    out, r = catalog_report
    assert r["kind"] == "catalogue"
    assert r["products"] == N + 1 + 4
    assert r["readable"] == N + 3
    assert r["formats"] == {"JPEG": N + 2, "PNG": 1}
    assert dict(r["common_sizes"]) == {"160x240": N + 2, "200x300": 1}
    assert r["width"]["min"] == 160 and r["width"]["max"] == 200
    assert r["height"]["min"] == 240 and r["height"]["max"] == 300
    assert r["bytes"]["count"] == N + 3 and r["bytes"]["min"] > 0
    assert json.loads((out / "report.json").read_text()) == r


def test_catalog_unreadable_files_with_reasons(catalog_report):
    _, r = catalog_report
    reasons = {u["id"]: u["reason"] for u in r["unreadable"]}
    assert set(reasons) == {"broken-0", "sku-missing"}
    assert re.search(r"not an image|corrupt|truncated|cannot read image", reasons["broken-0"], re.I)
    assert "not found" in reasons["sku-missing"]
    assert r["unreadable_reasons"]["missing file"] == 1 and sum(r["unreadable_reasons"].values()) == 2


def test_catalog_duplicates(catalog_report):
    _, r = catalog_report
    assert [g["ids"] for g in r["exact_duplicates"]] == [["sku-003", "sku-dup"]]
    assert r["exact_duplicate_products"] == 1
    near = {frozenset((p["a"], p["b"])): p["cosine"] for p in r["near_duplicates"]}
    assert frozenset(("sku-005", "sku-near")) in near
    assert near[frozenset(("sku-005", "sku-near"))] >= r["near_threshold"]
    # exact duplicates are not repeated as near ones, and nothing else is this alike
    assert frozenset(("sku-003", "sku-dup")) not in near
    assert len(near) == 1


def test_catalog_metadata_and_prices(catalog_report):
    _, r = catalog_report
    # generated rows have every field; broken-0 has a title only; the four extra rows as written above
    # (the fields product feeds fill, which these rows do not have, are counted too: 0)
    assert r["metadata"] == {"title": N + 1 + 3, "price": N + 2, "currency": N + 2, "url": N,
                             "shop": N, "category": N, "availability": 0, "sale_price": 0, "brand": 0, "color": 0,
                             "size": 0, "item_group_id": 0, "more_images": 0}
    eur = r["prices"]["EUR"]
    assert eur["count"] == N + 1 and eur["min"] == 10.0 and eur["max"] == 99.0
    assert r["prices"]["USD"]["count"] == 1
    assert r["shops"] == {"shop-a": N // 2, "shop-b": N // 2}
    assert r["categories"] == {"mini": 8, "maxi": 4}


def test_catalog_clusters(catalog_report):
    out, r = catalog_report
    assert r["embedded"] == N + 3 and r["encoder"] == "effnet-lite0"
    assert len(r["clusters"]) == 3
    assert sum(c["size"] for c in r["clusters"]) == N + 3
    assert [c["size"] for c in r["clusters"]] == sorted((c["size"] for c in r["clusters"]), reverse=True)
    assert sorted((out / "clusters").glob("*.png")) == [out / "clusters" / f"cluster-{i:02d}.png" for i in (1, 2, 3)]


def _img_sources(html: str) -> list[str]:
    return re.findall(r'<img[^>]*\ssrc="([^"]+)"', html)


def test_html_is_self_contained(catalog_report):
    out, r = catalog_report
    html = (out / "index.html").read_text()
    srcs = _img_sources(html)
    assert len(srcs) >= 4 + 3 + 2 + 2   # charts, contact sheets, the duplicate pair, the near pair
    for src in srcs:
        assert not re.match(r"^(/|[a-z]+:)", src), src          # relative: the folder can move
        assert (out / src).is_file(), src
    assert not re.search(r"<(script|link|iframe)\b", html)                      # no outside resources
    assert not re.search(r'(src|href)="(https?:|file:|/)', html)
    assert re.search(r'id="n-products">17<', html) and re.search(r'id="n-unreadable">2<', html)
    assert re.search(r'id="n-exact">1<', html) and re.search(r'id="n-near">1<', html)
    assert "sku-missing" in html and "file not found" in html
    assert 'data-field="price"' in html and 'id="prices"' in html
    assert (out / "charts" / "formats.png").is_file() and (out / "charts" / "price-0.png").is_file()


def test_store_report(built_store, tmp_path):
    from dressfinder.tools.inspect import make_report

    r = make_report(built_store, tmp_path / "rep", progress=False)
    assert r["kind"] == "store" and r["products"] == 24 and r["readable"] == 24
    assert r["unreadable"] == [] and r["exact_duplicates"] == []
    assert r["store"]["built"]["skipped"] == 1 and r["store"]["index"]["kind"] == "flat"
    assert len(r["clusters"]) == 10 and sum(c["size"] for c in r["clusters"]) == 24
    assert len(list((tmp_path / "rep" / "clusters").glob("cluster-*.png"))) == 10
    assert r["metadata"]["price"] == 24 and r["prices"]["EUR"]["count"] == 24


def test_store_with_ivf_index_shows_its_own_clusters(catalog_dir, tmp_path):
    from dressfinder.tools.inspect import make_report
    from dressfinder.store import Store

    Store.build(catalog_dir / "catalog.csv", tmp_path / "ivf", encoder="effnet-lite0", index="ivf",
                index_params={"nlist": 4}, progress=False)
    r = make_report(tmp_path / "ivf", tmp_path / "rep", progress=False, clusters=10)
    assert r["clusters_from"] == "the store's own ivf clusters"
    assert len(r["clusters"]) <= 4 and sum(c["size"] for c in r["clusters"]) == 24


def test_cli_no_embed_and_errors(test_catalog, tmp_path, capsys):
    out = tmp_path / "quick"
    assert main(["inspect", str(test_catalog), "--out", str(out), "--no-embed", "-q"]) == 0
    r = json.loads((out / "report.json").read_text())
    assert r["products"] == 17 and r["near_duplicates"] == [] and r["clusters"] == [] and r["embedded"] == 0
    assert [g["ids"] for g in r["exact_duplicates"]] == [["sku-003", "sku-dup"]]
    assert "17 products, 2 unreadable" in capsys.readouterr().err
    assert main(["inspect", str(tmp_path / "nothing"), "--out", str(tmp_path / "x"), "-q"]) == 2
    assert main(["inspect", str(test_catalog), "--out", str(tmp_path / "y"), "--near", "2", "-q"]) == 2
    (tmp_path / "afile").write_text("")
    assert main(["inspect", str(test_catalog), "--out", str(tmp_path / "afile"), "--no-embed", "-q"]) == 2


def test_folder_catalogue(tmp_path):
    from dressfinder.tools.inspect import make_report

    write_catalog(tmp_path / "cat", n=5, with_csv=False)
    r = make_report(tmp_path / "cat", tmp_path / "rep", encode=False, progress=False)
    assert r["products"] == 5 and r["metadata"]["title"] == 0 and r["prices"] == {}
    assert "Prices" not in (tmp_path / "rep" / "index.html").read_text().split("<main>")[1].split("id=\"metadata\"")[0]


CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]


@pytest.mark.browser
def test_report_opens_in_chromium_without_missing_images(catalog_report):
    sync_api = playwright_api()
    out, r = catalog_report
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            failed: list[str] = []
            page.on("requestfailed", lambda req: failed.append(req.url))
            page.goto((out / "index.html").as_uri())
            page.wait_for_load_state("load")
            images = page.evaluate("Array.from(document.images).map(i => [i.getAttribute('src'), i.complete, "
                                   "i.naturalWidth])")
            assert page.inner_text("#n-products") == "17"
        finally:
            browser.close()
    assert len(images) >= 11
    assert [src for src, complete, w in images if not (complete and w > 0)] == []
    assert failed == []
