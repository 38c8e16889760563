"""Candidate selection: the east_timor regression and the merge algorithm."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest

from plastics_core.errors import ParameterError
from plastics_core.sites import cluster_points, merge_points, select_candidates


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
