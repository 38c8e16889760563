"""Test helpers shared by the imagery-source tests: the tile over a fixture raster, and which
fixture pixel lies under each tile pixel (nearest neighbour), to check values on the tile grid."""

from __future__ import annotations

import numpy as np
from affine import Affine
from shapely.geometry.base import BaseGeometry

from plastics_core.geo.tiles import Tile, plan_tiles


def largest_overlap_tile(footprint_4326: BaseGeometry, tilesize: int = 128, pad: int = 8) -> Tile:
    """The DLTile (``tilesize`` + 2 x ``pad`` px, 10 m) holding most of an EPSG:4326 footprint."""
    tiles = plan_tiles(footprint_4326, tilesize=tilesize, pad=pad)
    return max(tiles, key=lambda t: t.geometry_4326.intersection(footprint_4326).area)


def source_pixels_under(
    tile: Tile, source_transform: Affine, source_shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row, col) of the source pixel under each tile pixel centre (same CRS; general affines),
    and the (y, x) bool flags of centres inside the source raster of ``source_shape`` (rows, cols)."""
    rows, cols = np.mgrid[0 : tile.shape[0], 0 : tile.shape[1]]
    t, s = tile.transform, ~source_transform
    xs, ys = t.a * (cols + 0.5) + t.b * (rows + 0.5) + t.c, t.d * (cols + 0.5) + t.e * (rows + 0.5) + t.f
    c = np.floor(s.a * xs + s.b * ys + s.c).astype(int)
    r = np.floor(s.d * xs + s.e * ys + s.f).astype(int)
    return r, c, (c >= 0) & (c < source_shape[1]) & (r >= 0) & (r < source_shape[0])
