"""Detection group: ``descartes_run`` (one spectrogram pair per quarter) -> ``heatmaps``, ``patch_geojson``.

``descartes_run`` is the graph-backed asset of :mod:`plastics_dagster.fanout`: plan tiles ->
one ``infer_tile`` GPU step per tile (:func:`plastics_core.execution.tile_job.compute_tile`: the quarter's
pair, files written per tile under the run-hash folder; or one EarthOne job per tile with
``PLASTICS_BACKEND=earthone``) -> the manifest. Each quarter's pair is computed once.
``heatmaps`` and ``patch_geojson`` are the detection window: they depend on the last ``pairs``
quarters' ``descartes_run`` (:data:`~plastics_dagster.partitions.WINDOW_PAIRS_MAPPING`) and
aggregate them (:mod:`plastics_core.method.window`): the median over the pairs, GPW's patch statistics.
A window whose quarters are not stored computes them in its step, once across concurrent runs
(:mod:`plastics_core.execution.pair_claim`), and records each as its ``descartes_run`` partition.
"""

from typing import Any

import geopandas as gpd
from dagster import AssetDep, AssetExecutionContext, AssetMaterialization, MetadataValue, Output, asset

from plastics_core.geo.raster import Raster
from plastics_core.report import thumbnails
from plastics_dagster import fanout
from plastics_dagster.config import DetectionParams
from plastics_dagster.io_manager import GEOJSON_IO, RASTER_FOLDER_IO
from plastics_dagster.partitions import (
    WINDOW_PAIRS_MAPPING,
    WINDOW_START,
    check_complete,
    data_version,
    detect_partitions,
    partition_key,
    split_key,
    versioned_output,
)
from plastics_dagster.reliability import STORE_RETRY, fail_fast_on_user_errors
from plastics_dagster.resources import ImagerySourceResource, ModelStoreResource, StoreResource

CODE_VERSION = "1"


def to_detect_params(params: DetectionParams) -> Any:
    """The validated :class:`plastics_core.params.DetectParams`."""
    return params.core()


#: the graph-backed asset: plan_tiles -> infer_tile (one GPU step per tile) -> collect_tiles
descartes_run = fanout.descartes_run


def window_pairs(
    context: AssetExecutionContext,
    params: DetectionParams,
    imagery: ImagerySourceResource,
    store: StoreResource,
    models: ModelStoreResource,
) -> Any:
    """The stored pairs of this partition's detection window (:class:`plastics_core.method.window.WindowPairs`).

    Quarters whose ``descartes_run`` is not in the store (a window materialized alone: a job
    backfill, one partition from the UI) are computed here first, tile after tile, each under an
    exclusive claim (:mod:`plastics_core.execution.pair_claim`: a quarter another run is computing
    is awaited, never computed twice), and each is recorded as a materialization of its
    ``descartes_run`` partition (:func:`report_pairs`)."""
    from plastics_core.execution.pair_claim import compute_pairs_once
    from plastics_core.geo.periods import parse_day, window_pair_starts
    from plastics_core.method.window import load_window_pairs

    roi, window = split_key(context.partition_key)
    p = params.core()
    check_complete(window, mosaic_period=p.mosaic_period, spectrogram_interval=p.spectrogram_interval)
    starts = window_pair_starts(parse_day(window), p.pairs, p.mosaic_period, earliest=parse_day(WINDOW_START))
    record = fanout.run_record(context, params, imagery, models, store, "in-window")
    tiles, source, model_store = fanout.planned_tiles(p, store, roi), imagery.get_source(), models.get_store()
    done = []
    for start in starts:  # one quarter at a time: each is recorded as soon as it is stored
        pair = compute_pairs_once(store.path(), record, [start], tiles, source, model_store)
        report_pairs(context, roi, pair)
        done += pair
    if done:
        context.log.info(
            f"{roi} {window}: computed the missing pairs {', '.join(p.start for p in done)} in this "
            "step, recorded as their descartes_run partitions"
        )
    return load_window_pairs(store.path(), roi, starts, record.run_hash)


