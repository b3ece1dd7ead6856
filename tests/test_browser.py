"""End to end in headless Chromium (Debian's /usr/bin/chromium driven by Playwright's Python
package; no browser download): upload a photo, see the grid, "more like this", draw a crop box,
drag and drop, the product page. With ../shared/data present, also a small real-catalogue store
and the README's screenshot of a results page (docs/screenshots/results.png).
"""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pytest

from conftest import CHROMIUM, playwright_api, unavailable
from webfixtures import (SCENE_CROP, dress_image, encode, make_app, product_id, scene_with_dress, serve,
                         web_store, web_store_copy)  # noqa: F401  (fixtures)

pytestmark = pytest.mark.browser

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-quic", "--disable-dev-shm-usage"]
REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
SCREENSHOT = REPO / "docs" / "screenshots" / "results.png"



@pytest.fixture(scope="module")
def pw():
    """One Playwright driver for the module (its sync API cannot be started twice at once)."""
    sync_api = playwright_api()
    with sync_api.sync_playwright() as p:
        yield p


def _cannot_start(e: Exception):
    """A chromium Playwright cannot drive: skipped here, a failure in CI."""
    unavailable(f"cannot start {CHROMIUM}: {str(e).splitlines()[0]}",
                "install a chromium Playwright can drive (apt-get install chromium)")


@pytest.fixture(scope="module")
def browser(pw):
    user_data = tempfile.mkdtemp(prefix="dressfinder-chromium-")
    try:
        try:
            context = pw.chromium.launch_persistent_context(
                user_data, executable_path=CHROMIUM, headless=True, args=ARGS,
                viewport={"width": 1200, "height": 900}, device_scale_factor=1)
        except Exception as e:
            _cannot_start(e)
        context.set_default_timeout(20_000)
        yield context
        context.close()
    finally:
        shutil.rmtree(user_data, ignore_errors=True)


@pytest.fixture(scope="module")
def chromium(pw):
    """The same chromium as a browser that opens contexts of its own (a phone's: touch, mobile)."""
    try:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
    except Exception as e:
        _cannot_start(e)
    yield b
    b.close()


PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 1, "has_touch": True, "is_mobile": True}
DESKTOP = {"viewport": {"width": 1200, "height": 900}, "device_scale_factor": 1}


@contextmanager
def opened(chromium, **options):
    """A page in a new context made with ``options`` (PHONE, DESKTOP, bypass_csp...); its console
    errors and page errors are collected in ``page.problems``."""
    context = chromium.new_context(**options)
    context.set_default_timeout(20_000)
    page = context.new_page()
    page.problems = []
    page.on("console", lambda m: page.problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: page.problems.append(str(e)))
    try:
        yield page
    finally:
        context.close()


@pytest.fixture(scope="module")
def site(web_store):
    with serve(make_app(web_store)) as base:
        yield base


@pytest.fixture
def page(browser):
    page = browser.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.problems = problems
    yield page
    page.close()


