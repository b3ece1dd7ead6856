"""What was searched, said by the API, the seed's /upload, the pages and the CLI (issue 12)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
from fastapi.testclient import TestClient
from PIL import Image, ImageDraw

from conftest import REPO
from webfixtures import dress_image, encode, make_app, product_id, web_store  # noqa: F401


@pytest.fixture(scope="module")
def client(web_store):
    with TestClient(make_app(web_store)) as c:
        yield c


def collage(i: int, j: int, gap: int = 40) -> tuple[bytes, list[tuple[float, ...]]]:
    """Two catalogue dresses side by side on a grey collage page with a line of text."""
    a, b = dress_image(i), dress_image(j)
    w, h = a.width + b.width + 3 * gap, a.height + 2 * gap + 30
    page = Image.new("RGB", (w, h), (226, 228, 234))
    page.paste(a, (gap, gap + 30))
    page.paste(b, (2 * gap + a.width, gap + 30))
    ImageDraw.Draw(page).text((gap, 10), "which one for saturday??", fill=(20, 20, 20))
    boxes = [(gap / w, (gap + 30) / h, (gap + a.width) / w, (gap + 30 + a.height) / h),
             ((2 * gap + a.width) / w, (gap + 30) / h, (2 * gap + a.width + b.width) / w, (gap + 30 + b.height) / h)]
    return encode(page, "JPEG", quality=92), boxes


def iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    u = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - ix * iy
    return ix * iy / u


def test_api_says_which_region_it_searched_and_the_others(client):
    data, truth = collage(3, 12)
    r = client.post("/api/search", files={"file": ("c.jpg", data, "image/jpeg")}, data={"k": "3"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["query"]["detect"] is True
    used = body["region"]
    assert used["kind"] == "content" and len(used["box"]) == 4 and used["score"] > 0.9
    assert len(body["regions"]) == 1
    other = body["regions"][0]
    assert other["count"] == len(other["results"]) == 3 and other["results"][0]["rank"] == 1
    for box, first in ((used["box"], body["results"][0]["id"]), (other["box"], other["results"][0]["id"])):
        k = 0 if iou(box, truth[0]) > iou(box, truth[1]) else 1
        assert iou(box, truth[k]) > 0.7
        assert first == product_id((3, 12)[k])


def test_api_detect_false_and_crop(client):
    data, truth = collage(3, 12)
    r = client.post("/api/search", files={"file": ("c.jpg", data, "image/jpeg")}, data={"detect": "false"})
    body = r.json()
    assert body["region"] == {"box": [0.0, 0.0, 1.0, 1.0], "kind": "whole", "score": None, "closeup": False}
    assert body["regions"] == [] and body["query"]["detect"] is False
    crop = ",".join(f"{v:.4f}" for v in truth[1])
    r = client.post("/api/search", files={"file": ("c.jpg", data, "image/jpeg")}, data={"crop": crop})
    body = r.json()
    assert body["region"]["kind"] == "crop" and body["region"]["box"] == pytest.approx(truth[1], abs=1e-4)
    assert body["results"][0]["id"] == product_id(12) and body["regions"] == []
    r = client.post("/api/search", json={"like": product_id(2), "k": 2})
    assert r.json()["region"] is None and r.json()["regions"] == []


def test_openapi_documents_the_regions(client):
    spec = client.get("/openapi.json").json()
    schemas = spec["components"]["schemas"]
    props = schemas["SearchOut"]["properties"]
    assert "region" in props and "regions" in props and "other regions" in props["regions"]["description"]
    assert "fractions" in schemas["RegionOut"]["properties"]["box"]["description"]
    assert "results" in schemas["FoundRegionOut"]["properties"]
    assert '"detect"' in json.dumps(spec["paths"]["/api/search"]["post"]["requestBody"])


def test_seed_upload_finds_a_dress_in_the_collage(client):
    data, _ = collage(5, 10)
    r = client.post("/upload", files={"file": ("c.jpg", data, "image/jpeg")})
    assert r.status_code == 200 and r.headers["content-type"].startswith("image/")
    assert r.headers["X-Dressfinder-Id"].replace("%2F", "/") in (product_id(5), product_id(10))
    assert float(r.headers["X-Dressfinder-Score"]) > 0.9


def test_results_page_draws_the_box_and_the_other_regions(client):
    data, truth = collage(3, 12)
    r = client.post("/search", files={"file": ("c.jpg", data, "image/jpeg")}, data={"k": "6"})
    assert r.status_code == 200
    crop = [float(v) for v in re.search(r'id="query-crop" data-crop="([^"]+)"', r.text).group(1).split(",")]
    assert max(iou(crop, t) for t in truth) > 0.7
    assert len(re.findall(r'class="region-box" data-region="', r.text)) == 1
    assert 'id="search-whole"' in r.text and 'id="refine-form"' in r.text and "Also in your photo" in r.text
    r = client.post("/search", files={"file": ("c.jpg", data, "image/jpeg")}, data={"k": "6", "detect": "false"})
    assert 'id="query-crop"' not in r.text and "region-box" not in r.text


def test_cli_json_has_the_region(web_store, tmp_path):
    data, truth = collage(3, 12)
    q = tmp_path / "collage.jpg"
    q.write_bytes(data)
    run = lambda *a: subprocess.run([sys.executable, "-m", "dressfinder", "search", "--store", str(web_store),  # noqa: E731
                                     "--json", "-k", "2", *a, str(q)], capture_output=True, text=True,
                                    cwd=REPO, check=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    line = json.loads(run().stdout)
    assert line["region"]["kind"] == "content" and max(iou(line["region"]["box"], t) for t in truth) > 0.7
    assert 0.5 < line["region"]["score"] <= 1   # the same {box, kind, score, closeup} as the API's
    assert len(line["regions"]) == 1 and line["regions"][0]["results"][0]["id"] in (product_id(3), product_id(12))
    line = json.loads(run("--no-detect").stdout)
    assert line["region"] == {"box": [0.0, 0.0, 1.0, 1.0], "kind": "whole", "score": None, "closeup": False} and line["regions"] == []


# --------------------------------------------------------------------------- every dress in the picture is tappable

def centre_in(box, truth) -> bool:
    """Whether ``box``'s centre lies inside ``truth`` (the box head's boxes are loose around a drawing)."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    return truth[0] <= cx <= truth[2] and truth[1] <= cy <= truth[3]


