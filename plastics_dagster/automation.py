"""Declarative automation of the graph (``AutomationCondition``, evaluated by the Dagster daemon).

- Detection (every ``(roi, window)`` asset, :func:`detect_condition`): a partition that appears
  after automation was switched on -- a new ROI, or the window that becomes complete at a quarter
  boundary -- is materialized, latest window only (older windows are backfills). The whole graph
  of that partition is requested on the same tick, so it runs as one run per partition; an asset
  materialized alone later is followed by its downstream assets. Never while the partition or an
  upstream partition is in progress. ``heatmaps`` and ``patch_geojson`` (:data:`WINDOW_ASSETS`)
  do not wait for the window's older quarters of ``descartes_run``: their step computes a quarter
  the store lacks. Sensor :data:`detection_automation` (default: stopped, because each request is
  a model run; switch it on under Automation).
- Finished work is never re-run:

  * only an upstream partition **of the latest window** counts as an update: an older window
    backfilled later (its quarters of ``descartes_run`` lie inside the latest window's span)
    requests nothing for the latest window, whose ``heatmaps`` already read those quarters' pairs
    from the store (or computed them in their step) under the same run hash;
  * ``descartes_run``, ``heatmaps`` and ``patch_geojson`` (:data:`VERSIONED_ASSETS`) record a
    ``DataVersion`` derived from their run hash (parameters, method version, models, imagery
    source, ROI geometry) and their quarters: recomputing identical data keeps the version, and an
    asset whose upstream assets are all versioned follows only a **changed** version
    (``data_version_changed``);
  * an upstream update made by a run that also targeted the asset (``executed_with_root_target``)
    does not count: a run that failed half-way is not requested again (no retry storm);
    ``newly_missing`` is true on one tick only.

- A new window waits for the imagery lag (:data:`LAG_PASSED`: ``IMAGERY_LAG_DAYS`` after the
  quarter boundary, :data:`~plastics_dagster.partitions.LAG_CRON`), when its run passes the
  completeness check of its first step.
- ``site_registry`` (:data:`REGISTRY_CONDITION`; also ``published_sites``, :data:`ROI_ASSETS`):
  rebuilt whenever any window of its ROI updates (``eager()`` without its "no missing upstream"
  clause: most windows of an ROI are never run).
  Sensor :data:`registry_automation` (default: running; a registry run takes seconds).

How many requested runs execute at once is the run queue's business (``dagster.yaml``,
docs/OPERATING.md). Tested with ``dagster.evaluate_automation_conditions`` (tests/test_automation.py).
"""

from __future__ import annotations

from typing import Any

from dagster import (
    AssetKey,
    AssetSpec,
    AutomationCondition,
    AutomationConditionSensorDefinition,
    DefaultSensorStatus,
    map_asset_specs,
)

from plastics_dagster.jobs import DETECT_SELECTION, REGISTRY_SELECTION
from plastics_dagster.partitions import IMAGERY_LAG_DAYS, LAG_CRON, WINDOW_CRON

REGISTRY_ASSET = "site_registry"
#: per-ROI assets automated like the registry (the registry and its publication to the site database)
ROI_ASSETS = frozenset({REGISTRY_ASSET, "published_sites"})
#: the detection window's assets: they read the last ``pairs`` quarters of ``descartes_run`` and
#: compute a quarter the store lacks themselves, so older quarters never block them
WINDOW_ASSETS = frozenset({"heatmaps", "patch_geojson"})
#: assets whose materializations carry an explicit ``DataVersion`` (run hash and quarters): an
#: identical recomputation keeps it
VERSIONED_ASSETS = frozenset({"descartes_run", *WINDOW_ASSETS})

_A = AutomationCondition


def _not_by_own_run() -> AutomationCondition[Any]:
    """The dependency partition was not updated by a run that also targeted the evaluated asset."""
    return ~_A.executed_with_root_target()


