"""Detection group: ``descartes_run`` (tiled model run) -> ``heatmaps``, ``patch_geojson``.

``descartes_run`` is the graph-backed asset of :mod:`plastics_dagster.fanout`: plan tiles ->
one ``infer_tile`` GPU step per tile (:func:`plastics_core.remote.compute_tile`, files written per
tile under the run-hash folder; or one EarthOne job per tile with ``PLASTICS_BACKEND=earthone``)
-> the manifest. Its value (:class:`~plastics_dagster.io_manager.DescartesRun`)
is the manifest; the IO manager reads every tile's heatmap and patch scores back for downstream.
"""

from typing import Any

import geopandas as gpd
import pandas as pd
from dagster import MetadataValue, Output, asset

from plastics_core import thumbnails
from plastics_core.raster import Raster
from plastics_dagster import fanout
from plastics_dagster.config import DetectionParams
from plastics_dagster.io_manager import DescartesRun
from plastics_dagster.partitions import detect_partitions
from plastics_dagster.reliability import STORE_RETRY, fail_fast_on_user_errors

CODE_VERSION = "1"


def to_detect_params(params: DetectionParams) -> Any:
    """The validated :class:`plastics_core.params.DetectParams`."""
    return params.core()


#: the graph-backed asset: plan_tiles -> infer_tile (one GPU step per tile) -> collect_tiles
descartes_run = fanout.descartes_run


@asset(
    retry_policy=STORE_RETRY,
    partitions_def=detect_partitions,
    group_name="detection",
    code_version=CODE_VERSION,
    kinds={"python", "geotiff"},
    description="Pixel-classifier heatmaps: one float32 COG per tile (bands = pairs + median, NaN nodata, "
    "band descriptions = pair dates) plus mosaic.vrt.",
)
@fail_fast_on_user_errors
def heatmaps(descartes_run: DescartesRun) -> Output[list[Raster]]:
    rasters = list(descartes_run.heatmaps)
    meta: dict[str, Any] = {"tiles": len(rasters), "run_hash": descartes_run.manifest.get("run_hash", "")}
    reasons = descartes_run.manifest.get("empty_reasons") or {}
    if not rasters or len(reasons) >= len(rasters):  # every tile empty: say why
        meta["empty_reason"] = "; ".join(sorted(set(reasons.values()))) or "no tiles cover the ROI"
    if rasters:
        meta["bands"] = ", ".join(rasters[0].band_descriptions)
        png = thumbnails.heatmap_png(rasters[0], "median")
        meta["thumbnail"] = MetadataValue.md(thumbnails.markdown_image(png, "median heatmap"))
    return Output(rasters, metadata=meta)


@asset(
    retry_policy=STORE_RETRY,
    partitions_def=detect_partitions,
    group_name="detection",
    code_version=CODE_VERSION,
    kinds={"python", "geojson"},
    description="Patch-classifier scores: polygons (EPSG:4326) with mean/median/min/max/std/count.",
)
@fail_fast_on_user_errors
def patch_geojson(descartes_run: DescartesRun) -> Output[gpd.GeoDataFrame]:
    frames = [g.to_crs("EPSG:4326") for g in descartes_run.patches if len(g)]
    if frames:
        gdf = gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), geometry="geometry", crs="EPSG:4326")
    else:
        from plastics_core.patches import empty_patches

        gdf = empty_patches()
    meta: dict[str, Any] = {"patches": len(gdf), "run_hash": descartes_run.manifest.get("run_hash", "")}
    if len(gdf) == 0:
        reasons = descartes_run.manifest.get("empty_reasons") or {}
        meta["empty_reason"] = ("; ".join(sorted(set(reasons.values()))) if len(reasons) >= len(descartes_run.patches)
                                else "no patch scored above the keep threshold")
    return Output(gdf, metadata=meta)
