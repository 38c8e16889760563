"""Sensors: ``roi_sensor`` (new ROI files -> partitions) and ``imagery_sensor`` (complete windows -> runs).

- ``roi_sensor`` watches the ``store`` resource's ``roi_dir`` (a folder or ``s3://`` prefix;
  default ``$PLASTICS_ROI_DIR`` or ``./rois``) for new ``*.geojson``. Each valid file
  ``<name>.geojson`` is added as a dynamic ``roi`` partition and its latest complete window is
  requested; the runs read the geometry from that folder (:func:`plastics_dagster.registry.load_roi`).
  The sensor writes nothing. A file whose name is registered in the store with another geometry,
  and invalid files, are logged once and skipped. Cursor: JSON ``{file name: size-mtime}`` of seen files.
- Both request ``detect_job``; its executor is the deployment's (:mod:`plastics_dagster.jobs`).
- ``imagery_sensor``: for every registered ROI and every window whose pair partner's period has
  ended and for which the imagery source reports scenes in both periods, requests the run once
  (``run_key = "<roi>|<window>|<run_hash>"``). Cursor: JSON ``{"<roi>|<run_hash>": [done windows]}``
  so completed windows are never searched again.

Both sensors never request a partition whose ``enriched_sites`` is already materialized or whose
run is queued or running (whoever launched it: a sensor, declarative automation, a backfill, the
CLI). They do not limit how many runs are requested: the instance's run queue
(``concurrency.runs.max_concurrent_runs`` and ``tag_concurrency_limits`` in ``dagster.yaml``, see
docs/OPERATING.md) decides how many run at the same time; the others wait in the queue.
"""

import datetime as dt
import json
from typing import Any

