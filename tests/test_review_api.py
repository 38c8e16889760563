"""The review page's HTTP side: the page and its strict CSP, the JSON endpoints, chips from the store,
and verdicts that need credentials."""

from __future__ import annotations

import base64
import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from plastics_core.api.app import create_app
from plastics_core.sitedb.engine import open_database
from tests import _review_data as d

W1, W2 = "2024-01-01", "2024-04-01"


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.fixture
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setenv("PLASTICS_API_USERS", "ana:s3cret-pw,budi:other")
    monkeypatch.delenv("PLASTICS_API_TOKEN", raising=False)
    url = f"sqlite:///{tmp_path}/sites.sqlite"
    engine = open_database(url)
    d.publish(
        engine,
        {
            W1: d.enriched({"temesi": 0.9, "north": 0.7}),
            W2: d.enriched({"temesi": 0.92, "north": 0.6, "west": 0.5}),
        },
    )
    d.write_store(tmp_path / "store", [W1], truecolor=True)
    d.write_store(tmp_path / "store", [W2], truecolor=False)
    app = create_app(url, str(tmp_path / "store"), engine=engine)
    with TestClient(app) as c:
        yield c


def _queue(client: TestClient) -> list[dict[str, Any]]:
    resp = client.get("/review/api/queue", params={"roi": d.ROI})
    assert resp.status_code == 200, resp.text
    queue: list[dict[str, Any]] = resp.json()["queue"]
    return queue


def test_the_page_is_static_with_a_strict_csp_and_no_inline_script(client: TestClient) -> None:
    resp = client.get("/review")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/html")
    csp = resp.headers["content-security-policy"]
    assert "script-src 'self';" in csp and "default-src 'none'" in csp and "unsafe" not in csp
    page = resp.text
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", page, re.S)
    assert scripts and all('src="/review/' in attrs and body.strip() == "" for attrs, body in scripts)
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page), "nothing from another host"
    assert not re.search(r"<[^>]+\son[a-z]+\s*=", page), "no inline event handlers"
    assert "style=" not in page, "no inline styles"
    js = client.get("/review/static/review.js")
    assert js.status_code == 200 and "javascript" in js.headers["content-type"]
    assert "innerHTML" not in js.text and "insertAdjacentHTML" not in js.text and "eval(" not in js.text
    assert client.get("/review/leaflet/leaflet.js").status_code == 200
    assert client.get("/review/leaflet/leaflet.css").status_code == 200
    assert client.get("/review/static/..%2Fauth.py").status_code == 404
    assert client.get("/review/static/review.html").status_code == 404


def test_queue_and_site_detail_with_chips(client: TestClient) -> None:
    rois = client.get("/review/api/rois").json()["rois"]
    assert [(r["roi"], r["queue"], r["synthetic"]) for r in rois] == [(d.ROI, 3, False)]
    queue = _queue(client)
    assert [round(i["score"], 2) for i in queue] == [0.92, 0.6, 0.5]
    top = queue[0]
    assert top["address"] == "TPA Temesi, Gianyar, Bali" and top["reason"] == "unreviewed"
    detail = client.get("/review/api/site", params={"roi": d.ROI, "site_id": top["site_id"]}).json()
    assert detail["pixel_scores"] == {W1: 0.9, W2: 0.92}
    assert [(c["window"], c["kind"]) for c in detail["chips"]] == [
        (W1, "truecolor"),
        (W1, "heatmap"),
        (W2, "truecolor"),
        (W2, "heatmap"),
    ]
    west, south, east, north = detail["chip_bounds"]
    assert west < top["lon"] < east and south < top["lat"] < north
    assert 0.004 < east - west < 0.008  # 64 px of 10 m = 640 m
    pngs = {}
    for chip in detail["chips"]:
        resp = client.get(chip["url"])
        pngs[(chip["window"], chip["kind"])] = resp
    for key in [(W1, "truecolor"), (W1, "heatmap"), (W2, "heatmap")]:
        assert pngs[key].status_code == 200 and pngs[key].headers["content-type"] == "image/png"
        image = Image.open(io.BytesIO(pngs[key].content))
        assert image.size == (64, 64) and image.mode == "RGBA"
    centre = Image.open(io.BytesIO(pngs[(W1, "heatmap")].content)).getpixel((32, 32))
    corner = Image.open(io.BytesIO(pngs[(W1, "heatmap")].content)).getpixel((1, 1))
    assert sum(centre[:3]) > sum(corner[:3])  # the site (score 0.9) is brighter than the background
    missing = pngs[(W2, "truecolor")]
    assert missing.status_code == 404 and "no cached true-colour composite" in missing.json()["detail"]