def write(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


def card_ids(page) -> list[str]:
    return page.eval_on_selector_all("#results li.card", "els => els.map(e => e.dataset.id)")


def images_loaded(page, selector: str) -> bool:
    return page.eval_on_selector_all(selector, "els => els.length > 0 && els.every(i => i.complete && i.naturalWidth > 0)")


def test_upload_see_grid_then_more_like_this(page, site, tmp_path):
    page.goto(site + "/")
    assert page.title().startswith("Find a dress")
    page.set_input_files("#file", write(tmp_path / "my-dress.jpg", encode(dress_image(9), "JPEG", quality=90)))
    page.wait_for_selector("#preview:not([hidden])")
    page.select_option("#k", "6")
    page.click("#search-button")
    page.wait_for_selector("#results li.card")
    ids = card_ids(page)
    assert len(ids) == 6 and ids[0] == product_id(9)
    assert page.is_visible("#query-img")
    page.wait_for_function("() => [...document.images].every(i => i.complete)")
    assert images_loaded(page, "#results img") and images_loaded(page, "#query-img")
    first = page.locator("#results li.card").first
    assert "Dress number 9" in first.inner_text() and "Very close" in first.inner_text()
    assert first.locator("a.shop").get_attribute("rel").startswith("noopener nofollow")
    # "more like this" on the second result: a search by catalogue product, nothing uploaded
    second_id = ids[1]
    page.locator("#results li.card").nth(1).locator("a.more").click()
    page.wait_for_url("**/search?like=*")
    page.wait_for_selector("#results li.card")
    assert page.locator("h1").inner_text().startswith("More like")
    assert second_id not in card_ids(page) and len(card_ids(page)) == 6
    page.wait_for_function("() => [...document.images].every(i => i.complete)")
    assert images_loaded(page, "#query-img")
    # and on to a product page
    page.locator("#results li.card").first.locator("h3 a").click()
    page.wait_for_selector("text=You may also like")
    assert len(card_ids(page)) == 12
    assert page.problems == []


def test_draw_a_crop_box_and_search_the_crop(page, site, tmp_path):
    page.goto(site + "/")
    page.set_input_files("#file", write(tmp_path / "street.jpg", encode(scene_with_dress(10), "JPEG", quality=92)))
    page.wait_for_function("() => { const i = document.getElementById('preview-img'); "
                           "return i.complete && i.naturalWidth > 0 && i.getBoundingClientRect().width > 0; }")
    box = page.locator("#preview-img").bounding_box()
    l, t, r, b = SCENE_CROP
    page.mouse.move(box["x"] + l * box["width"], box["y"] + t * box["height"])
    page.mouse.down()
    page.mouse.move(box["x"] + (l + r) / 2 * box["width"], box["y"] + (t + b) / 2 * box["height"], steps=5)
    page.mouse.move(box["x"] + r * box["width"], box["y"] + b * box["height"], steps=5)
    page.mouse.up()
    assert page.is_visible("#crop-box") and page.is_visible("#crop-clear")
    crop = [float(v) for v in page.input_value("#crop").split(",")]
    assert crop == pytest.approx(list(SCENE_CROP), abs=0.01)
    page.select_option("#k", "6")
    page.click("#search-button")
    page.wait_for_selector("#results li.card")
    assert card_ids(page)[0] == product_id(10)
    assert page.is_visible("#query-crop")          # the results page shows the box on the photo
    assert page.problems == []


def test_a_click_is_not_a_box_and_the_box_can_be_cleared(page, site, tmp_path):
    page.goto(site + "/")
    page.set_input_files("#file", write(tmp_path / "p.jpg", encode(scene_with_dress(2), "JPEG")))
    page.wait_for_function("() => document.getElementById('preview-img').naturalWidth > 0")
    box = page.locator("#preview-img").bounding_box()
    page.mouse.click(box["x"] + 20, box["y"] + 20)
    assert page.input_value("#crop") == "" and not page.is_visible("#crop-box")
    page.mouse.move(box["x"] + 10, box["y"] + 10)
    page.mouse.down()
    page.mouse.move(box["x"] + 200, box["y"] + 150, steps=4)
    page.mouse.up()
    assert page.input_value("#crop") != ""
    page.click("#crop-clear")
    assert page.input_value("#crop") == "" and not page.is_visible("#crop-box")


def test_drag_and_drop_a_photo(page, site):
    page.goto(site + "/")
    data = base64.b64encode(encode(dress_image(4), "PNG")).decode()
    page.evaluate("""(b64) => {
        const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
        const dt = new DataTransfer();
        dt.items.add(new File([bytes], "dropped.png", {type: "image/png"}));
        const drop = document.getElementById("drop");
        for (const type of ["dragenter", "dragover", "drop"]) {
            drop.dispatchEvent(new DragEvent(type, {dataTransfer: dt, bubbles: true, cancelable: true}));
        }
    }""", data)
    page.wait_for_selector("#preview:not([hidden])")
    assert page.evaluate("document.getElementById('file').files.length") == 1
    page.click("#search-button")
    page.wait_for_selector("#results li.card")
    assert card_ids(page)[0] == product_id(4)


def test_messages_for_bad_input(page, site, tmp_path):
    page.goto(site + "/")
    page.click("#search-button")                       # nothing chosen: stopped in the page
    assert page.is_visible("#client-error") and "Choose a photo" in page.inner_text("#client-error")
    refused = "That file is not a photo we can open; choose a JPEG, PNG or WebP picture."
    posts: list[str] = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
    # not a picture, by its type or (a text file named .jpg) by failing to decode in the page:
    # refused before anything is sent, in one sentence; Search then sends nothing
    for name, data in (("notes.txt", b"just some text"), ("fake.jpg", b"<html>not really</html>")):
        page.set_input_files("#file", write(tmp_path / name, data))
        page.wait_for_function("() => !document.getElementById('client-error').hidden")
        assert page.inner_text("#client-error") == refused, name
        assert page.eval_on_selector("#file", "i => i.files.length") == 0 and page.is_hidden("#preview")
        page.click("#search-button")
        assert "Choose a photo" in page.inner_text("#client-error")
    assert posts == []
    # an address the server will not fetch
    page.fill("#image_url", "http://127.0.0.1:1/dress.jpg")
    page.set_input_files("#file", [])
    page.click("#search-button")
    page.wait_for_selector("#error")
    assert "private" in page.inner_text("#error")


def test_too_large_photo_is_refused_before_sending(page, web_store, tmp_path):
    import numpy as np
    from PIL import Image

    noise = np.random.default_rng(3).integers(0, 256, size=(400, 300, 3), dtype=np.uint8)
    big = write(tmp_path / "big.png", encode(Image.fromarray(noise), "PNG"))   # ~360 KB
    posts: list[str] = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
    with serve(make_app(web_store, max_upload_bytes=100 * 1024)) as base:
        page.goto(base + "/")
        assert "up to 100 KB" in page.inner_text("form")                # the limit, in words
        page.set_input_files("#file", big)
        message = page.inner_text("#client-error")
        assert "too large (35" in message and "KB); the limit is 100 KB" in message, message
        page.click("#search-button")
        page.wait_for_timeout(300)
        assert posts == [] and page.url == base + "/"


def test_keyboard_reaches_the_upload(page, site):
    page.goto(site + "/")
    for _ in range(6):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "file":
            break
    assert page.evaluate("document.activeElement.id") == "file"


def test_phone_width_grid(browser, site, tmp_path):
    page = browser.new_page()
    page.set_viewport_size({"width": 390, "height": 844})
    try:
        page.goto(site + "/")
        assert page.get_attribute("#file", "accept") == "image/*"
        page.set_input_files("#file", write(tmp_path / "m.jpg", encode(dress_image(1), "JPEG")))
        page.click("#search-button")
        page.wait_for_selector("#results li.card")
        widths = page.eval_on_selector_all("#results li.card", "els => els.slice(0, 2).map(e => e.getBoundingClientRect().width)")
        assert all(100 < w < 200 for w in widths)      # two columns on a phone
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
    finally:
        page.close()


# --------------------------------------------------------------------------- the dress in a bigger picture

def _shop_screenshot() -> tuple[bytes, tuple[float, float, float, float], set[str]]:
    """A phone screenshot of a shop page: dress 7 big, a "you may also like" row of dresses 2, 5, 13."""
    import numpy as np

    from dressfinder.tools.scenes import make_shop

    pool = [dress_image(i) for i in (2, 5, 13)]
    pic, box = make_shop(dress_image(7), np.random.default_rng(4), pool, layout="phone")
    assert pic.height > pic.width
    return encode(pic, "JPEG", quality=90), box, {product_id(i) for i in (2, 5, 13)}


def _iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    return ix * iy / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - ix * iy)


