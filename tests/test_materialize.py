"""Full materialize() of the graph on synthetic imagery (TPA Temesi planted) into a temp store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pytest
from dagster import AssetSelection, DagsterInstance, materialize

from plastics_core.storage.outputs import read_raster

WINDOW = "2021-01-01"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> dict[str, Any]:
    from plastics_dagster.runner import materialize_partition

    store = tmp_path_factory.mktemp("store")
    instance = DagsterInstance.ephemeral()
    summary = materialize_partition(
        "test_patch", WINDOW, store=str(store), imagery="synthetic", instance=instance
    )
    return {"summary": summary, "store": store, "instance": instance}


def test_window_is_the_median_of_eight_pairs(run: dict[str, Any]) -> None:
    summary = run["summary"]
    assert summary.pairs == 8 and summary.pairs_computed == 8 * summary.tiles
    folder = run["store"] / "heatmaps" / "test_patch" / WINDOW / summary.run_hash
    raster = read_raster(sorted(folder.glob("*.tif"))[0])
    assert len(raster.band_descriptions) == 9 and raster.band_descriptions[0].startswith(
        "2019-04-01_2019-07-01|"
    )
    with np.errstate(all="ignore"):
        np.testing.assert_array_equal(raster.data[-1], np.nanmedian(raster.data[:-1], axis=0))


def test_next_window_computes_one_new_pair_per_tile(run: dict[str, Any]) -> None:
    """Window W+1 after W: the 7 shared quarters are reused from the store, one pair per tile is new."""
    from plastics_dagster.runner import materialize_partition

    summary = materialize_partition(
        "test_patch",
        "2021-04-01",
        store=str(run["store"]),
        imagery="synthetic",
        instance=run["instance"],
        registry=False,
    )
    assert summary.success and summary.pairs == 8
    assert summary.pairs_computed == summary.tiles == run["summary"].tiles
    assert list(summary.timings["pairs_s"]) == ["2021-04-01"]


def _temesi(gpw_dir: Path) -> Any:
    tpa = gpd.read_file(gpw_dir / "tpa_polygons.geojson")
    return tpa.loc[tpa["Name"] == "TPA Temesi"].geometry.iloc[0]


def test_planted_site_found(run: dict[str, Any], gpw_dir: Path) -> None:
    summary = run["summary"]
    assert summary.success and summary.tiles >= 1 and not summary.checks_failed
    site = gpd.GeoSeries([_temesi(gpw_dir).centroid], crs="EPSG:4326").to_crs("EPSG:32750").iloc[0]
    pts = gpd.GeoSeries(
        gpd.points_from_xy([c["lon"] for c in summary.candidates], [c["lat"] for c in summary.candidates]),
        crs="EPSG:4326",
    ).to_crs("EPSG:32750")
    assert len(pts) and float(pts.distance(site).min()) < 50.0, summary.candidates
    assert summary.contour_area_km2 > 0
    assert summary.geocode_status == ["nearest_place"] * len(
        summary.candidates
    )  # the default offline geocoder


def test_store_layout_and_manifest(run: dict[str, Any]) -> None:
    store: Path = run["store"]
    h = run["summary"].run_hash
    for asset in ("patch_geojson", "blobs", "candidates", "contours", "enriched_sites"):
        doc = json.loads((store / asset / "test_patch" / WINDOW / f"{h}.geojson").read_text())
        assert doc["type"] == "FeatureCollection"
    manifest = json.loads((store / "descartes_run" / "test_patch" / WINDOW / f"{h}.json").read_text())
    assert (
        manifest["run_hash"] == h and manifest["backend"] == "local" and manifest["executor"] == "in-process"
    )
    assert manifest["periods"] == ["2021-01-01_2021-04-01", "2021-07-01_2021-10-01"]  # this quarter's pair
    assert manifest["params"]["model"] == "spectrogram_v0.0.11_2021-07-13.h5"
    assert all(len(sha) == 64 for sha in manifest["models"].values())
    assert manifest["imagery"]["source"] == "synthetic" and manifest["imagery"]["scene_ids"]
    folder = store / "heatmaps" / "test_patch" / WINDOW / h
    tifs = sorted(folder.glob("*.tif"))
    assert len(tifs) == len(manifest["tiles"]) and (folder / "mosaic.vrt").exists()
    raster = read_raster(tifs[0])
    assert raster.data.dtype == np.float32 and raster.band_descriptions[-1] == "median"
    assert np.isnan(raster.nodata)
    vrt = read_raster(folder / "mosaic.vrt")
    assert vrt.band_descriptions == raster.band_descriptions


def test_checks_ran_and_passed(run: dict[str, Any]) -> None:
    instance: DagsterInstance = run["instance"]
    from plastics_dagster.checks import ALL_CHECKS

    n_checks = sum(len(list(c.check_keys)) for c in ALL_CHECKS)
    records = instance.get_records_for_run(run_id=_run_id(instance), of_type=_check_event()).records
    evaluations: list[Any] = [r.event_log_entry.get_dagster_event().event_specific_data for r in records]
    assert len(evaluations) == n_checks
    assert all(e.passed for e in evaluations)


def test_rematerialize_sites_is_byte_identical(run: dict[str, Any]) -> None:
    """Same params -> same run hash -> byte-identical GeoJSON; the model outputs are untouched."""
    from plastics_dagster.definitions import ALL_ASSETS, default_resources
    from plastics_dagster.partitions import partition_key
    from plastics_dagster.resources import StoreResource

    store: Path = run["store"]
    before = {p: p.read_bytes() for p in store.rglob("*") if p.is_file()}
    result = materialize(
        ALL_ASSETS,
        selection=AssetSelection.groups("sites"),
        instance=run["instance"],
        partition_key=partition_key("test_patch", WINDOW),
        resources=default_resources(store=StoreResource(location=str(store))),
    )
    assert result.success
    after = {p: p.read_bytes() for p in store.rglob("*") if p.is_file()}
    assert after.keys() == before.keys()
    assert all(after[p] == before[p] for p in before), [str(p) for p in before if after[p] != before[p]]


def _run_id(instance: DagsterInstance) -> str:
    """The window's detect_job run (not the ROI's registry_job run after it)."""
    runs = [
        r
        for r in instance.get_runs()
        if r.tags.get("plastics/window") == WINDOW and r.job_name == "detect_job"
    ]
    return runs[-1].run_id  # runs are newest first: the first such run


def _check_event() -> Any:
    from dagster import DagsterEventType

    return DagsterEventType.ASSET_CHECK_EVALUATION
