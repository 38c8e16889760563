"""Sites group: ``blobs`` -> ``candidates`` -> ``contours`` -> ``enriched_sites``.

Each asset reads its partition and resources, calls one ``plastics_core.execution.pipeline`` function
and returns a GeoDataFrame (EPSG:4326) plus metadata. Empty inputs give valid empty outputs.
"""

from collections.abc import Callable, Set
from typing import Any

import geopandas as gpd
import numpy as np
from dagster import AssetExecutionContext, AssetsDefinition, MetadataValue, Output, RetryPolicy, asset

from plastics_core.geo.raster import Raster
from plastics_core.report import thumbnails
from plastics_dagster.assets.detection import CODE_VERSION, to_detect_params
from plastics_dagster.config import DetectionParams
from plastics_dagster.io_manager import GEOJSON_IO
from plastics_dagster.partitions import detect_partitions, split_key
from plastics_dagster.reliability import NETWORK_RETRY, STORE_RETRY, fail_fast_on_user_errors
from plastics_dagster.resources import (
    GeocoderResource,
    ImagerySourceResource,
    ModelStoreResource,
    StoreResource,
)

GROUP = "sites"


def _site_asset(
    description: str, *, retry_policy: RetryPolicy, kinds: Set[str]
) -> Callable[[Callable[..., Any]], AssetsDefinition]:
    """The ``@asset`` decorator of this group's assets: partitioned by ROI x detection window
    (``detect_partitions``), stored by the GeoJSON IO manager, versioned by the detection code version."""
    return asset(
        retry_policy=retry_policy,
        partitions_def=detect_partitions,
        group_name=GROUP,
        code_version=CODE_VERSION,
        io_manager_key=GEOJSON_IO,
        kinds=kinds,
        description=description,
    )


def _meta(gdf: gpd.GeoDataFrame, what: str, reason: str | None = None, **extra: Any) -> dict[str, Any]:
    """Counts and the empty reason (the IO manager adds the run hash)."""
    meta: dict[str, Any] = {what: len(gdf), **extra}
    if len(gdf) == 0:
        meta["empty_reason"] = reason or f"no {what} in this partition"
    return meta


@_site_asset(
    "Determinant-of-Hessian blobs on the heatmaps' median band (points, EPSG:4326).",
    retry_policy=STORE_RETRY,
    kinds={"python", "geojson"},
)
@fail_fast_on_user_errors
def blobs(
    heatmaps: list[Raster], params: DetectionParams, imagery: ImagerySourceResource
) -> Output[gpd.GeoDataFrame]:
    from plastics_core.execution import pipeline

    bp = params.blob_params()
    gdf = pipeline.find_blobs(heatmaps, bp)
    valid = any(bool(np.isfinite(h.data[-1]).any()) for h in heatmaps)
    reason = (
        f"no blob above pred_threshold={bp.pred_threshold} (min_sigma={bp.min_sigma}, "
        f"area_threshold={bp.area_threshold})"
        if valid
        else "the heatmaps hold no valid pixel (no usable imagery: see descartes_run empty_tiles)"
    )
    return Output(gdf, metadata=_meta(gdf, "blobs", reason))


@_site_asset(
    "Blobs whose patch-classifier score exceeds patch_threshold (points, EPSG:4326).",
    retry_policy=STORE_RETRY,
    kinds={"python", "geojson"},
)
@fail_fast_on_user_errors
def candidates(
    context: AssetExecutionContext,
    blobs: gpd.GeoDataFrame,
    patch_geojson: gpd.GeoDataFrame,
    params: DetectionParams,
    imagery: ImagerySourceResource,
    store: StoreResource,
) -> Output[gpd.GeoDataFrame]:
    from plastics_core.execution import pipeline

    threshold = params.blob_params().patch_threshold
    gdf = pipeline.find_candidates(blobs, patch_geojson, to_detect_params(params))
    roi, _ = split_key(context.partition_key)
    png = thumbnails.points_png(
        gdf, store.load_roi(roi), f"{len(gdf)} candidate{'' if len(gdf) == 1 else 's'}"
    )
    reason = (
        "no blobs" if len(blobs) == 0 else f"no blob lies in a patch with mean > patch_threshold={threshold}"
    )
    meta = _meta(
        gdf,
        "candidates",
        reason,
        patch_threshold=threshold,
        names=", ".join(str(n) for n in gdf["name"]) if len(gdf) else "",
        thumbnail=MetadataValue.md(thumbnails.markdown_image(png, "candidates")),
    )
    return Output(gdf, metadata=meta)


@_site_asset(
    "Monthly site outlines of each candidate from the ensemble models ((Multi)Polygons, "
    "EPSG:4326; columns name, date, frame, area_km2).",
    retry_policy=NETWORK_RETRY,
    kinds={"python", "tensorflow", "geojson"},
)
@fail_fast_on_user_errors
def contours(
    context: AssetExecutionContext,
    candidates: gpd.GeoDataFrame,
    params: DetectionParams,
    imagery: ImagerySourceResource,
    models: ModelStoreResource,
) -> Output[gpd.GeoDataFrame]:
    from plastics_core.execution import pipeline
    from plastics_core.geo.periods import parse_day

    _, window = split_key(context.partition_key)
    gdf = pipeline.trace_contours(
        candidates, imagery.get_source(), models.get_store(), to_detect_params(params), parse_day(window)
    )
    area = float(gdf.groupby("name")["area_km2"].max().sum()) if len(gdf) else 0.0
    reason = "no candidates" if len(candidates) == 0 else "no outline traced around the candidates"
    return Output(gdf, metadata=_meta(gdf, "contours", reason, max_area_km2=MetadataValue.float(area)))


@_site_asset(
    "Candidates with H3 site ids, reverse-geocoded address and contour area statistics.",
    retry_policy=NETWORK_RETRY,
    kinds={"python", "geojson"},
)
@fail_fast_on_user_errors
def enriched_sites(
    candidates: gpd.GeoDataFrame,
    contours: gpd.GeoDataFrame,
    params: DetectionParams,
    imagery: ImagerySourceResource,
    geocoder: GeocoderResource,
) -> Output[gpd.GeoDataFrame]:
    from plastics_core.execution import pipeline

    gdf = pipeline.enrich(candidates, contours, geocoder.get_geocoder())
    status = sorted(set(gdf["geocode_status"])) if len(gdf) and "geocode_status" in gdf else []
    return Output(
        gdf,
        metadata=_meta(
            gdf,
            "sites",
            "no candidates" if len(candidates) == 0 else None,
            geocode_status=", ".join(str(s) for s in status),
        ),
    )