def _drag(page, img: str, box) -> None:
    r = page.locator(img).bounding_box()
    page.mouse.move(r["x"] + box[0] * r["width"], r["y"] + box[1] * r["height"])
    page.mouse.down()
    page.mouse.move(r["x"] + (box[0] + box[2]) / 2 * r["width"], r["y"] + (box[1] + box[3]) / 2 * r["height"], steps=4)
    page.mouse.move(r["x"] + box[2] * r["width"], r["y"] + box[3] * r["height"], steps=4)
    page.mouse.up()


def test_screenshot_box_other_region_own_box_whole_photo(page, site, tmp_path):
    data, truth, row = _shop_screenshot()
    page.goto(site + "/")
    page.set_input_files("#file", write(tmp_path / "screenshot.jpg", data))
    page.select_option("#k", "6")
    page.click("#search-button")
    page.wait_for_selector("#results li.card")
    # the box appears around the dress, and the first result is that dress
    assert page.is_visible("#query-crop")
    found = [float(v) for v in page.get_attribute("#query-crop", "data-crop").split(",")]
    inside = all(abs(a - b) < 0.02 or (a > b) == (i < 2) for i, (a, b) in enumerate(zip(found, truth)))
    area = (found[2] - found[0]) * (found[3] - found[1]) / ((truth[2] - truth[0]) * (truth[3] - truth[1]))
    assert inside and area > 0.4, (found, truth)    # around the dress (its photo, or the dress in it)
    assert card_ids(page)[0] == product_id(7)
    shown = page.locator("#query-crop").bounding_box()
    img = page.locator("#query-img").bounding_box()
    assert shown["width"] < img["width"] and shown["height"] < img["height"] * 0.8
    # the other dresses found: boxes on the photo and chips; choose one
    assert page.locator(".region-box").count() >= 2 and page.is_visible(".region-box")
    chosen = [float(v) for v in page.locator(".region-chip").first.get_attribute("data-region").split(",")]
    page.locator("#refine-form .region-chip").first.click()
    page.wait_for_selector("text=the part you boxed")
    assert card_ids(page)[0] in row
    searched = [float(v) for v in page.get_attribute("#query-crop", "data-crop").split(",")]
    assert searched == pytest.approx(chosen, abs=0.01)
    # her own box: drag it around the big photo again; nothing is searched until she confirms
    before = card_ids(page)
    assert page.is_hidden("#search-area")
    _drag(page, "#query-img", truth)
    page.wait_for_timeout(300)
    assert card_ids(page) == before and page.is_visible("#search-area")
    with page.expect_navigation():
        page.click("#search-area")
    page.wait_for_selector("text=the part you boxed")
    page.wait_for_function("() => document.getElementById('query-img').complete")
    assert card_ids(page)[0] == product_id(7)
    mine = [float(v) for v in page.get_attribute("#query-crop", "data-crop").split(",")]
    assert _iou(mine, truth) > 0.8
    # one click to search the whole photo
    page.click("#search-whole")
    page.wait_for_selector("#results li.card")
    page.wait_for_function("() => !document.getElementById('query-crop') && !document.getElementById('search-whole')")
    assert "Your photo" in page.inner_text("#query-caption")
    # no box now: "Box part of the photo" puts one on, focused; Enter searches it
    page.wait_for_selector("#area-start:not([hidden])")
    page.click("#area-start")
    assert page.evaluate("document.activeElement.id") == "draft-box" and page.is_visible("#search-area")
    drawn = crop_of(page.get_attribute("#draft-box", "data-at"))
    with page.expect_navigation():
        page.keyboard.press("Enter")
    page.wait_for_selector("#results li.card")
    assert crop_of(page.get_attribute("#query-crop", "data-crop")) == pytest.approx(drawn, abs=2e-4)
    assert page.problems == []


def test_phone_tap_on_a_found_region(browser, site, tmp_path):
    data, truth, row = _shop_screenshot()
    page = browser.new_page()
    page.set_viewport_size({"width": 390, "height": 844})
    try:
        page.goto(site + "/")
        page.set_input_files("#file", write(tmp_path / "s.jpg", data))
        page.click("#search-button")
        page.wait_for_selector(".region-box")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        target = page.locator(".region-box").first
        box = target.bounding_box()
        assert box["width"] > 5 and box["height"] > 5
        page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)   # a tap, not a drag
        page.wait_for_selector("text=the part you boxed")
        assert card_ids(page)[0] in row
    finally:
        page.close()