def offered(body) -> list[list[float]]:
    """Every box the answer offers: the one searched, the other regions, the other dresses detected."""
    return [body["region"]["box"]] + [r["box"] for r in body["regions"]] + [d["box"] for d in body["detected"]]


def test_detected_keeps_the_head_s_sure_framed_boxes_apart_from_what_was_offered():
    import numpy as np

    from dressfinder.regions import ANCHOR_PEAK, Located, Region, detected

    def region(box, kind):
        return Region(box, 0.5, np.zeros(4, np.float32), kind)

    a, b, c = (0.1, 0.2, 0.3, 0.7), (0.6, 0.2, 0.8, 0.7), (0.4, 0.1, 0.55, 0.4)
    proposed = [(a, 0.7), (b, 0.6), ((0.62, 0.25, 0.8, 0.7), 0.55),   # b again, a little smaller
                (c, ANCHOR_PEAK - 0.01),                              # not sure enough
                ((0.05, 0.05, 0.7, 0.9), 0.8)]                        # a close-up's big box, not framed
    used = region(a, "head")
    assert detected(Located(used, [], proposed=proposed)) == [(b, 0.6)]
    assert detected(Located(used, [region(b, "head")], proposed=proposed)) == []          # offered already
    assert detected(Located(region((0.0, 0.0, 1.0, 1.0), "whole"), [], proposed=proposed)) == [(a, 0.7), (b, 0.6)]
    assert detected(Located(used, [], proposed=None)) == [] == detected(Located(used, [], proposed=[]))


