"""The per-format IO managers through Dagster (materialize), and the step outputs' pickling IO manager.

Small partitioned assets declare the graph's ``io_manager_key``s and run with the graph's resources
(the registered ROI ``test_patch`` from ../shared, so the run hash covers its real geometry): each
format lands at :func:`plastics_core.storage.layout.asset_path`, reads back equal, and a missing
upstream fails with one sentence naming the asset to materialize.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pytest
from affine import Affine
from dagster import (
    DagsterInstance,
    DynamicOut,
    DynamicOutput,
    In,
    Out,
    asset,
    job,
    materialize,
    op,
)
from shapely.geometry import Point

from plastics_core.errors import ParameterError
from plastics_core.geo.raster import Raster
from plastics_core.storage.layout import asset_path, stored_run_hashes
from plastics_core.storage.store import store_path
from plastics_dagster.config import DetectionParams
from plastics_dagster.io_manager import GEOJSON_IO, RASTER_FOLDER_IO, io_managers
from plastics_dagster.partitions import detect_partitions, partition_key, roi_partitions
from plastics_dagster.resources import ImagerySourceResource, StoreResource
from plastics_dagster.step_io import STEP_IO_MANAGER_KEY, StepIOManager
from tests._s3 import moto_bucket

ROI, WINDOW = "test_patch", "2021-01-01"
KEY = partition_key(ROI, WINDOW)


def _points() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {"name": ["a", "b"], "score": [0.9, 0.4]},
        geometry=[Point(115.342, -8.567), Point(115.355, -8.556)],
        crs="EPSG:4326",
    )


def _raster(name: str, x0: float) -> Raster:
    data = np.full((2, 8, 8), 0.25, np.float32)
    data[:, 0, 0] = np.nan
    return Raster(data, "EPSG:32750", Affine(10, 0, x0, 0, -10, 9050000), ("a|b", "median"), name=name)


LOADED: dict[str, Any] = {}


@asset(name="blobs", partitions_def=detect_partitions, io_manager_key=GEOJSON_IO)
def blobs_asset() -> gpd.GeoDataFrame:
    return _points()


@asset(name="candidates", partitions_def=detect_partitions, io_manager_key=GEOJSON_IO)
def candidates_asset(blobs: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    LOADED["blobs"] = blobs
    return blobs.iloc[:1]


@asset(name="heatmaps", partitions_def=detect_partitions, io_manager_key=RASTER_FOLDER_IO)
def heatmaps_asset() -> list[Raster]:
    return [_raster("1:0:10.0:50:0:0", 500000), _raster("1:0:10.0:50:0:1", 500080)]


@asset(name="reader", partitions_def=detect_partitions, io_manager_key=GEOJSON_IO)
def reader_asset(heatmaps: list[Raster]) -> gpd.GeoDataFrame:
    LOADED["heatmaps"] = heatmaps
    return _points().iloc[:0]


@asset(name="site_registry", partitions_def=roi_partitions, io_manager_key=GEOJSON_IO)
def registry_asset() -> gpd.GeoDataFrame:
    return _points()


def _resources(store: str) -> dict[str, Any]:
    run = {
        "params": DetectionParams(),
        "imagery": ImagerySourceResource(kind="synthetic"),
        "store": StoreResource(location=store),
    }
    return {**run, **io_managers(**run)}


def _instance() -> DagsterInstance:
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("roi", [ROI])
    return instance


def _run_hash(store: str) -> str:
    return str(DetectionParams().run_hash("synthetic", StoreResource(location=store).roi_hash(ROI)))


def _layout_roundtrip(store: str) -> None:
    LOADED.clear()
    result = materialize(
        [blobs_asset, candidates_asset, heatmaps_asset, reader_asset],
        partition_key=KEY,
        resources=_resources(store),
        instance=_instance(),
    )
    assert result.success
    root, run_hash = store_path(store), _run_hash(store)
    for name in ("blobs", "candidates"):
        path = asset_path(root, name, ROI, WINDOW, run_hash, ".geojson")
        assert path.is_file(), path
        meta = result.asset_materializations_for_node(name)[0].metadata
        assert meta["run_hash"].value == run_hash
        assert str(meta["path"].value) == str(path)
    assert stored_run_hashes(asset_path(root, "blobs", ROI, WINDOW, run_hash).parent, ".geojson") == [
        run_hash
    ]
    assert list(LOADED["blobs"]["name"]) == ["a", "b"] and LOADED["blobs"].crs.to_epsg() == 4326
    folder = asset_path(root, "heatmaps", ROI, WINDOW, run_hash)
    assert sorted(p.name for p in folder.iterdir()) == [
        "1_0_10.0_50_0_0.tif",
        "1_0_10.0_50_0_1.tif",
        "mosaic.vrt",
        "tiles.json",
    ]
    back = LOADED["heatmaps"]
    assert [r.name for r in back] == ["1:0:10.0:50:0:0", "1:0:10.0:50:0:1"]
    np.testing.assert_array_equal(back[1].data, _raster("x", 0).data)


def test_io_managers_follow_the_launchpad_run_config(tmp_path: Path) -> None:
    """With the code location's resources, a store and parameters given as run config (as the
    Launchpad sends them) reach the IO managers too: the files land in that store under the run
    hash of those parameters, and the downstream asset reads them back."""
    from plastics_dagster.definitions import default_resources

    store = str(tmp_path / "launchpad-store")
    LOADED.clear()
    result = materialize(
        [blobs_asset, candidates_asset],
        partition_key=KEY,
        resources=default_resources(),
        instance=_instance(),
        run_config={
            "resources": {
                "store": {"config": {"location": store}},
                "imagery": {"config": {"kind": "synthetic"}},
                "params": {"config": {"pred_threshold": 0.7}},
            }
        },
    )
    assert result.success
    run_hash = DetectionParams(pred_threshold=0.7).run_hash(
        "synthetic", StoreResource(location=store).roi_hash(ROI)
    )
    assert run_hash != _run_hash(store)
    for name in ("blobs", "candidates"):
        assert asset_path(store_path(store), name, ROI, WINDOW, run_hash, ".geojson").is_file(), name
    assert list(LOADED["blobs"]["name"]) == ["a", "b"]


def test_each_format_lands_at_the_layout_path_local(tmp_path: Path) -> None:
    _layout_roundtrip(str(tmp_path / "store"))
    assert not [p for p in (tmp_path / "store").rglob("*.tmp")]


@pytest.fixture()
def s3_store(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    with moto_bucket(monkeypatch, "s3://plastics/store") as url:
        yield url


def test_each_format_lands_at_the_layout_path_s3(s3_store: str) -> None:
    _layout_roundtrip(s3_store)


def test_roi_only_partition_has_no_window_folder(tmp_path: Path) -> None:
    store = str(tmp_path / "store")
    assert materialize(
        [registry_asset], partition_key=ROI, resources=_resources(store), instance=_instance()
    ).success
    assert [
        p.relative_to(tmp_path / "store").as_posix()
        for p in (tmp_path / "store").rglob("*.geojson")
        if "rois" not in p.parts
    ] == [f"site_registry/{ROI}/{_run_hash(store)}.geojson"]


def test_missing_upstream_names_the_asset_to_materialize(tmp_path: Path) -> None:
    store = str(tmp_path / "store")
    result = materialize(
        [blobs_asset, candidates_asset],
        selection=["candidates"],
        partition_key=KEY,
        resources=_resources(store),
        instance=_instance(),
        raise_on_error=False,
    )
    assert not result.success
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    message = failure.step_failure_data.error.message if failure.step_failure_data.error else ""
    assert f"blobs is not materialized for partition {ROI}|{WINDOW}" in message, message
    assert f"(run hash {_run_hash(store)}): materialize blobs first" in message
    assert not (tmp_path / "store" / "candidates").exists()


def test_layout_rejects_segments_leaving_their_folder(tmp_path: Path) -> None:
    root = store_path(str(tmp_path))
    for bad in ("..", "", "a/b"):
        with pytest.raises(ParameterError, match="cannot name a folder"):
            asset_path(root, "blobs", bad, WINDOW, "abc123def456", ".geojson")
    assert (
        asset_path(root, "site_registry", ROI, None, "abc123def456", ".csv")
        == root / "site_registry" / ROI / "abc123def456.csv"
    )


@op(out=DynamicOut(str, io_manager_key=STEP_IO_MANAGER_KEY))
def fan_out() -> list[DynamicOutput[str]]:
    return [
        DynamicOutput(k, mapping_key=f"t{i}") for i, k in enumerate(("1:0:10.0:50:0:0", "1:0:10.0:50:0:1"))
    ]


@op(ins={"key": In(str)}, out=Out(dict, io_manager_key=STEP_IO_MANAGER_KEY))
def per_tile(key: str) -> dict[str, Any]:
    return {"key": key, "seconds": 1.5}


@op(ins={"tiles": In(list)})
def gather(tiles: list[dict[str, Any]]) -> None:
    assert sorted(t["key"] for t in tiles) == ["1:0:10.0:50:0:0", "1:0:10.0:50:0:1"]


def _step_job(store: str, steps: str = "") -> Any:
    @job(
        resource_defs={
            STEP_IO_MANAGER_KEY: StepIOManager(location=steps),
            "store": StoreResource(location=store),
        }
    )
    def steps() -> None:
        gather(fan_out().map(per_tile).collect())

    return steps


def test_step_outputs_local_go_to_the_instance_storage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PLASTICS_STEP_STORE", raising=False)
    instance = DagsterInstance.ephemeral(tempdir=str(tmp_path / "home"))
    result = _step_job(str(tmp_path / "store")).execute_in_process(instance=instance)
    assert result.success
    steps = Path(instance.storage_directory()) / result.run_id
    # Dagster's <run_id>/<step key>/<output>[/<mapping key>]
    assert (steps / "fan_out" / "result" / "t1").is_file() and (steps / "per_tile[t1]" / "result").is_file()
    assert not (tmp_path / "store").exists()  # the output store holds assets only


def test_step_outputs_on_s3_through_the_endpoint(s3_store: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3

    result = _step_job(s3_store, "s3://plastics/steps").execute_in_process(
        instance=DagsterInstance.ephemeral()
    )
    assert result.success
    keys = [
        o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket="plastics", Prefix="steps/")["Contents"]
    ]
    # S3PickleIOManager's <prefix>/storage/<run_id>/<step key>/<output>[/<mapping key>]
    assert f"steps/storage/{result.run_id}/per_tile--t0/result" in keys, keys
    assert f"steps/storage/{result.run_id}/fan_out/result/t1" in keys, keys
