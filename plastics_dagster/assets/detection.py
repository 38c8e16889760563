"""Detection group: ``descartes_run`` (tiled model run) -> ``heatmaps``, ``patch_geojson``.

``descartes_run`` plans the ROI's tiles and runs :func:`infer_tile_outputs` on each tile
in-process (the scale-out issue turns that per-tile function into the ``infer_tile`` GPU op);
its value (:class:`~plastics_dagster.io_manager.DescartesRun`) is the manifest plus every
tile's heatmap and patch scores, stored by the IO manager beside the manifest.
"""

import datetime as dt
import time
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import pandas as pd
from dagster import AssetExecutionContext, MetadataValue, Output, asset

from plastics_core import thumbnails
from plastics_core.periods import pair_periods
from plastics_core.raster import Raster
from plastics_dagster.config import DetectionParams
from plastics_dagster.io_manager import DescartesRun
from plastics_dagster.partitions import detect_partitions, split_key
from plastics_dagster.registry import load_roi
from plastics_dagster.resources import ImagerySourceResource, ModelStoreResource, StoreResource

CODE_VERSION = "1"
GPU_TAGS = {"dagster-celery/queue": "gpu"}


@dataclass
class TileOutputs:
    """One tile's results: heatmap Raster (pairs + ``median`` band), patch scores, scene ids,
    stage timings (seconds) and why it is empty (None when not)."""

    key: str
    heatmap: Raster
    patches: gpd.GeoDataFrame
    scene_ids: list[str] = field(default_factory=list)
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)
    empty_reason: str | None = None


def infer_tile_outputs(tile: Any, source: Any, models: Any, params: DetectionParams, window: dt.date) -> TileOutputs:
    """Everything the models compute for one tile and window (the future ``infer_tile`` op)."""
    from plastics_core import pipeline

    start = time.perf_counter()
    result = pipeline.run_tile(tile, source, models, to_detect_params(params), window)
    timings = {k: round(v, 3) for k, v in result.timings.items()}
    return TileOutputs(tile.key, result.heatmap, result.patches, [str(s) for s in result.scene_ids],
                       time.perf_counter() - start, timings, result.empty_reason)


def to_detect_params(params: DetectionParams) -> Any:
    """The resolved parameters as :class:`plastics_core.pipeline.DetectParams`."""
    import dataclasses

    from plastics_core import pipeline

    values = params.resolved()
    names = {f.name for f in dataclasses.fields(pipeline.DetectParams)}
    return pipeline.DetectParams(**{k: v for k, v in values.items() if k in names and v is not None})


def plan(roi_geom: Any, params: DetectionParams) -> list[Any]:
    from plastics_core.tiles import plan_tiles

    kwargs = {k: getattr(params, k) for k in ("tilesize", "pad") if getattr(params, k) is not None}
    return plan_tiles(roi_geom, **kwargs)


@asset(
    partitions_def=detect_partitions,
    group_name="detection",
    code_version=CODE_VERSION,
    kinds={"python", "tensorflow"},
    op_tags=GPU_TAGS,
    pool="gpu",
    description="Tiled model run for one (roi, window): pixel heatmaps + patch scores per tile, and a JSON "
    "manifest (run hash, params, tiles, backend, models + sha256, imagery + scene ids, timings).",
)
def descartes_run(context: AssetExecutionContext, params: DetectionParams, imagery: ImagerySourceResource,
                  models: ModelStoreResource, store: StoreResource) -> Output[DescartesRun]:
    t0 = time.perf_counter()
    roi, window = split_key(context.partition_key)
    window_start = dt.date.fromisoformat(window)
    resolved = params.resolved()
    run_hash = params.run_hash(imagery.source_name())
    geom = load_roi(store.path(), roi)
    tiles = plan(geom, params)
    source = imagery.get_source()
    model_store = models.get_store()
    refs = {name: model_store.resolve(name).sha256 for name in (params.model, params.patch_model)}
    outputs: list[TileOutputs] = []
    for i, tile in enumerate(tiles, start=1):
        outputs.append(infer_tile_outputs(tile, source, model_store, params, window_start))
        context.log.info(f"tiles {i}/{len(tiles)} done ({tile.key}, {outputs[-1].seconds:.1f} s)")
    periods = pair_periods(window_start, params.mosaic_period, params.spectrogram_interval)
    manifest: dict[str, Any] = {
        "run_hash": run_hash,
        "roi": roi,
        "window": window,
        "periods": [p.label for p in periods],
        "params": resolved,
        "tiles": [o.key for o in outputs],
        "backend": "in-process",
        "models": refs,
        "imagery": {"source": imagery.source_name(), "scene_ids": sorted({s for o in outputs for s in o.scene_ids})},
        "timings": {"total_s": round(time.perf_counter() - t0, 3),
                    "tiles_s": {o.key: round(o.seconds, 3) for o in outputs},
                    "stages_s": {o.key: o.timings for o in outputs}},
        "empty_reasons": {o.key: o.empty_reason for o in outputs if o.empty_reason},
    }
    run = DescartesRun(manifest, [o.heatmap for o in outputs], [o.patches for o in outputs])
    return Output(run, metadata={
        "run_hash": run_hash,
        "tiles": len(outputs),
        "backend": "in-process",
        "scenes": len(manifest["imagery"]["scene_ids"]),
        "seconds": MetadataValue.float(manifest["timings"]["total_s"]),
        "models": MetadataValue.json(refs),
        "empty_tiles": MetadataValue.json(manifest["empty_reasons"]),
    })


@asset(
    partitions_def=detect_partitions,
    group_name="detection",
    code_version=CODE_VERSION,
    kinds={"python", "geotiff"},
    description="Pixel-classifier heatmaps: one float32 COG per tile (bands = pairs + median, NaN nodata, "
    "band descriptions = pair dates) plus mosaic.vrt.",
)
def heatmaps(descartes_run: DescartesRun) -> Output[list[Raster]]:
    rasters = list(descartes_run.heatmaps)
    meta: dict[str, Any] = {"tiles": len(rasters), "run_hash": descartes_run.manifest.get("run_hash", "")}
    if rasters:
        meta["bands"] = ", ".join(rasters[0].band_descriptions)
        png = thumbnails.heatmap_png(rasters[0], "median")
        meta["thumbnail"] = MetadataValue.md(thumbnails.markdown_image(png, "median heatmap"))
    return Output(rasters, metadata=meta)


@asset(
    partitions_def=detect_partitions,
    group_name="detection",
    code_version=CODE_VERSION,
    kinds={"python", "geojson"},
    description="Patch-classifier scores: polygons (EPSG:4326) with mean/median/min/max/std/count.",
)
def patch_geojson(descartes_run: DescartesRun) -> Output[gpd.GeoDataFrame]:
    frames = [g.to_crs("EPSG:4326") for g in descartes_run.patches if len(g)]
    if frames:
        gdf = gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), geometry="geometry", crs="EPSG:4326")
    else:
        from plastics_core.patches import empty_patches

        gdf = empty_patches()
    return Output(gdf, metadata={"patches": len(gdf), "run_hash": descartes_run.manifest.get("run_hash", "")})
