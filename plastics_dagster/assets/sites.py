"""Sites group: ``blobs`` -> ``candidates`` -> ``contours`` -> ``enriched_sites``.

Each asset reads its partition and resources, calls one ``plastics_core.pipeline`` function
and returns a GeoDataFrame (EPSG:4326) plus metadata. Empty inputs give valid empty outputs.
"""

import datetime as dt
from typing import Any

import geopandas as gpd
from dagster import AssetExecutionContext, MetadataValue, Output, asset

from plastics_core import thumbnails
from plastics_core.raster import Raster
from plastics_dagster.assets.detection import CODE_VERSION, to_detect_params
from plastics_dagster.config import DetectionParams
from plastics_dagster.partitions import detect_partitions, split_key
from plastics_dagster.registry import load_roi
from plastics_dagster.resources import (
    GeocoderResource,
    ImagerySourceResource,
    ModelStoreResource,
    StoreResource,
)

GROUP = "sites"


def _meta(gdf: gpd.GeoDataFrame, what: str, run_hash: str, **extra: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {what: len(gdf), "run_hash": run_hash, **extra}
    if len(gdf) == 0:
        meta["empty_reason"] = f"no {what} in this partition"
    return meta


@asset(partitions_def=detect_partitions, group_name=GROUP, code_version=CODE_VERSION, kinds={"python", "geojson"},
       description="Determinant-of-Hessian blobs on the heatmaps' median band (points, EPSG:4326).")
def blobs(heatmaps: list[Raster], params: DetectionParams, imagery: ImagerySourceResource) -> Output[gpd.GeoDataFrame]:
    from plastics_core import pipeline

    gdf = pipeline.find_blobs(heatmaps, params.blob_params())
    return Output(gdf, metadata=_meta(gdf, "blobs", params.run_hash(imagery.source_name())))


@asset(partitions_def=detect_partitions, group_name=GROUP, code_version=CODE_VERSION, kinds={"python", "geojson"},
       description="Blobs whose patch-classifier score exceeds patch_threshold (points, EPSG:4326).")
def candidates(context: AssetExecutionContext, blobs: gpd.GeoDataFrame, patch_geojson: gpd.GeoDataFrame,
               params: DetectionParams, imagery: ImagerySourceResource,
               store: StoreResource) -> Output[gpd.GeoDataFrame]:
    from plastics_core import pipeline

    threshold = params.blob_params().patch_threshold
    gdf = pipeline.find_candidates(blobs, patch_geojson, to_detect_params(params))
    roi, _ = split_key(context.partition_key)
    png = thumbnails.points_png(gdf, load_roi(store.path(), roi), f"{len(gdf)} candidates")
    meta = _meta(gdf, "candidates", params.run_hash(imagery.source_name()), patch_threshold=threshold,
                 names=", ".join(str(n) for n in gdf["name"]) if len(gdf) else "",
                 thumbnail=MetadataValue.md(thumbnails.markdown_image(png, "candidates")))
    return Output(gdf, metadata=meta)


@asset(partitions_def=detect_partitions, group_name=GROUP, code_version=CODE_VERSION,
       kinds={"python", "tensorflow", "geojson"},
       description="Monthly site outlines of each candidate from the ensemble models ((Multi)Polygons, "
       "EPSG:4326; columns name, date, frame, area_km2).")
def contours(context: AssetExecutionContext, candidates: gpd.GeoDataFrame, params: DetectionParams,
             imagery: ImagerySourceResource, models: ModelStoreResource) -> Output[gpd.GeoDataFrame]:
    from plastics_core import pipeline

    _, window = split_key(context.partition_key)
    gdf = pipeline.trace_contours(candidates, imagery.get_source(), models.get_store(),
                                  to_detect_params(params), dt.date.fromisoformat(window))
    area = float(gdf.groupby("name")["area_km2"].max().sum()) if len(gdf) else 0.0
    return Output(gdf, metadata=_meta(gdf, "contours", params.run_hash(imagery.source_name()),
                                      max_area_km2=MetadataValue.float(area)))


@asset(partitions_def=detect_partitions, group_name=GROUP, code_version=CODE_VERSION, kinds={"python", "geojson"},
       description="Candidates with H3 site ids, reverse-geocoded address and contour area statistics.")
def enriched_sites(candidates: gpd.GeoDataFrame, contours: gpd.GeoDataFrame, params: DetectionParams,
                   imagery: ImagerySourceResource, geocoder: GeocoderResource) -> Output[gpd.GeoDataFrame]:
    from plastics_core import pipeline

    gdf = pipeline.enrich(candidates, contours, geocoder.get_geocoder())
    status = sorted(set(gdf["geocode_status"])) if len(gdf) and "geocode_status" in gdf else []
    return Output(gdf, metadata=_meta(gdf, "sites", params.run_hash(imagery.source_name()),
                                      geocode_status=", ".join(str(s) for s in status)))
