"""Materialize one partition of the graph in-process (used by ``plastics run`` and ``plastics demo``).

:func:`materialize_partition` launches what the UI launches for one ``(roi, window)``, as two
requests:

1. one ``detect_job`` run of the partition ``roi|window`` (the job's whole selection, as the UI's
   *Materialize* of the job): ``descartes_run`` of the window's own quarter through the per-tile
   fan-out, then the window's assets; the ``heatmaps`` step computes the quarters of the window
   that the store lacks (each once, under a claim) and records each as a materialization of its
   ``descartes_run`` partition, as in a UI run;
2. one ``registry_job`` run of the partition ``roi`` (the ROI's ``site_registry``, partitioned by
   ROI only, so a run of its own: what the UI's automation requests once the window exists).

It registers the ROI partition if needed (``test_patch`` from the shared data) and returns a
JSON-safe summary (see :class:`RunSummary`).
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from dagster import AssetKey, DagsterInstance, Definitions, EventLogEntry

from plastics_core.errors import ImageryError, PlasticsError
from plastics_core.params import DetectParams
from plastics_dagster.config import DetectionParams, detection_params
from plastics_dagster.partitions import check_complete, parse_window, partition_key
from plastics_dagster.registry import ensure_roi
from plastics_dagster.reliability import INTERRUPT_ERRORS
from plastics_dagster.resources import ImagerySourceResource, ModelStoreResource, StoreResource, imagery_kind


@dataclass
class RunSummary:
    """What one partition produced. ``candidates``: ``[{name, lon, lat, patch_mean}]``;
    ``paths``: asset name -> output path (GeoJSON file, heatmap folder, manifest); ``pairs``: the
    window's pair count; ``pairs_computed``: tile pairs computed by this request (tiles found in the
    store are not counted); ``timings``: ``{"pairs_s": {quarter: seconds}}``, the tile compute time
    of each quarter this request computed (oldest first)."""

    roi: str
    window: str
    run_hash: str
    store: str
    success: bool
    tiles: int = 0
    pairs: int = 0
    pairs_computed: int = 0
    blobs: int = 0
    candidates: list[dict[str, Any]] = field(default_factory=list)
    contour_area_km2: float = 0.0
    geocode_status: list[str] = field(default_factory=list)
    checks_failed: list[str] = field(default_factory=list)
    paths: dict[str, str] = field(default_factory=dict)
    timings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def pair_starts(window: str, params: DetectionParams) -> list[str]:
    """ISO first-period dates of the ``params.pairs`` pairs window ``window`` aggregates (oldest first)."""
    from plastics_core.geo.periods import parse_day, window_pair_starts
    from plastics_dagster.partitions import WINDOW_START

    return [
        d.isoformat()
        for d in window_pair_starts(
            parse_day(window), params.core().pairs, params.core().mosaic_period, parse_day(WINDOW_START)
        )
    ]


def parse_imagery(spec: str | None) -> ImagerySourceResource:
    """``synthetic`` | ``local:DIR`` | ``stac[:URL]`` | ``earthone``; None -> $PLASTICS_IMAGERY.

    Raises ImageryError (one line) at once for an unknown kind."""
    if not spec:
        source = ImagerySourceResource()
    else:
        kind, _, path = spec.partition(":")
        source = ImagerySourceResource(kind=imagery_kind(kind), path=path or None)
    try:
        source.resolved_kind()
    except ImageryError:
        if spec or source.kind or os.environ.get("PLASTICS_IMAGERY"):
            raise
        raise ImageryError(
            "no imagery source configured: pass --imagery stac (or local:DIR, earthone, or synthetic "
            "for a demo), or set PLASTICS_IMAGERY"
        ) from None
    return source


def _instance(instance: DagsterInstance | None) -> DagsterInstance:
    if instance is not None:
        return instance
    return DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else DagsterInstance.ephemeral()


def materialize_partition(
    roi: str,
    window: str,
    overrides: dict[str, Any] | DetectParams | None = None,
    store: str | None = None,
    imagery: str | ImagerySourceResource | None = None,
    instance: DagsterInstance | None = None,
    resources: dict[str, Any] | None = None,
    raise_on_error: bool = True,
    registry: bool = True,
    stop_requested: Callable[[], bool] | None = None,
    on_event: Callable[[EventLogEntry], None] | None = None,
    log_level: str = "DEBUG",
) -> RunSummary:
    """Materialize the detection graph for one (roi, window): one ``detect_job`` run of the
    partition, then (``registry``) one ``registry_job`` run of the ROI (see the module doc).

    ``overrides``: DetectionParams fields (e.g. ``{"preset": "high"}``) or the frozen
    :class:`~plastics_core.params.DetectParams` a command line already validated; ``store``: folder or
    ``s3://`` URL (None = $PLASTICS_STORE); ``imagery``: see :func:`parse_imagery`; ``instance``:
    None = $DAGSTER_HOME instance if set, else ephemeral; ``registry``: also rebuild the ROI's
    ``site_registry`` from every stored window; ``stop_requested``: checked before each Dagster run
    (``plastics run`` passes its SIGTERM/SIGINT record): when true,
    :class:`RunInterrupted` is raised instead of starting the next run; ``on_event``: called with
    every event log entry of both runs as the instance stores it (``plastics run``'s progress bar);
    ``log_level``: the lowest level Dagster's console logger prints (``"CRITICAL"`` keeps stderr to
    the progress bar). Raises PlasticsError on bad input or a failed step.
    """
    from plastics_dagster.definitions import default_resources

    parse_window(window)
    params = detection_params(overrides)  # validates (ParameterError / ModelError)
    check_complete(
        window, mosaic_period=params.mosaic_period, spectrogram_interval=params.spectrogram_interval
    )
    src = imagery if isinstance(imagery, ImagerySourceResource) else parse_imagery(imagery)
    store_res = StoreResource(location=store or "")
    from plastics_dagster.preflight import preflight

    preflight(
        params,
        src,
        (resources or {}).get("models") or ModelStoreResource(),
        store_res,
        (resources or {}).get("geocoder"),
        (resources or {}).get("database"),
    )  # before Dagster
    inst = _instance(instance)
    ensure_roi(inst, store_res.path(), roi)
    res = default_resources(params=params, imagery=src, store=store_res, **(resources or {}))
    tags = {"plastics/roi": roi, "plastics/window": window}
    defs = cli_definitions(res)
    starts = pair_starts(window, params)
    run_hash = params.run_hash_for(roi, src, store_res)
    _stop_if_requested(stop_requested)
    result = _execute(
        defs.resolve_job_def("detect_job"), partition_key(roi, window), inst, tags, on_event, log_level
    )
    summary = summarize(result, roi, window, run_hash, store_res.resolved())
    summary.pairs = len(starts)
    computed = quarters_computed(result)
    summary.pairs_computed = sum(n for n, _ in computed.values())
    summary.timings = {"pairs_s": {quarter: seconds for quarter, (_, seconds) in computed.items()}}
    if result.success and registry:
        _stop_if_requested(stop_requested)
        reg = _execute(defs.resolve_job_def("registry_job"), roi, inst, tags, on_event, log_level)
        _collect_paths(reg, summary)
        result = reg if not reg.success else result
    if raise_on_error and not result.success:
        raise_failure(result)
    return summary


def _execute(
    job: Any,
    key: Any,
    instance: DagsterInstance,
    tags: dict[str, str],
    on_event: Callable[[EventLogEntry], None] | None,
    log_level: str,
) -> Any:
    """One in-process run of ``job`` for partition ``key``; ``on_event`` receives each of its event
    log entries as the instance stores it; the console logger prints from ``log_level`` up."""
    run_id = str(uuid.uuid4())  # Dagster's run ids are UUID4 strings
    if on_event is not None:
        instance.add_event_listener(run_id, on_event)
    return job.execute_in_process(
        run_config={"loggers": {"console": {"config": {"log_level": log_level}}}},
        partition_key=str(key),
        instance=instance,
        raise_on_error=False,
        run_id=run_id,
        tags=tags,
    )


def quarters_computed(result: Any) -> dict[str, tuple[int, float]]:
    """``{quarter: (pairs computed, seconds)}`` for each ``descartes_run`` partition of the run whose
    pair this run computed (at least one tile not found in the store), oldest first: the window's
    own quarter (the fan-out steps) and those the window's ``heatmaps`` step computed (recorded as
    their ``descartes_run`` materializations). ``seconds``: the tiles' compute time (s, summed)."""
    from plastics_dagster.partitions import split_key

    out: dict[str, tuple[int, float]] = {}
    for event in result.get_asset_materialization_events():
        mat = event.materialization
        if mat.asset_key != AssetKey("descartes_run") or mat.partition is None:
            continue
        count = mat.metadata.get("pairs_computed")
        seconds = mat.metadata.get("seconds")
        n = int(count.value) if count is not None else 0
        if n > 0:
            out[split_key(mat.partition)[1]] = (n, float(seconds.value) if seconds is not None else 0.0)
    return dict(sorted(out.items()))