def test_a_scene_with_two_dresses_offers_both_and_a_tap_searches_the_other(page, site, tmp_path):
    """A busy scene with two dresses, one the catalogue does not hold: the searched one is boxed, the
    other is offered as a dashed box and a chip; tapping its box searches that box (as a crop)."""
    from webfixtures import two_dress_scene

    pic, truth = two_dress_scene()
    page.goto(site + "/")
    page.set_input_files("#file", write(tmp_path / "two.jpg", encode(pic, "JPEG", quality=92)))
    page.click("#search-button")
    page.wait_for_selector("#results li.card")
    page.wait_for_selector(".region-box.detected:not([hidden])")
    assert page.is_visible("#query-crop") and page.locator(".region-box").count() == 1
    assert page.is_visible("#refine-form .region-chip.detected") and page.is_visible("#other-regions")
    boxes = [crop_of(page.get_attribute("#query-crop", "data-crop")),
             crop_of(page.get_attribute(".region-box.detected", "data-region"))]
    centre = lambda b, t: t[0] <= (b[0] + b[2]) / 2 <= t[2] and t[1] <= (b[1] + b[3]) / 2 <= t[3]  # noqa: E731
    assert sorted(next(i for i, t in enumerate(truth) if centre(b, t)) for b in boxes) == [0, 1], (boxes, truth)
    target = page.locator(".region-box.detected").bounding_box()
    assert target["width"] > 20 and target["height"] > 20
    with page.expect_navigation():
        page.mouse.click(target["x"] + target["width"] / 2, target["y"] + target["height"] / 2)   # a tap
    page.wait_for_selector("text=the part you boxed")
    assert crop_of(page.get_attribute("#query-crop", "data-crop")) == pytest.approx(boxes[1], abs=2e-4)
    assert page.locator(".region-box").count() == 0     # a box of her own is searched alone
    assert page.problems == []


# --------------------------------------------------------------------------- real photos + screenshot

def _shared_catalog(tmp: Path, n: int = 120) -> Path | None:
    src = SHARED / "f21-dresses" / "catalog.csv"
    if not src.is_file():
        return None
    rows = []
    with open(src, newline="") as f:
        for row in csv.DictReader(f):
            image = SHARED / "f21-dresses" / row["image"]
            if image.is_file():
                rows.append({"id": f"f21/{row['product_id']}", "image": str(image), "title": row["title"],
                             "url": row["product_url"], "store": "Forever 21", "category": "dress"})
            if len(rows) == n:
                break
    out = tmp / "f21.csv"
    with open(out, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return out


@pytest.mark.shared_data
@pytest.mark.skipif(not (SHARED / "f21-dresses" / "catalog.csv").is_file(), reason="../shared/data is absent")
def test_real_catalogue_results_screenshot(browser, chromium, tmp_path):
    """A phone screenshot of a social post showing a real catalogue dress: the results page finds
    the dress (its box drawn on the screenshot), the first result is it; README's screenshot."""
    import numpy as np
    from PIL import Image

    from dressfinder.store import Store
    from dressfinder.tools.scenes import make_social

    catalog = _shared_catalog(tmp_path)
    Store.build(catalog, tmp_path / "store", progress=False)   # the default encoder
    rows = list(csv.DictReader(open(catalog)))
    post, others = rows[7], [Image.open(rows[i]["image"]).convert("RGB") for i in (20, 31)]
    shot_in, _ = make_social(Image.open(post["image"]).convert("RGB"), np.random.default_rng(3), others,
                             phone=(1080, 2340))
    photo = tmp_path / "screenshot.jpg"
    shot_in.save(photo, quality=90)
    page = browser.new_page()
    page.set_viewport_size({"width": 1100, "height": 900})
    try:
        with serve(make_app(tmp_path / "store")) as base:
            page.goto(base + "/")
            page.set_input_files("#file", str(photo))
            page.wait_for_function("() => document.getElementById('preview-img').naturalWidth > 0")
            page.select_option("#k", "12")
            page.click("#search-button")
            page.wait_for_selector("#results li.card")
            assert len(card_ids(page)) == 12 and all(i.startswith("f21/") for i in card_ids(page))
            assert card_ids(page)[0] == post["id"] and page.is_visible("#query-crop")
            page.wait_for_function("() => [...document.images].every(i => i.complete && i.naturalWidth > 0)")
            shot = page.screenshot(full_page=True)
    finally:
        page.close()
    # The committed screenshot is only (re)written when missing or when asked, so a test run does not
    # change a tracked file every time; under 300 KB (shrunk until it fits).
    write_screenshot(SCREENSHOT, shot, tmp_path)
    # the same search on a phone (390x844, touch): its first screen, the box drawn, the first results
    with serve(make_app(tmp_path / "store")) as base, opened(chromium, **PHONE) as phone:
        phone.goto(base + "/")
        phone.set_input_files("#file", str(photo))
        phone.wait_for_selector("#preview:not([hidden])")
        phone.tap("#search-button")
        phone.wait_for_selector("#results li.card")
        assert card_ids(phone)[0] == post["id"] and phone.is_visible("#query-crop")
        assert phone.locator("#results li.card").first.bounding_box()["y"] < 844 - 100
        phone.wait_for_function("() => [...document.querySelectorAll('#query-img, #results li:nth-child(-n+2) img')]"
                                ".every(i => i.complete && i.naturalWidth > 0)")
        write_screenshot(PHONE_SCREENSHOT, phone.screenshot(), tmp_path)


PHONE_SCREENSHOT = REPO / "docs" / "screenshots" / "results-phone.png"


def write_screenshot(path: Path, shot: bytes, tmp_path: Path, budget: int = 300_000) -> bytes:
    """A small PNG of ``shot`` (256 colours, shrunk until under ``budget``) written to ``path`` when
    it is missing or DRESSFINDER_UPDATE_SCREENSHOT=1 (a test run does not change a tracked file each
    time), else beside the test's other files."""
    png = _small_png(shot, budget)
    assert len(png) < budget
    if not path.exists() or os.environ.get("DRESSFINDER_UPDATE_SCREENSHOT") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(png)
    else:
        (tmp_path / path.name).write_bytes(png)
    return png


# --------------------------------------------------------------------------- a shop's page with the block

SAMPLE_SHOP = REPO / "docs" / "sample-shop"
SHOP_SCREENSHOT = REPO / "docs" / "screenshots" / "sample-shop.png"
SHOP_PHONE_SCREENSHOT = REPO / "docs" / "screenshots" / "sample-shop-phone.png"


@contextmanager
def shop_server(port: int, dressfinder: str):
    """docs/sample-shop served as a shop would (another origin), the snippet pointing at ``dressfinder``."""
    import http.server
    import threading

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(SAMPLE_SHOP), **kw)

        def log_message(self, *a):  # quiet
            pass

        def do_GET(self):
            if self.path.split("?")[0] != "/product.html":
                return super().do_GET()
            body = (SAMPLE_SHOP / "product.html").read_text().replace("http://127.0.0.1:2000", dressfinder).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.shutdown()
        server.server_close()


