"""The shop's drop-in block: the embed fragment and frame page (caching, framing, CORS, stock,
links to the shop), the events beacon, the stats page and `dressfinder stats`."""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from webfixtures import OUT_OF_STOCK as OUT, build_stock_store, make_app, product_id

KEY = "stats-key-0123456789"
SHOP = "http://shop.example"


@pytest.fixture(scope="module")
def stock_store(tmp_path_factory) -> Path:
    return build_stock_store(tmp_path_factory.mktemp("stock"))


@pytest.fixture
def store_dir(stock_store, tmp_path) -> Path:
    import shutil

    shutil.copytree(stock_store, tmp_path / "store")
    return tmp_path / "store"


@pytest.fixture
def client(store_dir):
    with TestClient(make_app(store_dir, api_key=KEY, embed_origins=(SHOP,))) as c:
        yield c


def cards(html: str) -> list[tuple[str, str]]:
    """(item id, href) of each card in a block."""
    return re.findall(r'<a class="dfs-link" href="([^"]+)"[^>]*data-dressfinder-item="([^"]+)"', html)


# --------------------------------------------------------------------------- the block

def test_in_stock_reads_every_spelling():
    from dressfinder.schema import Product
    from dressfinder.web.embed import in_stock

    assert in_stock(Product(id="a")) and in_stock(Product(id="a", availability="InStock"))
    for v in ("OutOfStock", "https://schema.org/OutOfStock", "out_of_stock", "SoldOut", "discontinued", "false"):
        assert not in_stock(Product(id="a", availability=v)), v
    assert in_stock(Product(id="a", availability="PreOrder")) and in_stock(Product(id="a", availability="backorder"))


def test_fragment_links_to_the_shop_in_stock_only(client):
    pid = product_id(2)
    r = client.get(f"/embed/similar/{pid}")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    html = r.text
    assert "<html" not in html and "<script" not in html and "style=" not in html
    found = cards(html)
    assert len(found) == 6
    for href, item in found:
        i = int(item.rsplit("-", 1)[1])
        assert i not in OUT and i != 3, item                   # out of stock; 3 has a javascript: url
        assert href == f"https://shop.example/p/{i}"           # the product's own url at the shop
    assert html.count('loading="lazy"') == 6
    assert 'href="http://testserver/static/embed.css' in html  # absolute: it lives on the shop's page
    assert 'src="http://testserver/images/' in html
    assert 'data-dressfinder-events="http://testserver/api/events"' in html
    qid = re.search(r'data-dressfinder-query="([^"]+)"', html).group(1)
    assert qid and qid == r.headers["etag"].strip('"')
    # out of stock too when asked; fewer with k
    every = [int(item.rsplit("-", 1)[1]) for _, item in cards(client.get(f"/embed/similar/{pid}?all=true&k=12").text)]
    assert set(every) & OUT
    assert len(cards(client.get(f"/embed/similar/{pid}?k=2").text)) == 2


def test_fragment_caching_and_errors(client):
    url = f"/embed/similar/{product_id(2)}"
    r = client.get(url)
    etag = r.headers["etag"]
    assert "max-age" in r.headers["cache-control"]
    assert client.get(url, headers={"If-None-Match": etag}).status_code == 304
    assert client.get(url + "?k=3", headers={"If-None-Match": etag}).status_code == 200
    r = client.get("/embed/similar/nope")
    assert r.status_code == 404 and r.json()["error"]["status"] == 404
    assert client.get(url + "?k=99").status_code == 422


def test_fragment_cors_for_the_shop_only(client):
    ok = client.get(f"/embed/similar/{product_id(2)}", headers={"Origin": SHOP})
    assert ok.headers["access-control-allow-origin"] == SHOP
    other = client.get(f"/embed/similar/{product_id(2)}", headers={"Origin": "http://evil.example"})
    assert "access-control-allow-origin" not in other.headers


def test_frame_page_may_be_framed_by_the_shop_only(client, store_dir):
    r = client.get(f"/embed/frame/similar/{product_id(2)}")
    assert r.status_code == 200 and "<html" in r.text and 'target="_top"' in r.text
    csp = r.headers["content-security-policy"]
    assert f"frame-ancestors {SHOP}" in csp and "script-src 'self'" in csp
    assert "x-frame-options" not in r.headers
    # every other page keeps DENY
    for path in ("/", f"/products/{product_id(2)}", f"/embed/similar/{product_id(2)}"):
        h = client.get(path).headers
        assert h["x-frame-options"] == "DENY", path
        assert "frame-ancestors 'none'" in h.get("content-security-policy", "frame-ancestors 'none'"), path
    # without embed origins the frame page is framed by nobody
    with TestClient(make_app(store_dir)) as c:
        h = c.get(f"/embed/frame/similar/{product_id(2)}").headers
    assert "frame-ancestors 'none'" in h["content-security-policy"] and h["x-frame-options"] == "DENY"


