"""Site contours: valid georeferenced polygons with holes, area, flicker mask, boxes."""

from __future__ import annotations

from datetime import date

import geopandas as gpd
import numpy as np
import pytest
from affine import Affine

from plastics_core.errors import ParameterError
from plastics_core.method.contours import CONTOUR_COLUMNS, candidate_boxes, contour_masks, site_contours

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
    # GPW's blur (sigma 1 px) thresholded at 0.2 grows a 0.9 site's outline by about a pixel (10 m)
    assert gdf["area_km2"].iat[0] == pytest.approx(planted, rel=0.15) and gdf["area_km2"].iat[0] > planted
    # georeferenced: the polygon sits where the pixels are
    native = gpd.GeoSeries([poly], crs=4326).to_crs("EPSG:32751").iloc[0]
    minx, miny, maxx, maxy = native.bounds
    assert minx == pytest.approx(700_000 + 200, abs=20) and maxy == pytest.approx(9_060_000 - 200, abs=20)
    assert maxx == pytest.approx(700_000 + 700, abs=20) and miny == pytest.approx(9_060_000 - 700, abs=20)


def test_two_parts_are_multipolygon() -> None:
    f = np.zeros((3, 80, 80), np.float32)
    f[:, 5:20, 5:20] = 0.8
    f[:, 50:75, 50:75] = 0.95
    gdf = site_contours(f, DATES[:3], "EPSG:32751", TRANSFORM, "s")
    assert (gdf.geom_type == "MultiPolygon").all() and gdf.is_valid.all()
    assert gdf["area_km2"].iat[0] == pytest.approx((15 * 15 + 25 * 25) * 100 / 1e6, rel=0.2)


@pytest.mark.parametrize("align", ["trailing", "following"])
def test_flicker_is_masked_and_empty_frames_dropped(align: str) -> None:
    f = np.zeros((10, 60, 60), np.float32)
    f[8, 10:30, 10:30] = 0.99  # one-month flicker: the 8-frame rolling median is 0 -> masked
    f[6:, 35:55, 35:55] = 0.7  # appears in frame 6: the TRAILING 8-frame median (frames i-7..i) sees
    f[:, 0:5, :] = 0.3  # below the 0.5 prediction floor         it in half its window from frame 9 on
    kept = 9
    if align == "following":  # the paper's window (frames i..i+7) is the code's reversed in time
        f, kept = f[::-1].copy(), 0
    gdf = site_contours(f, DATES, "EPSG:32751", TRANSFORM, "s", mask_align=align)  # type: ignore[arg-type]
    assert list(gdf["frame"]) == [kept]
    masks = contour_masks(f, mask_align=align)  # type: ignore[arg-type]
    flicker = 9 - 8 if align == "following" else 8
    assert masks.shape == (10, 240, 240) and not masks[flicker].any() and masks[kept].any()


def test_rolling_mask_is_trailing_with_gpw_front_padding() -> None:
    from plastics_core.method.contours import rolling_masks

    f = np.zeros((4, 1, 1), np.float32)
    f[0] = 0.9  # a site in the first frame only: the front padding (mean of frames 0..2 = 0.3) keeps it
    keep = rolling_masks(f, mask_window=8, mask_threshold=0.1, align="trailing")  # window = min(8, 4) = 4
    assert keep[:, 0, 0].tolist() == [True, True, True, False]
    # the paper's following window: frame 0 sees frames 0..3 = (0.9, 0, 0, 0), median 0
    following = rolling_masks(f, mask_window=8, mask_threshold=0.1)
    assert following[:, 0, 0].tolist() == [False, False, False, False]


def test_small_and_cloudy_frames_are_dropped() -> None:
    f = np.zeros((3, 60, 60), np.float32)
    f[:, 10:12, 10:12] = 0.95  # 4 px: far below GPW's 10 px minimum after blurring
    f[:, 30:50, 30:50] = 0.95
    gdf = site_contours(f, DATES[:3], "EPSG:32751", TRANSFORM, "s")
    assert len(gdf) == 3 and (gdf.geom_type == "Polygon").all()
    f[1, :8, :] = np.nan  # 13 % masked: GPW skipped such frames
    assert list(site_contours(f, DATES[:3], "EPSG:32751", TRANSFORM, "s")["frame"]) == [0, 2]


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