def _wait(check, what: str, timeout: float = 10.0):
    import time

    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.mark.parametrize("viewport", [{"width": 1200, "height": 900}, {"width": 390, "height": 844}],
                         ids=["desktop", "phone"])
def test_sample_shop_page_shows_in_stock_similar_dresses_and_counts_a_click(browser, tmp_path, viewport):
    """docs/sample-shop/product.html, on its own origin, with the two-line snippet: the block shows
    in-stock similar dresses linking to the shop's own product pages; its view and a click are counted."""
    from dressfinder.web.events import EventLog
    from webfixtures import OUT_OF_STOCK, build_stock_store, free_port

    store = build_stock_store(tmp_path)
    shop_port = free_port()
    log = EventLog(store / "events.sqlite")
    app = make_app(store, embed_origins=(f"http://127.0.0.1:{shop_port}",))
    page = browser.new_page()
    page.set_viewport_size(viewport)
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.route("https://shop.example/**", lambda route: route.fulfill(
        status=200, content_type="text/html", body="<!doctype html><title>A shop's page</title><h1>Another dress</h1>"))
    try:
        with serve(app) as base, shop_server(shop_port, base) as shop:
            page.goto(shop + "/product.html")
            page.wait_for_selector(".dfs .dfs-card")
            links = page.eval_on_selector_all(".dfs a.dfs-link", "els => els.map(a => [a.href, a.dataset.dressfinderItem])")
            assert len(links) == 6
            for href, item in links:
                i = int(item.rsplit("-", 1)[1])
                assert href == f"https://shop.example/p/{i}" and i not in OUT_OF_STOCK and i != 3
            assert page.eval_on_selector_all(".dfs img", "els => els.every(i => i.loading === 'lazy')")
            # the shop's CSS variables reach the block
            assert page.eval_on_selector(".dfs-price", "e => getComputedStyle(e).color") == "rgb(29, 78, 95)"
            page.locator(".dfs").scroll_into_view_if_needed()
            page.wait_for_function("() => [...document.querySelectorAll('.dfs img')].every(i => i.complete && i.naturalWidth > 0)")
            _wait(lambda: log.stats(1).total.views == 1, "the view to be counted")
            page.evaluate("() => window.scrollTo(0, 0)")
            if viewport["width"] == 1200:
                write_screenshot(SHOP_SCREENSHOT, page.screenshot(full_page=True), tmp_path, 400_000)
            else:   # the phone's: the shop's page down to the block's first row of dresses
                below = page.eval_on_selector(".dfs .dfs-card", "e => e.getBoundingClientRect().bottom + window.scrollY")
                write_screenshot(SHOP_PHONE_SCREENSHOT, page.screenshot(
                    full_page=True, clip={"x": 0, "y": 0, "width": 390, "height": min(below + 16, 1600)}), tmp_path)
            first = page.locator(".dfs a.dfs-link").first
            clicked = first.get_attribute("data-dressfinder-item")
            first.click()
            page.wait_for_url("https://shop.example/p/*")
            _wait(lambda: log.stats(1).total.clicks == 1, "the click to be counted")
            assert log.stats(1).clicked[0].key == clicked
            assert log.stats(1).products[0].key == "dress-02"
    finally:
        page.close()
    assert problems == []


def _small_png(shot: bytes, budget: int = 400_000) -> bytes:
    from PIL import Image

    im = Image.open(io.BytesIO(shot)).convert("RGB")
    while True:
        buf = io.BytesIO()
        im.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(buf, "PNG", optimize=True)
        if buf.tell() <= budget:
            return buf.getvalue()
        im = im.resize((int(im.width * 0.85), int(im.height * 0.85)), Image.Resampling.LANCZOS)


