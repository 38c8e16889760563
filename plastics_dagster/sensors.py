"""Sensors: ``roi_sensor`` (new ROI files -> partitions) and ``imagery_sensor`` (complete windows -> runs).

- ``roi_sensor`` watches the ``store`` resource's ``roi_dir`` (a folder or ``s3://`` prefix;
  default ``$PLASTICS_ROI_DIR`` or ``./rois``) for new ``*.geojson``. Each valid file
  ``<name>.geojson`` is added as a dynamic ``roi`` partition and its latest complete window is
  requested; the runs read the geometry from that folder (:func:`plastics_dagster.registry.load_roi`).
  The sensor writes nothing. A file whose name is registered in the store with another geometry,
  and invalid files, are logged once and skipped. Cursor: JSON ``{file name: size-mtime}`` of seen files.
- Both request the job named by the ``launch`` resource (``detect_job``, ``detect_job_celery`` or
  ``detect_job_k8s``; ``$PLASTICS_DETECT_JOB``), so the executor is a setting of the deployment.
- ``imagery_sensor``: for every registered ROI and every window whose pair partner's period has
  ended and for which the imagery source reports scenes in both periods, requests the run once
  (``run_key = "<roi>|<window>|<run_hash>"``). Cursor: JSON ``{"<roi>|<run_hash>": [done windows]}``
  so completed windows are never searched again.

Both sensors never request a partition whose ``enriched_sites`` is already materialized or whose
run is queued or running (whoever launched it: a sensor, declarative automation, a backfill, the
CLI), and keep at most ``MAX_IN_FLIGHT`` partitioned runs queued or running at once; what is not
requested now is requested on a later tick. The run queue of the instance (``dagster.yaml``,
see docs/OPERATING.md) limits how many of those run at the same time.
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
from plastics_dagster.jobs import detect_job, detect_job_celery, detect_job_k8s
from plastics_dagster.partitions import (
    ROI_PARTITIONS_NAME,
    complete_windows,
    detect_partitions,
    partition_key,
)
from plastics_dagster.registry import list_rois, read_roi_any, roi_key, unusable_rois, unusable_rois_message
from plastics_dagster.resources import ImagerySourceResource, LaunchResource, StoreResource

__all__ = ["MAX_IN_FLIGHT", "complete_windows", "imagery_sensor", "roi_sensor"]

#: partitioned runs queued or running at once, counting every launcher (the sensors request no more)
MAX_IN_FLIGHT = 2
MAX_SEARCHES = 40
#: the last asset of detect_job's partition: materialized = the partition is done
DONE_ASSET = AssetKey("enriched_sites")
IN_FLIGHT = [
    DagsterRunStatus.QUEUED,
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
]


class Budget:
    """What a tick may still request: partitions neither done nor in flight, and free run slots."""

    def __init__(self, instance: DagsterInstance, rois: list[str], windows: list[str]) -> None:
        runs = instance.get_runs(filters=RunsFilter(statuses=IN_FLIGHT))
        self.in_flight = {r.tags.get("dagster/partition", "") for r in runs} - {""}
        self.free = max(0, MAX_IN_FLIGHT - sum("|" in key for key in self.in_flight))
        keys = [str(partition_key(r, w)) for r in rois for w in windows]
        status = instance.get_status_by_partition(DONE_ASSET, keys, detect_partitions) if keys else None
        self.done = {k for k, v in (status or {}).items() if v == AssetPartitionStatus.MATERIALIZED}

    def state(self, roi: str, window: str) -> str:
        """``done`` | ``in_flight`` | ``full`` (no free slot) | ``free``."""
        key = str(partition_key(roi, window))
        if key in self.done:
            return "done"
        if key in self.in_flight:
            return "in_flight"
        return "full" if self.free <= 0 else "free"

    def take(self) -> None:
        self.free -= 1


def today() -> dt.date:
    """The sensors' clock: the date whose complete windows a tick requests (tests fix it)."""
    return dt.date.today()


def run_key(roi: str, window: str, run_hash: str) -> str:
    return f"{roi}|{window}|{run_hash}"


DETECT_JOBS = [detect_job, detect_job_celery, detect_job_k8s]


def _request(roi: str, window: str, run_hash: str, job: str) -> RunRequest:
    return RunRequest(
        run_key=run_key(roi, window, run_hash),
        partition_key=partition_key(roi, window),
        tags={"plastics/run_hash": run_hash, "plastics/roi": roi},
        job_name=job,
    )


