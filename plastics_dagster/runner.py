"""Materialize one partition of the graph in-process (used by ``plastics run`` and ``plastics demo``).

:func:`materialize_partition` registers the ROI partition if needed (``test_patch`` from the
shared data), materializes ``descartes_run`` for each quarter of the window's pairs that the
store lacks (one pair per quarter, computed once and reused by later windows), then runs
``detect_job`` (every other detection asset and its checks, in-process) for a complete
``(roi, window)``, then ``registry_job`` for the ROI, and returns a JSON-safe summary
(see :class:`RunSummary`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from dagster import AssetKey, DagsterInstance, Definitions

from plastics_core.errors import ImageryError, PlasticsError
from plastics_dagster.config import DetectionParams, detection_params
from plastics_dagster.partitions import check_complete, parse_window, partition_key
from plastics_dagster.registry import ensure_roi
from plastics_dagster.reliability import INTERRUPT_ERRORS
from plastics_dagster.resources import ImagerySourceResource, ModelStoreResource, StoreResource


@dataclass
class RunSummary:
    """What one partition produced. ``candidates``: ``[{name, lon, lat, patch_mean}]``;
    ``paths``: asset name -> output path (GeoJSON file, heatmap folder, manifest)."""

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
            parse_day(window), params.pairs, params.mosaic_period, parse_day(WINDOW_START)
        )
    ]


def missing_starts(store: Any, roi: str, starts: list[str], run_hash: str) -> list[str]:
    """The starts whose pair is not in the store for this run hash."""
    from plastics_core.method.window import missing_starts as missing

    return missing(store, roi, starts, run_hash)


def parse_imagery(spec: str | None) -> ImagerySourceResource:
    """``synthetic`` | ``local:DIR`` | ``stac[:URL]`` | ``earthone``; None -> $PLASTICS_IMAGERY.

    Raises ImageryError (one line) at once for an unknown kind."""
    if not spec:
        source = ImagerySourceResource()
    else:
        kind, _, path = spec.partition(":")
        source = ImagerySourceResource(kind=kind, path=path or None)
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
    overrides: dict[str, Any] | None = None,
    store: str | None = None,
    imagery: str | ImagerySourceResource | None = None,
    instance: DagsterInstance | None = None,
    resources: dict[str, Any] | None = None,
    raise_on_error: bool = True,
    registry: bool = True,
    stop_requested: Callable[[], bool] | None = None,
) -> RunSummary:
    """Materialize the detection graph for one (roi, window).

    ``overrides``: DetectionParams fields (e.g. ``{"preset": "high"}``); ``store``: folder or
    ``s3://`` URL (None = $PLASTICS_STORE); ``imagery``: see :func:`parse_imagery`; ``instance``:
    None = $DAGSTER_HOME instance if set, else ephemeral; ``registry``: also rebuild the ROI's
    ``site_registry`` from every stored window; ``stop_requested``: checked before each Dagster run
    (``plastics run`` passes its SIGTERM/SIGINT record): when true,
    :class:`RunInterrupted` is raised instead of starting the next run. Raises PlasticsError on bad
    input or a failed step.
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
    detect = defs.resolve_job_def("detect_job")
    starts = pair_starts(window, params)
    run_hash = params.run_hash(src.source_name(), store_res.roi_hash(roi))
    computed, timings = 0, {}
    for start in missing_starts(store_res.path(), roi, starts, run_hash):
        _stop_if_requested(stop_requested)
        pair = detect.execute_in_process(
            partition_key=partition_key(roi, start),
            instance=inst,
            asset_selection=[AssetKey("descartes_run")],
            raise_on_error=False,
            tags={**tags, "plastics/pair": start},
        )
        if not pair.success:
            if raise_on_error:
                raise_failure(pair)
            return summarize(pair, roi, window, run_hash, store_res.resolved())
        manifest = pair.output_for_node("descartes_run").manifest
        timings[start] = manifest.get("timings", {}).get("total_s", 0.0)
        for mat in pair.get_asset_materialization_events():
            value = mat.materialization.metadata.get("pairs_computed")
            computed += int(value.value) if value is not None else 0  # type: ignore[arg-type]
    window_assets = window_asset_keys()
    _stop_if_requested(stop_requested)
    result = detect.execute_in_process(
        partition_key=partition_key(roi, window),
        instance=inst,
        asset_selection=window_assets,
        raise_on_error=False,
        tags=tags,
    )
    summary = summarize(result, roi, window, run_hash, store_res.resolved())
    summary.pairs, summary.pairs_computed = len(starts), computed
    summary.timings = {"pairs_s": timings}
    if result.success and registry:
        _stop_if_requested(stop_requested)
        reg = defs.resolve_job_def("registry_job").execute_in_process(
            partition_key=roi, instance=inst, raise_on_error=False, tags=tags
        )
        _collect_paths(reg, summary)
        result = reg if not reg.success else result
    if raise_on_error and not result.success:
        raise_failure(result)
    return summary


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


def window_asset_keys() -> list[AssetKey]:
    """``detect_job``'s assets of the detection window: every one except the per-quarter ``descartes_run``."""
    from plastics_dagster.definitions import ALL_ASSETS
    from plastics_dagster.jobs import DETECT_GROUPS

    keys = {
        k
        for a in ALL_ASSETS
        for k, group in a.group_names_by_key.items()
        if group in DETECT_GROUPS or k.path[-1] == "preview"
    }
    return sorted(keys - {AssetKey("descartes_run")}, key=lambda k: k.to_user_string())


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
