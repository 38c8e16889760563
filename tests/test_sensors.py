"""Sensor ticks with build_sensor_context against an ephemeral instance (no runs launched)."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from dagster import DagsterInstance, SensorResult, SkipReason, build_sensor_context

from plastics_core.geo.periods import Period
from plastics_core.imagery.synthetic import SyntheticSource
from plastics_dagster import sensors
from plastics_dagster.config import DetectionParams
from plastics_dagster.partitions import IMAGERY_LAG_DAYS
from plastics_dagster.registry import register_roi
from plastics_dagster.resources import ImagerySourceResource, StoreResource
from plastics_dagster.sensors import MAX_SEARCHES, complete_windows, imagery_sensor, roi_sensor

#: the sensors' clock in these tests: a fixed day, so the windows they request do not move with time
TODAY = dt.date(2024, 6, 15)


@pytest.fixture(autouse=True)
def _fixed_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sensors, "today", lambda: TODAY)


@pytest.fixture()
def resources(tmp_path: Path) -> dict:
    return {
        "params": DetectionParams(),
        "imagery": ImagerySourceResource(),
        "store": StoreResource(location=str(tmp_path / "store")),
    }


def test_complete_windows() -> None:
    wins = complete_windows(dt.date(2021, 10, 1) + dt.timedelta(days=IMAGERY_LAG_DAYS))
    assert wins[0] == "2017-07-01"
    # 2021-01-01's partner is 2021-07-01..2021-10-01: complete IMAGERY_LAG_DAYS after 2021-10-01
    assert wins[-1] == "2021-01-01"
    assert complete_windows(dt.date(2021, 10, 1))[-1] == "2020-10-01"


def test_roi_sensor_adds_partition_once(
    tmp_path: Path, gpw_dir: Path, resources: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    rois = tmp_path / "rois"
    rois.mkdir()
    shutil.copy(gpw_dir / "test_patch.geojson", rois / "temesi.geojson")
    (rois / "Bad Name.geojson").write_text("{}")
    (rois / "broken.geojson").write_text("not json")
    resources = {**resources, "store": StoreResource(location=str(tmp_path / "store"), roi_dir=str(rois))}
    instance = DagsterInstance.ephemeral()
    ctx = build_sensor_context(instance=instance, resources=resources)
    result: Any = roi_sensor(ctx)
    assert isinstance(result, SensorResult)
    res: Any = result
    (req,) = res.dynamic_partitions_requests
    assert list(req.partition_keys) == ["temesi"]
    run: Any
    (run,) = res.run_requests
    latest = complete_windows(TODAY)[-1]
    assert run.partition_key.keys_by_dimension == {"roi": "temesi", "window": latest}
    assert run.run_key.startswith(f"temesi|{latest}|") and run.job_name is None  # the sensor's one job
    assert not (tmp_path / "store").exists()  # the sensor writes nothing
    # the run reads the geometry from the watched folder; its hash is the one requested
    from plastics_core.geo.roi import read_roi
    from plastics_core.params import geometry_hash

    geom = resources["store"].load_roi("temesi")
    assert geometry_hash(geom) == geometry_hash(read_roi(rois / "temesi.geojson"))
    assert run.tags["plastics/run_hash"] == resources["params"].run_hash("synthetic", geometry_hash(geom))
    # next tick with the cursor: nothing new
    instance.add_dynamic_partitions("roi", ["temesi"])
    again = roi_sensor(build_sensor_context(instance=instance, cursor=ctx.cursor, resources=resources))
    assert isinstance(again, SkipReason)


def test_imagery_sensor_requests_each_window_once(tmp_path: Path, gpw_dir: Path, resources: dict) -> None:
    instance = DagsterInstance.ephemeral()
    register_roi(instance, resources["store"].path(), "temesi", gpw_dir / "test_patch.geojson")
    seen: list[str] = []
    cursor: str | None = None
    for _ in range(100):  # the ticks launch nothing here; the run queue, not the sensor, limits runs
        ctx = build_sensor_context(instance=instance, cursor=cursor, resources=resources)
        result: Any = imagery_sensor(ctx)
        cursor = ctx.cursor
        if isinstance(result, SkipReason):
            break
        assert 1 <= len(result.run_requests) <= MAX_SEARCHES  # windows searched per tick
        seen += [r.run_key for r in result.run_requests]
    wins = complete_windows(TODAY)
    assert len(seen) == len(set(seen)) == len(wins)
    assert {k.split("|")[1] for k in seen} == set(wins)
    assert cursor and json.loads(cursor)  # done windows are remembered


def test_imagery_sensor_waits_for_scenes(
    tmp_path: Path, gpw_dir: Path, resources: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A window whose partner period has no scenes is not requested."""
    instance = DagsterInstance.ephemeral()
    register_roi(instance, resources["store"].path(), "temesi", gpw_dir / "test_patch.geojson")
    wins = complete_windows(TODAY)
    newest = dt.date.fromisoformat(wins[-1])
    gap = Period(dt.date(newest.year - 1, 1, 1), TODAY)  # no imagery for the recent past
    monkeypatch.setattr(
        ImagerySourceResource, "get_source", lambda self: SyntheticSource(empty_periods=[gap])
    )
    ctx = build_sensor_context(instance=instance, resources=resources)
    result: Any = imagery_sensor(ctx)
    assert isinstance(result, SensorResult)
    res: Any = result
    requested = {r.run_key.split("|")[1] for r in res.run_requests}
    assert wins[-1] not in requested
    assert requested and all(dt.date.fromisoformat(w) < gap.start for w in requested)


