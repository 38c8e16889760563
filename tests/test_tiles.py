"""plastics_core.geo.tiles: the offline DLTile grid on the real GPW ROIs."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyproj import Transformer
from shapely.geometry import Point, box

from plastics_core.errors import ParameterError
from plastics_core.geo.roi import read_roi
from plastics_core.geo.tiles import (
    DEFAULT_PAD,
    DEFAULT_TILESIZE,
    PATCH_STRIDE,
    PATCH_WINDOW,
    plan_tiles,
    tile_from_key,
)


def test_default_geometry_fits_patch_windows() -> None:
    n = DEFAULT_TILESIZE + 2 * DEFAULT_PAD
    assert (n - PATCH_WINDOW) % PATCH_STRIDE == 0
    assert DEFAULT_PAD >= PATCH_WINDOW // 2
    assert 850 <= DEFAULT_TILESIZE <= 950
    # window centres at stride 8 hit the first and last core pixels
    centres = range(PATCH_WINDOW // 2, n - PATCH_WINDOW // 2, PATCH_STRIDE)
    assert centres[0] == DEFAULT_PAD and centres[-1] == DEFAULT_PAD + DEFAULT_TILESIZE - 1


def test_test_patch_one_tile(gpw_dir: Path) -> None:
    roi = read_roi(gpw_dir / "test_patch.geojson")
    tiles = plan_tiles(roi)
    assert len(tiles) == 1
    t = tiles[0]
    assert t.crs == "EPSG:32750"
    assert t.key.startswith(f"{DEFAULT_TILESIZE}:{DEFAULT_PAD}:10.0:50:")
    assert t.shape == (941, 941)
    assert t.transform.a == 10.0 and t.transform.e == -10.0
    assert t.geometry_4326.contains(roi)
    # the transform and the 4326 footprint describe the same place
    to_ll = Transformer.from_crs(t.crs, "EPSG:4326", always_xy=True)
    lon, lat = to_ll.transform(*(t.transform @ (470, 470)))
    assert t.geometry_4326.contains(Point(lon, lat))
    left, bottom, right, top = t.bounds
    assert right - left == pytest.approx(9410.0) and top > 9_000_000  # southern UTM northing
    # core of the tile contains the ROI
    rows, cols = t.core_window
    core_left, core_top = t.transform @ (cols.start, rows.start)
    to_utm = Transformer.from_crs("EPSG:4326", t.crs, always_xy=True)
    x0, y0, x1, y1 = roi.bounds
    (ax, bx), (ay, by) = to_utm.transform([x0, x1], [y0, y1])
    assert core_left <= min(ax, bx) and max(ay, by) <= core_top


def test_tile_from_key_roundtrip(gpw_dir: Path) -> None:
    t = plan_tiles(read_roi(gpw_dir / "test_patch.geojson"))[0]
    assert tile_from_key(t.key) == t


def test_bali_tiles(gpw_dir: Path) -> None:
    roi = read_roi(gpw_dir / "bali.geojson")
    tiles = plan_tiles(roi)
    # ~5,600 km^2 of land in a ~140 x 90 km box; tiles are 8.97 km cores
    assert 70 <= len(tiles) <= 160
    assert [t.key for t in tiles] == sorted(t.key for t in tiles)
    assert len({t.key for t in tiles}) == len(tiles)
    assert {t.crs for t in tiles} == {"EPSG:32750"}
    assert all(t.key.split(":")[3] == "50" for t in tiles)
    assert all(t.geometry_4326.intersects(roi) for t in tiles)


def test_northern_hemisphere_crs() -> None:
    t = plan_tiles(box(14.50, 46.05, 14.52, 46.06))[0]  # Ljubljana
    assert t.crs == "EPSG:32633"
    assert 5_000_000 < t.bounds[3] < 5_200_000


def test_bad_key_and_params() -> None:
    with pytest.raises(ParameterError, match="tile key"):
        tile_from_key("not-a-key")
    with pytest.raises(ParameterError):
        plan_tiles(box(0, 0, 0.01, 0.01), tilesize=0)
