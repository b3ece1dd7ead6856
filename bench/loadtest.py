"""Load test: N concurrent clients for T seconds of mixed traffic against a local server.

    python bench/loadtest.py --clients 16 --seconds 60 [--store S] [--catalog DIR_OR_CSV] [--writes 0.10]
                             [--readme README.md]

Starts `dressfinder serve` on 127.0.0.1 (never another address) on a store (``--store``, copied;
else built from ``--catalog``; else from ../shared/data/f21-dresses when present, else from
generated images), then runs the mix:
  45% POST /api/search (a real photo, multipart)   25% POST /upload (the seed's call)
  20% GET /api/products/{id}/similar               10% POST /api/products + DELETE (API key)
(``--writes W`` sets the last share, the reads keep their proportions; ``--writes 0``: read-only)
and reports throughput, p50/p99 latency per kind, status counts, and the server's memory
(RSS) over time. Exits non-zero on any 5xx other than 503 (the deliberate overload answer).
Writes bench/out/loadtest.json and bench/out/loadtest.md, and with ``--readme`` the README's
``loadtest`` block (the figures, the store, the machine, the date and this command).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def make_store(workdir: Path, catalog: str | None) -> tuple[Path, list[bytes], str]:
    sys.path.insert(0, str(REPO))
    from dressfinder.store import Store

    if catalog is None:
        f21 = SHARED / "f21-dresses" / "catalog.csv"
        if f21.is_file():
            catalog, source = str(f21), "../shared/data/f21-dresses"
        else:
            sys.path.insert(0, str(REPO / "tests"))
            from conftest import write_catalog

            catalog, source = str(write_catalog(workdir / "catalog", n=120)), "generated images"
    else:
        source = catalog
    store = workdir / "store"
    Store.build(catalog, store, progress=False)
    photos = []
    s = Store.open(store)
    for p in list(s.products())[:40]:
        photos.append(s.image_file(p.id).read_bytes())
    return store, photos, f"{len(s):,} products built from {source}"


async def run_load(base: str, clients: int, seconds: float, photos: list[bytes], ids: list[str],
                   api_key: str, server_pid: int, writes: float = 0.10) -> dict:
    reads = 1.0 - writes
    lat: dict[str, list[float]] = {k: [] for k in ("search", "upload", "similar", "add", "delete")}
    statuses: dict[str, int] = {}
    memory = []
    stop = time.monotonic() + seconds
    rng = random.Random(0)
    added = 0

    async def one(client: httpx.AsyncClient, cid: int):
        nonlocal added
        while time.monotonic() < stop:
            r = rng.random()
            photo = photos[rng.randrange(len(photos))]
            t0 = time.perf_counter()
            if r < 0.5 * reads:
                kind = "search"
                resp = await client.post("/api/search", files={"file": ("q.jpg", photo, "image/jpeg")},
                                         data={"k": "10"})
            elif r < 0.7778 * reads:
                kind = "upload"
                resp = await client.post("/upload", files={"file": ("q.jpg", photo, "image/jpeg")})
            elif r < reads:
                kind = "similar"
                resp = await client.get(f"/api/products/{ids[rng.randrange(len(ids))]}/similar", params={"k": 10})
            else:
                kind = "add"
                added += 1
                pid = f"load-{cid}-{added}"
                resp = await client.post("/api/products", files={"file": ("p.jpg", photo, "image/jpeg")},
                                         data={"id": pid, "title": "load test", "price": "9.99"},
                                         headers={"Authorization": f"Bearer {api_key}"})
                lat[kind].append(time.perf_counter() - t0)
                statuses[f"{kind} {resp.status_code}"] = statuses.get(f"{kind} {resp.status_code}", 0) + 1
                kind = "delete"
                t0 = time.perf_counter()
                resp = await client.delete(f"/api/products/{pid}", headers={"Authorization": f"Bearer {api_key}"})
            lat[kind].append(time.perf_counter() - t0)
            statuses[f"{kind} {resp.status_code}"] = statuses.get(f"{kind} {resp.status_code}", 0) + 1

    async def sample_memory():
        while time.monotonic() < stop:
            memory.append(round(rss_mb(server_pid), 1))
            await asyncio.sleep(1.0)

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as client:
        t0 = time.perf_counter()
        await asyncio.gather(sample_memory(), *(one(client, c) for c in range(clients)))
        wall = time.perf_counter() - t0
    total = sum(len(v) for v in lat.values())
    summary = {k: {"count": len(v), "p50_ms": round(1000 * float(np.percentile(v, 50)), 1),
                   "p99_ms": round(1000 * float(np.percentile(v, 99)), 1)} for k, v in lat.items() if v}
    return {"clients": clients, "seconds": round(wall, 1), "writes": writes, "requests": total,
            "throughput_rps": round(total / wall, 1), "latency": summary, "statuses": dict(sorted(statuses.items())),
            "server_5xx_not_503": sum(n for k, n in statuses.items() if k.split()[1].startswith("5")
                                      and not k.endswith("503")),
            "memory_mb": {"start": memory[0] if memory else None, "max": max(memory) if memory else None,
                          "end": memory[-1] if memory else None, "samples": memory}}


def to_markdown(res: dict, machine: str) -> str:
    lines = [f"Load test: {res['clients']} concurrent clients for {res['seconds']} s against 127.0.0.1 on a store of "
             f"{res['store']}; {res.get('writes', 0.10):.0%} of requests add a product (then delete it). "
             f"{machine}. Measured by `{res['command']}`.",
             "", f"Throughput: **{res['throughput_rps']} requests/s** ({res['requests']} requests); "
             f"5xx other than 503: **{res['server_5xx_not_503']}**; server RSS "
             f"{res['memory_mb']['start']} MB at start, {res['memory_mb']['max']} MB max, {res['memory_mb']['end']} MB at end.",
             "", "| request | count | p50 ms | p99 ms |", "|---|---:|---:|---:|"]
    for k, v in res["latency"].items():
        lines.append(f"| {k} | {v['count']} | {v['p50_ms']} | {v['p99_ms']} |")
    lines += ["", "Status codes: " + ", ".join(f"{k}: {n}" for k, n in res["statuses"].items())]
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--store", default=None, help="use this store (a copy is made: the test adds and deletes)")
    ap.add_argument("--catalog", default=None, help="build the store from this catalogue")
    ap.add_argument("--writes", type=float, default=0.10,
                    help="share of requests that add a product (each followed by its delete); default 0.10")
    ap.add_argument("--out", default=str(REPO / "bench" / "out"))
    ap.add_argument("--readme", default=None, help="also write this file's loadtest block (README.md)")
    a = ap.parse_args()
    if a.clients > 64 or a.seconds > 600:
        ap.error("bounded: at most 64 clients and 600 s")
    if not 0.0 <= a.writes <= 1.0:
        ap.error("--writes is a share between 0 and 1")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if a.store:
            import shutil

            store = tmp / "store"
            shutil.copytree(a.store, store)
            sys.path.insert(0, str(REPO))
            from dressfinder.store import Store

            s = Store.open(store)
            photos = [s.image_file(p.id).read_bytes() for p in list(s.products())[:40]]
            source = f"{len(s):,} products (a copy of {a.store})"
        else:
            store, photos, source = make_store(tmp, a.catalog)
        sys.path.insert(0, str(REPO))
        from dressfinder.store import Store

        ids = [p.id for p in Store.open(store).products()]
        port, key = free_port(), "loadtest-key"
        env = {**os.environ, "DRESSFINDER_API_KEY": key, "PYTHONWARNINGS": "ignore"}
        server = subprocess.Popen([sys.executable, "-m", "dressfinder", "serve", "--store", str(store),
                                   "--host", "127.0.0.1", "--port", str(port)], env=env, cwd=REPO,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if server.poll() is not None or time.monotonic() > deadline:
                    print("server did not start:", server.stderr.read()[-2000:], file=sys.stderr)
                    return 1
                time.sleep(0.3)
            # warm up (the encoder loads on first use), so memory is compared from a steady state
            for photo in photos[:3]:
                httpx.post(base + "/api/search", files={"file": ("w.jpg", photo, "image/jpeg")}, timeout=120)
            load_before = os.getloadavg()[0]
            res = asyncio.run(run_load(base, a.clients, a.seconds, photos, ids, key, server.pid, a.writes))
        finally:
            server.terminate()
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
    from dressfinder.tools.machine import describe_machine

    res["store"] = source
    res["command"] = "python bench/loadtest.py " + " ".join(sys.argv[1:])
    machine = (f"{describe_machine()}; {time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC; load average "
               f"{load_before:.1f} at the start")
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "loadtest.json").write_text(json.dumps(res, indent=2))
    md = to_markdown(res, machine)
    (out / "loadtest.md").write_text(md)
    print(md)
    if a.readme:
        from dressfinder.tools.splice import splice

        splice(Path(a.readme), md, "loadtest")
    return 0 if res["server_5xx_not_503"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