def test_roi_sensor_skips_a_file_that_would_change_a_registered_roi(
    tmp_path: Path, gpw_dir: Path, resources: dict
) -> None:
    from shapely import affinity

    from plastics_dagster.registry import roi_geojson_bytes

    instance = DagsterInstance.ephemeral()
    store = StoreResource(location=str(tmp_path / "store"), roi_dir=str(tmp_path / "rois"))
    register_roi(instance, store.path(), "temesi", gpw_dir / "test_patch.geojson")
    (tmp_path / "rois").mkdir()
    moved = affinity.translate(store.load_roi("temesi"), xoff=-0.1)
    (tmp_path / "rois" / "temesi.geojson").write_bytes(roi_geojson_bytes("temesi", moved))
    result = roi_sensor(build_sensor_context(instance=instance, resources={**resources, "store": store}))
    assert isinstance(result, SkipReason)


def _running(instance: DagsterInstance, roi: str, window: str) -> None:
    """A run of (roi, window) in progress (as a backfill, automation or the CLI would leave it)."""
    import uuid

    from dagster import DagsterRun, DagsterRunStatus

    from plastics_dagster.partitions import partition_key

    instance.add_run(
        DagsterRun(
            job_name="detect_job",
            run_id=str(uuid.uuid4()),
            status=DagsterRunStatus.STARTED,
            tags={"dagster/partition": str(partition_key(roi, window))},
        )
    )


def test_imagery_sensor_skips_done_and_in_flight_partitions(
    tmp_path: Path, gpw_dir: Path, resources: dict
) -> None:
    """Materialized partitions (by anyone) and partitions with a run queued or running are never
    requested; every other complete window is, newest first (the run queue decides how many run)."""
    from dagster import AssetMaterialization

    from plastics_dagster.partitions import partition_key

    instance = DagsterInstance.ephemeral()
    register_roi(instance, resources["store"].path(), "temesi", gpw_dir / "test_patch.geojson")
    wins = complete_windows(TODAY)
    instance.report_runless_asset_event(
        AssetMaterialization("enriched_sites", partition=str(partition_key("temesi", wins[-1])))
    )
    _running(instance, "temesi", wins[-2])
    ctx = build_sensor_context(instance=instance, resources=resources)
    result: Any = imagery_sensor(ctx)
    requested = [r.run_key.split("|")[1] for r in result.run_requests]
    assert requested == list(reversed(wins[:-2]))[:MAX_SEARCHES]  # newest first, no done or running one
    done = json.loads(ctx.cursor or "{}")
    assert wins[-1] in next(iter(done.values())) and wins[-2] not in next(iter(done.values()))
    again: Any = imagery_sensor(
        build_sensor_context(instance=instance, cursor=ctx.cursor, resources=resources)
    )
    again_requested = {r.run_key.split("|")[1] for r in getattr(again, "run_requests", None) or []}
    assert not again_requested & {wins[-1], wins[-2], *requested}  # never requested twice


def test_roi_sensor_never_requests_a_materialized_partition(
    tmp_path: Path, gpw_dir: Path, resources: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dagster import AssetMaterialization

    from plastics_dagster.partitions import partition_key

    rois = tmp_path / "rois"
    rois.mkdir()
    shutil.copy(gpw_dir / "test_patch.geojson", rois / "temesi.geojson")
    monkeypatch.setenv("PLASTICS_ROI_DIR", str(rois))
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("roi", ["temesi"])  # registered before; its file is dropped in again
    latest = complete_windows(TODAY)[-1]
    instance.report_runless_asset_event(
        AssetMaterialization("enriched_sites", partition=str(partition_key("temesi", latest)))
    )
    result: Any = roi_sensor(build_sensor_context(instance=instance, resources=resources))
    assert isinstance(result, SkipReason)
    instance.add_dynamic_partitions("roi", ["other"])
    shutil.copy(gpw_dir / "test_patch.geojson", rois / "other.geojson")  # not materialized: requested
    result = roi_sensor(build_sensor_context(instance=instance, resources=resources))
    assert [r.partition_key for r in result.run_requests] == [partition_key("other", latest)]


def test_sensors_skip_partition_keys_no_run_can_use(tmp_path: Path, gpw_dir: Path, resources: dict) -> None:
    """A ``roi`` key added in the UI or through the API that is not an ROI name (``bad|name``) is
    never requested; the tick still requests the registered ROI's windows."""
    instance = DagsterInstance.ephemeral()
    register_roi(instance, resources["store"].path(), "temesi", gpw_dir / "test_patch.geojson")
    instance.add_dynamic_partitions("roi", ["bad|name"])
    result: Any = imagery_sensor(build_sensor_context(instance=instance, resources=resources))
    assert isinstance(result, SensorResult) and result.run_requests
    assert {r.partition_key.keys_by_dimension["roi"] for r in result.run_requests} == {"temesi"}
    rois = tmp_path / "rois"
    rois.mkdir()
    (rois / "bad|name.geojson").write_bytes((gpw_dir / "test_patch.geojson").read_bytes())
    store = StoreResource(location=str(tmp_path / "store"), roi_dir=str(rois))
    skipped = roi_sensor(build_sensor_context(instance=instance, resources={**resources, "store": store}))
    assert isinstance(skipped, SkipReason)  # the file is logged and skipped, no partition added
