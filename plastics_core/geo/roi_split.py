"""Split a country-sized ROI into grid cells so each run holds a few hundred tiles.

Indonesia at ~900 px tiles is ~22,000 tiles: too many dynamic steps for one run's event
log. :func:`split_roi` groups the ROI's processing tiles (:func:`plastics_core.geo.tiles.plan_tiles`)
by a regular lon/lat grid of ``cell_deg`` degrees and returns one cell ROI per non-empty grid
cell, clipped to the ROI polygon (land only). Each cell becomes its own ``roi`` partition named
``<name>-r<row>c<col>`` (row counted from the north), so a backfill across cells x windows
covers the country.

Cells are tile-aligned, so no tile is computed twice: a tile belongs to the grid cell that
holds its core centre, and a cell's polygon is ``ROI ∩ (union of its tiles' cores)`` shrunk
by :data:`EDGE_M` (0.25 m) so it does not touch the neighbouring cells' tiles. Planning a cell
with the same tile size therefore gives exactly its own tiles, the cells' tiles are disjoint and
together are the ROI's tiles, and the cells' area is the ROI's area minus 0.25 m strips along
the cell edges (pixels there are still computed: they lie in the cell's edge tiles). A plain
lon/lat grid instead would compute every tile crossing a cell edge in both cells (at 0.25 deg
cells about 1.7x the tiles of the whole ROI). At 0.25 deg (about 27.8 km) a cell holds at
most ~16 tiles of 8.97 km; at 1 deg, ~150.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

from pyproj import Transformer
from shapely import box, make_valid, segmentize, unary_union
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry
from shapely.ops import transform as shp_transform

from plastics_core.errors import ParameterError
from plastics_core.geo.roi import validate_roi_name
from plastics_core.geo.tiles import DEFAULT_PAD, DEFAULT_TILESIZE, Tile, plan_tiles

#: a cell polygon stays this far (metres) inside its tiles' outer core edges
EDGE_M = 0.25
_M_PER_DEG = 111_320.0


@dataclass(frozen=True)
class RoiCell:
    """One grid cell of a split ROI: partition-safe ``name``, clipped polygon (EPSG:4326),
    grid ``row`` (from the north) and ``col`` (from the west), and the DLTile keys it owns."""

    name: str
    geometry: BaseGeometry
    row: int
    col: int
    tile_keys: tuple[str, ...] = ()


def _polygonal(geom: BaseGeometry) -> BaseGeometry | None:
    """Keep only the polygonal part of a clip result (a clip can add lines/points on edges)."""
    if isinstance(geom, Polygon | MultiPolygon):
        return geom if not geom.is_empty else None
    parts = [g for g in getattr(geom, "geoms", []) if isinstance(g, Polygon) and not g.is_empty]
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else MultiPolygon(parts)


def core_4326(tile: Tile) -> Polygon:
    """The tile's core (unpadded) square as a lon/lat polygon (edges densified to 100 m)."""
    p, n = tile.pad, tile.tilesize
    (x0, y0), (x1, y1) = tile.transform @ (p, p), tile.transform @ (p + n, p + n)
    square = segmentize(box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)), 100.0)
    to4326 = Transformer.from_crs(tile.crs, "EPSG:4326", always_xy=True).transform
    return shp_transform(to4326, square)


def split_roi(name: str, roi: BaseGeometry, cell_deg: float, tilesize: int = DEFAULT_TILESIZE,
              pad: int = DEFAULT_PAD, resolution: float = 10.0) -> list[RoiCell]:
    """Tile-aligned grid cells of ``cell_deg`` degrees clipped to ``roi`` (EPSG:4326).

    The grid is anchored at multiples of ``cell_deg`` degrees, so re-splitting the same ROI
    with the same cell and tile sizes gives the same names and polygons. Returns cells sorted
    by (row, col); grid cells without a tile are dropped. ``tilesize``/``pad``/``resolution``:
    the tile grid the runs will use (planner defaults).
    """
    validate_roi_name(name)
    if not (cell_deg > 0 and math.isfinite(cell_deg)):
        raise ParameterError(f"--cell must be a positive number of degrees, got {cell_deg}")
    if cell_deg > 10:
        raise ParameterError(f"--cell {cell_deg} deg is larger than 10 deg: use a smaller cell (e.g. 0.5)")
    if not roi.is_valid:
        roi = make_valid(roi)
    row_top = math.ceil(roi.bounds[3] / cell_deg)
    col0 = math.floor(roi.bounds[0] / cell_deg)
    owned: dict[tuple[int, int], list[tuple[str, Polygon]]] = defaultdict(list)
    for tile in plan_tiles(roi, tilesize, pad, resolution):
        core = core_4326(tile)
        centre = core.centroid
        gy, gx = math.floor(centre.y / cell_deg), math.floor(centre.x / cell_deg)
        owned[(row_top - 1 - gy, gx - col0)].append((tile.key, core))
    cells: list[RoiCell] = []
    for (row, col), tiles in sorted(owned.items()):
        area = unary_union([c for _, c in tiles]).buffer(-EDGE_M / _M_PER_DEG, join_style="mitre")
        clipped = _polygonal(roi.intersection(area))
        if clipped is None or clipped.area <= 0:
            continue
        cells.append(RoiCell(f"{name}-r{row:03d}c{col:03d}", clipped, row, col, tuple(sorted(k for k, _ in tiles))))
    return cells
