"""``descartes_run`` as a graph-backed asset: one dynamic step per tile.

Graph (inside the asset ``descartes_run``)::

    plan_tiles ──DynamicOut: one tile key per tile──> infer_tile (GPU op) ──collect──> collect_tiles
    submit_tiles ──(jobs submitted, earthone backend)──┘

- ``plan_tiles``: the partition's ROI -> DLTile keys (``tilesize``/``pad`` from the params);
  mapping keys are the tile keys made identifier-safe (:func:`plastics_dagster.tile_steps.mapping_key`).
- ``infer_tile``: one tile through :func:`plastics_core.execution.pipeline.run_tile`: the partition's
  quarter is one spectrogram pair (its first period and the partner ``spectrogram_interval``
  periods later): imagery, both composites, the pixel model on the pair, the patch model. Dagster pool ``gpu`` (limit it to the number of GPUs with
  ``dagster instance concurrency set gpu N``); tag ``dagster-celery/queue: gpu`` (celery
  executor); tag ``dagster-k8s/config`` (:data:`plastics_dagster.tile_steps.GPU_K8S_CONFIG`: ``nvidia.com/gpu: 1``, GPU node
  selector and toleration) for ``k8s_job_executor``. It writes the tile's outputs into the run-hash
  folder (the same files the manifest's IO manager reads)::

      <store>/descartes_run/<roi>/<window>/<run-hash>/<tile>.tif              the pair's pixel scores (COG)
      <store>/descartes_run/<roi>/<window>/<run-hash>/<tile>.patchgrid.tif    the pair's patch-score grid
      <store>/descartes_run/<roi>/<window>/<run-hash>/<tile>.summary          JSON summary, written last

  The summary file marks the tile complete: a re-run (same run hash) finds it and skips the tile.
  A tile is computed under an exclusive claim (:func:`plastics_core.execution.pair_claim.compute_tile_once`):
  a tile another run is computing at the same time is awaited and counted as skipped.
  All four ops carry the network retry policy (:data:`plastics_dagster.reliability.NETWORK_RETRY`);
  user errors (PlasticsError) fail at once.
- ``submit_tiles``: the tile backend (:mod:`plastics_dagster.backend`, ``PLASTICS_BACKEND``):
  ``local`` does nothing here; ``earthone`` creates one EarthOne compute Function and submits one
  job per planned tile without a summary file (one bulk call); ``infer_tile`` then waits for its
  tile's job instead of computing the tile itself. The job writes the same files.
- ``collect_tiles``: builds the JSON manifest from the tile summaries with
  :func:`plastics_core.execution.manifest.pair_manifest` (the one manifest schema; ``backend``:
  ``local`` or ``earthone`` with the Function and job ids; ``executor``: ``in-process``,
  ``multiprocess``, ``celery``, ``k8s``); the IO manager writes the manifest only (the tile files
  are already in place) and reads the tiles back for downstream.

Step outputs (tile keys, submissions, tile summaries) go through Dagster's own pickling IO
managers (:mod:`plastics_dagster.step_io`) to ``<steps>/<run_id>/<step>/<output>[/<mapping key>]``
where ``<steps>`` is the ``plastics_step_io_manager`` resource's location (folder or ``s3://``;
``$PLASTICS_STEP_STORE`` in the Kubernetes deployment, whose pods share no disk), or else the Dagster
instance's storage folder (``$DAGSTER_HOME/storage``, shared by the processes and celery workers of
one machine). A
re-execution from failure reads the parent run's step outputs from there. The manifest goes
through the ``descartes_run`` IO manager (:data:`plastics_dagster.io_manager.DESCARTES_RUN_IO`).
"""

import time
from typing import Any

from dagster import (
    DynamicOut,
    DynamicOutput,
    In,
    MetadataValue,
    OpExecutionContext,
    Out,
    Output,
    graph_asset,
    op,
)

from plastics_core.execution.manifest import RunRecord, pair_manifest
from plastics_core.params import DetectParams
from plastics_core.storage.corrupt import load_json
from plastics_core.storage.folders import DescartesRun
from plastics_core.storage.store import TILE_SUMMARY_EXT as TILE_SUMMARY_EXT
from plastics_core.storage.store import run_folder, tile_files, tiles_done
from plastics_dagster.backend import BackendResource
from plastics_dagster.config import DetectionParams
from plastics_dagster.io_manager import DESCARTES_RUN_IO
from plastics_dagster.partitions import check_complete, detect_partitions, split_key, versioned_output
from plastics_dagster.reliability import NETWORK_RETRY, fail_fast_on_user_errors
from plastics_dagster.resources import (
    GeocoderResource,
    ImagerySourceResource,
    ModelStoreResource,
    StoreResource,
)
from plastics_dagster.step_io import STEP_IO_MANAGER_KEY
from plastics_dagster.tile_steps import GPU_POOL, INFER_TILE_TAGS, complete_summaries, mapping_key
from plastics_dagster.workers import worker_identity

