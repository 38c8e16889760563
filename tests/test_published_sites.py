"""``published_sites`` on the real graph output: the session's shared graph run (tests/conftest.py
``graph_run``) publishes test_patch's registry into the embedded database beside its store."""

from __future__ import annotations

import json
from pathlib import Path

from plastics_core.sitedb import queries
from plastics_core.sitedb.engine import default_database_url, open_database
from plastics_core.storage.folders import read_gdf
from tests._graph_run import GraphRun


def _materializations(graph_run: GraphRun, asset: str) -> list[dict[str, object]]:
    out = []
    for _, entry in graph_run.records:
        event = entry.dagster_event
        if event is not None and event.is_step_materialization and event.asset_key.path[-1] == asset:
            out.append({k: v.value for k, v in event.materialization.metadata.items()})
    return out


def test_the_graph_publishes_its_registry_to_the_embedded_database(graph_run: GraphRun) -> None:
    (meta,) = _materializations(graph_run, "published_sites")
    url = default_database_url(str(graph_run.store))
    assert url == f"sqlite:///{graph_run.store.parent / 'sites.sqlite'}"
    assert meta["database"] == url and meta["run_hash"] == graph_run.summary.run_hash
    registry_file = graph_run.store / "site_registry" / "test_patch" / f"{graph_run.summary.run_hash}.geojson"
    registry = read_gdf(registry_file.read_bytes())
    assert meta["sites_added"] == len(registry) and meta["updated"] == 0 and meta["unchanged"] == 0
    engine = open_database(url)
    try:
        (roi,) = queries.list_rois(engine)
        assert (roi["roi"], roi["run_hash"], roi["sites"]) == (
            "test_patch",
            graph_run.summary.run_hash,
            len(registry),
        )
        got = queries.sites_in_bbox(engine, queries.BBox(-180, -90, 180, 90), limit=1000)
        assert sorted(s["site_id"] for s in got) == sorted(registry["site_id"])
        run = queries.get_run(engine, graph_run.summary.run_hash)
        assert run is not None and json.loads(run["params"])["tilesize"] == 256
        assert all(len(sha) == 64 for sha in json.loads(run["model_checksums"]).values())
        for site in got:
            contours = queries.site_contours(engine, site["site_id"], site["run_hash"])
            assert all(c["geometry"].geom_type == "MultiPolygon" and c["area_km2"] > 0 for c in contours)
            assert queries.site_detections(engine, site["site_id"], site["run_hash"])
    finally:
        engine.dispose()
    assert not Path(str(graph_run.store / "sites.sqlite")).exists()  # beside the store, not in it


def test_plastics_serve_serves_the_graph_s_preview_and_sites(graph_run: GraphRun) -> None:
    from fastapi.testclient import TestClient

    from plastics_core.api.app import create_app

    (meta,) = _materializations(graph_run, "preview")
    page = Path(str(meta["preview"]))
    relative = page.relative_to(graph_run.store).as_posix()
    assert relative.startswith("preview/test_patch/")
    app = create_app(default_database_url(str(graph_run.store)), str(graph_run.store))
    with TestClient(app) as client:
        served = client.get(f"/{relative}")
        assert served.status_code == 200 and served.headers["content-type"].startswith("text/html")
        assert served.content == page.read_bytes()
        sites = client.get("/sites", params={"roi": "test_patch"}).json()["features"]
        for feature in sites:
            assert client.get(feature["properties"]["ref"]).status_code == 200