def report_pairs(context: AssetExecutionContext, roi: str, done: list[Any]) -> None:
    """Record each pair of ``done`` (:class:`plastics_core.execution.pair_claim.PairComputed`) as a
    materialization of its ``descartes_run`` partition (``roi|quarter``), with the metadata and
    data version ``descartes_run`` itself records, so the UI's partition status and lineage show
    every quarter the store holds, whichever step computed it."""
    from plastics_dagster.workers import worker_identity

    worker = worker_identity()["worker"]
    for pair in done:
        tiles = [{**s, "skipped": not s.get("computed"), "worker": worker} for s in pair.summaries]
        version = data_version(pair.manifest["run_hash"], pair.start)
        context.log_event(
            AssetMaterialization(
                asset_key="descartes_run",
                partition=str(partition_key(roi, pair.start)),
                metadata=fanout.pair_metadata(pair.manifest, tiles),
                # what Output(data_version=...) records: the tags Dagster reads a data version from
                tags={"dagster/data_version": version.value, "dagster/data_version_is_user_provided": "true"},
            )
        )


def _run_hash(
    context: AssetExecutionContext,
    params: DetectionParams,
    imagery: ImagerySourceResource,
    store: StoreResource,
) -> str:
    roi, _ = split_key(context.partition_key)
    return params.run_hash_for(roi, imagery, store)


def _pairs_meta(wp: Any, run_hash: str) -> dict[str, Any]:
    return {
        "run_hash": run_hash,
        "pairs": len(wp.starts),
        "pair_starts": ", ".join(wp.starts),
        "scenes": len(wp.scene_ids),
    }


WINDOW_DEPS = [AssetDep("descartes_run", partition_mapping=WINDOW_PAIRS_MAPPING)]


@asset(
    retry_policy=STORE_RETRY,
    partitions_def=detect_partitions,
    group_name="detection",
    code_version=CODE_VERSION,
    deps=WINDOW_DEPS,
    kinds={"python", "geotiff"},
    io_manager_key=RASTER_FOLDER_IO,
    description="Pixel heatmaps of the detection window: one float32 COG per tile, one band per spectrogram pair "
    "of the last `pairs` quarters (descartes_run) plus `median` (the median over the pairs valid at each pixel; "
    "NaN nodata; band descriptions = pair dates), plus mosaic.vrt.",
)
@fail_fast_on_user_errors
def heatmaps(
    context: AssetExecutionContext,
    params: DetectionParams,
    imagery: ImagerySourceResource,
    store: StoreResource,
    models: ModelStoreResource,
) -> Output[list[Raster]]:
    from plastics_core.method.window import window_empty_reasons, window_heatmaps

    wp = window_pairs(context, params, imagery, store, models)
    rasters = window_heatmaps(wp)
    meta: dict[str, Any] = {
        "tiles": len(rasters),
        **_pairs_meta(wp, _run_hash(context, params, imagery, store)),
    }
    reasons = window_empty_reasons(wp)
    if not rasters or len(reasons) >= len(rasters):  # every tile empty: say why
        meta["empty_reason"] = "; ".join(sorted(set(reasons.values()))) or "no tiles cover the ROI"
    if rasters:
        meta["bands"] = ", ".join(rasters[0].band_descriptions)
        png = thumbnails.heatmap_png(rasters[0], "median")
        meta["thumbnail"] = MetadataValue.md(thumbnails.markdown_image(png, "median heatmap"))
    return versioned_output(rasters, meta, meta["run_hash"], *wp.starts)


@asset(
    retry_policy=STORE_RETRY,
    partitions_def=detect_partitions,
    group_name="detection",
    code_version=CODE_VERSION,
    deps=WINDOW_DEPS,
    kinds={"python", "geojson"},
    io_manager_key=GEOJSON_IO,
    description="Patch-classifier scores over the detection window's pairs: polygons (EPSG:4326) with GPW's "
    "mean/median/min/max/std/count per location (count = pairs scored), kept where mean > patch_keep_threshold.",
)
@fail_fast_on_user_errors
def patch_geojson(
    context: AssetExecutionContext,
    params: DetectionParams,
    imagery: ImagerySourceResource,
    store: StoreResource,
    models: ModelStoreResource,
) -> Output[gpd.GeoDataFrame]:
    from plastics_core.method.window import window_empty_reasons, window_patches

    wp = window_pairs(context, params, imagery, store, models)
    p = params.core()
    keep = min(p.patch_keep_threshold, p.blob_params().patch_threshold)
    gdf = window_patches(wp, keep)  # never drops a candidate's patch
    meta: dict[str, Any] = {
        "patches": len(gdf),
        **_pairs_meta(wp, _run_hash(context, params, imagery, store)),
    }
    if len(gdf) == 0:
        reasons = window_empty_reasons(wp)
        meta["empty_reason"] = (
            "; ".join(sorted(set(reasons.values())))
            if reasons and len(reasons) >= len(wp.tiles)
            else f"no patch scored a mean above {keep}"
        )
    return versioned_output(gdf, meta, meta["run_hash"], *wp.starts)
