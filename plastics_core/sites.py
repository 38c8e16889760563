"""Candidate sites: merge nearby blob points, keep those confirmed by the patch classifier.

All coordinates are EPSG:4326 degrees; distances are plain Euclidean distances in
(lon, lat) degrees, as in the original GPW pipeline (0.005 deg ~ 550 m N-S, a little less
E-W away from the equator).
"""

from __future__ import annotations

import re

import geopandas as gpd
import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from plastics_core.errors import ParameterError

MERGED_COLUMNS = ["name", "lon", "lat", "score", "n_merged", "members"]


def _natural_key(name: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key comparing digit runs numerically (``site_9`` < ``site_10``)."""
    return tuple((0, int(t)) if t.isdigit() else (1, t) for t in re.findall(r"\d+|\D+", name))


def _empty(columns: list[str]) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({c: [] for c in columns}, geometry=gpd.points_from_xy([], []), crs="EPSG:4326")


def _lonlat(gdf: gpd.GeoDataFrame) -> np.ndarray:
    """(n, 2) float64 lon/lat of a point GeoDataFrame (its geometry, reprojected to EPSG:4326)."""
    pts = gdf.geometry if gdf.crs is None or gdf.crs.to_epsg() == 4326 else gdf.geometry.to_crs(4326)
    return np.column_stack([pts.x.to_numpy(dtype=float), pts.y.to_numpy(dtype=float)])


def cluster_points(coords: np.ndarray, radius: float) -> np.ndarray:
    """(n, 2) coordinates -> (n,) int cluster label (0..k-1, ordered by first member).

    Fixed-point centroid merging: every point starts as its own cluster with its coordinate
    as centre. Each round links all pairs of cluster centres closer than ``radius`` (strict),
    merges each connected group of links into one cluster whose centre is the mean of all its
    ORIGINAL member points, and repeats until no two centres are closer than ``radius``.
    The cluster count strictly decreases each round, so it terminates; it depends only on the
    set of points (not their order), so it is deterministic.
    """
    n = len(coords)
    labels = np.arange(n)
    while True:
        k = int(labels.max()) + 1 if n else 0
        centres = np.zeros((k, 2))
        np.add.at(centres, labels, coords)
        centres /= np.bincount(labels, minlength=k)[:, None]
        pairs = cKDTree(centres).query_pairs(radius, output_type="ndarray") if k > 1 else np.empty((0, 2))
        if len(pairs):
            d = np.hypot(*(centres[pairs[:, 0]] - centres[pairs[:, 1]]).T)
            pairs = pairs[d < radius]
        if not len(pairs):
            break
        graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(k, k))
        _, comp = connected_components(graph, directed=False)
        labels = comp[labels]
    _, first = np.unique(labels, return_index=True)
    order = np.argsort(np.argsort(first))
    return order[labels] if n else labels


def merge_points(points_gdf: gpd.GeoDataFrame, radius_deg: float = 0.005) -> gpd.GeoDataFrame:
    """Merge points closer than ``radius_deg`` (see :func:`cluster_points`) -> Point GeoDataFrame.

    Input: points in any CRS (converted to EPSG:4326) with a ``name`` column (optional
    ``score``). Output, one row per cluster, EPSG:4326, sorted by name: ``name`` (the first
    member name in natural sort order), ``lon``/``lat`` (mean of members), ``score`` (max of
    members, NaN when absent), ``n_merged`` (member count), ``members`` (names joined by ``;``).
    A singleton keeps its exact coordinate.
    """
    if radius_deg < 0:
        raise ParameterError(f"merge radius {radius_deg} deg is negative; pass radius_deg >= 0")
    if points_gdf is None or len(points_gdf) == 0:
        return _empty(MERGED_COLUMNS)
    coords = _lonlat(points_gdf)
    names = (
        points_gdf["name"].astype(str).tolist()
        if "name" in points_gdf
        else [f"point_{i}" for i in range(len(points_gdf))]
    )
    scores = (
        points_gdf["score"].to_numpy(dtype=float) if "score" in points_gdf else np.full(len(coords), np.nan)
    )
    labels = cluster_points(coords, radius_deg)
    rows = []
    for lab in range(int(labels.max()) + 1):
        idx = np.flatnonzero(labels == lab)
        member_names = sorted((names[i] for i in idx), key=_natural_key)
        sc = scores[idx]
        rows.append(
            {
                "name": member_names[0],
                "lon": float(coords[idx, 0].mean()),
                "lat": float(coords[idx, 1].mean()),
                "score": float(np.nanmax(sc)) if np.isfinite(sc).any() else float("nan"),
                "n_merged": len(idx),
                "members": ";".join(member_names),
            }
        )
    df = pd.DataFrame(rows)
    df = df.iloc[sorted(range(len(df)), key=lambda i: _natural_key(df["name"].iat[i]))].reset_index(drop=True)
    return gpd.GeoDataFrame(df, geometry=gpd.points_from_xy(df["lon"], df["lat"]), crs="EPSG:4326")


def select_candidates(
    blobs: gpd.GeoDataFrame,
    patches: gpd.GeoDataFrame,
    patch_threshold: float = 0.3,
    merge_radius: float = 0.005,
) -> gpd.GeoDataFrame:
    """Candidate sites: merged blob points lying in a patch whose ``mean`` > ``patch_threshold``.

    ``blobs``: points with ``name`` (e.g. :func:`plastics_core.blobs.detect_blobs`);
    ``patches``: polygons with a ``mean`` column (patch-classifier mean over pairs). Points are
    merged first (:func:`merge_points`, ``merge_radius`` deg), then a merged point is kept when
    it intersects (boundary included) at least one patch with mean strictly above the threshold.
    Output: the merged columns plus ``patch_mean`` (max mean of those patches), EPSG:4326,
    sorted by name. Empty inputs give an empty frame with these columns.
    """
    if not 0.0 <= patch_threshold <= 1.0:
        raise ParameterError(f"patch_threshold={patch_threshold} is outside [0, 1]; pass a value in [0, 1]")
    columns = [*MERGED_COLUMNS, "patch_mean"]
    merged = merge_points(blobs, merge_radius)
    if len(merged) == 0 or patches is None or len(patches) == 0:
        return _empty(columns)
    if "mean" not in patches:
        raise ParameterError("patches have no 'mean' column; pass patch_scores() output")
    strong = patches.loc[patches["mean"] > patch_threshold, ["mean", "geometry"]]
    if strong.crs is not None and strong.crs.to_epsg() != 4326:
        strong = strong.to_crs(4326)
    if len(strong) == 0:
        return _empty(columns)
    point_idx, patch_idx = strong.sindex.query(merged.geometry, predicate="intersects")
    if not len(point_idx):
        return _empty(columns)
    means = pd.Series(strong["mean"].to_numpy(dtype=float)[patch_idx]).groupby(point_idx).max()
    out = merged.iloc[means.index.to_numpy()].copy()
    out["patch_mean"] = means.to_numpy()
    return gpd.GeoDataFrame(out.reset_index(drop=True), geometry="geometry", crs="EPSG:4326")[
        [*columns, "geometry"]
    ]
