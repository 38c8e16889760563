"""Site contours: valid georeferenced polygons with holes, area, flicker mask, boxes."""

from __future__ import annotations

from datetime import date

import geopandas as gpd
import numpy as np
import pytest
from affine import Affine

from plastics_core.contours import CONTOUR_COLUMNS, candidate_boxes, contour_masks, site_contours
from plastics_core.errors import ParameterError

TRANSFORM = Affine(10, 0, 700_000, 0, -10, 9_060_000)  # EPSG:32751 (Timor), 10 m
DATES = [date(2020, m, 1) for m in range(1, 11)]


def frames_with_site(n: int = 10) -> np.ndarray:
    f = np.zeros((n, 100, 100), np.float32)
    f[:, 20:70, 20:70] = 0.9  # 50 x 50 px site = 0.25 km^2 ...
    f[:, 40:50, 40:50] = 0.05  # ... with a 10 x 10 px hole
    f[:, 90:, 90:] = np.nan  # cloud-masked corner
    return f


def test_contours_valid_with_hole_and_area() -> None:
    gdf = site_contours(frames_with_site(), DATES, "EPSG:32751", TRANSFORM, "site_a")
    assert list(gdf.columns[:-1]) == CONTOUR_COLUMNS and gdf.crs.to_epsg() == 4326
    assert len(gdf) == 10 and list(gdf["frame"]) == list(range(10))
    assert gdf["date"].iat[0] == "2020-01-01" and (gdf["name"] == "site_a").all()
    assert gdf.is_valid.all() and (gdf.geom_type == "Polygon").all()
    poly = gdf.geometry.iat[0]
    assert len(poly.interiors) == 1
    planted = (50 * 50 - 10 * 10) * 100 / 1e6  # km^2 (UTM scale ~1 here)
    assert gdf["area_km2"].iat[0] == pytest.approx(planted, rel=0.04)
    # georeferenced: the polygon sits where the pixels are
    native = gpd.GeoSeries([poly], crs=4326).to_crs("EPSG:32751").iloc[0]
    minx, miny, maxx, maxy = native.bounds
    assert minx == pytest.approx(700_000 + 200, abs=10) and maxy == pytest.approx(9_060_000 - 200, abs=10)
    assert maxx == pytest.approx(700_000 + 700, abs=10) and miny == pytest.approx(9_060_000 - 700, abs=10)


def test_two_parts_are_multipolygon() -> None:
    f = np.zeros((3, 80, 80), np.float32)
    f[:, 5:20, 5:20] = 0.8
    f[:, 50:75, 50:75] = 0.95
    gdf = site_contours(f, DATES[:3], "EPSG:32751", TRANSFORM, "s")
    assert (gdf.geom_type == "MultiPolygon").all() and gdf.is_valid.all()
    assert gdf["area_km2"].iat[0] == pytest.approx((15 * 15 + 25 * 25) * 100 / 1e6, rel=0.06)


def test_flicker_is_masked_and_empty_frames_dropped() -> None:
    f = np.zeros((10, 60, 60), np.float32)
    f[3, 10:30, 10:30] = 0.99  # one-month flicker: the 8-frame rolling median is 0 -> masked
    f[6:, 35:55, 35:55] = 0.7  # appears in frame 6: frames 6..9 see it in >= half their window
    f[:, 0:5, :] = 0.3  # below the 0.5 prediction floor
    gdf = site_contours(f, DATES, "EPSG:32751", TRANSFORM, "s")
    assert list(gdf["frame"]) == [6, 7, 8, 9]
    masks = contour_masks(f)
    assert masks.shape == (10, 240, 240) and not masks[3].any() and masks[9].any()


def test_all_masked_or_empty_is_empty() -> None:
    for f in (np.full((4, 30, 30), np.nan, np.float32), np.zeros((4, 30, 30), np.float32)):
        gdf = site_contours(f, DATES[:4], "EPSG:32751", TRANSFORM, "s")
        assert len(gdf) == 0 and list(gdf.columns[:-1]) == CONTOUR_COLUMNS and gdf.crs.to_epsg() == 4326
    with pytest.raises(ParameterError):
        site_contours(np.zeros((4, 30, 30)), DATES[:3], "EPSG:32751", TRANSFORM, "s")


def test_candidate_boxes() -> None:
    cands = gpd.GeoDataFrame(
        {"name": ["a"], "patch_mean": [0.5]}, geometry=gpd.points_from_xy([125.5], [-8.5]), crs=4326
    )
    boxes = candidate_boxes(cands, 0.008)
    assert boxes.crs.to_epsg() == 4326 and list(boxes["name"]) == ["a"] and "patch_mean" in boxes
    assert boxes.geometry.iat[0].bounds == pytest.approx((125.496, -8.504, 125.504, -8.496))
    assert len(candidate_boxes(cands.iloc[:0])) == 0
    with pytest.raises(ParameterError):
        candidate_boxes(cands, 0)
