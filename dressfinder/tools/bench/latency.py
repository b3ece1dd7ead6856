"""The ``latency`` section: one photo at a time, in-process, through the CLI and over HTTP."""

from __future__ import annotations
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from .common import cli, env, free_port, photo_variant, stats_ms


def bench_latency(root: Path, photos: list[Path], *, n_queries: int, cli_cold: int, skip: set[str],
                  entry: dict) -> None:
    from ...store import Store

    store = Store.open(root)
    entry["products"] = len(store)
    entry["index"] = store.manifest["index"]["kind"]
    enc = store.encoder
    store.search(photos[0], 10)  # warm: model loaded, pages touched
    dec, encd, srch, ann, total = [], [], [], [], []
    qs = [photos[i % len(photos)] for i in range(n_queries)]
    for p in qs:
        t0 = time.perf_counter()
        im = enc.load(p)
        t1 = time.perf_counter()
        v = enc.encode_query([im])   # as Store.search makes them
        t2 = time.perf_counter()
        store.search_vectors(v, 10)
        t3 = time.perf_counter()
        store.snapshot().index.search(v, 10)
        t4 = time.perf_counter()
        dec.append(t1 - t0)
        encd.append(t2 - t1)
        srch.append(t3 - t2)
        ann.append(t4 - t3)
    for p in qs:
        t0 = time.perf_counter()
        store.search(p, 10)
        total.append(time.perf_counter() - t0)
    entry["in_process"] = {"search": stats_ms(total), "decode": stats_ms(dec), "preprocess+encode": stats_ms(encd),
                           "index+metadata": stats_ms(srch), "index_only": stats_ms(ann)}
    entry["precision"] = enc.precision
    entry["by_precision"] = query_by_precision(store, qs)
    store.close()
    if "cli" not in skip:
        entry["cli"] = cli_latency(root, qs, cold=cli_cold)
    if "http" not in skip:
        entry["http"] = http_latency(root, qs)


def query_by_precision(store, photos: list[Path]) -> dict[str, Any]:
    """One photo end to end in-process (decode, encode with the flip, search) with each variant of the
    store's encoder (a timing only: the other variant's vectors are not the store's)."""
    from ...encoders import get_encoder
    from ...errors import EncoderError

    spec = store.manifest["encoder"]
    if not spec.get("precision"):
        return {}
    out = {}
    for prec in ("fp32", "int8"):
        try:
            enc = get_encoder(spec["name"], precision=prec)
        except EncoderError as e:
            out[prec] = {"error": str(e)}
            continue
        store.search_vectors(enc.encode_query([enc.load(photos[0])]), 10)   # warm
        times = []
        for p in photos:
            t0 = time.perf_counter()
            store.search_vectors(enc.encode_query([enc.load(p)]), 10)
            times.append(time.perf_counter() - t0)
        out[prec] = stats_ms(times)
    return out


def cli_latency(root: Path, photos: list[Path], *, cold: int) -> dict[str, Any]:
    """A fresh ``dressfinder search`` per photo (cold: start, load, answer), and one process answering
    all photos (warm: gaps between its flushed JSON lines)."""
    colds = []
    for p in photos[:cold]:
        t = time.perf_counter()
        proc = subprocess.run([*cli(), "search", str(p), "--store", str(root), "--json", "-k", "10"],
                              capture_output=True, text=True, env=env(), timeout=600)
        colds.append(time.perf_counter() - t)
        if proc.returncode != 0:
            return {"error": proc.stderr.strip()[-500:]}
    proc = subprocess.Popen([*cli(), "search", *map(str, photos), "--store", str(root), "--json", "-k", "10"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env())
    t_start = time.perf_counter()
    arrivals = []
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.strip():
            arrivals.append(time.perf_counter())
    proc.wait(timeout=600)
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:])]
    return {"cold_process": stats_ms(colds),
            "first_answer_ms": round((arrivals[0] - t_start) * 1000, 1) if arrivals else None,
            "warm_per_photo": stats_ms(gaps), "command": f"dressfinder search PHOTO --store {root} --json -k 10"}


