"""Review verdicts feed back into the site registry, ``plastics sites`` and the preview map: read
from a real SQLite site database (published by the real publication code), never required."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
from pathlib import Path

import geopandas as gpd
import pytest
from dagster import DagsterInstance, ExecuteInProcessResult, materialize
from shapely.geometry import box

from plastics_core.method.site_registry import build_site_registry, format_registry_table, with_verdicts
from plastics_core.report.preview import preview_data
from plastics_core.report.preview_layers import site_rows
from plastics_core.sitedb.engine import open_database
from plastics_core.sitedb.site_verdicts import read_site_verdicts
from plastics_core.sitedb.verdicts import set_verdict
from plastics_core.storage.outputs import geojson_bytes, read_geojson
from plastics_core.storage.store import atomic_write, store_path
from plastics_dagster.assets import DETECT_ASSETS
from plastics_dagster.assets.preview import preview_assets, registry_paths, site_registry
from plastics_dagster.config import DetectionParams
from plastics_dagster.definitions import default_resources
from plastics_dagster.registry import roi_hash, roi_key
from plastics_dagster.resources import ImagerySourceResource, StoreResource
from tests import _review_data as r

W1, W2 = "2024-01-01", "2024-04-01"
NOW = dt.datetime(2024, 5, 1, 12, tzinfo=dt.UTC)
#: Temesi detected again in W2 one H3 cell away (0.002 deg east): the registry keeps its first id
WINDOWS = {
    W1: r.enriched({"temesi": 0.62, "north": 0.55, "west": 0.41}),
    W2: r.enriched({"temesi": 0.71, "north": 0.52}, jitter=0.002),
}


def _ids(name: str) -> list[str]:
    return [str(r.enriched({name: 0.5}, jitter=j)["site_id"].iloc[0]) for j in (0.0, 0.002)]


def test_registry_rows_carry_the_newest_verdict_of_any_of_their_ids() -> None:
    temesi_w1, temesi_w2 = _ids("temesi")
    north_w1, _ = _ids("north")
    assert temesi_w1 != temesi_w2, "the W2 detection must be a different (neighbouring) cell"
    per_window = {w: (g, None) for w, g in WINDOWS.items()}
    plain = build_site_registry(per_window)
    assert set(plain["verdict"]) == {"unreviewed"}  # no database: every site unreviewed
    # oldest first: Temesi confirmed under its W2 id after a reject under its registry id
    verdicts = {temesi_w1: "reject", north_w1: "unsure", temesi_w2: "confirm"}
    reg = build_site_registry(per_window, verdicts).set_index("name")
    assert reg.loc["temesi", "site_id"] == temesi_w1
    assert reg.loc["temesi", "verdict"] == "confirmed"
    assert reg.loc["north", "verdict"] == "unsure" and reg.loc["west", "verdict"] == "unreviewed"
    # a confirmed site is tracked over time: its score and windows of each detection
    assert json.loads(reg.loc["temesi", "pixel_scores"]) == {W1: 0.62, W2: 0.71}
    assert reg.loc["temesi", "n_windows"] == 2 and reg.loc["temesi", "status"] == "persistent"
    # the same labels applied afterwards (a stored registry read by `plastics sites`)
    rejected = with_verdicts(plain, {temesi_w2: "reject"}).set_index("name")
    assert (
        rejected.loc["temesi", "verdict"] == "rejected" and rejected.loc["north", "verdict"] == "unreviewed"
    )
    table = format_registry_table(with_verdicts(plain, {temesi_w2: "reject"}))
    assert table.splitlines()[-1] == "3 sites: 0 new, 2 persistent, 1 gone; 1 rejected, 2 unreviewed"
    assert with_verdicts(plain.iloc[0:0], verdicts).empty


def test_read_site_verdicts_from_the_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'sites.sqlite'}"
    assert read_site_verdicts(url, r.ROI) == {}
    assert not (tmp_path / "sites.sqlite").exists(), "reading never creates a database"
    engine = open_database(url)
    try:
        assert read_site_verdicts(url, r.ROI) == {}  # published nothing, no verdict: empty, no error
        r.publish(engine, WINDOWS)
        temesi_w1, temesi_w2 = _ids("temesi")
        set_verdict(engine, r.ROI, temesi_w1, "reject", "ana", "a quarry", now=NOW)
        first = read_site_verdicts(url, r.ROI)
        # the registry id and the id of its W2 detection both carry the verdict
        assert first == {temesi_w1: "reject", temesi_w2: "reject"}
        north_w1, _ = _ids("north")
        set_verdict(engine, r.ROI, north_w1, "confirm", "ana", now=NOW)
        set_verdict(engine, r.ROI, temesi_w1, "confirm", "budi", "it is TPA Temesi", now=NOW)
        latest = read_site_verdicts(url, r.ROI)
        assert latest[temesi_w1] == latest[temesi_w2] == "confirm" and latest[north_w1] == "confirm"
        assert list(latest)[-1] in (temesi_w1, temesi_w2), "ordered oldest verdict first"
        assert read_site_verdicts(url, "another_roi") == {}
    finally:
        engine.dispose()


def test_preview_rows_and_popups_show_the_verdict_as_text() -> None:
    temesi_w1, _ = _ids("temesi")
    north_w1, _ = _ids("north")
    enriched = WINDOWS[W2]  # Temesi's W2 id is a neighbour of the id its verdict was given to
    rows = {
        s.name: s.verdict for s in site_rows(None, enriched, None, {temesi_w1: "reject", north_w1: "unsure"})
    }
    assert rows == {"temesi": "rejected", "north": "unsure"}
    assert {s.verdict for s in site_rows(None, enriched)} == {"unreviewed"}
    data = preview_data(None, None, None, None, None, enriched, "t", {temesi_w1: "reject"})
    by_id = {row["site_id"]: row for row in data["table"]["rows"]}
    columns = [c[0] for c in data["table"]["columns"]]
    temesi = next(row for row in by_id.values() if row["verdict"] == "rejected")
    assert temesi["cells"][columns.index("verdict")] == ["rejected", None]
    items = {item["title"]: item for item in data["sites"]["items"]}
    assert items[temesi["site_id"]]["verdict"] == "rejected"
    assert "verdict: rejected" in items[temesi["site_id"]]["lines"]
    assert sorted(item["verdict"] for item in items.values()) == ["rejected", "unreviewed"]


@pytest.fixture()
def store_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, str, DagsterInstance, dict]:
    monkeypatch.delenv("PLASTICS_DATABASE_URL", raising=False)
    store = tmp_path / "store"
    root = store_path(str(store))
    area = gpd.GeoDataFrame(geometry=[box(115.28, -8.60, 115.42, -8.50)], crs="EPSG:4326")
    atomic_write(roi_key(root, r.ROI), geojson_bytes(area))
    imagery = ImagerySourceResource(kind="synthetic")
    run_hash = DetectionParams().run_hash(imagery.source_name(), roi_hash(root, r.ROI))
    for window, sites in WINDOWS.items():
        path = root / "enriched_sites" / r.ROI / window / f"{run_hash}.geojson"
        atomic_write(path, geojson_bytes(sites))
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("roi", [r.ROI])
    resources = default_resources(store=StoreResource(location=str(store)), imagery=imagery)
    return store, run_hash, instance, resources


def _materialize(instance: DagsterInstance, resources: dict) -> ExecuteInProcessResult:
    result = materialize(
        [*DETECT_ASSETS, *preview_assets],
        selection=[site_registry],
        instance=instance,
        resources=resources,
        partition_key=r.ROI,
    )
    assert result.success
    return result


def test_site_registry_asset_reads_verdicts_through_the_database_resource(
    store_env: tuple[Path, str, DagsterInstance, dict],
) -> None:
    store, run_hash, instance, resources = store_env
    database = store.parent / "sites.sqlite"  # the default: beside a local store
    first = _materialize(instance, resources)
    meta = first.asset_materializations_for_node("site_registry")[0].metadata
    assert meta["unreviewed"].value == 3 and meta["rejected"].value == 0
    assert not database.exists(), "a registry without a database creates none"
    engine = open_database(f"sqlite:///{database}")
    try:
        r.publish(engine, WINDOWS, run=run_hash)
        temesi_w1, _ = _ids("temesi")
        set_verdict(engine, r.ROI, temesi_w1, "reject", "ana", "a quarry", now=NOW)
    finally:
        engine.dispose()
    second = _materialize(instance, resources)
    meta = second.asset_materializations_for_node("site_registry")[0].metadata
    assert meta["rejected"].value == 1 and meta["unreviewed"].value == 2
    gj, csv = (Path(p.path) for p in registry_paths(store_path(str(store)), r.ROI, run_hash))
    reg = read_geojson(gj).set_index("name")
    assert reg.loc["temesi", "verdict"] == "rejected" and reg.loc["north", "verdict"] == "unreviewed"
    assert csv.read_text().splitlines()[0].endswith(",address,verdict")


@pytest.mark.browser
def test_rejected_site_is_drawn_grey_and_dashed_in_chromium(tmp_path: Path) -> None:
    from plastics_core.report.preview import build_preview_html
    from tests import _preview_data as d
    from tests.test_browser import FLAGS, _chromium, _run

    exe = _chromium()
    rejected, kept = (str(s) for s in d.enriched()["site_id"])
    page = build_preview_html(
        d.roi(), None, None, None, None, d.enriched(), "verdicts", {rejected: "reject", kept: "confirm"}
    )
    path = tmp_path / "preview.html"
    path.write_text(page, encoding="utf-8")
    proc = _run(
        [exe, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", path.as_uri()], tmp_path
    )
    dom = proc.stdout
    assert proc.returncode == 0 and dom, proc.stderr[-2000:]
    assert len(re.findall(r'class="[^"]*plastics-verdict-rejected[^"]*"', dom)) == 1
    assert '<div class="plastics-pin plastics-pin-rejected"></div>' in dom
    assert '<div class="plastics-pin plastics-pin-confirmed"></div>' in dom
    assert re.search(
        rf'<tr class="plastics-site-row" data-site-id="{re.escape(rejected)}" data-verdict="rejected"', dom
    )
    assert re.search(r"<td>rejected</td>", dom) and re.search(r"<td>confirmed</td>", dom)


def test_plastics_sites_shows_live_verdicts(store_env: tuple[Path, str, DagsterInstance, dict]) -> None:
    from click.testing import CliRunner

    from plastics_dagster.cli import cli

    store, run_hash, _, _ = store_env

    def sites(*args: str) -> str:
        result = CliRunner().invoke(
            cli,
            ["sites", "--roi", r.ROI, "--store", str(store), "--run-hash", run_hash, *args],
            env={"PLASTICS_PROGRESS": "0"},
        )
        assert result.exit_code == 0, result.output
        return result.stdout

    assert sites().splitlines()[-1] == "3 sites: 0 new, 2 persistent, 1 gone; 3 unreviewed"
    engine = open_database(f"sqlite:///{store.parent / 'sites.sqlite'}")
    try:
        r.publish(engine, WINDOWS, run=run_hash)
        set_verdict(engine, r.ROI, _ids("temesi")[0], "reject", "ana", "a quarry", now=NOW)
    finally:
        engine.dispose()
    table = sites()
    assert table.splitlines()[-1] == "3 sites: 0 new, 2 persistent, 1 gone; 1 rejected, 2 unreviewed"
    rows = {row["name"]: row["verdict"] for row in csv.DictReader(io.StringIO(sites("--csv")))}
    assert rows == {"temesi": "rejected", "north": "unreviewed", "west": "unreviewed"}
