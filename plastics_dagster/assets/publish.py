"""``published_sites``: an ROI's site registry, detections and contours, upserted into the site database.

Partitioned by ROI like ``site_registry`` (and automated like it): reads the ROI's registry and
every window's ``enriched_sites`` / ``contours``, and calls
:func:`plastics_core.sitedb.publish.publish_roi` (one transaction per materialization). The
database is the :class:`plastics_dagster.sitedb_resource.SiteDatabase` resource ``database``.
Metadata: rows added / updated / unchanged / removed (all tables and per table), the run hash,
and the database URL without its password. ``plastics serve`` serves what this asset wrote.
"""

import warnings
from typing import Any

import geopandas as gpd
from dagster import AssetExecutionContext, AssetIn, BetaWarning, MaterializeResult, MetadataValue, asset

from plastics_core.models.checksums import SHA256
from plastics_dagster.assets.detection import CODE_VERSION as DETECT_CODE_VERSION
from plastics_dagster.assets.preview import _as_windows
from plastics_dagster.config import DetectionParams
from plastics_dagster.partitions import roi_partitions
from plastics_dagster.reliability import STORE_RETRY, fail_fast_on_user_errors
from plastics_dagster.resources import ImagerySourceResource, StoreResource
from plastics_dagster.sitedb_resource import SiteDatabase

GROUP = "publish"
CODE_VERSION = "1"
_ALL_WINDOWS = {"allow_missing_partitions": True}

with warnings.catch_warnings():  # beta in dagster 1.13, as for site_registry
    warnings.simplefilter("ignore", BetaWarning)
    from dagster import MultiToSingleDimensionPartitionMapping

    _BY_ROI = MultiToSingleDimensionPartitionMapping(partition_dimension_name="roi")


def model_checksums(resolved: dict[str, Any]) -> dict[str, str]:
    """model file (relative path) -> sha256 of the models the parameters name (pixel model,
    patch model, every member of the ensemble folder), from the committed checksum table."""
    names = {str(resolved.get(k, "")) for k in ("model", "patch_model")}
    folder = str(resolved.get("ensemble_model", ""))
    return {
        key: sha
        for key, sha in sorted(SHA256.items())
        if key in names or (folder and key.startswith(folder.rstrip("/") + "/"))
    }


@asset(
    retry_policy=STORE_RETRY,
    partitions_def=roi_partitions,
    group_name=GROUP,
    code_version=CODE_VERSION,
    kinds={"python", "sql"},
    ins={
        "site_registry": AssetIn(),
        "enriched_sites": AssetIn(partition_mapping=_BY_ROI, metadata=_ALL_WINDOWS),
        "contours": AssetIn(partition_mapping=_BY_ROI, metadata=_ALL_WINDOWS),
    },
    description="The ROI's registry sites, their detections per window and their contours, upserted into the "
    "site database (SQLite beside the store, or PostgreSQL + PostGIS) in one transaction, kept apart by "
    "run hash; served by `plastics serve`.",
)
@fail_fast_on_user_errors
def published_sites(
    context: AssetExecutionContext,
    site_registry: gpd.GeoDataFrame,
    enriched_sites: Any,
    contours: Any,
    params: DetectionParams,
    imagery: ImagerySourceResource,
    store: StoreResource,
    database: SiteDatabase,
) -> MaterializeResult[Any]:
    from plastics_core.sitedb.publish import RunInfo, publish_roi

    roi = context.partition_key
    sites = _as_windows(
        enriched_sites, [str(k) for k in context.asset_partition_keys_for_input("enriched_sites")]
    )
    outlines = _as_windows(contours, [str(k) for k in context.asset_partition_keys_for_input("contours")])
    per_window = {w: (g, outlines.get(w)) for w, g in sites.items()}
    run_hash = params.run_hash_for(roi, imagery, store)
    resolved = params.resolved()
    run = RunInfo(
        run_hash=run_hash,
        roi=roi,
        params=resolved,
        model_checksums=model_checksums(resolved),
        imagery_source=imagery.source_name(),
        code_version=DETECT_CODE_VERSION,
    )
    root = store.resolved()
    engine = database.open(root)
    try:
        result = publish_roi(engine, run, site_registry, per_window)
    finally:
        engine.dispose()
    meta: dict[str, Any] = {
        **result.metadata(),
        "database": MetadataValue.text(database.shown(root)),
        "sites": len(site_registry),
        "windows": len(per_window),
        "browse": MetadataValue.text(f"plastics serve, then /sites?roi={roi}"),
    }
    if len(site_registry) == 0:
        meta["empty_reason"] = f"the registry of ROI {roi} holds no site for run {run_hash}"
    return MaterializeResult(metadata=meta)