from dagster import (
    AddDynamicPartitionsRequest,
    AssetKey,
    AssetPartitionStatus,
    DagsterInstance,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from plastics_core.errors import PlasticsError, RoiError
from plastics_core.geo.periods import pair_periods, parse_day
from plastics_core.params import geometry_hash
from plastics_dagster.config import DetectionParams
from plastics_dagster.jobs import detect_job
from plastics_dagster.partitions import (
    ROI_PARTITIONS_NAME,
    complete_windows,
    detect_partitions,
    partition_key,
)
from plastics_dagster.registry import list_rois, read_roi_any, roi_key, unusable_rois, unusable_rois_message
from plastics_dagster.resources import ImagerySourceResource, StoreResource

__all__ = ["complete_windows", "imagery_sensor", "roi_sensor"]

#: windows an ``imagery_sensor`` tick searches the catalog for (two searches each); the rest wait for
#: later ticks
MAX_SEARCHES = 40
#: the last asset of detect_job's partition: materialized = the partition is done
DONE_ASSET = AssetKey("enriched_sites")
IN_FLIGHT = [
    DagsterRunStatus.QUEUED,
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
]


class Partitions:
    """Which of a tick's partitions are done (``enriched_sites`` materialized) or in flight (a run
    queued or running), whoever materialized or launched them."""

    def __init__(self, instance: DagsterInstance, rois: list[str], windows: list[str]) -> None:
        runs = instance.get_runs(filters=RunsFilter(statuses=IN_FLIGHT))
        self.in_flight = {r.tags.get("dagster/partition", "") for r in runs} - {""}
        keys = [str(partition_key(r, w)) for r in rois for w in windows]
        status = instance.get_status_by_partition(DONE_ASSET, keys, detect_partitions) if keys else None
        self.done = {k for k, v in (status or {}).items() if v == AssetPartitionStatus.MATERIALIZED}

    def state(self, roi: str, window: str) -> str:
        """``done`` | ``in_flight`` | ``todo``."""
        key = str(partition_key(roi, window))
        if key in self.done:
            return "done"
        return "in_flight" if key in self.in_flight else "todo"


def today() -> dt.date:
    """The sensors' clock: the date whose complete windows a tick requests (tests fix it)."""
    return dt.date.today()


def run_key(roi: str, window: str, run_hash: str) -> str:
    return f"{roi}|{window}|{run_hash}"


def _request(roi: str, window: str, run_hash: str) -> RunRequest:
    return RunRequest(
        run_key=run_key(roi, window, run_hash),
        partition_key=partition_key(roi, window),
        tags={"plastics/run_hash": run_hash, "plastics/roi": roi},
    )


@sensor(
    job=detect_job,
    minimum_interval_seconds=60,
    default_status=DefaultSensorStatus.STOPPED,
    description="New ROI GeoJSON in the store resource's roi_dir ($PLASTICS_ROI_DIR) -> dynamic roi "
    "partition + latest complete window run (writes nothing)",
)
def roi_sensor(
    context: SensorEvaluationContext,
    params: DetectionParams,
    imagery: ImagerySourceResource,
    store: StoreResource,
) -> SensorResult | SkipReason:
    folder = store.roi_folder()
    if not folder.exists():
        return SkipReason(f"ROI folder {folder} does not exist")
    seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    known = set(context.instance.get_dynamic_partitions(ROI_PARTITIONS_NAME))
    windows = complete_windows(today(), params.core().mosaic_period, params.core().spectrogram_interval)
    source_name = imagery.source_name()
    files = [p for p in sorted(folder.iterdir(), key=lambda p: p.name) if p.name.endswith(".geojson")]
    partitions = Partitions(context.instance, [p.name[: -len(".geojson")] for p in files], windows[-1:])
    new_names: list[str] = []
    requests: list[RunRequest] = []
    for path in files:
        info = path.stat()
        stamp = f"{info.st_size}-{getattr(info, 'st_mtime', '')}"
        if seen.get(path.name) == stamp:
            continue
        name = path.name[: -len(".geojson")]
        seen[path.name] = stamp
        try:
            from plastics_core.geo.roi import validate_roi_name

            name = validate_roi_name(name)
            geom_hash = geometry_hash(read_roi_any(path))
            registered = roi_key(store.path(), name)
            if registered.exists() and geometry_hash(read_roi_any(registered)) != geom_hash:
                raise RoiError(
                    f"ROI {name!r} is registered in the store with another geometry: rename the file "
                    f"or replace it with `plastics roi add --replace {name} FILE.geojson`"
                )
        except PlasticsError as exc:
            context.log.warning(f"skipping ROI file {path.name}: {exc}")
            continue
        if name not in known and name not in new_names:
            new_names.append(name)
        if windows and partitions.state(name, windows[-1]) == "todo":
            requests.append(_request(name, windows[-1], params.run_hash(source_name, geom_hash)))
    context.update_cursor(json.dumps(seen, sort_keys=True))
    if not new_names and not requests:
        return SkipReason("no new ROI files")
    dyn = [AddDynamicPartitionsRequest(ROI_PARTITIONS_NAME, new_names)] if new_names else []
    return SensorResult(run_requests=requests, dynamic_partitions_requests=dyn)


def _has_scenes(source: Any, geom: Any, window: str, params: DetectionParams) -> bool:
    p = params.core()
    first, partner = pair_periods(parse_day(window), p.mosaic_period, p.spectrogram_interval)
    return bool(source.search(geom, first)) and bool(source.search(geom, partner))


@sensor(
    job=detect_job,
    minimum_interval_seconds=3600,
    default_status=DefaultSensorStatus.STOPPED,
    description="Requests each (roi, window) once when both periods of the window have imagery",
)
def imagery_sensor(
    context: SensorEvaluationContext,
    params: DetectionParams,
    imagery: ImagerySourceResource,
    store: StoreResource,
) -> SensorResult | SkipReason:
    done: dict[str, list[str]] = json.loads(context.cursor) if context.cursor else {}
    source_name = imagery.source_name()
    windows = complete_windows(today(), params.core().mosaic_period, params.core().spectrogram_interval)
    source = None
    requests: list[RunRequest] = []
    searches = 0
    rois = list_rois(context.instance)
    unusable = unusable_rois_message(unusable_rois(context.instance))
    if unusable:  # partitions added in the UI or the API under a name no run can use
        context.log.warning(unusable)
    partitions = Partitions(context.instance, rois, windows)
    for roi in rois:
        try:
            geom = store.load_roi(roi)
        except PlasticsError as exc:
            context.log.warning(f"ROI {roi}: {exc}")
            continue
        run_hash = params.run_hash(source_name, geometry_hash(geom))
        slot = done.setdefault(f"{roi}|{run_hash}", [])
        for window in windows:  # materialized by anyone (CLI, backfill, automation): never requested
            if window not in slot and partitions.state(roi, window) == "done":
                slot.append(window)
        todo = [w for w in windows if w not in slot and partitions.state(roi, w) == "todo"]
        if not todo:
            slot.sort()
            continue
        source = source or imagery.get_source()
        for window in reversed(todo):  # newest first
            if searches >= MAX_SEARCHES:
                break
            searches += 1
            if _has_scenes(source, geom, window, params):
                requests.append(_request(roi, window, run_hash))
                slot.append(window)
        slot.sort()
    context.update_cursor(json.dumps(done, sort_keys=True))
    if not requests:
        return SkipReason("no newly complete windows with imagery")
    return SensorResult(run_requests=requests)
