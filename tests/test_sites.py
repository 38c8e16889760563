"""Candidate selection: the east_timor regression and the merge algorithm."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest

from plastics_core.errors import ParameterError
from plastics_core.method.candidates import cluster_points, merge_points, select_candidates


@pytest.fixture(scope="module")
def east_timor(gpw_dir: Path) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame, gpd.GeoDataFrame]:
    d = gpw_dir / "east_timor"
    return (
        gpd.read_file(d / "pixel_candidates_v0.0.11_thresh0.6_minsigma3.5.geojson"),
        gpd.read_file(d / "patch_classifier_v1.2_stride8.geojson"),
        gpd.read_file(d / "published_candidates_patch_threshold_0.4.geojson"),
    )


def test_east_timor_regression(east_timor: tuple[gpd.GeoDataFrame, ...]) -> None:
    pixels, patches, published = east_timor
    assert (len(pixels), len(patches), len(published)) == (115, 806, 5)
    got = select_candidates(pixels, patches, patch_threshold=0.4)
    assert sorted(got["name"]) == sorted(published["name"])
    assert got.crs.to_epsg() == 4326 and (got["patch_mean"] > 0.4).all() and (got["n_merged"] == 1).all()
    pub = published.set_index("name")
    for _, row in got.iterrows():  # singletons keep the published coordinates exactly
        assert row["lon"] == pytest.approx(pub.loc[row["name"], "lon"], abs=1e-12)
        assert row["lat"] == pytest.approx(pub.loc[row["name"], "lat"], abs=1e-12)
    # the threshold is a strict '>' on the patch mean, and lowering it admits more sites
    assert len(select_candidates(pixels, patches, patch_threshold=0.3)) > 5
    assert len(select_candidates(pixels, patches, patch_threshold=1.0)) == 0


def test_merge_chain_and_fixed_point() -> None:
    pts = gpd.GeoDataFrame(
        {"name": ["s_10", "s_9", "s_2", "far"], "score": [0.7, 0.9, np.nan, 0.8]},
        geometry=gpd.points_from_xy([100.0, 100.003, 100.0015, 101.0], [0.0, 0.0, 0.004, 0.0]),
        crs="EPSG:4326",
    )
    merged = merge_points(pts, 0.005)
    assert list(merged["name"]) == ["far", "s_2"] and list(merged["n_merged"]) == [1, 3]
    row = merged.iloc[1]
    assert row["members"] == "s_2;s_9;s_10" and row["score"] == pytest.approx(0.9)
    assert row["lon"] == pytest.approx(100.0015) and row["lat"] == pytest.approx(0.004 / 3)
    # order-independent
    again = merge_points(pts.iloc[::-1], 0.005)
    assert list(again["name"]) == list(merged["name"]) and np.allclose(again["lon"], merged["lon"])


def test_cluster_iterates_to_fixed_point() -> None:
    # a-b (0.0048 apart) merge in round 1; c is 0.0051 from each of them but 0.0045 from their
    # mean, so it joins in round 2 - a one-pass neighbour merge would leave it out.
    coords = np.array([[-0.0024, 0.0], [0.0024, 0.0], [0.0, 0.0045]])
    assert min(np.hypot(*(coords[2] - coords[i])) for i in (0, 1)) > 0.005
    assert cluster_points(coords, 0.005).tolist() == [0, 0, 0]
    assert cluster_points(coords, 0.0047).tolist() == [0, 1, 2]
    assert cluster_points(np.empty((0, 2)), 0.005).tolist() == []


def test_empty_and_errors() -> None:
    empty = gpd.GeoDataFrame({"name": []}, geometry=gpd.points_from_xy([], []), crs="EPSG:4326")
    assert len(merge_points(empty)) == 0
    out = select_candidates(empty, empty, 0.4)
    assert len(out) == 0 and "patch_mean" in out.columns and out.crs.to_epsg() == 4326
    with pytest.raises(ParameterError):
        select_candidates(empty, empty, 1.5)


def _reference_merge(
    points: gpd.GeoDataFrame, radius: float
) -> list[tuple[str, float, float, float, int, str]]:
    """The merge spelled out with a full distance matrix (quadratic: small inputs only)."""
    xy = np.column_stack([points.geometry.x, points.geometry.y])
    names = points["name"].astype(str).tolist()
    scores = points["score"].to_numpy(dtype=float) if "score" in points else np.full(len(xy), np.nan)
    labels = np.arange(len(xy))
    while True:
        uniq = np.unique(labels)
        centres = np.array(
            [xy[labels == u].mean(axis=0) if (labels == u).sum() > 1 else xy[labels == u][0] for u in uniq]
        )
        close = np.hypot(*(centres[:, None, :] - centres[None, :, :]).transpose(2, 0, 1)) < radius
        np.fill_diagonal(close, False)
        if not close.any():
            break
        from scipy.sparse.csgraph import connected_components

        _, comp = connected_components(close, directed=False)
        labels = comp[np.searchsorted(uniq, labels)]
    import re

    def nat(s: str) -> tuple[tuple[int, int | str], ...]:
        return tuple((0, int(t)) if t.isdigit() else (1, t) for t in re.findall(r"\d+|\D+", s))

    rows = []
    for u in sorted(np.unique(labels), key=lambda v: int(np.flatnonzero(labels == v)[0])):
        idx = np.flatnonzero(labels == u)
        members = sorted((names[i] for i in idx), key=nat)
        sc = scores[idx]
        rows.append(
            (
                members[0],
                float(xy[idx, 0].mean()),
                float(xy[idx, 1].mean()),
                float(np.nanmax(sc)) if np.isfinite(sc).any() else float("nan"),
                len(idx),
                ";".join(members),
            )
        )
    return sorted(rows, key=lambda r: nat(r[0]))


def _rows(merged: gpd.GeoDataFrame) -> list[tuple[str, float, float, float, int, str]]:
    return [
        (
            str(r["name"]),
            float(r["lon"]),
            float(r["lat"]),
            float(r["score"]),
            int(r["n_merged"]),
            str(r["members"]),
        )
        for _, r in merged.iterrows()
    ]


def _same(a: list[tuple], b: list[tuple]) -> bool:  # type: ignore[type-arg]
    return len(a) == len(b) and all(
        x[0] == y[0]
        and x[4:] == y[4:]
        and x[1:3] == pytest.approx(y[1:3], abs=1e-12)
        and (x[3] == y[3] or (np.isnan(x[3]) and np.isnan(y[3])))
        for x, y in zip(a, b, strict=True)
    )


def test_merge_matches_the_quadratic_reference(east_timor: tuple[gpd.GeoDataFrame, ...]) -> None:
    pixels = east_timor[0]
    for radius in (0.005, 0.02, 0.05):  # larger radii merge the published points into clusters
        ref = _reference_merge(pixels, radius)
        assert _same(_rows(merge_points(pixels, radius)), ref)
    assert len(_reference_merge(pixels, 0.05)) < len(pixels)
    rng = np.random.default_rng(12)
    for trial in range(40):  # sparse and dense random clouds, duplicate names and NaN scores included
        n = int(rng.integers(1, 400))
        xy = rng.normal(0.0, float(rng.choice([0.001, 0.005, 0.02, 0.1])), (n, 2)) + (125.6, -8.6)
        if trial % 4 == 0:
            xy = np.round(xy, 3)  # coincident points
        names = [f"b_{int(i)}" for i in rng.integers(0, n, n)]
        scores = np.where(rng.random(n) < 0.2, np.nan, rng.random(n))
        pts = gpd.GeoDataFrame(
            {"name": names, "score": scores}, geometry=gpd.points_from_xy(xy[:, 0], xy[:, 1]), crs="EPSG:4326"
        )
        radius = float(rng.choice([0.001, 0.005, 0.01]))
        assert _same(_rows(merge_points(pts, radius)), _reference_merge(pts, radius)), trial


@pytest.mark.slow
def test_candidates_cli_on_100000_dense_points(tmp_path: Path) -> None:
    """100,000 blob points in 4 dense clumps (every pair within a clump closer than the radius):
    listing close pairs would need ~10^9 of them; the merge stays small and finds the 4 sites."""
    import json
    import subprocess
    import sys

    from shapely.geometry import box

    from plastics_core.storage.outputs import read_geojson, write_geojson

    rng = np.random.default_rng(3)
    centres = np.array([[125.50, -8.60], [125.60, -8.60], [125.50, -8.70], [125.60, -8.70]])
    xy = centres[np.arange(100_000) % 4] + rng.normal(0.0, 0.0004, (100_000, 2))
    feats = [
        {
            "type": "Feature",
            "properties": {"name": f"blob_{i}", "score": float(s)},
            "geometry": {"type": "Point", "coordinates": [float(x), float(y)]},
        }
        for i, ((x, y), s) in enumerate(zip(xy, rng.random(len(xy)), strict=True))
    ]
    (tmp_path / "blobs.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": feats}))
    patch = gpd.GeoDataFrame({"mean": [0.9]}, geometry=[box(125.45, -8.75, 125.65, -8.55)], crs="EPSG:4326")
    write_geojson(patch, tmp_path / "patches.geojson")
    # a wrapper process runs the CLI and prints the peak RSS of that one child (this process's
    # RUSAGE_CHILDREN would include every earlier subprocess of the test session)
    wrapper = (
        "import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(r.returncode)"
    )
    res = subprocess.run(
        [
            sys.executable,
            "-c",
            wrapper,
            sys.executable,
            "-m",
            "plastics_dagster.cli",
            "candidates",
            "--blobs",
            str(tmp_path / "blobs.geojson"),
            "--patches",
            str(tmp_path / "patches.geojson"),
            "--patch-threshold",
            "0.4",
            "-o",
            str(tmp_path / "out.geojson"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    peak_kb = int(res.stdout.strip().splitlines()[-1])
    assert res.returncode == 0, res.stderr[-2000:]
    out = read_geojson(tmp_path / "out.geojson")
    assert len(out) == 4 and sorted(out["n_merged"]) == [25_000] * 4
    assert sorted(out["name"]) == ["blob_0", "blob_1", "blob_2", "blob_3"]
    assert peak_kb < 2_000_000, f"peak RSS {peak_kb / 1e6:.1f} GB"  # the quadratic merge needed tens of GB