CODE_VERSION = "2"


def _partition(context: OpExecutionContext) -> tuple[str, str]:
    return split_key(context.partition_key)


def _run_hash(
    context: OpExecutionContext, params: DetectionParams, imagery: ImagerySourceResource, store: StoreResource
) -> str:
    """The run hash of the partition's ROI, computed once per run (:meth:`DetectionParams.run_hash_for`)."""
    return params.run_hash_for(_partition(context)[0], imagery, store)


def run_record(
    context: OpExecutionContext | Any,
    params: DetectionParams,
    imagery: ImagerySourceResource,
    models: ModelStoreResource,
    store: StoreResource,
    backend: str,
    earthone: dict[str, Any] | None = None,
) -> RunRecord:
    """What the partition's pair manifests record about this run
    (:class:`plastics_core.execution.manifest.RunRecord`): ROI, run hash, parameters, imagery
    source, the pixel and patch models' sha256 (resolved and verified in the model store),
    ``backend`` and this run's executor."""
    p = params.core()
    model_store = models.get_store()
    return RunRecord(
        run_hash=_run_hash(context, params, imagery, store),
        roi=_partition(context)[0],
        params=p,
        imagery_source=imagery.source_name(),
        models={name: model_store.resolve(name).sha256 for name in (p.model, p.patch_model)},
        backend=backend,
        executor=executor_name(context),
        earthone=earthone or {},
    )


def executor_name(context: OpExecutionContext | Any) -> str:
    """The Dagster executor of the run's steps: ``in-process``, ``multiprocess``, ``celery``, ``k8s``..."""
    executor = str(context.job_def.executor_def.name)
    return "in-process" if executor in ("in_process", "execute_in_process_executor") else executor


def planned_tiles(params: DetectParams, store: StoreResource, roi: str) -> list[str]:
    """The sorted DLTile keys of a registered ROI (``tilesize``/``pad`` from the params)."""
    from plastics_core.geo.tiles import plan_tiles as plan

    return [t.key for t in plan(store.load_roi(roi), tilesize=params.tilesize, pad=params.pad)]


@op(
    out=DynamicOut(str, io_manager_key=STEP_IO_MANAGER_KEY),
    retry_policy=NETWORK_RETRY,
    description="Check the imagery source and models once, then plan the partition's DLTiles: one dynamic "
    "output (the tile key) per tile.",
)
@fail_fast_on_user_errors
def plan_tiles(
    context: OpExecutionContext,
    params: DetectionParams,
    store: StoreResource,
    imagery: ImagerySourceResource,
    models: ModelStoreResource,
    geocoder: GeocoderResource,
) -> list[DynamicOutput[str]]:
    roi, window = _partition(context)
    from plastics_dagster.preflight import preflight

    # bad parameters or imagery config, missing/corrupt models (ensemble too), an unwritable store:
    # one failure before the first tile, not one per tile
    preflight(params, imagery, models, store, geocoder)
    # a window inside the imagery lag (offered by the window dimension from the quarter boundary on):
    # refused here for every launcher (UI, automation, sensors, CLI), in one line naming the date
    p = params.core()
    check_complete(window, mosaic_period=p.mosaic_period, spectrogram_interval=p.spectrogram_interval)
    tiles = planned_tiles(p, store, roi)
    context.log.info(f"{roi} {window}: {len(tiles)} tiles")
    return [DynamicOutput(key, mapping_key=mapping_key(key)) for key in tiles]  # a list: errors raise in here


def _job_kwargs(
    context: OpExecutionContext,
    params: DetectionParams,
    imagery: ImagerySourceResource,
    models: ModelStoreResource,
    store: StoreResource,
) -> dict[str, Any]:
    from plastics_dagster.backend import job_kwargs

    roi, window = _partition(context)
    return job_kwargs(window, roi, _run_hash(context, params, imagery, store), params, store, imagery, models)