def test_a_scene_with_two_dresses_offers_both(client):
    """A busy scene: catalogue dress 9 on the left, a dress the catalogue does not hold on the right
    (no catalogue product matches it surely, so it is no other region): the shipped box head sees
    both, one is searched, the other comes back as a dress detected, to tap; no results with it."""
    from dressfinder import boxhead
    from dressfinder.regions import ANCHOR_PEAK
    from webfixtures import two_dress_scene

    pic, truth = two_dress_scene()
    seen = [b for b, p in boxhead.shipped()(pic) if p >= ANCHOR_PEAK]
    assert all(any(centre_in(b, t) for b in seen) for t in truth), seen
    r = client.post("/api/search", files={"file": ("two.jpg", encode(pic, "JPEG", quality=92), "image/jpeg")},
                    data={"k": "3"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["regions"] == [] and len(body["detected"]) == 1
    found = body["detected"][0]
    assert set(found) == {"box", "peak"} and ANCHOR_PEAK <= found["peak"] <= 1
    boxes = offered(body)
    assert all(any(centre_in(b, t) for b in boxes) for t in truth), (boxes, truth)
    assert not any(centre_in(body["region"]["box"], t) and centre_in(found["box"], t) for t in truth)
    # the page: the searched box, and the other dress as a dashed box and a chip, no results yet
    r = client.post("/search", files={"file": ("two.jpg", encode(pic, "JPEG", quality=92), "image/jpeg")},
                    data={"k": "6"})
    assert r.status_code == 200 and 'id="query-crop"' in r.text and "Also in your photo" in r.text
    region = ",".join(str(v) for v in found["box"])
    assert r.text.count(f'class="region-box detected" data-region="{region}"') == 1
    assert f'class="chip region-chip detected" data-region="{region}"' in r.text
    # tapping it sends its box as the crop: that box alone is searched
    r = client.post("/api/search", files={"file": ("two.jpg", encode(pic, "JPEG", quality=92), "image/jpeg")},
                    data={"crop": region})
    assert r.json()["region"]["kind"] == "crop" and r.json()["detected"] == []


def test_nothing_more_is_offered_when_the_box_head_did_not_run(client):
    """The whole photo matched surely (a catalogue photo), or a screenshot's block won: no head boxes."""
    r = client.post("/api/search", files={"file": ("d.png", encode(dress_image(4), "PNG"), "image/png")})
    assert r.json()["region"]["kind"] == "whole" and r.json()["detected"] == []
    data, _ = collage(3, 12)
    r = client.post("/api/search", files={"file": ("c.jpg", data, "image/jpeg")})
    assert r.json()["region"]["kind"] == "content" and r.json()["detected"] == []


def real_pair() -> tuple[Image.Image, Image.Image]:
    """Two real dress photos (../shared/data's deepfashion-dresses), or skip."""
    from conftest import shared_data

    folder = shared_data() / "deepfashion-dresses"
    firsts = [min(d.glob("*.jpg")) for d in sorted(folder.glob("*")) if d.is_dir() and any(d.glob("*.jpg"))]
    if len(firsts) < 2:
        pytest.skip("no deepfashion-dresses photos in ../shared/data")
    return Image.open(firsts[0]).convert("RGB"), Image.open(firsts[1]).convert("RGB")    # two products


def test_a_scene_with_two_real_dress_photos_offers_both(client):
    """Two real photos (none in the test catalogue: nothing matches them surely) in a busy room."""
    from webfixtures import two_dress_scene

    a, b = real_pair()
    a.thumbnail((360, 360))
    b.thumbnail((360, 360))
    pic, truth = two_dress_scene(a, b, seed=1)
    r = client.post("/api/search", files={"file": ("two.jpg", encode(pic, "JPEG", quality=92), "image/jpeg")},
                    data={"k": "3"})
    body = r.json()
    boxes = offered(body)
    assert len(boxes) == 2 and all(any(centre_in(b, t) for b in boxes) for t in truth), (boxes, truth)