def test_phone_first_photo_wide_search_button_beside_it_results_above_the_fold(browser, site, tmp_path):
    """390x844 with touch: the Search button sits right under the chosen photo; on the results page
    the photo spans the screen (capped at 40 % of its height) and the first results show without
    scrolling."""
    page = browser.new_page()
    page.set_viewport_size({"width": 390, "height": 844})
    try:
        page.goto(site + "/")
        page.set_input_files("#file", write(tmp_path / "street.jpg", encode(scene_with_dress(10), "JPEG", quality=90)))
        page.wait_for_selector("#preview:not([hidden])")
        photo, button = page.locator("#preview-img").bounding_box(), page.locator("#search-button").bounding_box()
        assert 0 <= button["y"] - (photo["y"] + photo["height"]) < 120, (photo, button)
        assert button["y"] + button["height"] < 844 + 200, button            # not a screen and a half down
        page.click("#search-button")
        page.wait_for_selector("#results li.card")
        page.wait_for_function("() => document.getElementById('query-img').complete")
        img = page.locator("#query-img").bounding_box()
        assert img["width"] >= 330 or img["height"] >= 0.39 * 844, img        # wide, or as tall as allowed
        assert img["height"] <= 0.4 * 844 + 1
        first = page.locator("#results li.card").first.bounding_box()
        assert first["y"] < 844 - 120, first                                  # the first results are on screen
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
    finally:
        page.close()


# --------------------------------------------------------------------------- adjusting the box, then confirming

def touch_drag(page, start: tuple[float, float], end: tuple[float, float], steps: int = 8) -> None:
    """A finger on the screen, moved and lifted (the DevTools protocol's touch events: the page sees
    pointer events of pointerType "touch", as on a phone)."""
    cdp = page.context.new_cdp_session(page)
    try:
        x0, y0 = start
        x1, y1 = end
        cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": x0, "y": y0}]})
        for i in range(1, steps + 1):
            cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [
                {"x": x0 + (x1 - x0) * i / steps, "y": y0 + (y1 - y0) * i / steps}]})
        cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    finally:
        cdp.detach()


def mouse_drag(page, start: tuple[float, float], end: tuple[float, float], steps: int = 8) -> None:
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move(*end, steps=steps)
    page.mouse.up()


def drag_corner(page, box_sel: str, img_sel: str, corner: str, to: tuple[float, float], touch: bool) -> None:
    """Drag one corner of the box (grabbed at its round knob, on the corner) to ``to`` (fractions of
    the photo)."""
    b, r = page.locator(box_sel).bounding_box(), page.locator(img_sel).bounding_box()
    x = b["x"] + 3 if "w" in corner else b["x"] + b["width"] - 3
    y = b["y"] + 3 if "n" in corner else b["y"] + b["height"] - 3
    tx = r["x"] + to[0] * r["width"] + (3 if "w" in corner else -3)
    ty = r["y"] + to[1] * r["height"] + (3 if "n" in corner else -3)
    (touch_drag if touch else mouse_drag)(page, (x, y), (tx, ty))


def crop_of(text: str) -> list[float]:
    return [float(v) for v in text.split(",")]


def record_pointer_types(page) -> None:
    page.evaluate("() => { window.pointerTypes = []; document.addEventListener('pointerdown', "
                  "e => window.pointerTypes.push(e.pointerType), true); }")