@op(
    out=Out(dict, io_manager_key=STEP_IO_MANAGER_KEY),
    retry_policy=NETWORK_RETRY,
    description="Tile backend: local -> nothing; earthone -> one compute Function and one job per planned tile "
    "without outputs (one bulk call). Output: {backend, run_id, function_id, jobs: {tile: job id}, tiles: planned keys}.",
)
@fail_fast_on_user_errors
def submit_tiles(
    context: OpExecutionContext,
    params: DetectionParams,
    store: StoreResource,
    imagery: ImagerySourceResource,
    models: ModelStoreResource,
    backend: BackendResource,
) -> dict[str, Any]:
    from plastics_core.errors import RoiError
    from plastics_dagster.backend import submit_pending

    backend.check()
    roi, window = _partition(context)
    out: dict[str, Any] = {
        "backend": backend.resolved_kind(),
        "run_id": context.run_id,
        "function_id": "",
        "jobs": {},
        "tiles": [],
    }
    # refused parameters or an unregistered ROI: plan_tiles fails the run with that one line (not two steps)
    if params.refused():
        return out
    try:
        # once per run: infer_tile's progress counts against it
        planned = planned_tiles(params.core(), store, roi)
    except RoiError:
        return out
    out["tiles"] = planned
    if backend.resolved_kind() != "earthone":
        return out
    folder = run_folder(store.path(), roi, window, _run_hash(context, params, imagery, store))
    pending = [k for k in planned if not tile_files(folder, k)["summary"].exists()]
    kwargs = _job_kwargs(context, params, imagery, models, store)
    if pending:
        out.update(submit_pending(backend.client(), pending, kwargs))
    context.log.info(
        f"{roi} {window}: {len(out['jobs'])} EarthOne jobs submitted (function {out['function_id']})"
    )
    return out


def _device() -> str:
    """Where this process ran the pixel models (``numpy:CPU``, ``jax:gpu``, ``keras:GPU:1``...)."""
    from plastics_core.models.infer import inference_device

    return inference_device()


@op(
    ins={"tile_key": In(str), "submitted": In(dict)},
    out=Out(dict, io_manager_key=STEP_IO_MANAGER_KEY),
    pool=GPU_POOL,
    tags=INFER_TILE_TAGS,
    code_version=CODE_VERSION,
    retry_policy=NETWORK_RETRY,
    description="One tile, the quarter's pair: imagery, composites, pixel scores, patch scores; writes the tile's files under "
    "the run-hash folder (skipped when they already exist). GPU op: pool gpu, celery queue gpu, k8s GPU pod. "
    "Backend earthone: waits for the tile's EarthOne job (which writes the same files) instead.",
)
@fail_fast_on_user_errors
def infer_tile(
    context: OpExecutionContext,
    tile_key: str,
    submitted: dict[str, Any],
    params: DetectionParams,
    imagery: ImagerySourceResource,
    models: ModelStoreResource,
    store: StoreResource,
    backend: BackendResource,
) -> dict[str, Any]:
    roi, window = _partition(context)
    folder = run_folder(store.path(), roi, window, _run_hash(context, params, imagery, store))
    marker = tile_files(folder, tile_key)["summary"]
    t0 = time.perf_counter()
    on_earthone = backend.resolved_kind() == "earthone"
    # the job submit_tiles sent (it may have written the files already) serves the first attempt of
    # this run; retries and re-executions submit a fresh job unless the files exist
    reuse = (
        on_earthone
        and submitted.get("run_id") == context.run_id
        and context.retry_number == 0
        and tile_key in submitted.get("jobs", {})
    )
    if marker.exists() and not reuse:
        summary, skipped = (
            load_json(marker),
            True,
        )  # a corrupt summary: moved aside, the rerun recomputes the tile
        context.log.info(f"{tile_key}: outputs exist for this run hash, skipped")
    elif on_earthone:
        from plastics_dagster.backend import run_remote_tile

        kwargs = _job_kwargs(context, params, imagery, models, store)
        summary, skipped = run_remote_tile(backend.client(), tile_key, submitted, reuse, kwargs), False
        context.log.info(f"{tile_key}: EarthOne job {summary['job_id']} done")
    else:  # the same function the EarthOne job runs: identical files; a tile another run is computing is awaited
        from plastics_core.execution.pair_claim import compute_tile_once
        from plastics_core.geo.periods import parse_day

        summary, computed = compute_tile_once(
            tile_key,
            imagery.get_source(),
            models.get_store(),
            params.core(),
            parse_day(window),
            folder,
            log=context.log.info,
        )
        skipped = not computed
        if skipped:
            context.log.info(f"{tile_key}: computed meanwhile by another run for this run hash, skipped")
    planned = submitted["tiles"]
    context.log.info(
        f"{roi} {window}: tiles done {tiles_done(folder, planned)}/{len(planned)} (last: {tile_key}, "
        f"{'skipped' if skipped else f'{time.perf_counter() - t0:.1f} s'})"
    )
    who = worker_identity()
    device = "" if skipped else ("earthone" if on_earthone else _device())
    context.add_output_metadata(
        {
            "tile": tile_key,
            "skipped": skipped,
            "worker": who["worker"],
            "queue": who["queue"],
            "pid": who["pid"],
            "device": device,
            "job_id": str(summary.get("job_id", "")),
            "seconds": MetadataValue.float(round(time.perf_counter() - t0, 3)),
        }
    )
    return {**summary, "skipped": skipped, "worker": who["worker"]}


