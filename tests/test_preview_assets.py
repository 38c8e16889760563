"""The ``preview`` and ``site_registry`` assets, materialized over upstream files placed in a
temporary store exactly where the IO manager keeps them (no models, no imagery)."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pytest
from dagster import DagsterInstance, MultiPartitionKey, materialize

from plastics_core.method.enrich import site_id
from plastics_core.storage.folders import write_raster_folder
from plastics_core.storage.outputs import geojson_bytes, read_geojson
from plastics_core.storage.store import atomic_write, store_path
from plastics_dagster.assets import DETECT_ASSETS
from plastics_dagster.assets.preview import (
    collect_windows,
    load_site_registry,
    preview,
    preview_assets,
    preview_path,
    registry_paths,
    site_registry,
)
from plastics_dagster.config import DetectionParams
from plastics_dagster.definitions import default_resources
from plastics_dagster.registry import roi_hash, roi_key
from plastics_dagster.resources import ImagerySourceResource, StoreResource
from tests import _preview_data as d

ROI = "demo"
W1, W2 = "2023-01-01", "2023-04-01"


def _put(store: Path, asset: str, window: str, run_hash: str, gdf: gpd.GeoDataFrame) -> None:
    atomic_write(store_path(str(store)) / asset / ROI / window / f"{run_hash}.geojson", geojson_bytes(gdf))


@pytest.fixture()
def env(tmp_path: Path) -> tuple[Path, str, DagsterInstance, dict]:
    store = tmp_path / "store"
    resources = default_resources(
        store=StoreResource(location=str(store)), imagery=ImagerySourceResource(kind="synthetic")
    )
    root = store_path(str(store))
    atomic_write(roi_key(root, ROI), geojson_bytes(gpd.GeoDataFrame(geometry=[d.roi()], crs="EPSG:4326")))
    run_hash = DetectionParams().run_hash(
        ImagerySourceResource(kind="synthetic").source_name(), roi_hash(root, ROI)
    )
    ids = tuple(site_id(lon, lat) for lon, lat in d.site_lonlats())
    for window, rows in ((W1, [0, 1]), (W2, [0])):
        write_raster_folder(root / "heatmaps" / ROI / window / run_hash, d.tile_heatmaps())
        _put(store, "blobs", window, run_hash, d.blobs().iloc[rows])
        _put(store, "candidates", window, run_hash, d.candidates().iloc[rows])
        contours = d.contours((window,))
        _put(
            store, "contours", window, run_hash, contours[contours["name"].isin([f"site_{i}" for i in rows])]
        )
        _put(store, "enriched_sites", window, run_hash, d.enriched(ids).iloc[rows])  # type: ignore[arg-type]
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("roi", [ROI])
    return store, run_hash, instance, resources


def test_preview_asset_writes_html_and_reports(env: tuple[Path, str, DagsterInstance, dict]) -> None:
    store, run_hash, instance, resources = env
    result = materialize(
        [*DETECT_ASSETS, *preview_assets],
        selection=[preview],
        instance=instance,
        resources=resources,
        partition_key=MultiPartitionKey({"roi": ROI, "window": W1}),
        run_config={"ops": {"preview": {"config": {"report_top_n": 2, "report_rgb": True}}}},
    )
    assert result.success
    path = Path(preview_path(store_path(str(store)), ROI, W1, run_hash).path)
    html = path.read_text(encoding="utf-8")
    assert "candidate sites (2)" in html and "median heatmap" in html
    reports = sorted((path.parent / run_hash / "reports").glob("*.png"))
    assert len(reports) == 2
    meta = result.asset_materializations_for_node("preview")[0].metadata
    assert meta["preview"].value == str(path) and meta["sites"].value == 2 and meta["reports"].value == 2


def test_site_registry_merges_all_windows_of_the_roi(env: tuple[Path, str, DagsterInstance, dict]) -> None:
    store, run_hash, instance, resources = env
    result = materialize(
        [*DETECT_ASSETS, *preview_assets],
        selection=[site_registry],
        instance=instance,
        resources=resources,
        partition_key=ROI,
    )
    assert result.success
    gj, csv = (Path(p.path) for p in registry_paths(store_path(str(store)), ROI, run_hash))
    reg = read_geojson(gj)
    status = dict(zip(reg["name"], reg["status"], strict=True))
    assert status == {"site_0": "persistent", "site_1": "gone"}
    assert csv.read_text().startswith("site_id,status,first_window")
    meta = result.asset_materializations_for_node("site_registry")[0].metadata
    assert meta["windows"].value == 2 and meta["gone"].value == 1
    loaded = load_site_registry(store_path(str(store)), ROI, run_hash)
    assert set(loaded["site_id"]) == set(reg["site_id"])


def test_collect_windows_reads_the_store_without_dagster(
    env: tuple[Path, str, DagsterInstance, dict],
) -> None:
    store, run_hash, _, _ = env
    windows = collect_windows(store_path(str(store)), ROI, run_hash)
    assert sorted(windows) == [W1, W2]
    assert len(windows[W1][0]) == 2 and windows[W2][1] is not None
    reg = load_site_registry(store_path(str(store)), ROI, run_hash)  # not materialized: built on the fly
    assert sorted(reg["status"]) == ["gone", "persistent"]
    assert collect_windows(store_path(str(store)), "other", run_hash) == {}
