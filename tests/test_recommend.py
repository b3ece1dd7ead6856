"""`dressfinder recommend`: every product's k most similar products — self-exclusion, exact duplicates
left out unless asked, k, rank order, batch-independence, filters, CSV/JSON, and agreement with
`Store.similar` and the web API's `GET /api/products/{id}/similar`."""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from pathlib import Path

import pytest

from conftest import write_catalog_with_duplicates
from dressfinder.cli import main

N = 20
DUPS = {"sku-003": {"sku-dup-a", "sku-dup-b"}, "sku-dup-a": {"sku-003", "sku-dup-b"},
        "sku-dup-b": {"sku-003", "sku-dup-a"},
        # same pixels in other bytes (PNG of the decoded JPEG): cosine 1, a duplicate too
        "sku-007": {"sku-same-pixels"}, "sku-same-pixels": {"sku-007"}}


@pytest.fixture(scope="module")
def dup_store(tmp_path_factory) -> Path:
    """20 dresses, two byte-for-byte copies of dress 3, and dress 7's pixels saved as a PNG."""
    from dressfinder.store import Store

    csv_path = write_catalog_with_duplicates(tmp_path_factory.mktemp("rec-catalog"), n=N)
    root = tmp_path_factory.mktemp("rec-stores") / "flat"
    Store.build(csv_path, root, encoder="effnet-lite0", index="flat", progress=False)
    return root


def read_csv(path: Path) -> dict[str, list[tuple[str, float]]]:
    out: dict[str, list[tuple[str, float]]] = defaultdict(list)
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        out[r["product_id"]].append((int(r["rank"]), r["similar_id"], float(r["score"])))
    for pid, hits in out.items():
        assert [h[0] for h in hits] == list(range(1, len(hits) + 1)), pid   # ranks 1..n, in file order
    return {pid: [(sid, s) for _, sid, s in hits] for pid, hits in out.items()}


@pytest.fixture(scope="module")
def exported(dup_store, tmp_path_factory):
    out = tmp_path_factory.mktemp("rec-out") / "similar.csv"
    assert main(["recommend", "--store", str(dup_store), "--k", "5", "--out", str(out), "-q"]) == 0
    return read_csv(out)


def test_every_product_gets_k_others_best_first(dup_store, exported):
    from dressfinder.store import Store

    store = Store.open(dup_store)
    ids = [p.id for p in store.products()]
    assert len(ids) == N + 3 and set(exported) == set(ids)
    for pid, hits in exported.items():
        assert len(hits) == 5, pid
        sims = [s for s, _ in hits]
        assert pid not in sims                                   # never itself
        assert not (set(sims) & DUPS.get(pid, set())), pid       # never its duplicates
        assert len(set(sims)) == 5
        scores = [sc for _, sc in hits]
        assert scores == sorted(scores, reverse=True), pid       # best first
        assert all(-1.0 <= sc <= 1.0 + 1e-6 for sc in scores)


def test_include_duplicates(dup_store, tmp_path):
    out = tmp_path / "with-dups.csv"
    assert main(["recommend", "--store", str(dup_store), "--k", "5", "--out", str(out), "--include-duplicates",
                 "-q"]) == 0
    rec = read_csv(out)
    assert {s for s, _ in rec["sku-003"][:2]} == {"sku-dup-a", "sku-dup-b"}
    assert all(sc > 0.9999 for _, sc in rec["sku-003"][:2])
    assert rec["sku-007"][0][0] == "sku-same-pixels"
    assert all(pid not in [s for s, _ in hits] for pid, hits in rec.items())   # still never itself


def test_agrees_with_store_similar(dup_store, exported):
    from dressfinder.store import Store

    store = Store.open(dup_store)
    for pid, hits in exported.items():
        got = [(h.id, round(h.score, 6)) for h in store.similar(pid, 5)]
        assert [g[0] for g in got] == [s for s, _ in hits], pid
        assert [g[1] for g in got] == pytest.approx([sc for _, sc in hits], abs=2e-6)
    # and the duplicates are there when asked for
    assert {h.id for h in store.similar("sku-dup-a", 2, include_duplicates=True)} == {"sku-003", "sku-dup-b"}


def test_agrees_with_an_exhaustive_ranking_of_the_stored_vectors(dup_store, exported):
    """Against numpy over every stored vector (the export and Store.similar share search.similar_rows):
    each product's 5 best by cosine, leaving out itself and the duplicates this file lists (DUPS)."""
    import numpy as np

    from dressfinder.store import Store

    snap = Store.open(dup_store).snapshot()
    rows = snap.rows()
    ids = [snap.records([int(r)])[int(r)][0].id for r in rows]
    vec = snap.vectors(rows).astype(np.float64)
    vec /= np.linalg.norm(vec, axis=1, keepdims=True)
    cos = vec @ vec.T
    for a, pid in enumerate(ids):
        others = [b for b in range(len(ids)) if b != a and ids[b] not in DUPS.get(pid, set())]
        best = sorted(others, key=lambda b: (-round(cos[a, b], 12), rows[b]))[:5]   # ties (copies): by row
        assert [s for s, _ in exported[pid]] == [ids[b] for b in best], pid
        assert [sc for _, sc in exported[pid]] == pytest.approx([cos[a, b] for b in best], abs=2e-6)