@pytest.mark.parametrize("device", ["phone", "desktop"])
def test_adjust_the_box_by_touch_and_keyboard_then_confirm(chromium, site, tmp_path, device):
    """The box's corners and the box itself move by touch (a phone: 390x844, touch, mobile) or by
    mouse (desktop), and by keyboard (arrows move it, Shift+arrows resize it, Enter confirms);
    nothing is searched until she confirms; the search uses the adjusted box (the results page
    draws the box it searched, data-crop); on a phone the first result is on the first screen."""
    phone = device == "phone"
    l, t, r, b = SCENE_CROP
    with opened(chromium, **(PHONE if phone else DESKTOP)) as page:
        page.goto(site + "/")
        page.set_input_files("#file", write(tmp_path / "street.jpg", encode(scene_with_dress(10), "JPEG", quality=92)))
        page.wait_for_function("() => { const i = document.getElementById('preview-img'); "
                               "return i.complete && i.naturalWidth > 0 && i.getBoundingClientRect().width > 0; }")
        record_pointer_types(page)
        posts: list[str] = []
        page.on("request", lambda q: posts.append(q.url) if q.method == "POST" else None)
        # "Box the dress" puts a box on the photo to adjust (a tap on a phone)
        (page.tap if phone else page.click)("#crop-start")
        assert page.is_visible("#crop-box") and page.is_visible("#crop-clear") and page.is_hidden("#crop-start")
        assert page.get_attribute("#crop-box", "role") == "group"
        assert "Search area" in page.get_attribute("#crop-box", "aria-label")
        handle = page.locator("#crop-box .handle-se").bounding_box()
        assert handle["width"] >= 44 and handle["height"] >= 44                 # touch targets
        # its corners dragged to the dress, by finger on a phone (by mouse on a desktop)
        drag_corner(page, "#crop-box", "#preview-img", "nw", (l, t + 0.02), touch=phone)
        drag_corner(page, "#crop-box", "#preview-img", "se", (r - 0.04, b - 0.02), touch=phone)
        near = [l, t + 0.02, r - 0.04, b - 0.02]
        assert crop_of(page.input_value("#crop")) == pytest.approx(near, abs=0.012)
        assert page.inner_text("#search-button") == "Search this area"
        # the whole box moved a little and back (by dragging inside it)
        near = crop_of(page.input_value("#crop"))
        bb = page.locator("#crop-box").bounding_box()
        centre = (bb["x"] + bb["width"] / 2, bb["y"] + bb["height"] / 2)
        (touch_drag if phone else mouse_drag)(page, centre, (centre[0] - 30, centre[1] + 20))
        moved = crop_of(page.input_value("#crop"))
        assert moved[0] < near[0] - 0.02 and moved[2] - moved[0] == pytest.approx(near[2] - near[0], abs=1e-3)
        (touch_drag if phone else mouse_drag)(page, (centre[0] - 30, centre[1] + 20), centre)
        assert crop_of(page.input_value("#crop")) == pytest.approx(near, abs=0.005)
        kinds = set(page.evaluate("window.pointerTypes"))
        assert kinds == ({"touch"} if phone else {"mouse"}), kinds
        assert posts == [] and page.url == site + "/"                           # nothing searched yet
        # the keyboard: up one step, two steps wider, two steps taller (onto the dress); Enter searches
        before = crop_of(page.input_value("#crop"))
        page.focus("#crop-box")
        for key in ("ArrowUp", "Shift+ArrowRight", "Shift+ArrowRight", "Shift+ArrowDown", "Shift+ArrowDown"):
            page.keyboard.press(key)
        wanted = [before[0], before[1] - 0.02, before[2] + 0.04, before[3] + 0.02]
        assert crop_of(page.input_value("#crop")) == pytest.approx(wanted, abs=1e-4)
        assert wanted == pytest.approx([l, t, r, b], abs=0.012)
        assert posts == []
        with page.expect_navigation():
            page.keyboard.press("Enter")
        page.wait_for_selector("#results li.card")
        assert posts == [site + "/search"]
        searched = crop_of(page.get_attribute("#query-crop", "data-crop"))
        assert searched == pytest.approx(wanted, abs=2e-4)                      # the adjusted box was searched
        assert card_ids(page)[0] == product_id(10)
        page.wait_for_function("() => document.getElementById('query-img').complete")
        first = page.locator("#results li.card").first.bounding_box()
        if phone:
            assert first["y"] < 844 - 100, first                                # on the first screen
            assert page.evaluate("document.documentElement.scrollWidth") <= 390
        # on the results page: the searched box is adjusted, again without a search until confirmed
        assert page.is_hidden("#search-area")
        drag_corner(page, "#query-crop", "#query-img", "se", (wanted[2] + 0.06, wanted[3]), touch=phone)
        page.wait_for_timeout(200)
        assert len(posts) == 1 and page.is_visible("#search-area")
        page.focus("#query-crop")
        page.keyboard.press("Shift+ArrowLeft")                                  # one step narrower
        adjusted = crop_of(page.get_attribute("#query-crop", "data-at"))
        assert adjusted[2] == pytest.approx(wanted[2] + 0.04, abs=0.012) and adjusted[:2] == pytest.approx(wanted[:2], abs=1e-3)
        page.keyboard.press("Escape")                                           # undone: the box searched
        assert crop_of(page.get_attribute("#query-crop", "data-at")) == pytest.approx(searched, abs=1e-4)
        assert page.is_hidden("#search-area")
        drag_corner(page, "#query-crop", "#query-img", "se", (adjusted[2], adjusted[3]), touch=phone)
        adjusted = crop_of(page.get_attribute("#query-crop", "data-at"))
        with page.expect_navigation():
            (page.tap if phone else page.click)("#search-area")
        page.wait_for_selector("#results li.card")
        assert len(posts) == 2
        assert crop_of(page.get_attribute("#query-crop", "data-crop")) == pytest.approx(adjusted, abs=2e-4)
        assert "the part you boxed" in page.inner_text("#query-caption")
        assert page.problems == []


def test_keyboard_only_box_on_the_home_page(chromium, site, tmp_path):
    """Without a pointer: Tab to "Box the dress", Enter puts a box on the photo and focuses it,
    arrows move it, Escape takes it away, and the search then uses the whole photo."""
    with opened(chromium, **DESKTOP) as page:
        page.goto(site + "/")
        page.set_input_files("#file", write(tmp_path / "d.jpg", encode(scene_with_dress(4), "JPEG")))
        page.wait_for_selector("#preview:not([hidden])")
        page.focus("#file")
        for _ in range(8):
            page.keyboard.press("Tab")
            if page.evaluate("document.activeElement.id") == "crop-start":
                break
        assert page.evaluate("document.activeElement.id") == "crop-start"
        page.keyboard.press("Enter")
        assert page.evaluate("document.activeElement.id") == "crop-box"
        first = crop_of(page.input_value("#crop"))
        for _ in range(30):                                                     # it stops at the edge
            page.keyboard.press("ArrowRight")
        moved = crop_of(page.input_value("#crop"))
        assert moved[2] == pytest.approx(1.0) and moved[2] - moved[0] == pytest.approx(first[2] - first[0], abs=1e-4)
        page.keyboard.press("Escape")
        assert page.input_value("#crop") == "" and page.is_hidden("#crop-box")
        assert page.evaluate("document.activeElement.id") == "crop-start"
        assert page.inner_text("#search-button") == "Search"
        assert page.problems == []


