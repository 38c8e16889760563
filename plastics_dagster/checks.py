"""Asset checks: valid geometries, EPSG:4326, scores in [0, 1], every candidate is a blob.

Each check runs per partition (``partitions_def`` = the detection partitions) right after its
asset in the same run. The pure predicates (``*_problems``) are reused by tests.
"""

import warnings
from collections.abc import Callable, Iterable
from typing import Any

import geopandas as gpd
import numpy as np
from dagster import (
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    AssetIn,
    PreviewWarning,
    asset_check,
)

from plastics_dagster.partitions import detect_partitions


def partitioned_asset_check(**kwargs: Any) -> Callable[[Callable[..., Any]], AssetChecksDefinition]:
    """``dagster.asset_check(**kwargs)`` (with a ``partitions_def``), defined with Dagster's preview
    notice for partitioned asset checks silenced for that definition only (the notice would
    otherwise print in every process that loads the definitions; no global warning filter)."""

    def decorate(fn: Callable[..., Any]) -> AssetChecksDefinition:
        with warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore", message=".*partitions_def on an AssetCheckSpec.*", category=PreviewWarning
            )
            return asset_check(**kwargs)(fn)

    return decorate


SCORE_COLUMNS = ("score", "mean", "median", "min", "max", "patch_mean")


def geometry_problems(gdf: gpd.GeoDataFrame) -> list[str]:
    """Invalid, empty or missing geometries (row indices)."""
    if gdf.empty:
        return []
    bad = gdf.geometry.isna() | gdf.geometry.is_empty | ~gdf.geometry.is_valid
    return [f"row {i}: invalid geometry" for i in np.flatnonzero(bad.to_numpy())[:10]]


def crs_problems(gdf: gpd.GeoDataFrame) -> list[str]:
    """CRS not EPSG:4326, or coordinates outside lon [-180, 180] / lat [-90, 90]."""
    out: list[str] = []
    if gdf.crs is None or gdf.crs.to_epsg() != 4326:
        out.append(f"crs is {gdf.crs}, expected EPSG:4326")
    if not gdf.empty:
        minx, miny, maxx, maxy = gdf.total_bounds
        if minx < -180 or maxx > 180 or miny < -90 or maxy > 90:
            out.append(f"bounds {gdf.total_bounds.tolist()} are not lon/lat")
    return out


def score_problems(gdf: gpd.GeoDataFrame, columns: Iterable[str] = SCORE_COLUMNS) -> list[str]:
    """Score columns with values outside [0, 1] (NaN allowed)."""
    out = []
    for col in columns:
        if col in gdf.columns and len(gdf):
            vals = gdf[col].to_numpy(dtype=float)
            bad = np.isfinite(vals) & ((vals < 0) | (vals > 1))
            if bad.any():
                out.append(f"{col}: {int(bad.sum())} values outside [0, 1]")
    return out


def candidates_not_blobs(candidates: gpd.GeoDataFrame, blobs: gpd.GeoDataFrame) -> list[str]:
    """Candidate names missing from the blobs."""
    if candidates.empty:
        return []
    names = set(blobs["name"]) if "name" in blobs.columns else set()
    return sorted(str(n) for n in candidates["name"] if n not in names)


def _result(problems: list[str], n: int) -> AssetCheckResult:
    return AssetCheckResult(
        passed=not problems,
        severity=AssetCheckSeverity.ERROR,
        metadata={"rows": n, "problems": "; ".join(problems) or "none"},
    )


def _vector_checks(asset_name: str, scores: bool) -> list[AssetChecksDefinition]:
    @partitioned_asset_check(
        asset=asset_name,
        name="valid_geometries",
        partitions_def=detect_partitions,
        description="every geometry is present, non-empty and valid",
    )
    def valid_geometries(gdf: gpd.GeoDataFrame) -> AssetCheckResult:
        return _result(geometry_problems(gdf), len(gdf))

    @partitioned_asset_check(
        asset=asset_name,
        name="epsg_4326",
        partitions_def=detect_partitions,
        description="CRS is EPSG:4326 and coordinates are lon/lat",
    )
    def epsg_4326(gdf: gpd.GeoDataFrame) -> AssetCheckResult:
        return _result(crs_problems(gdf), len(gdf))

    checks = [valid_geometries, epsg_4326]
    if scores:

        @partitioned_asset_check(
            asset=asset_name,
            name="scores_in_unit_interval",
            partitions_def=detect_partitions,
            description="score columns lie in [0, 1]",
        )
        def scores_in_unit_interval(gdf: gpd.GeoDataFrame) -> AssetCheckResult:
            return _result(score_problems(gdf), len(gdf))

        checks.append(scores_in_unit_interval)
    return checks


@partitioned_asset_check(
    asset="candidates",
    additional_ins={"blobs": AssetIn("blobs")},
    partitions_def=detect_partitions,
    description="every candidate is one of the partition's blobs (by name)",
)
def candidates_are_blobs(candidates: gpd.GeoDataFrame, blobs: gpd.GeoDataFrame) -> AssetCheckResult:
    return _result([f"not a blob: {n}" for n in candidates_not_blobs(candidates, blobs)], len(candidates))


ALL_CHECKS: list[AssetChecksDefinition] = [
    *_vector_checks("patch_geojson", scores=True),
    *_vector_checks("blobs", scores=True),
    *_vector_checks("candidates", scores=True),
    *_vector_checks("contours", scores=False),
    *_vector_checks("enriched_sites", scores=False),
    candidates_are_blobs,
]