def test_verdicts_need_credentials_and_record_the_reviewer(client: TestClient) -> None:
    top = _queue(client)[0]["site_id"]
    body = {"roi": d.ROI, "site_id": top, "verdict": "reject", "note": "</textarea><script>alert(1)</script>"}
    anonymous = client.post("/review/api/verdicts", json=body)
    assert anonymous.status_code == 401 and anonymous.headers["content-type"] == "application/problem+json"
    assert "Basic" in anonymous.headers["www-authenticate"]
    wrong = client.post("/review/api/verdicts", json=body, headers=_basic("ana", "nope"))
    assert wrong.status_code == 401 and "s3cret" not in wrong.text
    foreign = client.post(
        "/review/api/verdicts",
        json=body,
        headers={**_basic("ana", "s3cret-pw"), "Origin": "http://evil.example"},
    )
    assert foreign.status_code == 403
    ok = client.post("/review/api/verdicts", json=body, headers=_basic("ana", "s3cret-pw"))
    assert ok.status_code == 201, ok.text
    assert ok.json()["reviewer"] == "ana" and ok.json()["note"] == body["note"]
    assert top not in [i["site_id"] for i in _queue(client)]
    features = client.get("/sites", params={"roi": d.ROI}).json()["features"]
    verdicts = {f["id"]: f["properties"]["verdict"] for f in features}
    assert verdicts[top] == "reject" and [v for k, v in verdicts.items() if k != top] == [None, None]
    history = client.get("/review/api/site", params={"roi": d.ROI, "site_id": top}).json()["history"]
    assert [(v["verdict"], v["reviewer"], v["note"]) for v in history] == [("reject", "ana", body["note"])]
    bad = client.post(
        "/review/api/verdicts", json={**body, "verdict": "maybe"}, headers=_basic("ana", "s3cret-pw")
    )
    assert bad.status_code == 400
    unknown = client.post(
        "/review/api/verdicts",
        json={**body, "site_id": "8f0000000000000"},
        headers=_basic("ana", "s3cret-pw"),
    )
    assert unknown.status_code == 404
    login = client.get(
        "/review/login", params={"roi": d.ROI}, headers=_basic("budi", "other"), follow_redirects=False
    )
    assert login.status_code == 303 and login.headers["location"] == f"/review?roi={d.ROI}"


@pytest.mark.parametrize(
    "params",
    [
        {"roi": "'; DROP TABLE sites; --", "site_id": "x"},
        {"roi": d.ROI, "site_id": "<script>alert(1)</script>"},
        {"roi": d.ROI, "site_id": "x" * 500},
    ],
)
def test_hostile_ids_are_404_or_400_problems(client: TestClient, params: dict[str, str]) -> None:
    resp = client.get("/review/api/site", params=params)
    assert resp.status_code in (400, 404) and resp.headers["content-type"] == "application/problem+json"
    chip = client.get("/review/api/chip", params={**params, "window": "../../etc", "kind": "heatmap"})
    assert chip.status_code == 400
    assert len(_queue(client)) == 3


@pytest.mark.slow
def test_after_the_demo_the_temesi_candidate_waits_in_the_queue_as_a_synthetic_scene(
    demo_run: tuple[Any, Path],
) -> None:
    from plastics_core.evaluation import nearest_distances_m
    from plastics_core.sitedb.engine import default_database_url

    proc, tmp = demo_run
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "/review?roi=test_patch" in proc.stdout
    app = create_app(default_database_url(str(tmp / "store")), str(tmp / "store"))
    with TestClient(app) as c:
        data = c.get("/review/api/queue", params={"roi": "test_patch"}).json()
        assert data["synthetic"] is True and len(data["queue"]) >= 1
        top = data["queue"][0]
        temesi = (115.35024222376158, -8.562120592268835)  # TPA Temesi, gpw/tpa_points.geojson
        # the planted landfill's blob centre lies ~180 m from the TPA point: found within the recall radius
        assert nearest_distances_m([temesi], [(top["lon"], top["lat"])])[0] < 500
        detail = c.get("/review/api/site", params={"roi": "test_patch", "site_id": top["site_id"]}).json()
        assert detail["synthetic"] is True and detail["contours"]["features"]
        kinds = {ch["kind"] for ch in detail["chips"]}
        assert kinds == {"truecolor", "heatmap"}
        first = next(ch for ch in detail["chips"] if ch["kind"] == "truecolor")
        assert c.get(first["url"]).status_code == 200
        page = c.get("/review").text
        assert "Synthetic demo scene" in page
