"""The HTML pages with FastAPI's test client: home, results, "more like this", product page, errors."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from webfixtures import (SCENE_CROP, STORES, dress_image, encode, make_app, product_id, scene_with_dress,
                         web_store_copy, web_store)  # noqa: F401  (fixtures)


@pytest.fixture(scope="module")
def client(web_store):
    with TestClient(make_app(web_store)) as c:
        yield c


def jpeg(i: int) -> bytes:
    return encode(dress_image(i), "JPEG", quality=90)


def is_html(r) -> bool:
    return r.headers["content-type"].startswith("text/html") and "<html" in r.text


def test_home(client):
    r = client.get("/")
    assert r.status_code == 200 and is_html(r)
    html = r.text
    assert re.search(r'<form[^>]+action="/search"[^>]+method="post"[^>]+enctype="multipart/form-data"', html)
    assert re.search(r'<input id="file" name="file" type="file" accept="image/\*">', html)
    assert '<label for="file"' in html and '<label for="image_url"' in html and '<label for="k"' in html
    assert 'name="image_url" type="url"' in html
    assert 'name="crop"' in html and 'id="stage"' in html
    for n in (6, 12, 24, 48):
        assert f'<option value="{n}"' in html
    for s in STORES:
        assert f"<option>{s}</option>" in html
    assert "<option>maxi</option>" in html and 'name="min_price"' in html and 'name="max_price"' in html
    assert "16 products" in html
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert client.get("/static/app.js").status_code == 200
    assert client.get("/static/app.css").status_code == 200


def test_results_page(client):
    r = client.post("/search", files={"file": ("me.jpg", jpeg(9), "image/jpeg")}, data={"k": "6"})
    assert r.status_code == 200 and is_html(r)
    html = r.text
    assert 'id="query-img" src="data:image/jpeg;base64,' in html
    cards = re.findall(r'<li class="card" data-id="([^"]+)"', html)
    assert len(cards) == 6 and cards[0] == product_id(9)
    assert "Dress number 9" in html and "$64.90" in html and ">Very close</span>" in html
    assert "Closest matches" in html and "nothing-close" not in html
    assert f'href="/search?like={product_id(9).replace("/", "%2F")}&amp;k=6"' in html
    assert f'href="/products/{product_id(9)}"' in html
    assert re.search(r'<a class="shop" href="https://shop.example/p/9" target="_blank" rel="noopener nofollow[^"]*"',
                     html)
    assert f'src="/images/{product_id(9)}?v=' in html
    assert 'alt="Dress number 9"' in html


def test_shown_scores_never_go_up_and_read_as_words():
    from types import SimpleNamespace

    from dressfinder.search import Closeness, shown_scores
    from dressfinder.thresholds import DEFAULT_THRESHOLDS, Thresholds

    fused = [SimpleNamespace(score=s) for s in (0.39, 0.37, 0.15, 0.28, 0.30, 0.10)]   # the issue's order
    assert shown_scores(fused) == [0.39, 0.37, 0.15, 0.15, 0.15, 0.10]
    assert shown_scores([SimpleNamespace(score=s) for s in (0.9, 0.8)]) == [0.9, 0.8]   # sorted: unchanged
    shipped = Closeness.of(Thresholds(sure=0.6329, content_sure=0.5602, framed_gap=0.3029))   # effnet-tuned.json
    assert (shipped.very_close, shipped.close, round(shipped.similar, 4)) == (0.6329, 0.5602, 0.33)
    labels = [shipped.label(x) for x in (0.95, 0.64, 0.6, 0.45, 0.31, -0.2)]
    assert labels == ["very close", "very close", "close", "similar", "not close", "not close"]
    assert shipped.anything_close([0.34]) and not shipped.anything_close([0.32]) and not shipped.anything_close([])
    d = Closeness.of(DEFAULT_THRESHOLDS)
    assert d.very_close >= d.close >= d.similar
    # the scale of the shipped model's own json
    import json
    from pathlib import Path

    import dressfinder

    meta = json.loads((Path(dressfinder.__file__).parent / "models" / "effnet-tuned.json").read_text())
    assert Closeness.of(Thresholds.from_dict(meta["thresholds"])) == shipped


def test_results_say_when_nothing_is_close(client, monkeypatch):
    from dressfinder.search import Closeness
    from dressfinder.web import pages

    monkeypatch.setattr(pages, "_closeness", lambda ctx: Closeness(2.0, 2.0, 2.0))   # nothing reaches these lines
    html = client.post("/search", files={"file": ("me.jpg", jpeg(9), "image/jpeg")}, data={"k": "6"}).text
    assert "The closest we have" in html and 'id="nothing-close"' in html and ">Not close</span>" in html
    html = client.get(f"/search?like={product_id(2)}&k=4").text
    assert "The closest we have" in html


def test_results_never_link_a_javascript_url(client):
    r = client.post("/search", files={"file": ("me.jpg", jpeg(3), "image/jpeg")}, data={"k": "3"})
    assert r.status_code == 200
    assert "javascript:" not in r.text and f'data-id="{product_id(3)}"' in r.text


def test_results_with_crop_and_filters(client):
    scene = encode(scene_with_dress(10), "JPEG", quality=92)
    crop = ",".join(f"{v:.4f}" for v in SCENE_CROP)
    r = client.post("/search", files={"file": ("scene.jpg", scene, "image/jpeg")},
                    data={"k": "6", "crop": crop, "min_price": "", "max_price": "", "shop": "", "category": ""})
    assert r.status_code == 200, r.text
    assert re.findall(r'data-id="([^"]+)"', r.text)[0] == product_id(10)
    assert f'data-crop="{",".join(str(round(v, 4)) for v in SCENE_CROP)}"' in r.text \
        or 'id="query-crop" data-crop="0.65' in r.text
    r = client.post("/search", files={"file": ("d.jpg", jpeg(2), "image/jpeg")},
                    data={"k": "48", "store": STORES[0]})
    assert r.status_code == 200 and "(filtered)" in r.text
    assert len(re.findall(r'<li class="card"', r.text)) == 8


def test_file_wins_over_a_pasted_url(client):
    r = client.post("/search", files={"file": ("d.jpg", jpeg(1), "image/jpeg")},
                    data={"image_url": "http://127.0.0.1/x.jpg"})
    assert r.status_code == 200 and "Your photo" in r.text


@pytest.mark.parametrize("files,data,status,words", [
    ({"file": ("x.jpg", b"this is text, not a photo", "image/jpeg")}, {}, 415, "not an image"),
    ({"file": ("", b"", "application/octet-stream")}, {"image_url": ""}, 400, "choose a photo"),
    ({"file": ("x.jpg", b"", "image/jpeg")}, {}, 415, "empty"),
    (None, {"k": "12"}, 400, "choose a photo"),
    (None, {"image_url": "http://127.0.0.1:1/a.jpg"}, 400, "private"),
    (None, {"image_url": "not a url"}, 400, "http"),
    ({"file": ("d.jpg", b"\xff\xd8\xff\xe0" + b"\x00" * 50, "image/jpeg")}, {}, 415, ""),
    ({"file": ("d.jpg", b"GIF89a", "image/gif")}, {"k": "500"}, 400, "k"),
])
def test_search_errors_show_the_form_again(client, files, data, status, words):
    r = client.post("/search", files=files, data=data) if files else client.post("/search", data=data)
    assert r.status_code == status, r.text
    assert is_html(r) and 'id="search-form"' in r.text and 'role="alert" id="error"' in r.text
    assert words.lower() in r.text.lower()
    assert "Traceback" not in r.text


def test_search_too_large_is_a_413_page(web_store):
    with TestClient(make_app(web_store, max_upload_bytes=10_000)) as c:
        big = encode(dress_image(1, (900, 1350)), "PNG") + b"\0" * 10_000
        r = c.post("/search", files={"file": ("big.png", big, "image/png")})
        assert r.status_code == 413 and is_html(r) and "limit" in r.text
        huge = b"\0" * 400_000   # over the whole-request cap: stopped by the body-limit middleware
        r = c.post("/search", files={"file": ("huge.png", huge, "image/png")})
        assert r.status_code == 413 and is_html(r) and "limit" in r.text


def test_more_like_this_page(client):
    pid = product_id(5)
    r = client.get("/search", params={"like": pid, "k": 4})
    assert r.status_code == 200 and is_html(r)
    assert "More like Dress number 5" in r.text
    cards = re.findall(r'data-id="([^"]+)"', r.text)
    assert len(cards) == 4 and pid not in cards
    assert f'id="query-img" src="/images/{pid}?v=' in r.text
    # a card's "more like this" link works in turn
    link = re.search(r'class="more" href="([^"]+)"', r.text).group(1).replace("&amp;", "&")
    assert client.get(link).status_code == 200


def test_more_like_this_errors(client):
    r = client.get("/search", params={"like": "no-such-dress"})
    assert r.status_code == 404 and is_html(r) and "no-such-dress" in r.text
    r = client.get("/search", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].endswith("/")
    r = client.get("/search", params={"like": product_id(1), "k": 0})
    assert r.status_code == 422 and is_html(r)


def test_product_page(client):
    pid = product_id(7)
    r = client.get(f"/products/{pid}")
    assert r.status_code == 200 and is_html(r)
    html = r.text
    assert "<h1>Dress number 7</h1>" in html and "$54.90" in html and STORES[1] in html
    assert "You may also like" in html
    cards = re.findall(r'data-id="([^"]+)"', html)
    assert len(cards) == 12 and pid not in cards
    assert 'href="https://shop.example/p/7" target="_blank" rel="noopener nofollow' in html
    assert 'class="button more" href="/search?like=shop%2Fdress-07&amp;k=12"' in html


def test_product_page_not_found_and_unknown_pages(client):
    r = client.get("/products/nothing/here")
    assert r.status_code == 404 and is_html(r) and "nothing/here" in r.text
    r = client.get("/no-such-page", headers={"accept": "text/html"})
    assert r.status_code == 404 and is_html(r)


def test_untitled_products_show_a_title_from_their_file_or_folder(web_store_copy):
    from dressfinder.catalog import Product
    from dressfinder.store import Store

    pid = "deepfashion-dresses/Watercolor_Ikat_High-Low_Dress/img_00000051.jpg"
    Store.open(web_store_copy).add_image(Product(id=pid), jpeg(60))
    with TestClient(make_app(web_store_copy)) as c:
        page = c.get("/products/" + pid).text
        assert "<h1>Watercolor Ikat High-Low Dress</h1>" in page
        assert "<title>Watercolor Ikat High-Low Dress · dressfinder</title>" in page
        api = c.get("/api/products/" + pid).json()
        assert api["title"] is None and api["display_title"] == "Watercolor Ikat High-Low Dress"
        r = c.post("/search", files={"file": ("d.jpg", jpeg(60), "image/jpeg")})
        # in the grid, the title may wrap after the hyphen, not inside a word
        assert ">Watercolor Ikat High-<wbr>Low Dress</a>" in r.text
        hits = c.post("/api/search", files={"file": ("d.jpg", jpeg(60), "image/jpeg")}).json()["results"]
        assert hits[0]["id"] == pid and hits[0]["display_title"] == "Watercolor Ikat High-Low Dress"


def test_sale_price_availability_brand_colour_size_on_the_pages(web_store_copy):
    from dressfinder.catalog import Product
    from dressfinder.store import Store

    Store.open(web_store_copy).add_image(Product(
        id="sold-out", title="Sold-out wrap dress", price=100.0, sale_price=79.9, currency="EUR",
        availability="out_of_stock", brand="Maison C", color="Navy", size="M", item_group_id="wrap"), jpeg(51))
    with TestClient(make_app(web_store_copy)) as c:
        page = c.get("/products/sold-out").text
        assert re.search(r'<p class="price">€79.90 <s class="was-price"><span class="sr">was </span>€100.00</s></p>', page)
        assert '<p class="availability out_of_stock">Sold out</p>' in page
        for label, value in (("Brand", "Maison C"), ("Colour", "Navy"), ("Size", "M")):
            assert f"<dt>{label}</dt><dd>{value}</dd>" in page
        r = c.post("/search", files={"file": ("d.jpg", jpeg(51), "image/jpeg")}, data={"k": "6"})
        assert '<span class="price">€79.90</span>' in r.text and '<span class="availability out_of_stock">Sold out</span>' in r.text
        home = c.get("/").text                  # the new facets are filters
        assert '<option value="out_of_stock">Sold out</option>' in home and "<option>Maison C</option>" in home
        r = c.post("/search", files={"file": ("d.jpg", jpeg(51), "image/jpeg")}, data={"k": "6", "availability": "in_stock"})
        assert 'data-id="sold-out"' not in r.text


def test_titles_are_escaped(web_store_copy):
    from dressfinder.catalog import Product
    from dressfinder.store import Store

    Store.open(web_store_copy).add_image(Product(id="x<y>", title="<script>alert('t')</script>",
                                             url="https://shop.example/\"onmouseover=alert(1)"), jpeg(50))
    with TestClient(make_app(web_store_copy)) as c:
        r = c.get("/products/x<y>")
        assert r.status_code == 200
        assert "<script>alert" not in r.text and "&lt;script&gt;" in r.text
        assert '"onmouseover' not in r.text
        r = c.post("/search", files={"file": ("d.jpg", jpeg(50), "image/jpeg")})
        assert "<script>alert" not in r.text and 'data-id="x&lt;y&gt;"' in r.text


def test_search_by_image_url(web_store):
    """A pasted image URL (the download is mocked: a public address, no network)."""
    import httpx

    app = make_app(web_store)
    fetcher = app.state.ctx.fetcher
    seen = []

    async def resolver(host, port):
        return ["93.184.216.34"]

    def handler(request):
        seen.append((str(request.url), request.headers["host"], request.extensions.get("sni_hostname")))
        if request.url.path == "/dress.jpg":
            return httpx.Response(200, content=jpeg(12), headers={"content-type": "image/jpeg"})
        return httpx.Response(200, content=b"<html></html>", headers={"content-type": "text/html"})

    fetcher.resolver = resolver
    fetcher.transport = httpx.MockTransport(handler)
    with TestClient(app) as c:
        r = c.post("/search", data={"image_url": "https://shop.example/dress.jpg", "k": "6"})
        assert r.status_code == 200, r.text
        assert re.findall(r'data-id="([^"]+)"', r.text)[0] == product_id(12)
        assert 'id="query-img" src="data:image/jpeg;base64,' in r.text
        assert "Image from https://shop.example/dress.jpg" in r.text
        assert seen == [("https://93.184.216.34/dress.jpg", "shop.example", "shop.example")]
        r = c.post("/search", data={"image_url": "https://shop.example/page.html"})
        assert r.status_code == 415 and "text/html" in r.text
        r = c.post("/api/search", json={"image_url": "https://shop.example/dress.jpg", "k": 2})
        assert r.status_code == 200 and r.json()["results"][0]["id"] == product_id(12)