def test_agrees_with_web_api(dup_store, exported):
    pytest.importorskip("dressfinder.web")
    from fastapi.testclient import TestClient

    from dressfinder.web import create_app

    with TestClient(create_app(str(dup_store))) as client:
        for pid, hits in exported.items():
            r = client.get(f"/api/products/{pid}/similar", params={"k": 5})
            assert r.status_code == 200, r.text
            results = r.json()["results"]
            assert [h["id"] for h in results] == [s for s, _ in hits], pid
            assert [h["rank"] for h in results] == [1, 2, 3, 4, 5]
            assert [h["score"] for h in results] == pytest.approx([sc for _, sc in hits], abs=2e-6)


def test_batch_size_does_not_change_the_ranking(dup_store, tmp_path):
    texts = []
    for batch in (1, 7, 256):
        out = tmp_path / f"b{batch}.csv"
        assert main(["recommend", "--store", str(dup_store), "--k", "8", "--out", str(out), "--batch", str(batch),
                     "-q"]) == 0
        texts.append(out.read_text())
    assert texts[0] == texts[1] == texts[2]


def test_json_matches_csv(dup_store, exported, tmp_path):
    out = tmp_path / "similar.json"
    assert main(["recommend", "--store", str(dup_store), "--k", "5", "--out", str(out), "-q"]) == 0
    data = json.loads(out.read_text())
    assert set(data) == set(exported)
    for pid, items in data.items():
        assert [(i["id"], i["score"]) for i in items] == [(s, pytest.approx(sc, abs=1e-6)) for s, sc in exported[pid]]


def test_k_larger_than_the_store(dup_store, tmp_path):
    out = tmp_path / "all.csv"
    assert main(["recommend", "--store", str(dup_store), "--k", "100", "--out", str(out), "-q"]) == 0
    rec = read_csv(out)
    total = N + 3
    for pid, hits in rec.items():
        assert len(hits) == total - 1 - len(DUPS.get(pid, ())), pid


def test_filters_restrict_the_recommendations(dup_store, tmp_path):
    from dressfinder.store import Store

    shop = {p.id: p.shop for p in Store.open(dup_store).products()}
    out = tmp_path / "shop-a.csv"
    assert main(["recommend", "--store", str(dup_store), "--k", "3", "--shop", "shop-a", "--out", str(out),
                 "-q"]) == 0
    rec = read_csv(out)
    assert len(rec) == N + 3
    assert all(shop[s] == "shop-a" for hits in rec.values() for s, _ in hits)
    assert all(len(hits) == 3 for hits in rec.values())


def test_ivf_store_export_and_similar_agree(catalog_dir, tmp_path):
    """The seed's clusters: a product sees only its own cluster (nprobe 1), so some get fewer than k."""
    from dressfinder.tools.recommend import export
    from dressfinder.store import Store

    store = Store.build(catalog_dir / "catalog.csv", tmp_path / "ivf", encoder="effnet-lite0", index="ivf",
                        index_params={"nlist": 3}, progress=False)
    summary = export(store, tmp_path / "ivf.csv", k=6, progress=False, batch=5)
    assert summary["products"] == 24
    rec = read_csv(tmp_path / "ivf.csv")
    for pid in (p.id for p in store.products()):
        hits = rec.get(pid, [])
        assert [h.id for h in store.similar(pid, 6)] == [s for s, _ in hits]
        assert pid not in [s for s, _ in hits] and len(hits) <= 6


def test_cli_errors_and_atomic_output(dup_store, tmp_path, capsys):
    out = tmp_path / "x.csv"
    out.write_text("old contents")
    assert main(["recommend", "--store", str(dup_store), "--k", "2", "--out", str(out), "-q"]) == 0
    assert out.read_text().startswith("product_id,rank,similar_id,score\n")
    assert "wrote 46 recommendations for 23 products" in capsys.readouterr().err
    assert main(["recommend", "--store", str(dup_store), "--out", str(tmp_path / "x.parquet"), "-q"]) == 2
    assert "name it .csv or .json" in capsys.readouterr().err
    assert main(["recommend", "--store", str(dup_store), "--k", "0", "--out", str(out), "-q"]) == 2
    assert main(["recommend", "--store", str(tmp_path / "nope"), "--out", str(out), "-q"]) == 2
    assert main(["recommend", "--store", str(dup_store), "--out", str(tmp_path / "no" / "dir.csv"), "-q"]) == 2
    assert main(["recommend", "--store", str(dup_store), "--format", "json", "--out", str(tmp_path / "y.txt"),
                 "-q"]) == 0
    assert json.loads((tmp_path / "y.txt").read_text())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.csv", "y.txt"]   # no temporary files left
