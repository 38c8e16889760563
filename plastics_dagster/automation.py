"""Declarative automation of the graph (``AutomationCondition``, evaluated by the Dagster daemon).

- Detection (every ``(roi, window)`` asset, :data:`DETECT_CONDITION`): a partition that appears
  after automation was switched on -- a new ROI, or the window that becomes complete at a quarter
  boundary -- is materialized, latest window only (older windows are backfills). The whole graph
  of that partition is requested on the same tick, so it runs as one run per partition; an asset
  materialized alone later is followed by its downstream assets. Never while the partition or an
  upstream partition is in progress. ``heatmaps`` and ``patch_geojson`` (:data:`WINDOW_CONDITION`)
  do not wait for the window's older quarters of ``descartes_run``: their step computes a quarter
  the store lacks. Sensor :data:`detection_automation` (default: stopped,
  because each request is a model run; switch it on under Automation).
- ``site_registry`` (:data:`REGISTRY_CONDITION`): rebuilt whenever any window of its ROI updates
  (``eager()`` without its "no missing upstream" clause: most windows of an ROI are never run).
  Sensor :data:`registry_automation` (default: running; a registry run takes seconds).

How many requested runs execute at once is the run queue's business (``dagster.yaml``,
docs/OPERATING.md).
"""

from __future__ import annotations

from typing import Any

from dagster import (
    AssetSpec,
    AutomationCondition,
    AutomationConditionSensorDefinition,
    DefaultSensorStatus,
    map_asset_specs,
)

from plastics_dagster.jobs import DETECT_SELECTION, REGISTRY_SELECTION

REGISTRY_ASSET = "site_registry"
#: the detection window's assets: they read the last ``pairs`` quarters of ``descartes_run`` and
#: compute a quarter the store lacks themselves, so older quarters never block them
WINDOW_ASSETS = frozenset({"heatmaps", "patch_geojson"})

#: root and downstream detection assets: new partitions of the latest window, and follow upstream updates
DETECT_CONDITION = (
    AutomationCondition.in_latest_time_window()
    & (AutomationCondition.newly_missing() | AutomationCondition.any_deps_updated()).since_last_handled()
    & ~AutomationCondition.any_deps_missing()
    & ~AutomationCondition.any_deps_in_progress()
    & ~AutomationCondition.in_progress()
).with_label("new partition or upstream updated (latest window)")

#: heatmaps / patch_geojson: as DETECT_CONDITION, but older quarters of descartes_run may be missing
WINDOW_CONDITION = (
    AutomationCondition.in_latest_time_window()
    & (AutomationCondition.newly_missing() | AutomationCondition.any_deps_updated()).since_last_handled()
    & ~AutomationCondition.any_deps_in_progress()
    & ~AutomationCondition.in_progress()
).with_label("new window or a quarter of it updated (latest window)")

#: site_registry: any window of the ROI updated since the registry last ran
REGISTRY_CONDITION = (
    AutomationCondition.any_deps_updated().since_last_handled()
    & ~AutomationCondition.any_deps_in_progress()
    & ~AutomationCondition.in_progress()
).with_label("any window updated")


def _condition(spec: AssetSpec) -> AssetSpec:
    name = spec.key.path[-1]
    condition = (REGISTRY_CONDITION if name == REGISTRY_ASSET else
                 WINDOW_CONDITION if name in WINDOW_ASSETS else DETECT_CONDITION)
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
__all__ = ["AUTOMATION_SENSORS", "DETECT_CONDITION", "REGISTRY_CONDITION", "WINDOW_CONDITION", "with_automation"]
