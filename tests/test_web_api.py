"""The JSON API with FastAPI's test client: every endpoint, good and bad input."""

from __future__ import annotations

import io
import json

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from webfixtures import (SCENE_CROP, STORES, dress_image, encode, make_app, product_id, scene_with_dress,
                         web_store_copy, web_store)  # noqa: F401  (fixtures)

KEY = "test-key-0123456789"


@pytest.fixture(scope="module")
def client(web_store):
    with TestClient(make_app(web_store)) as c:
        yield c


@pytest.fixture
def admin(web_store_copy):
    with TestClient(make_app(web_store_copy, api_key=KEY)) as c:
        yield c


def jpeg(i: int) -> bytes:
    return encode(dress_image(i), "JPEG", quality=90)


def assert_error(r, status: int, *words: str) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert set(body) == {"error"} and body["error"]["status"] == status
    msg = body["error"]["message"]
    assert isinstance(msg, str) and msg and "Traceback" not in msg
    for w in words:
        assert w.lower() in msg.lower(), msg
    return body


# --------------------------------------------------------------------------- /healthz, docs

def test_healthz(client):
    r = client.get("/healthz")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok" and body["products"] == 16 and body["encoder"] == "effnet-lite0"
    assert body["capacity"] >= 1 and body["busy"] == 0


def test_openapi_documents_every_endpoint(client):
    spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    for path, method in [("/upload", "post"), ("/api/search", "post"), ("/api/products/{pid}", "get"),
                         ("/api/products/{pid}/similar", "get"), ("/api/products", "post"),
                         ("/api/products/{pid}", "delete"), ("/healthz", "get"), ("/images/{pid}", "get")]:
        assert method in paths[path], (path, method)
    body = paths["/api/search"]["post"]["requestBody"]["content"]
    assert "multipart/form-data" in body and "application/json" in body
    assert "multipart/form-data" in paths["/upload"]["post"]["requestBody"]["content"]
    assert "image/jpeg" in paths["/upload"]["post"]["responses"]["200"]["content"]
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert client.get("/docs").status_code == 200


# --------------------------------------------------------------------------- POST /upload (the seed's call)

def test_upload_returns_best_match_image_bytes(client):
    r = client.post("/upload", files={"file": ("dress.jpg", jpeg(7), "image/jpeg")})
    assert r.status_code == 200
    assert r.headers["content-type"] == "image/jpeg"
    assert r.headers["x-dressfinder-id"] == product_id(7)
    assert float(r.headers["x-dressfinder-score"]) > 0.99
    Image.open(io.BytesIO(r.content)).verify()


def test_upload_content_type_is_the_stored_files_real_format(client):
    # products 0, 4, 8, 12 were catalogued as PNG
    r = client.post("/upload", files={"file": ("x.jpg", jpeg(4), "image/jpeg")})
    assert r.status_code == 200
    assert r.headers["x-dressfinder-id"] == product_id(4)
    assert r.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(r.content)).format == "PNG"


def test_upload_bad_input(client):
    assert_error(client.post("/upload"), 422, "file")
    assert_error(client.post("/upload", data={"file": "not a file"}), 422)
    assert_error(client.post("/upload", files={"file": ("a.jpg", b"", "image/jpeg")}), 415, "empty")
    assert_error(client.post("/upload", files={"file": ("a.jpg", b"hello world" * 10, "image/jpeg")}), 415,
                 "not an image")
    assert_error(client.get("/upload"), 405)


def test_upload_too_large(web_store):
    with TestClient(make_app(web_store, max_upload_bytes=20_000)) as c:
        big = encode(Image.effect_noise((300, 300), 60).convert("RGB"), "PNG")
        assert len(big) > 20_000
        assert_error(c.post("/upload", files={"file": ("big.png", big, "image/png")}), 413, "limit")
        assert c.post("/upload", files={"file": ("ok.jpg", jpeg(2), "image/jpeg")}).status_code == 200


# --------------------------------------------------------------------------- POST /api/search