class RunInterrupted(PlasticsError):
    """The run was stopped by SIGTERM/SIGINT (exit code 130 from the CLI)."""

    exit_code = 130


def _stop_if_requested(stop_requested: Callable[[], bool] | None) -> None:
    """Raise RunInterrupted when a stop was requested (a signal Dagster held past a run's end)."""
    if stop_requested is not None and stop_requested():
        raise RunInterrupted(
            "interrupted (SIGTERM/SIGINT) between two Dagster runs: finished pairs and "
            "tiles are kept; rerun the same command to complete it"
        )


def cli_definitions(resources: dict[str, Any]) -> Definitions:
    """The graph with ``resources`` and in-process ``detect_job`` / ``registry_job``: CLI runs are
    listed under the same jobs as runs launched from the UI (same names, selections, partitions)."""
    from dagster import in_process_executor

    from plastics_dagster.checks import ALL_CHECKS
    from plastics_dagster.definitions import ALL_ASSETS
    from plastics_dagster.jobs import make_detect_job, registry_job

    return Definitions(
        assets=ALL_ASSETS,
        asset_checks=ALL_CHECKS,
        resources=resources,
        jobs=[make_detect_job(executor_def=in_process_executor), registry_job],
    )


def raise_failure(result: Any) -> None:
    """Re-raise the first step failure: a PlasticsError stays one line; others are wrapped."""
    from plastics_core import errors

    for event in result.all_events:  # step failures, and resource init failures (no step failure then)
        err = getattr(event.event_specific_data, "error", None)
        if err is None or not (event.is_step_failure or event.event_type_value == "RESOURCE_INIT_FAILURE"):
            continue
        user = getattr(event.event_specific_data, "user_failure_data", None)
        meta = getattr(user, "metadata", None) or {}
        if user is not None and user.description and "error" in meta:  # reliability.user_failure
            cls = getattr(errors, str(meta["error"].value), None)
            cls = cls if isinstance(cls, type) and issubclass(cls, PlasticsError) else PlasticsError
            raise cls(f"{event.step_key}: {user.description}")
        while err.cause is not None and not isinstance(getattr(errors, err.cls_name, None), type):
            err = err.cause
        if err.cls_name in INTERRUPT_ERRORS:
            raise RunInterrupted(
                f"{event.step_key} was interrupted (SIGTERM/SIGINT): the run is marked failed, "
                "finished tiles are kept; rerun the same command to complete it"
            )
        message = err.message.strip().splitlines()[-1] if err.message.strip() else "step failed"
        cls = getattr(errors, err.cls_name, None)
        checked = re.search(r"Value error, (.*?) \[type=", err.message)  # a resource's own validator
        if err.cls_name == "ValidationError" and checked:
            cls, message = errors.ParameterError, checked.group(1)
        if isinstance(cls, type) and issubclass(cls, PlasticsError):  # user error: its own one-line message
            message = re.sub(rf"^[\w.]*\b{re.escape(err.cls_name)}: ", "", message, count=1)
        else:
            cls = PlasticsError
        raise cls(f"{event.step_key}: {message}")
    if any(
        e.event_type_value in ("PIPELINE_CANCELED", "RUN_CANCELED") or "nterrupt" in (e.message or "")
        for e in result.all_events
    ):
        raise RunInterrupted(
            "the run was interrupted (SIGTERM/SIGINT): finished tiles are kept; rerun the same "
            "command to complete it"
        )
    raise RuntimeError("the run failed without a step failure event")