def http_latency(root: Path, photos: list[Path], *, warmup: int = 5) -> dict[str, Any]:
    """``dressfinder serve`` on 127.0.0.1; sequential ``POST /api/search`` with each photo (multipart)."""
    import httpx

    port = free_port()
    cmd = [*cli(), "serve", "--store", str(root), "--host", "127.0.0.1", "--port", str(port),
           "--log-level", "warning", "--reload-interval", "0"]
    log = tempfile.TemporaryFile()
    server = subprocess.Popen(cmd, stdout=log, stderr=log, env=env())
    base = f"http://127.0.0.1:{port}"
    try:
        t = time.perf_counter()
        with httpx.Client(base_url=base, timeout=60) as client:
            while True:
                if server.poll() is not None:
                    log.seek(0)
                    return {"error": f"server exited {server.returncode}: {log.read().decode()[-800:]}"}
                try:
                    if client.get("/healthz").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.perf_counter() - t > 600:
                    return {"error": "server not ready after 600 s"}
                time.sleep(0.2)
            ready = time.perf_counter() - t
            blobs = [(p.name, p.read_bytes()) for p in photos]
            for name, data in blobs[:warmup]:
                client.post("/api/search", files={"file": (name, data, "image/jpeg")}, data={"k": "10"})
            lat, took, codes = [], [], {}
            for name, data in blobs:
                t0 = time.perf_counter()
                r = client.post("/api/search", files={"file": (name, data, "image/jpeg")}, data={"k": "10"})
                lat.append(time.perf_counter() - t0)
                codes[r.status_code] = codes.get(r.status_code, 0) + 1
                if r.status_code == 200:
                    took.append(r.json().get("took_ms", 0) / 1000)
            pictures = {kind: post_all(client, blobs) for kind, blobs in picture_queries(photos).items()}
        return {"post_api_search": stats_ms(lat), "server_took": stats_ms(took), "status": codes,
                "startup_seconds": round(ready, 2), "command": " ".join(cmd[1:]).replace(str(port), "PORT"),
                "by_picture": pictures}
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:  # pragma: no cover
            server.kill()
            server.wait()
        log.close()


def picture_queries(photos: list[Path], seed: int = 12) -> dict[str, list[tuple[str, bytes]]]:
    """Region search's two cases (issue 12): a plain photo (a cropped, re-lit catalogue image) and a
    1080x2340 phone screenshot of a social post showing it (tools/scenes.py), as JPEG q90."""
    import io

    import numpy as np

    from ...images import load_image
    from ..scenes import make_social

    def jpeg(im) -> bytes:
        buf = io.BytesIO()
        im.convert("RGB").save(buf, "JPEG", quality=90)
        return buf.getvalue()

    out: dict[str, list[tuple[str, bytes]]] = {"plain_photo": [], "screenshot_1080x2340": []}
    others = [load_image(p, draft=400) for p in photos[-4:]]
    for i, p in enumerate(photos):
        out["plain_photo"].append((p.name, jpeg(photo_variant(p, seed + i))))
        shot, _ = make_social(load_image(p), np.random.default_rng([seed, i]), others, phone=(1080, 2340))
        out["screenshot_1080x2340"].append((p.name, jpeg(shot)))
    return out


def post_all(client, blobs: list[tuple[str, bytes]], warmup: int = 3) -> dict[str, Any]:
    """Sequential ``POST /api/search`` of each picture: latency, and how often a region was used."""
    for name, data in blobs[:warmup]:
        client.post("/api/search", files={"file": (name, data, "image/jpeg")}, data={"k": "10"})
    lat, regions = [], 0
    for name, data in blobs:
        t0 = time.perf_counter()
        r = client.post("/api/search", files={"file": (name, data, "image/jpeg")}, data={"k": "10"})
        lat.append(time.perf_counter() - t0)
        if r.status_code == 200 and (r.json().get("region") or {}).get("kind") not in (None, "whole"):
            regions += 1
    return {**stats_ms(lat), "region_used": regions}