def test_search_multipart(client):
    r = client.post("/api/search", files={"file": ("d.jpg", jpeg(9), "image/jpeg")}, data={"k": "5"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["count"] == 5 and len(body["results"]) == 5 and body["query"]["source"] == "upload"
    top = body["results"][0]
    assert top["id"] == product_id(9) and top["rank"] == 1 and top["score"] > 0.99
    assert top["title"] == "Dress number 9" and top["price"] == pytest.approx(64.9) and top["currency"] == "USD"
    assert top["shop"] == STORES[1] and top["url"] == "https://shop.example/p/9"
    scores = [h["score"] for h in body["results"]]
    assert scores == sorted(scores, reverse=True)
    img = client.get(top["image"])
    assert img.status_code == 200 and img.headers["content-type"].startswith("image/")
    assert client.get(top["links"]["product"]).json()["id"] == top["id"]


def test_search_default_k_and_limits(client):
    files = {"file": ("d.jpg", jpeg(1), "image/jpeg")}
    assert client.post("/api/search", files=files).json()["count"] == 12
    assert client.post("/api/search", files=files, data={"k": "100"}).json()["count"] == 16
    for bad in ("0", "101", "-3", "ten", "1.5"):
        assert_error(client.post("/api/search", files=files, data={"k": bad}), 422, "k")


def test_search_crop_finds_the_dress_in_a_scene(client):
    scene = encode(scene_with_dress(10), "JPEG", quality=92)
    crop = ",".join(f"{v:.4f}" for v in SCENE_CROP)
    r = client.post("/api/search", files={"file": ("scene.jpg", scene, "image/jpeg")}, data={"crop": crop, "k": "3"})
    assert r.status_code == 200, r.text
    assert r.json()["results"][0]["id"] == product_id(10)
    assert r.json()["query"]["crop"] == pytest.approx(list(SCENE_CROP), abs=1e-4)


@pytest.mark.parametrize("crop", ["1,2,3", "0.5,0.5,0.2,0.9", "a,b,c,d", "0,0,2,1", "0.5,0.5,0.5,0.5", "nan,0,1,1"])
def test_search_bad_crop(client, crop):
    r = client.post("/api/search", files={"file": ("d.jpg", jpeg(1), "image/jpeg")}, data={"crop": crop})
    assert_error(r, 422, "crop")


def test_search_crop_too_small_in_pixels(client):
    tiny = encode(dress_image(1, (60, 90)), "JPEG")
    r = client.post("/api/search", files={"file": ("d.jpg", tiny, "image/jpeg")}, data={"crop": "0,0,0.05,0.05"})
    assert_error(r, 400, "too small")


def test_search_filters(client):
    files = {"file": ("d.jpg", jpeg(2), "image/jpeg")}
    r = client.post("/api/search", files=files, data={"k": "50", "max_price": "40", "min_price": "20"}).json()
    assert r["count"] > 0 and all(20 <= h["price"] <= 40 for h in r["results"])
    r = client.post("/api/search", files=files, data={"k": "50", "store": STORES[0]}).json()   # old name
    assert r["count"] == 8 and all(h["shop"] == STORES[0] for h in r["results"])
    r = client.post("/api/search", files=files, data={"k": "50", "category": "MINI"}).json()
    assert r["count"] == 8 and all(h["category"] == "mini" for h in r["results"])
    r = client.post("/api/search", files=files, data={"store": "No Such Store"}).json()
    assert r["count"] == 0 and r["results"] == []
    assert_error(client.post("/api/search", files=files, data={"min_price": "50", "max_price": "10"}), 422, "min_price")
    assert_error(client.post("/api/search", files=files, data={"min_price": "-1"}), 422, "min_price")
    assert_error(client.post("/api/search", files=files, data={"max_price": "cheap"}), 422, "max_price")


def test_search_json_like(client):
    r = client.post("/api/search", json={"like": product_id(3), "k": 4, "shop": STORES[0]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["query"]["source"] == "product" and body["count"] == 4
    assert product_id(3) not in [h["id"] for h in body["results"]]
    assert all(h["shop"] == STORES[0] for h in body["results"])
    assert_error(client.post("/api/search", json={"like": "no/such/id"}), 404, "no/such/id")


def test_search_json_image_url_private_refused_by_default(client):
    r = client.post("/api/search", json={"image_url": "http://127.0.0.1:9/x.jpg", "k": 3})
    assert_error(r, 400, "private")
    assert_error(client.post("/api/search", json={"image_url": "file:///etc/passwd"}), 400, "http")
    assert_error(client.post("/api/search", json={"image_url": "ftp://example.com/a.jpg"}), 400, "http")


def test_search_bad_requests(client):
    assert_error(client.post("/api/search", content=b"{not json", headers={"content-type": "application/json"}),
                 400, "JSON")
    assert_error(client.post("/api/search", json=[1, 2]), 400, "object")
    assert_error(client.post("/api/search", json={"k": 3}), 400, "no photo")
    assert_error(client.post("/api/search", json={"image_url": "http://x.example/a.jpg", "unknown": 1}), 422,
                 "unknown")
    assert_error(client.post("/api/search", json={"image_url": "http://x.example/a.jpg", "like": "a"}), 400,
                 "only one")
    assert_error(client.post("/api/search", files={"file": ("d.jpg", jpeg(1), "image/jpeg")},
                             data={"image_url": "http://x.example/a.jpg"}), 400, "only one")
    assert_error(client.post("/api/search", content=b"hello", headers={"content-type": "text/plain"}), 415)
    assert_error(client.post("/api/search", data={"k": "3"}), 400, "no photo")
    assert_error(client.post("/api/search", files={"file": ("d.svg", b"<svg xmlns='http://www.w3.org/2000/svg'/>",
                                                            "image/svg+xml")}), 415)
    assert_error(client.post("/api/search", files=[("file", ("a.jpg", jpeg(1), "image/jpeg")),
                                                   ("file", ("b.jpg", jpeg(2), "image/jpeg"))]), 400)
    assert_error(client.get("/api/search"), 405)


# --------------------------------------------------------------------------- products

def test_get_product(client):
    pid = product_id(7)          # has a slash: shop/dress-07
    r = client.get(f"/api/products/{pid}")
    assert r.status_code == 200
    p = r.json()
    assert p["id"] == pid and p["title"] == "Dress number 7" and p["shop"] == STORES[1]
    assert p["image"].startswith("http://testserver/images/shop/dress-07?v=")   # absolute: the request's base
    assert p["links"]["page"] == "http://testserver/products/shop/dress-07"
    assert "/" not in p["image"].split("?v=")[1]
    assert not any(str(v).startswith("/tmp") for v in p.values())   # no server paths
    assert client.get(p["links"]["similar"]).status_code == 200
    assert client.get(p["image"]).status_code == 200


def test_get_product_not_found(client):
    assert_error(client.get("/api/products/nope"), 404, "nope")
    assert_error(client.get("/api/products/%2e%2e/store.json"), 404)


def test_similar(client):
    pid = product_id(4)
    r = client.get(f"/api/products/{pid}/similar", params={"k": 5})
    assert r.status_code == 200
    body = r.json()
    assert body["product"]["id"] == pid and body["count"] == 5
    assert pid not in [h["id"] for h in body["results"]]
    r = client.get(f"/api/products/{pid}/similar", params={"k": 20, "category": "maxi"}).json()
    assert all(h["category"] == "maxi" for h in r["results"]) and r["count"] == 7
    assert_error(client.get(f"/api/products/{pid}/similar", params={"k": 0}), 422, "k")
    assert_error(client.get(f"/api/products/{pid}/similar", params={"k": "x"}), 422, "k")
    assert_error(client.get(f"/api/products/{pid}/similar", params={"min_price": 9, "max_price": 1}), 422)
    assert_error(client.get("/api/products/missing/similar"), 404, "missing")


def test_results_carry_the_closeness_word_the_pages_show(client, monkeypatch):
    """Each result of a search, a found region and a similar list carries the word of its shown
    score (search.shown_scores named by search.Closeness), and the answer says when nothing is close."""
    from dressfinder.search import Closeness, shown_scores
    from dressfinder.web import service

    words = {"very close", "close", "similar", "not close"}

    def check(body, lines):
        hits = body["results"]
        assert hits and all(h["closeness"] in words for h in hits)
        shown = shown_scores([type("H", (), {"score": h["score"]}) for h in hits])
        assert [h["closeness"] for h in hits] == [lines.label(s) for s in shown]
        assert body["nothing_close"] is (shown[0] < lines.similar)

    fixed = Closeness(0.9, 0.5, 0.2)
    monkeypatch.setattr(service, "closeness", lambda store: fixed)
    body = client.post("/api/search", files={"file": ("d.jpg", jpeg(9), "image/jpeg")}, data={"k": "8"}).json()
    check(body, fixed)
    assert body["results"][0]["closeness"] == "very close" and body["nothing_close"] is False
    assert len({h["closeness"] for h in body["results"]}) >= 2           # the lines split this list
    similar = client.get(f"/api/products/{product_id(4)}/similar", params={"k": 6}).json()
    check(similar, fixed)
    scene = client.post("/api/search", files={"file": ("s.jpg", encode(scene_with_dress(10), "JPEG"), "image/jpeg")},
                        data={"k": "4"}).json()
    check(scene, fixed)
    for region in scene["regions"]:
        check(region, fixed)
    # nothing reaches the lines: every word is "not close" and the answer says so
    monkeypatch.setattr(service, "closeness", lambda store: Closeness(2.0, 2.0, 2.0))
    body = client.post("/api/search", files={"file": ("d.jpg", jpeg(9), "image/jpeg")}, data={"k": "3"}).json()
    assert body["nothing_close"] is True and {h["closeness"] for h in body["results"]} == {"not close"}
    assert client.get(f"/api/products/{product_id(4)}/similar", params={"k": 2}).json()["nothing_close"] is True


def test_openapi_documents_closeness(client):
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    hit = schemas["HitOut"]["properties"]["closeness"]
    assert hit["enum"] == ["very close", "close", "similar", "not close"] and "closeness" in schemas["HitOut"]["required"]
    for name in ("SearchOut", "SimilarOut", "FoundRegionOut"):
        assert "nothing_close" in schemas[name]["properties"], name


def test_similar_is_cacheable_and_revalidates_with_304(client):
    url = f"/api/products/{product_id(4)}/similar"
    r = client.get(url, params={"k": 5})
    etag = r.headers["etag"]
    assert r.status_code == 200 and etag.startswith('"g') and "max-age=" in r.headers["cache-control"]
    r2 = client.get(url, params={"k": 5}, headers={"If-None-Match": etag})
    assert r2.status_code == 304 and r2.content == b"" and r2.headers["etag"] == etag
    assert client.get(url, params={"k": 5}, headers={"If-None-Match": f'"other", W/{etag}'}).status_code == 304
    # other parameters, another answer: another ETag
    other = client.get(url, params={"k": 6}, headers={"If-None-Match": etag})
    assert other.status_code == 200 and other.headers["etag"] != etag
    assert client.get(url, params={"k": 5, "category": "maxi"}).headers["etag"] != etag
    assert client.get(url, params={"k": 5}, headers={"If-None-Match": '"g0-nope"'}).status_code == 200


def test_similar_etag_changes_with_the_store(admin):
    url = f"/api/products/{product_id(4)}/similar"
    before = admin.get(url).headers["etag"]
    auth = {"Authorization": f"Bearer {KEY}"}
    r = admin.post("/api/products", data=product_form(), files={"file": ("n.jpg", jpeg(33), "image/jpeg")}, headers=auth)
    assert r.status_code == 201
    r = admin.get(url, headers={"If-None-Match": before})
    assert r.status_code == 200 and r.headers["etag"] != before       # a new generation: a new answer
    assert admin.get(url, headers={"If-None-Match": r.headers["etag"]}).status_code == 304


def test_public_url_setting_makes_the_links(web_store):
    with TestClient(make_app(web_store, public_url="https://find.example.com/df")) as c:
        body = c.get(f"/api/products/{product_id(4)}/similar", params={"k": 2}).json()
    top = body["results"][0]
    assert top["image"].startswith("https://find.example.com/df/images/")
    assert top["links"]["page"].startswith("https://find.example.com/df/products/")
    assert body["product"]["links"]["similar"].startswith("https://find.example.com/df/api/products/")


def test_public_url_from_the_environment(monkeypatch):
    from dressfinder.errors import SettingsError
    from dressfinder.settings import Settings

    monkeypatch.setenv("DRESSFINDER_PUBLIC_URL", "https://find.example.com/")
    monkeypatch.setenv("DRESSFINDER_EMBED_ORIGINS", "https://shop.example, http://127.0.0.1:8000/")
    s = Settings.from_env()
    assert s.public_url == "https://find.example.com"
    assert s.embed_origins == ("https://shop.example", "http://127.0.0.1:8000")
    monkeypatch.setenv("DRESSFINDER_EMBED_ORIGINS", "shop.example")
    with pytest.raises(SettingsError):
        Settings.from_env()
    monkeypatch.setenv("DRESSFINDER_EMBED_ORIGINS", "")
    monkeypatch.setenv("DRESSFINDER_PUBLIC_URL", "find.example.com")
    with pytest.raises(SettingsError):
        Settings.from_env()


def test_facets(client):
    f = client.get("/api/facets").json()
    assert f == {"shops": sorted(STORES), "categories": ["maxi", "mini"], "availabilities": [], "brands": []}


# --------------------------------------------------------------------------- add / delete (API key)

def product_form(pid="new/dress-1", **extra):
    data = {"id": pid, "title": "Brand new dress", "price": "42.50", "currency": "EUR",
            "url": "https://shop.example/new", "shop": "Atelier C", "category": "midi"}
    data.update(extra)
    return data


def test_add_and_delete_disabled_without_key(client):
    r = client.post("/api/products", data=product_form(), files={"file": ("n.jpg", jpeg(30), "image/jpeg")})
    assert_error(r, 403, "disabled")
    assert_error(client.delete(f"/api/products/{product_id(1)}"), 403, "disabled")
    assert client.get(f"/api/products/{product_id(1)}").status_code == 200


def test_add_and_delete_need_the_key(admin):
    files = {"file": ("n.jpg", jpeg(30), "image/jpeg")}
    r = admin.post("/api/products", data=product_form(), files=files)
    assert_error(r, 401, "api key")
    assert r.headers["www-authenticate"] == "Bearer"
    assert_error(admin.post("/api/products", data=product_form(), files=files,
                            headers={"Authorization": "Bearer wrong"}), 401)
    assert_error(admin.post("/api/products", data=product_form(), files=files,
                            headers={"Authorization": f"Basic {KEY}"}), 401)
    assert_error(admin.delete(f"/api/products/{product_id(1)}"), 401)
    assert_error(admin.delete(f"/api/products/{product_id(1)}", headers={"Authorization": f"Bearer {KEY}x"}), 401)


def test_add_product_then_search_then_delete(admin):
    auth = {"Authorization": f"Bearer {KEY}"}
    new = encode(dress_image(31), "PNG")
    form = product_form(availability="https://schema.org/OutOfStock", sale_price="39.90", brand="Maison C",
                        color="red", size="M", item_group_id="new")
    r = admin.post("/api/products", data=form, files={"file": ("../../evil.png", new, "image/png")}, headers=auth)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["products"] == 17 and body["added"]["id"] == "new/dress-1"
    assert body["added"]["price"] == 42.5 and body["added"]["currency"] == "EUR"
    assert {k: body["added"][k] for k in ("availability", "sale_price", "brand", "color", "size", "item_group_id")} == {
        "availability": "out_of_stock", "sale_price": 39.9, "brand": "Maison C", "color": "red", "size": "M",
        "item_group_id": "new"}
    assert admin.get("/api/facets").json()["availabilities"] == ["out_of_stock"]
    found = admin.post("/api/search", files={"file": ("q.png", new, "image/png")},
                       data={"k": "3", "availability": "in_stock"}).json()
    assert "new/dress-1" not in [h["id"] for h in found["results"]]     # sold out: filtered away
    hits = admin.post("/api/search", files={"file": ("q.png", new, "image/png")}, data={"k": "1"}).json()
    assert hits["results"][0]["id"] == "new/dress-1"
    img = admin.get(body["added"]["image"])
    assert img.status_code == 200 and img.headers["content-type"] == "image/png" and img.content == new
    assert admin.get("/healthz").json()["products"] == 17
    # the same id again: conflict
    r = admin.post("/api/products", data=product_form(), files={"file": ("n.jpg", jpeg(32), "image/jpeg")},
                   headers=auth)
    assert_error(r, 409, "already exists")
    r = admin.delete("/api/products/new/dress-1", headers=auth)
    assert r.status_code == 200 and r.json() == {"removed": "new/dress-1", "products": 16}
    assert_error(admin.get("/api/products/new/dress-1"), 404)
    hits = admin.post("/api/search", files={"file": ("q.png", new, "image/png")}, data={"k": "3"}).json()
    assert "new/dress-1" not in [h["id"] for h in hits["results"]]
    assert_error(admin.delete("/api/products/new/dress-1", headers=auth), 404)


def test_add_product_bad_input(admin, web_store_copy):
    auth = {"Authorization": f"Bearer {KEY}"}
    good = {"file": ("n.jpg", jpeg(33), "image/jpeg")}
    assert_error(admin.post("/api/products", data={"title": "no id"}, files=good, headers=auth), 422, "id")
    assert_error(admin.post("/api/products", data=product_form(url="javascript:alert(1)"), files=good,
                            headers=auth), 422, "url")
    assert_error(admin.post("/api/products", data=product_form(price="lots"), files=good, headers=auth), 422, "price")
    assert_error(admin.post("/api/products", data=product_form(price="-3"), files=good, headers=auth), 422, "price")
    assert_error(admin.post("/api/products", data=product_form(colour="red"), files=good, headers=auth), 422)
    assert_error(admin.post("/api/products", data=product_form(availability="maybe"), files=good, headers=auth),
                 422, "availability")
    assert_error(admin.post("/api/products", data=product_form(id="bad\nid"), files=good, headers=auth), 422, "id")
    assert_error(admin.post("/api/products", data=product_form(), headers=auth), 400, "no file")
    assert_error(admin.post("/api/products", data=product_form(), files={"file": ("x.jpg", b"<html></html>",
                                                                                  "image/jpeg")}, headers=auth), 415)
    assert_error(admin.post("/api/products", json={"id": "x"}, headers=auth), 415)
    assert admin.get("/healthz").json()["products"] == 16


def test_admin_reload_picks_up_an_outside_change(admin, web_store_copy):
    from dressfinder.catalog import Product
    from dressfinder.store import Store

    other = Store.open(web_store_copy)          # "another process" changing the store folder
    other.remove([product_id(2)])
    assert_error(admin.post("/api/admin/reload"), 401)
    r = admin.post("/api/admin/reload", headers={"Authorization": f"Bearer {KEY}"})
    assert r.status_code == 200 and r.json()["reloaded"] is True and r.json()["products"] == 15
    assert_error(admin.get(f"/api/products/{product_id(2)}"), 404)
    other.add_image(Product(id="outside", title="Added elsewhere"), jpeg(40))
    assert admin.post("/api/admin/reload", headers={"Authorization": f"Bearer {KEY}"}).json()["products"] == 16
    assert admin.get("/api/products/outside").json()["title"] == "Added elsewhere"
    r = admin.post("/api/admin/reload", headers={"Authorization": f"Bearer {KEY}"})
    assert r.json()["reloaded"] is False


# --------------------------------------------------------------------------- images

def test_images_by_id_with_caching(client):
    pid = product_id(8)
    p = client.get(f"/api/products/{pid}").json()
    r = client.get(p["image"])
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert "immutable" in r.headers["cache-control"]
    etag = r.headers["etag"]
    Image.open(io.BytesIO(r.content)).verify()
    plain = client.get(f"/images/{pid}")
    assert plain.status_code == 200 and "immutable" not in plain.headers["cache-control"]
    assert plain.headers["etag"] == etag
    r304 = client.get(f"/images/{pid}", headers={"If-None-Match": etag})
    assert r304.status_code == 304 and not r304.content
    assert client.get(f"/images/{pid}?v=0000000000").headers["cache-control"] == "public, max-age=300"


def test_images_never_by_path(client, web_store):
    for path in ["/images/nope", "/images/%2e%2e/store.json", "/images/..%2Fstore.json", "/images//etc/passwd",
                 "/images/images/" + next((web_store / "images").rglob("*.jpg")).relative_to(
                     web_store / "images").as_posix()]:
        assert_error(client.get(path), 404)


# --------------------------------------------------------------------------- errors in general

def test_unknown_routes_and_methods_are_json(client):
    assert_error(client.get("/api/nothing"), 404)
    assert_error(client.get("/nothing"), 404, "/nothing")
    assert_error(client.put("/api/products/x"), 405)
    assert_error(client.delete("/healthz"), 405)


def test_unexpected_exception_is_a_500_without_trace(web_store):
    app = make_app(web_store)

    def boom(*a, **k):
        raise RuntimeError("secret internals /etc/shadow")

    app.state.store.search_vectors = boom
    with TestClient(app) as c:
        r = c.post("/api/search", files={"file": ("d.jpg", jpeg(1), "image/jpeg")})
        body = assert_error(r, 500, "internal error")
        assert "secret" not in r.text and "RuntimeError" not in r.text
        html = c.post("/search", files={"file": ("d.jpg", jpeg(1), "image/jpeg")}, headers={"accept": "text/html"})
        assert html.status_code == 500 and "secret" not in html.text and "<html" in html.text
    assert json.dumps(body)


# --------------------------------------------------------------------------- the seed's command line

def test_seed_curl_against_python_api_py(web_store_copy, tmp_path):
    """`python api.py --store S` serves; the seed's curl call gets a valid image; SIGHUP reloads."""
    import shutil
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    import httpx

    from webfixtures import free_port

    repo = Path(__file__).resolve().parents[1]
    port = free_port()
    env = {**__import__("os").environ, "DRESSFINDER_API_KEY": "", "DRESSFINDER_STORE": ""}
    proc = subprocess.Popen([sys.executable, str(repo / "api.py"), "--store", str(web_store_copy), "--port", str(port),
                             "--reload-interval", "0"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, proc.stdout.read()
            assert time.monotonic() < deadline, "api.py did not start"
            time.sleep(0.2)
        (tmp_path / "dress.jpg").write_bytes(jpeg(11))
        if shutil.which("curl"):
            subprocess.run(["curl", "-s", "-X", "POST", "-F", "file=@dress.jpg", f"{base}/upload",
                            "-o", "retrieved_dress.jpg"], cwd=tmp_path, check=True, timeout=60)
        else:  # the same request without curl
            r = httpx.post(f"{base}/upload", files={"file": ("dress.jpg", jpeg(11), "image/jpeg")}, timeout=60)
            (tmp_path / "retrieved_dress.jpg").write_bytes(r.content)
        got = (tmp_path / "retrieved_dress.jpg").read_bytes()
        assert got[:3] == b"\xff\xd8\xff", f"/upload answered no JPEG: {got[:300]!r}"   # say what came instead
        with Image.open(tmp_path / "retrieved_dress.jpg") as im:
            im.verify()
        assert (tmp_path / "retrieved_dress.jpg").read_bytes() == \
            httpx.get(f"{base}/images/{product_id(11)}").content

        from dressfinder.store import Store

        Store.open(web_store_copy).remove([product_id(11)])         # another process changes the store
        assert httpx.get(f"{base}/healthz").json()["products"] == 16
        proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while httpx.get(f"{base}/healthz").json()["products"] != 15:
            assert time.monotonic() < deadline, "SIGHUP did not reload the store"
            time.sleep(0.1)
    finally:
        proc.terminate()
        try:
            out, _ = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
    assert f"http://127.0.0.1:{port}/" in out
    assert "Traceback" not in out


def test_serve_without_a_store_is_a_one_line_error(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    env = {**__import__("os").environ, "DRESSFINDER_STORE": ""}
    for args in ([], ["--store", str(tmp_path / "missing")]):
        p = subprocess.run([sys.executable, str(repo / "app.py"), *args], env=env, capture_output=True, text=True,
                           timeout=60)
        assert p.returncode == 2 and "Traceback" not in p.stderr
        assert p.stderr.strip().count("\n") == 0 and "error" in p.stderr
    p = subprocess.run([sys.executable, "-m", "dressfinder", "serve", "--help"], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0 and "--store" in p.stdout and "2000" in p.stdout


def test_error_messages_are_sentences(client):
    """Each error a shopper (or a program) reads is a capitalised sentence with a full stop; the
    decoder's technical lines are said plainly; the statuses stay."""
    cases = [client.post("/api/search", files={"file": ("a.jpg", b"hello world" * 10, "image/jpeg")}),
             client.post("/upload", files={"file": ("a.txt", b"just text", "text/plain")}),
             client.post("/api/search", files={"file": ("a.jpg", b"", "image/jpeg")}),
             client.get("/api/products/nope"), client.get("/nothing-here"), client.put("/api/search"),
             client.get(f"/api/products/{product_id(1)}/similar", params={"k": 0}),
             client.post("/api/search", json={"like": "x", "image_url": "http://a.example/x.jpg"})]
    for r in cases:
        msg = r.json()["error"]["message"]
        assert r.status_code >= 400 and msg[0].isupper() and msg.endswith("."), msg
    assert cases[0].status_code == 415 and cases[0].json()["error"]["message"] == \
        "This file is not an image we can read; choose a JPEG, PNG or WebP photo."
    assert cases[2].json()["error"]["message"] == "The file is empty; choose a photo."