# --------------------------------------------------------------------------- the beacon and the numbers

def event(client, origin=SHOP, **body):
    return client.post("/api/events", content=json.dumps(body), headers={"Content-Type": "text/plain;charset=UTF-8",
                                                                          "Origin": origin})


def test_events_are_counted_and_shown(client, store_dir):
    shown, item = product_id(2), product_id(6)
    for _ in range(3):
        assert event(client, type="view", query="q1", product=shown).status_code == 204
    assert event(client, type="click", query="q1", product=shown, item=item).status_code == 204
    assert event(client, type="view", product=product_id(8)).status_code == 204
    assert (store_dir / "events.sqlite").is_file()
    # refused: other origins, unknown products, bad bodies (JSON errors, the status kept)
    assert event(client, origin="http://evil.example", type="view", product=shown).status_code == 403
    assert event(client, type="view", product="nope").status_code == 404
    assert event(client, type="buy", product=shown).status_code == 400
    assert event(client, type="click", product=shown).status_code == 400
    r = client.post("/api/events", content=b"{", headers={"Origin": SHOP})
    assert r.status_code == 400 and r.json()["error"]["message"].endswith(".")
    assert client.post("/api/events", content=b"x" * 5000).status_code == 413

    # the page: the key (Basic: any user, the key as password; or Bearer), else 401
    r = client.get("/stats")
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Basic")
    basic = "Basic " + base64.b64encode(f"shop:{KEY}".encode()).decode()
    r = client.get("/stats", headers={"Authorization": basic})
    assert r.status_code == 200 and "<svg" in r.text and "<script" not in r.text.split("</head>")[1]
    assert "style=" not in r.text
    assert re.search(r"<strong>4</strong> views, <strong>1</strong> clicks", r.text)
    assert re.search(r">dress-02</a></th><td>3</td><td>1</td><td>33.3 %</td>", r.text)
    body = client.get("/stats?format=json", headers={"Authorization": f"Bearer {KEY}"}).json()
    today = dt.datetime.now(dt.timezone.utc).date().isoformat()
    assert body["total"] == {"views": 4, "clicks": 1, "ctr": 0.25}
    assert body["days"][-1] == {"day": today, "views": 4, "clicks": 1, "ctr": 0.25} and len(body["days"]) == 30
    assert body["clicked"] == [{"product": item, "clicks": 1}]
    # the file holds nothing about the visitor
    import sqlite3

    cols = [r[1] for r in sqlite3.connect(store_dir / "events.sqlite").execute("PRAGMA table_info(events)")]
    assert cols == ["id", "day", "at", "kind", "query", "product", "item"]


def test_stats_off_without_a_key(store_dir):
    with TestClient(make_app(store_dir)) as c:
        r = c.get("/stats")
    assert r.status_code == 403 and "off" in r.text


def test_events_survive_a_store_change_and_concurrent_writers(store_dir):
    from dressfinder.store import Store
    from dressfinder.web.events import EventLog

    log = EventLog(store_dir / "events.sqlite")
    threads = [threading.Thread(target=lambda: [log.record("view", product_id(2), query="q") for _ in range(25)])
               for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert log.stats(1).total.views == 200
    store = Store.open(store_dir)
    store.remove([product_id(0)])                         # a new generation; garbage collected
    store.remove([product_id(5)])
    assert log.stats(1).total.views == 200


def test_stats_command(store_dir):
    from dressfinder.web.events import EventLog

    log = EventLog(store_dir / "events.sqlite")
    log.record("view", product_id(2), query="q")
    log.record("view", product_id(2), query="q")
    log.record("click", product_id(2), query="q", item=product_id(6))
    out = subprocess.run([sys.executable, "-m", "dressfinder", "stats", "--store", str(store_dir), "--days", "3"],
                         capture_output=True, text=True, check=True).stdout
    assert "2 views, 1 clicks, click-through 50.0 %" in out and product_id(6) in out
    js = json.loads(subprocess.run([sys.executable, "-m", "dressfinder", "stats", "--store", str(store_dir), "--json"],
                                   capture_output=True, text=True, check=True).stdout)
    assert js["total"]["clicks"] == 1 and js["products"][0]["product"] == product_id(2)


def test_chart_is_plain_svg():
    from dressfinder.web.events import Row, chart_svg

    svg = chart_svg([Row("2026-12-01", 10, 2), Row("2026-12-02", 0, 0), Row("2026-12-03", 7, 1)])
    assert svg.startswith("<svg") and svg.count("<rect") == 6 and "style" not in svg and "<script" not in svg
    assert "2026-12-03: 7 views" in svg