@op(
    ins={"tiles": In(list)},
    out=Out(DescartesRun, io_manager_key=DESCARTES_RUN_IO),
    retry_policy=NETWORK_RETRY,
    description="Gather the tile summaries into the run manifest (the tiles' files are already stored).",
)
@fail_fast_on_user_errors
def collect_tiles(
    context: OpExecutionContext,
    tiles: list[dict[str, Any]],
    params: DetectionParams,
    imagery: ImagerySourceResource,
    models: ModelStoreResource,
    store: StoreResource,
    backend: BackendResource,
) -> Output[DescartesRun]:
    roi, window = _partition(context)
    folder = run_folder(store.path(), roi, window, _run_hash(context, params, imagery, store))
    stored = folder.with_name(folder.name + ".json")
    if stored.exists():  # a corrupt stored manifest is named and moved aside, not overwritten unseen
        load_json(stored)
    # EarthOne jobs of this run (tiles skipped as already done have none)
    earthone = {
        "function_ids": sorted({str(t["function_id"]) for t in tiles if t.get("function_id")}),
        "jobs": {str(t["key"]): str(t["job_id"]) for t in tiles if t.get("job_id")},
    }
    tiles = complete_summaries(tiles, planned_tiles(params.core(), store, roi), folder)
    # backend: local | earthone (PLASTICS_BACKEND), where the tiles ran
    record = run_record(context, params, imagery, models, store, backend.resolved_kind(), earthone)
    manifest = pair_manifest(record, window, [str(t["key"]) for t in tiles], tiles)
    return versioned_output(
        DescartesRun(manifest), pair_metadata(manifest, tiles), manifest["run_hash"], window
    )


def pair_metadata(manifest: dict[str, Any], tiles: list[dict[str, Any]]) -> dict[str, Any]:
    """The materialization metadata of one ``descartes_run`` partition from its manifest and tile
    summaries (``skipped``: the tile's files were already stored; ``worker``: who ran it): the same
    keys whichever step computed the pair (the fan-out, or a window step for a missing quarter)."""
    done = [t for t in tiles if not t.get("skipped")]
    return {
        "run_hash": manifest["run_hash"],
        "tiles": len(tiles),
        "tiles_skipped": len(tiles) - len(done),
        # model work done by this run: one pair per tile not skipped
        "pairs_computed": sum(int(t.get("pairs_computed", 1)) for t in done),
        "composites_computed": sum(int(t.get("composites_computed", 0)) for t in done),
        "backend": manifest["backend"],
        "executor": manifest.get("executor", ""),
        "scenes": len(manifest["imagery"]["scene_ids"]),
        "seconds": MetadataValue.float(manifest["timings"]["total_s"]),
        "models": MetadataValue.json(manifest.get("models", {})),
        "infer_workers": MetadataValue.json(sorted({str(t.get("worker", "")) for t in tiles})),
        "empty_tiles": MetadataValue.json(manifest["empty_reasons"]),
        "earthone_jobs": MetadataValue.json(jobs_of(manifest)),
    }


def jobs_of(manifest: dict[str, Any]) -> dict[str, str]:
    """``{tile: EarthOne job id}`` of a manifest (empty on the local backend)."""
    return dict(manifest.get("earthone", {}).get("jobs", {}))


def _descartes_run() -> Any:
    submitted = submit_tiles()
    summaries = plan_tiles().map(lambda tile_key: infer_tile(tile_key, submitted))
    return collect_tiles(summaries.collect())


descartes_run = graph_asset(
    name="descartes_run",
    partitions_def=detect_partitions,
    group_name="detection",
    code_version=CODE_VERSION,
    kinds={"python", "tensorflow"},
    description="One spectrogram pair per quarter (window = the pair's first period), one infer_tile step per "
    "tile (GPU op): per tile the pair's pixel scores and patch-score grid, and a JSON manifest (run hash, "
    "params, periods, tiles, backend, models + sha256, imagery + scene ids, timings). Computed once per "
    "quarter; every detection window covering the quarter reuses it.",
)(_descartes_run)
