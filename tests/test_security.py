"""Issue 6, the web-facing parts: uploads, image URLs (SSRF), write endpoints, CORS, concurrency,
overload and reloading. Real bytes throughout; a real uvicorn server on 127.0.0.1 for the
URL-fetching, streaming-limit, overload and reload checks."""

from __future__ import annotations

import io
import ipaddress
import os
import json
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from webfixtures import (dress_image, encode, make_app, make_catalog, product_id, serve, web_store_copy,  # noqa: F401
                         web_store)

KEY = "s3cret-key-for-tests"


def jpeg(i: int, **kw) -> bytes:
    return encode(dress_image(i), "JPEG", quality=90, **kw)


def search(client, data: bytes, name="photo.jpg", ctype="image/jpeg", **fields):
    return client.post("/api/search", files={"file": (name, data, ctype)}, data={"k": "3", **fields})


def error_of(r, status: int) -> str:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["error"]["status"] == status
    return body["error"]["message"]


@pytest.fixture(scope="module")
def client(web_store):
    with TestClient(make_app(web_store)) as c:
        yield c


# =========================================================================== uploads: formats

def test_zero_byte_upload(client):
    assert "empty" in error_of(search(client, b""), 415)


def test_truncated_and_corrupt_images(client):
    full = jpeg(3)
    assert error_of(search(client, full[: len(full) // 2]), 415)
    corrupt = full[:200] + bytes(range(256)) * 8
    assert error_of(search(client, corrupt), 415)
    png = encode(dress_image(3), "PNG")
    assert error_of(search(client, png[:-200], "x.png", "image/png"), 415)
    assert error_of(search(client, b"GIF89a\x10\x00\x10\x00", "x.gif", "image/gif"), 415)


@pytest.mark.parametrize("name,data,ctype", [
    ("dress.png", b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
                  b'<script>alert(1)</script></svg>', "image/png"),
    ("dress.jpg", b"<!doctype html><html><body><img src=x onerror=alert(1)></body></html>", "image/jpeg"),
    ("dress.jpg", b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF", "image/jpeg"),
    ("dress.webp", b"RIFF\x00\x00\x00\x00WEBPVP8 garbage", "image/webp"),
    ("dress.jpg", b"\x00" * 5000, "image/jpeg"),
])
def test_disguised_non_images_are_refused(client, name, data, ctype):
    message = error_of(search(client, data, name, ctype), 415)
    assert "image" in message


def test_decompression_bomb_is_refused_before_decoding(client, monkeypatch):
    from PIL import ImageFile

    decoded = []                                  # the size of every image whose pixels were decoded
    real_load = ImageFile.ImageFile.load

    def load(self, *a, **k):
        decoded.append(self.size)
        return real_load(self, *a, **k)

    monkeypatch.setattr(ImageFile.ImageFile, "load", load)
    bomb = encode(Image.new("1", (10_000, 5_000)), "PNG")      # 50 megapixels in a few KB
    assert len(bomb) < 200_000
    assert "pixels" in error_of(search(client, bomb, "bomb.png", "image/png"), 413)
    assert (10_000, 5_000) not in decoded, "the bomb's pixels were decoded before it was refused"
    assert search(client, jpeg(3)).status_code == 200 and decoded     # (the spy does see a decode)


def test_upload_memory_budget_is_a_setting(web_store):
    """Uploads are refused by what their pixels cost in memory once decoded (gray + alpha: 4
    bytes a pixel), from the header alone; the /upload route and the admin add route alike."""
    la = encode(Image.new("LA", (1000, 1000), (90, 255)), "PNG")      # a few KB, 3.8 MB decoded
    with TestClient(make_app(web_store, max_decode_bytes=2 * 2**20)) as c:
        msg = error_of(search(c, la, "la.png", "image/png"), 413)
        assert "1000x1000 gray + alpha PNG needs 4 MB" in msg and "limit for uploads is 2 MB" in msg
        r = c.post("/upload", files={"file": ("la.png", la, "image/png")})
        assert r.status_code == 413 and "gray + alpha" in r.json()["error"]["message"]
        assert search(c, jpeg(2)).status_code == 200


def test_pixel_limit_is_a_setting(web_store):
    with TestClient(make_app(web_store, max_pixels=500_000)) as c:
        big = encode(dress_image(2, (1000, 1000)), "JPEG")
        assert "limit" in error_of(search(c, big), 413)
        assert search(c, jpeg(2)).status_code == 200


def test_animated_gif_uses_the_first_frame(client):
    frames = [dress_image(6), dress_image(11), dress_image(13)]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    r = search(client, buf.getvalue(), "anim.gif", "image/gif")
    assert r.status_code == 200, r.text
    assert r.json()["results"][0]["id"] == product_id(6)


def test_16_bit_and_cmyk_and_odd_modes(client):
    gray16 = Image.fromarray((np.asarray(dress_image(8).convert("L"), dtype="<u2") * 257).astype("<u2"))
    assert gray16.mode.startswith("I;16")
    r = search(client, encode(gray16, "PNG"), "g16.png", "image/png")
    assert r.status_code == 200 and r.json()["count"] == 3
    r = search(client, encode(dress_image(12).convert("CMYK"), "JPEG", quality=95), "cmyk.jpg")
    assert r.status_code == 200
    assert product_id(12) in [h["id"] for h in r.json()["results"]]
    rgba = dress_image(14).convert("RGBA")
    r = search(client, encode(rgba, "PNG"), "a.png", "image/png")
    assert r.status_code == 200 and r.json()["results"][0]["id"] == product_id(14)
    r = search(client, encode(dress_image(1), "WEBP"), "a.webp", "image/webp")
    assert r.status_code == 200 and r.json()["results"][0]["id"] == product_id(1)


def test_exif_rotated_photo(client):
    im = dress_image(9).transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6     # 'rotate 90 clockwise to display': undoes the rotation above
    r = search(client, encode(im, "JPEG", quality=92, exif=exif))
    assert r.status_code == 200 and r.json()["results"][0]["id"] == product_id(9)


def test_upload_names_from_the_request_are_never_used(web_store_copy, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = {p for p in web_store_copy.rglob("*")}
    with TestClient(make_app(web_store_copy, api_key=KEY)) as c:
        for name in ("../../pwned.jpg", "/tmp/pwned-dressfinder.jpg", "pwned.jpg"):
            assert search(c, jpeg(4), name).status_code == 200
            assert c.post("/upload", files={"file": (name, jpeg(4), "image/jpeg")}).status_code == 200
        r = c.post("/api/products", data={"id": "up-1"}, files={"file": ("../../../pwned.png", jpeg(41), "image/png")},
                   headers={"Authorization": f"Bearer {KEY}"})
        assert r.status_code == 201
    assert not list(tmp_path.rglob("pwned*")) and not Path("/tmp/pwned-dressfinder.jpg").exists()
    assert not any("pwned" in p.name for p in web_store_copy.rglob("*"))
    new_images = [p for p in web_store_copy.rglob("images/*/*") if p not in before]
    assert len(new_images) == 1 and len(new_images[0].stem) == 64 and new_images[0].suffix == ".jpg"


# =========================================================================== uploads: size, while reading

def test_size_limit_is_a_setting(web_store):
    with TestClient(make_app(web_store, max_upload_bytes=30 * 1024)) as c:
        ok = jpeg(1)
        assert len(ok) < 30_000 and search(c, ok).status_code == 200
        big = ok + b"\0" * 30_000       # a valid JPEG with trailing bytes: only the size is wrong
        assert "30 KB" in error_of(search(c, big), 413)
        assert "limit" in error_of(c.post("/api/search", content=b"{" + b" " * 400_000 + b"}",
                                          headers={"content-type": "application/json"}), 413)


def _raw_request(port: int, head: bytes, body_chunks=(), timeout: float = 30.0) -> bytes:
    """Send a raw HTTP request (never finishing the body if told so) and return what comes back.
    ``timeout``: a bound on a hang (a server that waits for a body it will never get), not on speed."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(head)
        for chunk in body_chunks:
            try:
                s.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
        data = b""
        try:
            while True:
                part = s.recv(65536)
                if not part:
                    break          # the server closed the connection
                data += part
                head_end = data.find(b"\r\n\r\n")
                if head_end >= 0:
                    length = next((int(line.split(b":")[1]) for line in data[:head_end].split(b"\r\n")
                                   if line.lower().startswith(b"content-length:")), None)
                    if length is not None and len(data) >= head_end + 4 + length:
                        break
        except (socket.timeout, ConnectionResetError):
            pass
        return data
    finally:
        s.close()


def test_oversized_upload_is_refused_from_content_length_without_reading_it(web_store):
    """Declared larger than the drain bound: answered without reading it (no body is ever sent, so a
    server that waited for it would never answer)."""
    app = make_app(web_store, max_upload_bytes=100_000, drain_bytes=1_000_000)
    with serve(app) as base:
        port = int(base.rsplit(":", 1)[1])
        head = (b"POST /api/search HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: multipart/form-data; boundary=xyz\r\nContent-Length: 50000000\r\n\r\n")
        answer = _raw_request(port, head)           # no body sent at all
        assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
        assert b'"status":413' in answer


def test_oversized_chunked_upload_is_cut_off_while_streaming(web_store):
    app = make_app(web_store, max_upload_bytes=100_000, drain_bytes=200_000)
    with serve(app) as base:
        port = int(base.rsplit(":", 1)[1])
        head = (b"POST /api/search HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: multipart/form-data; boundary=xyz\r\nTransfer-Encoding: chunked\r\n\r\n")
        part = (b"--xyz\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.jpg\"\r\n"
                b"Content-Type: image/jpeg\r\n\r\n")
        chunks = [b"%x\r\n%s\r\n" % (len(part), part)]
        blob = b"\xff" * 65536
        chunks += [b"%x\r\n%s\r\n" % (len(blob), blob)] * 8      # 512 KB, and the body never ends
        answer = _raw_request(port, head, chunks)
        assert answer.startswith(b"HTTP/1.1 413"), answer[:300]
        assert b"limit" in answer and b"connection: close" in answer.lower()


def _multipart(data: bytes, name: str = "big.jpg") -> tuple[bytes, str]:
    boundary = "dressfinder-test-boundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n"
            f"Content-Type: image/jpeg\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


@pytest.mark.parametrize("path", ["/api/search", "/upload"])
def test_plain_client_sending_a_too_large_body_reads_the_413(web_store, path):
    """urllib sends the whole body before it reads anything (as `curl -H 'Expect:'` does): it must
    read the 413 JSON, not 'Connection reset by peer'."""
    import urllib.error
    import urllib.request

    app = make_app(web_store, max_upload_bytes=100_000)
    body, ctype = _multipart(os.urandom(30 * 1024 * 1024))     # 30 MB, as in issue 14
    with serve(app) as base:
        req = urllib.request.Request(base + path, data=body, method="POST", headers={"Content-Type": ctype})
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(req, timeout=20)
        assert err.value.code == 413
        payload = json.loads(err.value.read())
    assert payload["error"]["status"] == 413
    assert payload["error"]["message"].startswith("The request is larger than the ")


def test_expect_100_continue_gets_the_413_before_sending(web_store):
    app = make_app(web_store, max_upload_bytes=100_000)
    with serve(app) as base:
        port = int(base.rsplit(":", 1)[1])
        head = (b"POST /api/search HTTP/1.1\r\nHost: 127.0.0.1\r\nExpect: 100-continue\r\n"
                b"Content-Type: multipart/form-data; boundary=xyz\r\nContent-Length: 3000000\r\n\r\n")
        answer = _raw_request(port, head)           # waits for 100 Continue: never sends the body
    assert answer.startswith(b"HTTP/1.1 413") and b"100 Continue" not in answer, answer[:200]
    assert b'"status":413' in answer


# =========================================================================== image URLs (SSRF)

class FixtureHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    seen: list = []
    image = b""
    release = threading.Event()     # /slow and /trickle hold (send nothing, or a byte at a time) until set

    def log_message(self, *a):
        pass

    def do_GET(self):
        u = urlparse(self.path)
        q = parse_qs(u.query)
        FixtureHandler.seen.append((u.path, self.headers.get("Host")))
        if u.path == "/dress.jpg":
            self._send(200, self.image, "image/jpeg")
        elif u.path == "/page.html":
            self._send(200, b"<html><body>not a picture</body></html>", "text/html; charset=utf-8")
        elif u.path == "/redirect":
            self._redirect(q["to"][0])
        elif u.path.startswith("/chain/"):
            n = int(u.path.rsplit("/", 1)[1])
            self._redirect(f"/chain/{n - 1}" if n > 0 else "/dress.jpg")
        elif u.path == "/loop":
            self._redirect("/loop")
        elif u.path == "/big":       # no Content-Length: close-delimited, larger than the cap
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.end_headers()
            try:
                for _ in range(64):
                    self.wfile.write(b"\xff" * 16384)
            except (BrokenPipeError, ConnectionResetError):
                pass
        elif u.path == "/big-declared":
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", "999999999")
            self.end_headers()
        elif u.path == "/slow":          # no answer at all until released
            if self.release.wait(60):
                self._send(200, self.image, "image/jpeg")
        elif u.path == "/trickle":       # a byte every 0.15 s, never the whole picture, until released
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.end_headers()
            try:
                for b in self.image[:400]:
                    self.wfile.write(bytes([b]))
                    self.wfile.flush()
                    if self.release.wait(0.15):
                        break
            except (BrokenPipeError, ConnectionResetError):
                pass
        else:
            self._send(404, b"nope", "text/plain")

    def _send(self, code, body, ctype):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _redirect(self, to):
        self.send_response(302)
        self.send_header("Location", to)
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture(scope="module")
def origin():
    """A local web server with images, pages, redirects and misbehaviour, on 127.0.0.1."""
    FixtureHandler.image = jpeg(6)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), FixtureHandler)
    httpd.daemon_threads = True
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    FixtureHandler.release.set()
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def blocked_server(web_store):
    """The app with default settings (private addresses refused), on a real server."""
    app = make_app(web_store, url_timeout=1.0)
    with serve(app) as base:
        yield app, base


@pytest.fixture(scope="module")
def open_server(web_store):
    """The app with private addresses explicitly allowed (to fetch from the local fixture server).
    Its URL timeout is generous (a busy machine must not make a good fetch time out); the test of
    the timeout itself shortens it, against an upstream that holds until the test releases it."""
    app = make_app(web_store, allow_private_urls=True, url_timeout=10.0, url_max_redirects=3,
                   max_upload_bytes=200_000)
    with serve(app) as base:
        yield app, base


def url_search(base, image_url, **extra):
    return httpx.post(f"{base}/api/search", json={"image_url": image_url, "k": 3, **extra}, timeout=20)


@pytest.mark.parametrize("target", [
    "{origin}/dress.jpg",                                   # loopback, literal
    "http://localhost:{port}/dress.jpg",                     # loopback, after DNS
    "http://[::1]:{port}/dress.jpg",
    "http://[::ffff:127.0.0.1]:{port}/dress.jpg",            # IPv4-mapped IPv6
    "http://2130706433:{port}/dress.jpg",                    # 127.0.0.1 as a decimal number
    "http://0.0.0.0:{port}/dress.jpg",
    "http://169.254.169.254/latest/meta-data/",              # cloud metadata
    "http://10.1.2.3/dress.jpg", "http://192.168.1.1/dress.jpg", "http://172.16.0.1/x.jpg",
    "http://100.64.0.1/x.jpg", "http://[fd00::1]/x.jpg", "http://[fe80::1]/x.jpg",
])
def test_private_addresses_are_refused_by_default(blocked_server, origin, target):
    _, base = blocked_server
    port = origin.rsplit(":", 1)[1]
    FixtureHandler.seen.clear()
    r = url_search(base, target.format(origin=origin, port=port))
    message = error_of(r, 400)
    assert "private" in message or "resolve" in message
    assert FixtureHandler.seen == []


@pytest.mark.parametrize("url,words", [
    ("file:///etc/passwd", "http"), ("gopher://example.com/", "http"), ("ftp://example.com/a.jpg", "http"),
    ("http://user:pw@example.com/a.jpg", "password"), ("http:///nohost", "host"), ("javascript:alert(1)", "http"),
])
def test_bad_url_schemes_and_forms(blocked_server, url, words):
    _, base = blocked_server
    assert words in error_of(url_search(base, url), 400)


def test_overlong_url(blocked_server):
    _, base = blocked_server
    assert "2048" in error_of(url_search(base, "http://" + "a" * 2100 + ".com/"), 422)


def test_fetch_from_the_local_server_when_allowed(open_server, origin):
    _, base = open_server
    FixtureHandler.seen.clear()
    r = url_search(base, f"{origin}/dress.jpg")
    assert r.status_code == 200, r.text
    assert r.json()["results"][0]["id"] == product_id(6) and r.json()["query"]["source"] == "url"
    r = url_search(base, f"{origin}/chain/2")       # two redirects, within the limit of 3
    assert r.status_code == 200 and r.json()["results"][0]["id"] == product_id(6)
    r = url_search(base, f"{origin}/dress.jpg", crop=[0.2, 0.0, 0.8, 1.0])
    assert r.status_code == 200


@pytest.mark.parametrize("path,status,words", [
    ("/loop", 400, "redirects more than 3"), ("/chain/5", 400, "redirects more than 3"),
    ("/page.html", 415, "text/html"), ("/missing", 400, "HTTP 404"),
    ("/big", 413, "larger than"), ("/big-declared", 413, "larger than"),
])
def test_fetch_failures_are_clear_4xx(open_server, origin, path, status, words):
    _, base = open_server
    message = error_of(url_search(base, origin + path), status)
    assert words in message


@pytest.mark.parametrize("path,words", [("/slow", "did not answer within 0.5 s"), ("/trickle", "")])
def test_a_silent_or_trickling_server_is_given_up_on(open_server, origin, path, words):
    """The upstream holds (silent, or a byte at a time, never the whole picture) until the test
    releases it, which it does only after the answer: a 400 can only come from the fetch's own
    step timeout or its deadline for the whole fetch (2 x the timeout). Without them the search would
    hang on the upstream until url_search's own 20 s timeout failed the test."""
    app, base = open_server
    fetcher = app.state.ctx.fetcher
    saved = fetcher.timeout
    fetcher.timeout = 0.5
    FixtureHandler.release.clear()
    try:
        message = error_of(url_search(base, origin + path), 400)
        assert words in message
    finally:
        FixtureHandler.release.set()
        fetcher.timeout = saved


def test_unreachable_and_unresolvable_urls(open_server):
    _, base = open_server
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    assert "cannot fetch" in error_of(url_search(base, f"http://127.0.0.1:{closed}/a.jpg"), 400).lower()
    assert "resolve" in error_of(url_search(base, "http://no-such-host.invalid/a.jpg"), 400)


def test_every_redirect_hop_is_checked(blocked_server, origin):
    """First hop allowed (a patched policy treats 127.0.0.1 as public), the redirect target is not."""
    app, base = blocked_server
    fetcher = app.state.ctx.fetcher
    original = fetcher.ip_allowed
    fetcher.ip_allowed = lambda ip: str(ip) == "127.0.0.1"
    try:
        FixtureHandler.seen.clear()
        assert url_search(base, f"{origin}/dress.jpg").status_code == 200     # the policy lets this one through
        port = origin.rsplit(":", 1)[1]
        for target in (f"http://127.0.0.2:{port}/dress.jpg", "http://169.254.169.254/latest/meta-data/",
                       f"http://[::1]:{port}/dress.jpg", "http://10.0.0.1/x.jpg"):
            FixtureHandler.seen.clear()
            message = error_of(url_search(base, f"{origin}/redirect?to={target}"), 400)
            assert "private" in message
            assert [p for p, _ in FixtureHandler.seen] == ["/redirect"]     # the target was never asked
    finally:
        fetcher.ip_allowed = original


def test_every_resolved_address_is_checked_and_the_checked_one_is_used(blocked_server, origin):
    """A name with one public and one private address is refused; a name is fetched from the
    address that was checked (DNS rebinding), with the original Host header."""
    app, base = blocked_server
    fetcher = app.state.ctx.fetcher
    port = int(origin.rsplit(":", 1)[1])
    calls = []

    async def resolver(host, p):
        calls.append(host)
        return {"mixed.test": ["127.0.0.1", "10.0.0.7"], "shop.test": ["127.0.0.1"]}[host]

    saved = fetcher.resolver, fetcher.ip_allowed
    fetcher.resolver = resolver
    fetcher.ip_allowed = lambda ip: str(ip) == "127.0.0.1"
    try:
        FixtureHandler.seen.clear()
        assert "10.0.0.7" in error_of(url_search(base, f"http://mixed.test:{port}/dress.jpg"), 400)
        assert FixtureHandler.seen == []
        r = url_search(base, f"http://shop.test:{port}/dress.jpg")
        assert r.status_code == 200, r.text
        assert FixtureHandler.seen == [("/dress.jpg", f"shop.test:{port}")]
        assert calls == ["mixed.test", "shop.test"]
    finally:
        fetcher.resolver, fetcher.ip_allowed = saved


@pytest.mark.parametrize("ip,public", [
    ("8.8.8.8", True), ("2606:4700:4700::1111", True), ("127.0.0.1", False), ("10.0.0.1", False),
    ("172.31.255.255", False), ("192.168.0.1", False), ("169.254.169.254", False), ("100.64.0.1", False),
    ("0.0.0.0", False), ("255.255.255.255", False), ("224.0.0.1", False), ("::1", False), ("::", False),
    ("fe80::1", False), ("fc00::1", False), ("fd00:ec2::254", False), ("::ffff:10.0.0.1", False),
    ("::ffff:8.8.8.8", True), ("64:ff9b::7f00:1", False), ("2002:7f00:1::", False), ("198.18.0.1", False),
])
def test_address_policy(ip, public):
    from dressfinder.web.fetch import is_public_address

    assert is_public_address(ipaddress.ip_address(ip)) is public


# =========================================================================== write endpoints, CORS

def test_key_comparison_is_constant_time(web_store_copy, monkeypatch):
    import dressfinder.web.deps as deps

    compared = []
    real = deps.hmac.compare_digest

    def spy(a, b):
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(deps.hmac, "compare_digest", spy)
    with TestClient(make_app(web_store_copy, api_key=KEY)) as c:
        assert c.delete("/api/products/x", headers={"Authorization": "Bearer guess"}).status_code == 401
        assert c.delete("/api/products/x", headers={"Authorization": f"Bearer {KEY}"}).status_code == 404
    assert compared == [(b"guess", KEY.encode()), (KEY.encode(), KEY.encode())]


def test_writes_are_off_without_a_configured_key(web_store_copy):
    with TestClient(make_app(web_store_copy)) as c:
        for h in ({}, {"Authorization": "Bearer "}, {"Authorization": "Bearer anything"}):
            assert c.delete(f"/api/products/{product_id(1)}", headers=h).status_code == 403
            assert c.post("/api/admin/reload", headers=h).status_code == 403
        assert c.get(f"/api/products/{product_id(1)}").status_code == 200


def test_cors_is_off_by_default(client):
    r = client.get("/healthz", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in r.headers
    r = client.options("/api/search", headers={"Origin": "https://evil.example",
                                               "Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in r.headers
    assert r.status_code in (404, 405)


def test_cors_when_configured(web_store):
    with TestClient(make_app(web_store, cors_origins=("https://shop.example",))) as c:
        r = c.get("/healthz", headers={"Origin": "https://shop.example"})
        assert r.headers["access-control-allow-origin"] == "https://shop.example"
        r = c.get("/healthz", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in r.headers


def test_security_headers(client):
    r = client.get("/healthz")
    assert r.headers["x-content-type-options"] == "nosniff" and r.headers["x-frame-options"] == "DENY"
    assert "content-security-policy" in client.get("/").headers


# =========================================================================== concurrency, overload, reload

def _gated(store) -> tuple[threading.Event, threading.Semaphore]:
    """Searches stop in the worker, just before encoding the photo, until the test sets ``gate``;
    ``entered`` counts the searches that got there."""
    gate, entered = threading.Event(), threading.Semaphore(0)
    original = store.embed_query

    def gated(*a, **k):
        entered.release()
        assert gate.wait(120), "the test never opened the gate"
        return original(*a, **k)

    store.embed_query = gated
    return gate, entered


def _wait_until(predicate, timeout: float = 60.0) -> bool:
    """Poll for a condition (a generous deadline: only a hang trips it)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_overload_answers_503_and_the_loop_stays_responsive(web_store):
    """One worker and a queue of one: with one search held in the worker and one admitted behind
    it (both held by the test, however slow the machine), every further search is refused at once
    with 503 and Retry-After, and the event loop still answers /healthz."""
    app = make_app(web_store, workers=1, max_queue=1)
    gate, entered = _gated(app.state.store)
    photo = jpeg(2)
    with serve(app) as base:
        def one():
            r = httpx.post(f"{base}/api/search", files={"file": ("p.jpg", photo, "image/jpeg")}, timeout=60)
            return r.status_code, r.headers.get("retry-after"), r.json()

        def busy():
            return httpx.get(f"{base}/healthz", timeout=30).json()["busy"]

        with ThreadPoolExecutor(2) as ex:
            try:
                held = [ex.submit(one)]
                assert entered.acquire(timeout=60), "the first search never reached the worker"
                held.append(ex.submit(one))
                assert _wait_until(lambda: busy() == 2), "the second search was not admitted"
                refused = [one() for _ in range(4)]       # the pool is full: answered while both are held
                health = httpx.get(f"{base}/healthz", timeout=30)
                assert not any(f.done() for f in held)
            finally:
                gate.set()
            results = [f.result(timeout=60) for f in held]
        assert [c for c, _, _ in results] == [200, 200], results
        for code, retry, body in refused:
            assert code == 503 and retry == "1", (code, retry, body)
            assert body["error"]["status"] == 503 and "busy" in body["error"]["message"]
        assert health.status_code == 200 and health.json()["busy"] == 2
        # only the two admitted searches reached the encoder (the second after the gate opened)
        assert entered.acquire(timeout=0) and not entered.acquire(timeout=0)
        # and it recovers
        r = httpx.post(f"{base}/api/search", files={"file": ("p.jpg", photo, "image/jpeg")}, timeout=30)
        assert r.status_code == 200 and httpx.get(f"{base}/healthz").json()["busy"] == 0


def test_concurrent_searches_and_updates(web_store_copy):
    app = make_app(web_store_copy, api_key=KEY, workers=2, max_queue=64)
    auth = {"Authorization": f"Bearer {KEY}"}
    with serve(app) as base:
        errors = []

        def searcher(i):
            with httpx.Client(base_url=base, timeout=60) as c:
                for j in range(6):
                    r = c.post("/api/search", files={"file": ("p.jpg", jpeg((i + j) % 16), "image/jpeg")},
                               data={"k": "5"})
                    if r.status_code != 200 or r.json()["count"] != 5:
                        errors.append(("search", r.status_code, r.text[:200]))

        def writer():
            with httpx.Client(base_url=base, timeout=60, headers=auth) as c:
                for j in range(4):
                    r = c.post("/api/products", data={"id": f"live-{j}", "title": f"Live {j}"},
                               files={"file": ("n.jpg", jpeg(60 + j), "image/jpeg")})
                    if r.status_code != 201:
                        errors.append(("add", r.status_code, r.text[:200]))
                for j in range(0, 4, 2):
                    r = c.delete(f"/api/products/live-{j}")
                    if r.status_code != 200:
                        errors.append(("delete", r.status_code, r.text[:200]))

        threads = [threading.Thread(target=searcher, args=(i,)) for i in range(3)] + [threading.Thread(target=writer)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert errors == []
        health = httpx.get(f"{base}/healthz").json()
        assert health["products"] == 18
        r = httpx.post(f"{base}/api/search", files={"file": ("n.jpg", jpeg(61), "image/jpeg")}, data={"k": "1"})
        assert r.json()["results"][0]["id"] == "live-1"
    from dressfinder.store import Store

    assert len(Store.open(web_store_copy)) == 18      # what is on disk agrees


def test_reload_a_rebuilt_store_without_downtime(web_store_copy, tmp_path):
    from dressfinder.store import Store

    app = make_app(web_store_copy, reload_interval=0.2)
    with serve(app) as base:
        assert httpx.get(f"{base}/healthz").json()["products"] == 16
        stop = threading.Event()
        failures, done = [], []

        def keep_searching():
            with httpx.Client(base_url=base, timeout=30) as c:
                while not stop.is_set():
                    r = c.post("/api/search", files={"file": ("p.jpg", jpeg(3), "image/jpeg")}, data={"k": "3"})
                    (done if r.status_code == 200 else failures).append(r.status_code)

        t = threading.Thread(target=keep_searching)
        t.start()
        try:
            assert _wait_until(lambda: done or failures), "no search was answered"
            small = make_catalog(tmp_path / "smaller", n=8)
            Store.build(small, web_store_copy, encoder="effnet-lite0", progress=False)   # rebuild in place
            assert _wait_until(lambda: httpx.get(f"{base}/healthz", timeout=30).json()["products"] == 8), \
                "the rebuilt store was not picked up"
            picked_up = len(done) + len(failures)
            assert _wait_until(lambda: len(done) + len(failures) >= picked_up + 3), "searching stopped"
        finally:
            stop.set()
            t.join(30)
        assert failures == [] and len(done) > 3
        assert httpx.get(f"{base}/healthz").json()["generation"] == 2


def test_error_bodies_are_json_everywhere_on_the_real_server(blocked_server):
    _, base = blocked_server
    for method, path in [("GET", "/nope"), ("GET", "/api/products/nope"), ("DELETE", "/healthz"),
                         ("POST", "/api/products")]:
        r = httpx.request(method, base + path)
        assert 400 <= r.status_code < 500
        body = json.loads(r.text)
        assert body["error"]["status"] == r.status_code and "Traceback" not in r.text


def test_environment_settings(monkeypatch, web_store):
    from dressfinder.settings import Settings

    monkeypatch.setenv("DRESSFINDER_MAX_UPLOAD_BYTES", "12345")
    monkeypatch.setenv("DRESSFINDER_ALLOW_PRIVATE_URLS", "")
    monkeypatch.setenv("DRESSFINDER_CORS_ORIGINS", "")
    monkeypatch.setenv("DRESSFINDER_WORKERS", "3")
    monkeypatch.setenv("DRESSFINDER_RELOAD_INTERVAL", "0")
    monkeypatch.setenv("DRESSFINDER_API_KEY", "")
    s = Settings.from_env()
    assert (s.max_upload_bytes, s.allow_private_urls, s.cors_origins, s.workers, s.api_key) == \
        (12345, False, (), 3, None)
    from dressfinder.web import create_app

    app = create_app(str(web_store))
    assert app.state.settings.max_upload_bytes == 12345 and app.state.ctx.pool.workers == 3
    with TestClient(app) as c:
        assert c.delete(f"/api/products/{product_id(1)}", headers={"Authorization": "Bearer x"}).status_code == 403
