"""Candidate sites: merge nearby blob points, keep those confirmed by the patch classifier.

All coordinates are EPSG:4326 degrees; distances are plain Euclidean distances in
(lon, lat) degrees, as in the original GPW pipeline (0.005 deg ~ 550 m N-S, a little less
E-W away from the equator).
"""

from __future__ import annotations

import math
import re

import geopandas as gpd
import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from plastics_core.errors import ParameterError

MERGED_COLUMNS = ["name", "lon", "lat", "score", "n_merged", "members"]
#: Above this many close pairs per point, close pairs are not listed but linked cell by cell.
_MAX_PAIRS_PER_POINT = 16


def _natural_key(name: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key comparing digit runs numerically (``site_9`` < ``site_10``)."""
    return tuple((0, int(t)) if t.isdigit() else (1, t) for t in re.findall(r"\d+|\D+", name))


def _empty(columns: list[str]) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({c: [] for c in columns}, geometry=gpd.points_from_xy([], []), crs="EPSG:4326")


def _lonlat(gdf: gpd.GeoDataFrame) -> np.ndarray:
    """(n, 2) float64 lon/lat of a point GeoDataFrame (its geometry, reprojected to EPSG:4326)."""
    pts = gdf.geometry if gdf.crs is None or gdf.crs.to_epsg() == 4326 else gdf.geometry.to_crs(4326)
    return np.column_stack([pts.x.to_numpy(dtype=float), pts.y.to_numpy(dtype=float)])


def _close_pairs(centres: np.ndarray, radius: float) -> np.ndarray:
    """(m, 2) index pairs linking every group of ``centres`` closer than ``radius`` (strict).

    Sparse points (at most ``_MAX_PAIRS_PER_POINT`` close pairs per point, bounded from grid-cell
    counts without listing them): every close pair. Dense points: not every close pair, but enough edges that the connected components equal those of the full
    "closer than radius" graph, in O(n log n) time and O(n) memory even when all points are
    within ``radius`` of each other (where listing every pair would be quadratic). Points are
    binned on a grid of cell side < radius / sqrt(2), so any two points sharing a cell are
    closer than ``radius`` and are chained together; two cells that may hold close points (at
    most 2 cells apart) are linked by the nearest pair between them when it is closer than
    ``radius``. Cells further apart than 2 in x or y are at least ``radius`` apart.
    """
    k = len(centres)
    if k < 2 or radius <= 0:
        return np.empty((0, 2), dtype=np.int64)
    side = radius / math.sqrt(2.0) * (1.0 - 1e-9)
    cells = np.floor((centres - centres.min(axis=0)) / side).astype(np.int64)
    _, per_cell = np.unique(cells, axis=0, return_counts=True)
    if 25 * int((per_cell.astype(np.int64) ** 2).sum()) <= 2 * _MAX_PAIRS_PER_POINT * k:
        # sparse (a bound on the close pairs, from the 5 x 5 cells around each cell): list every pair
        pairs = cKDTree(centres).query_pairs(radius, output_type="ndarray")
        d = np.hypot(*(centres[pairs[:, 0]] - centres[pairs[:, 1]]).T)
        return np.asarray(pairs[d < radius], dtype=np.int64)
    order = np.lexsort((cells[:, 1], cells[:, 0]))
    sorted_cells = cells[order]
    starts = np.flatnonzero(np.r_[True, np.any(np.diff(sorted_cells, axis=0) != 0, axis=1)])
    groups = np.split(order, starts[1:])
    keys = {(int(c[0]), int(c[1])): i for i, c in enumerate(sorted_cells[starts])}
    edges: list[np.ndarray] = []
    for g in groups:  # chain the members of each cell
        if len(g) > 1:
            edges.append(np.column_stack([g[:-1], g[1:]]))
    parent = list(range(len(groups)))  # union-find over cells: skip cell pairs already connected

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    trees: dict[int, cKDTree] = {}  # one per cell, built on first use
    offsets = [(dx, dy) for dx in range(0, 3) for dy in range(-2, 3) if (dx, dy) > (0, 0)]
    for (cx, cy), gi in keys.items():
        for dx, dy in offsets:
            gj = keys.get((cx + dx, cy + dy))
            if gj is None or root(gi) == root(gj):
                continue
            small, large = (gi, gj) if len(groups[gi]) <= len(groups[gj]) else (gj, gi)
            a, b = groups[small], groups[large]  # query the smaller cell against the larger cell's tree
            tree = trees.get(large)
            if tree is None:
                tree = trees[large] = cKDTree(centres[b])
            _, nearest = tree.query(centres[a], k=1)
            d = np.hypot(*(centres[a] - centres[b[nearest]]).T)
            best = int(np.argmin(d))
            if d[best] < radius:
                edges.append(np.array([[a[best], b[nearest[best]]]]))
                parent[root(gi)] = root(gj)
    return np.concatenate(edges) if edges else np.empty((0, 2), dtype=np.int64)


def cluster_points(coords: np.ndarray, radius: float) -> np.ndarray:
    """(n, 2) coordinates -> (n,) int cluster label (0..k-1, ordered by first member).

    Fixed-point centroid merging: every point starts as its own cluster with its coordinate
    as centre. Each round links all pairs of cluster centres closer than ``radius`` (strict),
    merges each connected group of links into one cluster whose centre is the mean of all its
    ORIGINAL member points, and repeats until no two centres are closer than ``radius``.
    The cluster count strictly decreases each round, so it terminates; it depends only on the
    set of points (not their order), so it is deterministic. Each round is O(k log k) time and
    O(k) memory in the k cluster centres (:func:`_close_pairs`), however dense the points.
    """
    n = len(coords)
    labels = np.arange(n)
    while True:
        k = int(labels.max()) + 1 if n else 0
        centres = np.zeros((k, 2))
        np.add.at(centres, labels, coords)
        centres /= np.bincount(labels, minlength=k)[:, None]
        pairs = _close_pairs(centres, radius)
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
    A singleton keeps its exact coordinate. O(n log n) time, O(n) memory.
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
    rank = np.empty(len(names), dtype=np.int64)  # natural-sort rank of each name (stable)
    rank[sorted(range(len(names)), key=lambda i: _natural_key(names[i]))] = np.arange(len(names))
    order = np.lexsort((rank, labels))  # by cluster, members in natural name order
    bounds = np.flatnonzero(np.r_[True, np.diff(labels[order]) != 0])
    sizes = np.diff(np.r_[bounds, len(order)])
    lonlat = coords[order[bounds]].copy()  # a singleton keeps its exact coordinate
    for c in np.flatnonzero(sizes > 1):  # numpy's mean over members in input order (bit-stable)
        idx = np.sort(order[bounds[c] : bounds[c] + sizes[c]])
        lonlat[c] = coords[idx, 0].mean(), coords[idx, 1].mean()
    with np.errstate(invalid="ignore"):
        best = np.fmax.reduceat(scores[order], bounds)  # NaN only when every member's score is NaN
    member_names = [names[i] for i in order]
    firsts = [member_names[b] for b in bounds]
    df = pd.DataFrame(
        {
            "name": firsts,
            "lon": lonlat[:, 0],
            "lat": lonlat[:, 1],
            "score": best.astype(float),
            "n_merged": sizes.astype(np.int64),
            "members": [
                ";".join(member_names[b : b + k])
                for b, k in zip(bounds.tolist(), sizes.tolist(), strict=True)
            ],
        }
    )
    keys = {name: _natural_key(name) for name in set(firsts)}
    by_name = sorted(range(len(df)), key=lambda i: keys[firsts[i]])  # stable: equal names keep cluster order
    df = df.iloc[by_name].reset_index(drop=True)
    return gpd.GeoDataFrame(df, geometry=gpd.points_from_xy(df["lon"], df["lat"]), crs="EPSG:4326")


def gpw_merge_groups(coords: np.ndarray, radius: float) -> list[tuple[int, ...]]:
    """GPW's ``merge_similar_sites``: (n, 2) float degrees -> member index groups (sorted tuples).

    Each point first gathers the points within ``radius`` (inclusive) of it and moves to their
    mean; then, round after round, every moved position gathers the ORIGINAL points within
    ``radius`` of it, identical groups collapse into one and each group moves to its members'
    mean, until a round keeps the number of groups. Groups are not chained: points 0.004 deg
    apart in a row stay three groups at radius 0.005 ({0, 1}, {0, 1, 2}, {1, 2}), and a point
    can belong to several groups. Groups are returned in sorted order (GPW's came from a set).
    """
    n = len(coords)
    if n == 0:
        return []
    tree = cKDTree(coords)

    def gather(positions: np.ndarray) -> list[tuple[int, ...]]:
        return [tuple(sorted(int(i) for i in found)) for found in tree.query_ball_point(positions, radius)]

    groups = gather(coords)
    count = n
    while True:
        positions = np.array([coords[list(g)].mean(axis=0) for g in groups])
        # a group's mean lies in its members' hull, within radius of one of them: no group is empty
        groups = sorted(set(gather(positions)))
        if len(groups) == count:
            return groups
        count = len(groups)


def merge_points_gpw(points_gdf: gpd.GeoDataFrame, radius_deg: float = 0.005) -> gpd.GeoDataFrame:
    """:func:`merge_points`' columns from GPW's merge (:func:`gpw_merge_groups`): one row per group,
    ``lon``/``lat`` the mean of its members, ``members`` joined by ``;``. Groups may share members,
    so ``name`` is the group's first member name (natural order) with ``.2``, ``.3`` ... appended
    to the second and later groups that start with the same name."""
    if radius_deg < 0:
        raise ParameterError(f"merge radius {radius_deg} deg is negative; pass radius_deg >= 0")
    if points_gdf is None or len(points_gdf) == 0:
        return _empty(MERGED_COLUMNS)
    coords = _lonlat(points_gdf)
    n = len(coords)
    default_names = [f"point_{i}" for i in range(n)]
    names = points_gdf["name"].astype(str).tolist() if "name" in points_gdf else default_names
    scores = points_gdf["score"].to_numpy(dtype=float) if "score" in points_gdf else np.full(n, np.nan)
    rows = []
    for group in gpw_merge_groups(coords, radius_deg):
        idx = list(group)
        members = sorted((names[i] for i in idx), key=_natural_key)
        lon, lat = coords[idx].mean(axis=0) if len(idx) > 1 else coords[idx[0]]
        with np.errstate(invalid="ignore"):
            best = float(np.fmax.reduce(scores[idx]))
        rows.append(
            {
                "name": members[0],
                "lon": float(lon),
                "lat": float(lat),
                "score": best,
                "n_merged": len(idx),
                "members": ";".join(members),
            }
        )
    rows.sort(key=lambda r: (_natural_key(str(r["name"])), str(r["members"])))
    seen: dict[str, int] = {}
    for r in rows:
        first = str(r["name"])
        seen[first] = seen.get(first, 0) + 1
        if seen[first] > 1:
            r["name"] = f"{first}.{seen[first]}"
    df = pd.DataFrame(rows, columns=MERGED_COLUMNS)
    return gpd.GeoDataFrame(df, geometry=gpd.points_from_xy(df["lon"], df["lat"]), crs="EPSG:4326")


#: The candidate merges by name: ``chain`` joins points transitively (:func:`merge_points`),
#: ``gpw`` is GPW's running-mean gather without chaining (:func:`merge_points_gpw`).
MERGES = {"chain": merge_points, "gpw": merge_points_gpw}


def select_candidates(
    blobs: gpd.GeoDataFrame,
    patches: gpd.GeoDataFrame,
    patch_threshold: float = 0.3,
    merge_radius: float = 0.005,
    merge: str = "chain",
) -> gpd.GeoDataFrame:
    """Candidate sites: merged blob points lying in a patch whose ``mean`` > ``patch_threshold``.

    ``blobs``: points with ``name`` (e.g. :func:`plastics_core.method.blobs.detect_blobs`);
    ``patches``: polygons with a ``mean`` column (patch-classifier mean over pairs). Points are
    merged first (:func:`merge_points`, ``merge_radius`` deg), then a merged point is kept when
    it intersects (boundary included) at least one patch with mean strictly above the threshold.
    ``merge``: ``chain`` (:func:`merge_points`) or ``gpw`` (:func:`merge_points_gpw`).
    Output: the merged columns plus ``patch_mean`` (max mean of those patches), EPSG:4326,
    sorted by name. Empty inputs give an empty frame with these columns.
    """
    if not 0.0 <= patch_threshold <= 1.0:
        raise ParameterError(f"patch_threshold={patch_threshold} is outside [0, 1]; pass a value in [0, 1]")
    columns = [*MERGED_COLUMNS, "patch_mean"]
    if merge not in MERGES:
        raise ParameterError(f"unknown merge {merge!r}: use one of {', '.join(MERGES)}")
    merged = MERGES[merge](blobs, merge_radius)
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