def _collect_paths(result: Any, summary: RunSummary) -> None:
    for mat in result.get_asset_materialization_events():
        meta = mat.materialization.metadata
        for key in ("path", "preview", "csv"):
            if key in meta:
                name = mat.asset_key.path[-1] + ("" if key == "path" else f":{key}")
                summary.paths[name if key != "preview" else "preview"] = str(meta[key].value)


def summarize(result: Any, roi: str, window: str, run_hash: str, store: str) -> RunSummary:
    """Build a RunSummary from an ExecuteInProcessResult."""
    summary = RunSummary(roi=roi, window=window, run_hash=run_hash, store=store, success=result.success)
    _collect_paths(result, summary)
    for ev in result.get_asset_check_evaluations():
        if not ev.passed:
            summary.checks_failed.append(f"{ev.asset_key.path[-1]}:{ev.check_name}")
    if not result.success:
        return summary
    summary.tiles = len(result.output_for_node("heatmaps"))
    summary.blobs = len(result.output_for_node("blobs"))
    cands = result.output_for_node("candidates")
    for _, row in cands.iterrows():
        pt = row.geometry.representative_point()
        summary.candidates.append(
            {
                "name": str(row["name"]),
                "lon": float(pt.x),
                "lat": float(pt.y),
                "patch_mean": float(row["patch_mean"]) if "patch_mean" in row else None,
            }
        )
    contours = result.output_for_node("contours")
    if len(contours) and "area_km2" in contours:
        summary.contour_area_km2 = float(contours.groupby("name")["area_km2"].max().sum())
    sites = result.output_for_node("enriched_sites")
    if "geocode_status" in sites:
        summary.geocode_status = [str(s) for s in sites["geocode_status"]]
    return summary