#: an upstream partition of the latest window was materialized (any data version), not by a run
#: of this asset, or is requested on this tick (the whole partition graph in one run)
LATEST_DEP_UPDATED = (
    _A.any_deps_match(_A.in_latest_time_window() & _A.newly_updated() & _not_by_own_run())
    | _A.any_deps_match(_A.will_be_requested())
).with_label("upstream of the latest window updated")

#: as LATEST_DEP_UPDATED, for upstream assets with explicit data versions: only a changed version counts
LATEST_DEP_CHANGED = (
    _A.any_deps_match(_A.in_latest_time_window() & _A.data_version_changed() & _not_by_own_run())
    | _A.any_deps_match(_A.will_be_requested())
).with_label("upstream of the latest window changed its data version")


#: false from each quarter boundary (a new window appears) until IMAGERY_LAG_DAYS later (LAG_CRON), when
#: the window's last scenes have arrived and its run passes the completeness check
LAG_PASSED = (
    ~_A.cron_tick_passed(WINDOW_CRON, "UTC").since(_A.cron_tick_passed(LAG_CRON, "UTC"))
).with_label(f"imagery lag of {IMAGERY_LAG_DAYS} days passed")


def detect_condition(versioned_deps: bool, window_asset: bool = False) -> AutomationCondition[AssetKey]:
    """The condition of one detection asset.

    ``versioned_deps``: every upstream asset records a data version (follow changed versions only);
    ``window_asset``: ``heatmaps`` / ``patch_geojson`` (older quarters may be missing)."""
    updated = LATEST_DEP_CHANGED if versioned_deps else LATEST_DEP_UPDATED
    condition = (
        _A.in_latest_time_window()
        & (_A.newly_missing() | updated).since_last_handled()
        & LAG_PASSED
        & ~_A.any_deps_in_progress()
        & ~_A.in_progress()
    )
    if window_asset:
        return condition.with_label("new window or its latest quarter changed (latest window)")
    return (condition & ~_A.any_deps_missing()).with_label(
        "new partition or upstream changed (latest window)"
    )


#: root and downstream detection assets whose upstream assets do not all record data versions
DETECT_CONDITION = detect_condition(versioned_deps=False)
#: heatmaps / patch_geojson: descartes_run records data versions; older quarters may be missing
WINDOW_CONDITION = detect_condition(versioned_deps=True, window_asset=True)

#: site_registry: any window of the ROI updated since the registry last ran
REGISTRY_CONDITION = (
    AutomationCondition.any_deps_updated().since_last_handled()
    & ~AutomationCondition.any_deps_in_progress()
    & ~AutomationCondition.in_progress()
).with_label("any window updated")


def _condition(spec: AssetSpec) -> AssetSpec:
    name = spec.key.path[-1]
    deps = {dep.asset_key.path[-1] for dep in spec.deps}
    versioned = bool(deps) and deps <= VERSIONED_ASSETS
    condition = (
        REGISTRY_CONDITION
        if name in ROI_ASSETS
        else detect_condition(versioned, window_asset=name in WINDOW_ASSETS)
    )
    return spec.replace_attributes(automation_condition=condition)


def with_automation(assets: list[Any]) -> list[Any]:
    """``assets`` with the automation conditions of this module set on every asset spec."""
    return list(map_asset_specs(_condition, assets))


detection_automation = AutomationConditionSensorDefinition(
    "detection_automation",
    target=DETECT_SELECTION,
    default_status=DefaultSensorStatus.STOPPED,
    minimum_interval_seconds=60,
    description="Materializes new (roi, window) partitions of the latest complete window, one run each",
)

registry_automation = AutomationConditionSensorDefinition(
    "registry_automation",
    target=REGISTRY_SELECTION,
    default_status=DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    emit_backfills=False,
    description="Rebuilds an ROI's site_registry after any of its windows is materialized",
)

AUTOMATION_SENSORS = [detection_automation, registry_automation]
__all__ = [
    "AUTOMATION_SENSORS",
    "DETECT_CONDITION",
    "REGISTRY_CONDITION",
    "VERSIONED_ASSETS",
    "WINDOW_CONDITION",
    "detect_condition",
    "with_automation",
]
