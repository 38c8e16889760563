"""Declarative automation of the detection graph, ticked with ``dagster.evaluate_automation_conditions``.

The conditions are the real ones (:mod:`plastics_dagster.automation` on the code location's
Definitions); what each tick requests is asserted for a new ROI, a new window, an older window
backfilled while the latest exists, an identical recomputation, a changed one and a failed run.
Completed work is recorded as the materializations a run would record (partition, data version
tag); the failed run is a real run of ``detect_job``.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from dagster import AssetKey, AssetMaterialization, DagsterInstance, evaluate_automation_conditions

from plastics_core.errors import ParameterError
from plastics_dagster.automation import VERSIONED_ASSETS
from plastics_dagster.definitions import defs
from plastics_dagster.jobs import DETECT_SELECTION
from plastics_dagster.partitions import (
    IMAGERY_LAG_DAYS,
    ROI_PARTITIONS_NAME,
    check_complete,
    data_version,
    partition_key,
)

#: at this time the newest complete window is 2024-01-01 (its partner quarter ended 2024-10-01)
T1 = dt.datetime(2024, 10, 10, tzinfo=dt.UTC)
LATEST_T1 = "2024-01-01"
#: a quarter later: the newest complete window is 2024-04-01
T2 = dt.datetime(2025, 1, 10, tzinfo=dt.UTC)
LATEST_T2 = "2024-04-01"
RUN_HASH = "0123456789ab"
DATA_VERSION_TAG = "dagster/data_version"  # the tag a materialization's data version is stored in


def detect_assets() -> list[AssetKey]:
    return sorted(DETECT_SELECTION.resolve(defs.resolve_asset_graph()), key=lambda k: k.to_user_string())


class Ticker:
    """Automation ticks of the detection selection against one instance (the cursor carried on)."""

    def __init__(self, instance: DagsterInstance) -> None:
        self.instance = instance
        self.cursor: Any = None
        self.ticks = 0

    def tick(self, when: dt.datetime) -> dict[str, set[str]]:
        """``{asset name: requested partition keys}`` of one tick a minute after the last one from
        ``when`` on (assets with none left out)."""
        self.ticks += 1
        result = evaluate_automation_conditions(
            defs,
            self.instance,
            asset_selection=DETECT_SELECTION,
            evaluation_time=when + dt.timedelta(minutes=self.ticks),
            cursor=self.cursor,
        )
        self.cursor = result.cursor
        out = {
            key.path[-1]: {str(p) for p in result.get_requested_partitions(key)} for key in detect_assets()
        }
        return {name: keys for name, keys in out.items() if keys}


def materialize(
    instance: DagsterInstance, roi: str, window: str, assets: list[str] | None = None, version: str = RUN_HASH
) -> None:
    """Record what a finished run of ``(roi, window)`` records: one materialization per asset, with
    the data version the versioned assets write (run hash and quarters)."""
    key = str(partition_key(roi, window))
    for asset in assets or [k.path[-1] for k in detect_assets()]:
        tags = {}
        if asset in VERSIONED_ASSETS:
            quarters = [window] if asset == "descartes_run" else [window, "older quarters"]
            tags[DATA_VERSION_TAG] = data_version(version, *quarters).value
        instance.report_runless_asset_event(AssetMaterialization(asset_key=asset, partition=key, tags=tags))


@pytest.fixture()
def instance() -> DagsterInstance:
    inst = DagsterInstance.ephemeral()
    inst.add_dynamic_partitions(ROI_PARTITIONS_NAME, ["temesi"])
    return inst


def keys(roi: str, window: str) -> set[str]:
    return {str(partition_key(roi, window))}


def test_new_roi_requests_its_latest_window_once(instance: DagsterInstance) -> None:
    ticker = Ticker(instance)
    assert ticker.tick(T1) == {}  # switched on: what was missing before is a backfill's business
    instance.add_dynamic_partitions(ROI_PARTITIONS_NAME, ["suwung"])
    first = ticker.tick(T1)
    assert first == {
        k.path[-1]: keys("suwung", LATEST_T1) for k in detect_assets()
    }  # one run: the whole graph
    assert ticker.tick(T1) == {}  # requested once, not again while it runs or after
    materialize(instance, "suwung", LATEST_T1)
    assert ticker.tick(T1) == {}


def test_new_window_requests_only_the_new_window(instance: DagsterInstance) -> None:
    ticker = Ticker(instance)
    ticker.tick(T1)
    materialize(instance, "temesi", LATEST_T1)
    assert ticker.tick(T1) == {}
    later = ticker.tick(T2)
    assert later == {k.path[-1]: keys("temesi", LATEST_T2) for k in detect_assets()}


def test_new_window_waits_for_the_imagery_lag(instance: DagsterInstance) -> None:
    """At the quarter boundary the window dimension grows by one window; automation requests it
    IMAGERY_LAG_DAYS later, when a run of it passes the completeness check."""
    ticker = Ticker(instance)
    before = dt.datetime(2024, 9, 20, tzinfo=dt.UTC)  # newest complete window: 2023-10-01
    ticker.tick(before)
    materialize(instance, "temesi", "2023-10-01")
    assert ticker.tick(before) == {}
    boundary = dt.datetime(2024, 10, 1, tzinfo=dt.UTC)
    assert ticker.tick(boundary) == {}  # 2024-01-01 is a partition now, its partner's scenes still arriving
    assert ticker.tick(boundary + dt.timedelta(days=IMAGERY_LAG_DAYS - 1)) == {}
    ready = ticker.tick(boundary + dt.timedelta(days=IMAGERY_LAG_DAYS))
    assert ready == {k.path[-1]: keys("temesi", LATEST_T1) for k in detect_assets()}
    check_complete(LATEST_T1, (boundary + dt.timedelta(days=IMAGERY_LAG_DAYS)).date())  # the run accepts it
    with pytest.raises(ParameterError, match="not complete until 2024-10-06"):
        check_complete(LATEST_T1, (boundary + dt.timedelta(days=IMAGERY_LAG_DAYS - 1)).date())
    assert ticker.tick(boundary + dt.timedelta(days=IMAGERY_LAG_DAYS)) == {}


def test_older_window_backfilled_requests_nothing_for_the_latest(instance: DagsterInstance) -> None:
    """The reported case: the older window's quarters lie inside the latest window's span
    (``heatmaps`` of the latest window depend on them), yet the finished latest window is not re-run."""
    ticker = Ticker(instance)
    ticker.tick(T1)
    materialize(instance, "temesi", LATEST_T1)
    assert ticker.tick(T1) == {}
    for older in ("2023-10-01", "2023-07-01", "2023-04-01"):  # every quarter the latest window reads
        materialize(instance, "temesi", older, version="another run hash")
        assert ticker.tick(T1) == {}, older


def test_identical_recomputation_is_no_update_but_a_changed_one_is(instance: DagsterInstance) -> None:
    ticker = Ticker(instance)
    ticker.tick(T1)
    materialize(instance, "temesi", LATEST_T1)
    assert ticker.tick(T1) == {}
    materialize(instance, "temesi", LATEST_T1, ["descartes_run"])  # same run hash: the same data version
    assert ticker.tick(T1) == {}
    materialize(instance, "temesi", LATEST_T1, ["descartes_run"], version="fedcba987654")  # new data
    changed = ticker.tick(T1)
    downstream = {k.path[-1] for k in detect_assets()} - {"descartes_run"}
    assert changed == {name: keys("temesi", LATEST_T1) for name in downstream}
    materialize(instance, "temesi", LATEST_T1, sorted(downstream), version="fedcba987654")
    assert ticker.tick(T1) == {}


def test_a_failed_run_is_not_retried_by_automation(instance: DagsterInstance, tmp_path: Path) -> None:
    """A run of the requested partition that fails (here: a parameter out of its range, a real
    ``detect_job`` run) is not requested again on later ticks."""
    ticker = Ticker(instance)
    assert ticker.tick(T1) == {}
    instance.add_dynamic_partitions(ROI_PARTITIONS_NAME, ["test_patch"])
    assert ticker.tick(T1)["descartes_run"] == keys("test_patch", LATEST_T1)
    job = defs.resolve_job_def("detect_job")
    result = job.execute_in_process(
        partition_key=partition_key("test_patch", LATEST_T1),
        instance=instance,
        raise_on_error=False,
        run_config={
            "resources": {
                "params": {"config": {"patch_threshold": -0.5}},
                "store": {"config": {"location": str(tmp_path / "store")}},
            }
        },
    )
    assert not result.success
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    assert "patch_threshold=-0.5" in str(failure.step_failure_data.error.message)
    for _ in range(3):
        assert ticker.tick(T1) == {}


def test_runs_record_data_versions_of_run_hash_and_quarters(graph_run: Any) -> None:
    """The real run's materializations carry the versions the conditions above rely on."""
    versions: dict[str, str] = {}
    for _, entry in graph_run.records:
        event = entry.dagster_event
        if event is not None and event.is_step_materialization:
            mat = event.event_specific_data.materialization
            if mat.asset_key.path[-1] in VERSIONED_ASSETS:
                versions[mat.asset_key.path[-1]] = mat.tags.get(DATA_VERSION_TAG, "")
    run_hash = graph_run.summary.run_hash
    window = "2021-01-01"
    assert versions == {
        "descartes_run": data_version(run_hash, window).value,
        "heatmaps": data_version(run_hash, window).value,
        "patch_geojson": data_version(run_hash, window).value,
    }