@sensor(
    jobs=DETECT_JOBS,
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
    launch: LaunchResource,
) -> SensorResult | SkipReason:
    folder = store.roi_folder()
    if not folder.exists():
        return SkipReason(f"ROI folder {folder} does not exist")
    seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    known = set(context.instance.get_dynamic_partitions(ROI_PARTITIONS_NAME))
    windows = complete_windows(today(), params.mosaic_period, params.spectrogram_interval)
    source_name = imagery.source_name()
    files = [p for p in sorted(folder.iterdir(), key=lambda p: p.name) if p.name.endswith(".geojson")]
    budget = Budget(context.instance, [p.name[: -len(".geojson")] for p in files], windows[-1:])
    new_names: list[str] = []
    requests: list[RunRequest] = []
    for path in files:
        info = path.stat()
        stamp = f"{info.st_size}-{getattr(info, 'st_mtime', '')}"
        if seen.get(path.name) == stamp:
            continue
        name = path.name[: -len(".geojson")]
        if windows and budget.state(name, windows[-1]) == "full":
            continue  # no free run slot: this file is picked up again on a later tick
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
        if windows and budget.state(name, windows[-1]) == "free":
            requests.append(
                _request(name, windows[-1], params.run_hash(source_name, geom_hash), launch.job_name())
            )
            budget.take()
    context.update_cursor(json.dumps(seen, sort_keys=True))
    if not new_names and not requests:
        return SkipReason("no new ROI files")
    dyn = [AddDynamicPartitionsRequest(ROI_PARTITIONS_NAME, new_names)] if new_names else []
    return SensorResult(run_requests=requests, dynamic_partitions_requests=dyn)


def _has_scenes(source: Any, geom: Any, window: str, params: DetectionParams) -> bool:
    first, partner = pair_periods(parse_day(window), params.mosaic_period, params.spectrogram_interval)
    return bool(source.search(geom, first)) and bool(source.search(geom, partner))


@sensor(
    jobs=DETECT_JOBS,
    minimum_interval_seconds=3600,
    default_status=DefaultSensorStatus.STOPPED,
    description="Requests each (roi, window) once when both periods of the window have imagery",
)
def imagery_sensor(
    context: SensorEvaluationContext,
    params: DetectionParams,
    imagery: ImagerySourceResource,
    store: StoreResource,
    launch: LaunchResource,
) -> SensorResult | SkipReason:
    done: dict[str, list[str]] = json.loads(context.cursor) if context.cursor else {}
    source_name = imagery.source_name()
    windows = complete_windows(today(), params.mosaic_period, params.spectrogram_interval)
    source = None
    requests: list[RunRequest] = []
    searches = 0
    rois = list_rois(context.instance)
    unusable = unusable_rois_message(unusable_rois(context.instance))
    if unusable:  # partitions added in the UI or the API under a name no run can use
        context.log.warning(unusable)
    budget = Budget(context.instance, rois, windows)
    for roi in rois:
        try:
            geom = store.load_roi(roi)
        except PlasticsError as exc:
            context.log.warning(f"ROI {roi}: {exc}")
            continue
        run_hash = params.run_hash(source_name, geometry_hash(geom))
        slot = done.setdefault(f"{roi}|{run_hash}", [])
        for window in windows:  # materialized by anyone (CLI, backfill, automation): never requested
            if window not in slot and budget.state(roi, window) == "done":
                slot.append(window)
        todo = [w for w in windows if w not in slot and budget.state(roi, w) != "in_flight"]
        if not todo or budget.free <= 0:
            slot.sort()
            continue
        source = source or imagery.get_source()
        for window in reversed(todo):  # newest first
            if budget.free <= 0 or searches >= MAX_SEARCHES:
                break
            searches += 1
            if _has_scenes(source, geom, window, params):
                requests.append(_request(roi, window, run_hash, launch.job_name()))
                slot.append(window)
                budget.take()
        slot.sort()
    context.update_cursor(json.dumps(done, sort_keys=True))
    if not requests:
        return SkipReason(
            "no newly complete windows with imagery"
            if budget.free > 0
            else f"{MAX_IN_FLIGHT} partitioned runs already queued or running"
        )
    return SensorResult(run_requests=requests)