# --------------------------------------------------------------------------- axe-core on every page

AXE_VERSION = "4.14.1"     # .ci/run installs exactly this one
AXE = REPO / ".cache" / "axe" / "node_modules" / "axe-core" / "axe.min.js"
STATS_KEY = "axe-stats-key-0123456789"


def axe_violations(page) -> list[dict]:
    """axe-core's violations of any impact on the page as it is now (every rule axe runs by default)."""
    if not page.evaluate("typeof window.axe === 'object'"):
        page.add_script_tag(path=str(AXE))
    return page.evaluate("""async () => {
        const r = await axe.run(document, {resultTypes: ["violations"]});
        return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
            nodes: v.nodes.slice(0, 4).map(n => n.target.join(" ") + " -> " + (n.failureSummary || "").replace(/\\s+/g, " "))}));
    }""")


@pytest.mark.parametrize("device", ["desktop", "phone"])
def test_axe_finds_nothing_on_any_page(chromium, web_store_copy, tmp_path, device):
    """axe-core (installed by npm into .cache/axe; .ci/run does it) on the home page (before and
    after choosing a photo, with the box on it), a results page, a product page, the embed frame
    and the stats page: no violation of any impact. The pages' CSP would refuse the injected
    script, so this context alone bypasses CSP."""
    installed = json.loads(AXE.with_name("package.json").read_text())["version"] if AXE.is_file() else None
    if installed != AXE_VERSION:
        unavailable("axe-core is not installed" if installed is None else f"axe-core {installed} is installed, not {AXE_VERSION}",
                    f"npm install --no-save --prefix .cache/axe axe-core@{AXE_VERSION} (make axe)")
    from dressfinder.web.events import EventLog

    web_store = web_store_copy
    EventLog(web_store / "events.sqlite")   # the stats page with its tables (nothing counted)
    options = {**(PHONE if device == "phone" else DESKTOP), "bypass_csp": True,
               "extra_http_headers": {"Authorization": f"Bearer {STATS_KEY}"}}
    found: dict[str, list] = {}
    with serve(make_app(web_store, api_key=STATS_KEY)) as base, opened(chromium, **options) as page:
        page.goto(base + "/")
        found["home"] = axe_violations(page)
        page.set_input_files("#file", write(tmp_path / "street.jpg", encode(scene_with_dress(10), "JPEG")))
        page.wait_for_selector("#preview:not([hidden])")
        page.click("#crop-start")
        found["home with a photo and a box"] = axe_violations(page)
        page.click("#search-button")
        page.wait_for_selector("#results li.card")
        page.wait_for_function("() => document.getElementById('query-img').complete")
        found["results"] = axe_violations(page)
        page.goto(base + "/products/" + product_id(4))
        page.wait_for_selector("#results li.card")
        found["product"] = axe_violations(page)
        page.goto(base + f"/search?like={product_id(4)}&k=6")
        found["more like this"] = axe_violations(page)
        page.goto(base + "/embed/frame/similar/" + product_id(4))
        page.wait_for_selector(".dfs-card")
        found["embed frame"] = axe_violations(page)
        page.goto(base + "/stats")
        page.wait_for_selector("h1")
        found["stats"] = axe_violations(page)
        assert page.problems == []
        # and axe does see a fault: a picture without a text alternative
        page.evaluate("() => document.querySelector('main').appendChild(document.createElement('img')).src = 'data:,'")
        assert "image-alt" in [v["id"] for v in axe_violations(page)]
    bad = {name: v for name, v in found.items() if v}
    assert not bad, "\n".join(f"{name}: {x['id']} ({x['impact']}): {x['help']}\n    " + "\n    ".join(x["nodes"])
                              for name, vs in bad.items() for x in vs)


def test_the_axe_version_is_the_one_make_installs():
    assert f"AXE_VERSION ?= {AXE_VERSION}" in (REPO / "Makefile").read_text()
    assert "make axe" in (REPO / ".ci" / "run").read_text()


def test_product_page_on_a_phone_shows_similar_dresses_on_the_first_screen(chromium, site):
    """390x844, touch: the product's photo (capped at a third of the screen's height) and its
    details side by side, so "You may also like" and the first similar dresses' pictures are on the
    first screen."""
    with opened(chromium, **PHONE) as page:
        page.goto(site + "/products/" + product_id(4))
        page.wait_for_selector("#results li.card")
        photo = page.locator(".product-image").bounding_box()
        text = page.locator(".product-text h1").bounding_box()
        assert photo["height"] <= 0.32 * 844 + 1 and text["x"] > photo["x"] + photo["width"]   # beside it
        assert page.is_visible(".product a.shop") and page.locator(".product a.shop").bounding_box()["y"] < 844 / 2
        heading = page.locator("h2.section").bounding_box()
        assert heading["y"] + heading["height"] < 844 / 2, heading
        for card in page.locator("#results li.card .thumb").all()[:2]:
            thumb = card.bounding_box()
            assert thumb["y"] + thumb["height"] < 844, thumb                  # both first pictures, whole
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        assert page.problems == []
