"""Split a country-sized ROI into grid cells so each run holds a few hundred tiles.

Indonesia at ~900 px tiles is ~22,000 tiles: too many dynamic steps for one run's event
log. :func:`split_roi` cuts the ROI (EPSG:4326) along a regular lon/lat grid of
``cell_deg`` degrees, clips every cell to the ROI polygon (land only) and drops empty
cells. Each cell becomes its own ``roi`` partition named ``<name>-r<row>c<col>``
(row counted from the north), so a backfill across cells x windows covers the country.
At 0.25 deg cells (about 27.8 km at the equator) a cell holds at most ~9 tiles of
8.96 km; at 1 deg, ~150.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from shapely import box, make_valid
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry

from plastics_core.errors import ParameterError
from plastics_core.roi import validate_roi_name


@dataclass(frozen=True)
class RoiCell:
    """One grid cell of a split ROI: partition-safe ``name``, clipped polygon (EPSG:4326),
    grid ``row`` (from the north) and ``col`` (from the west)."""

    name: str
    geometry: BaseGeometry
    row: int
    col: int


def _polygonal(geom: BaseGeometry) -> BaseGeometry | None:
    """Keep only the polygonal part of a clip result (a clip can add lines/points on edges)."""
    if isinstance(geom, Polygon | MultiPolygon):
        return geom if not geom.is_empty else None
    parts = [g for g in getattr(geom, "geoms", []) if isinstance(g, Polygon) and not g.is_empty]
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else MultiPolygon(parts)


def split_roi(name: str, roi: BaseGeometry, cell_deg: float) -> list[RoiCell]:
    """Grid cells of ``cell_deg`` degrees clipped to ``roi`` (EPSG:4326), empty cells dropped.

    The grid is anchored at multiples of ``cell_deg`` degrees, so re-splitting the same ROI
    with the same cell size gives the same names. Returns cells sorted by (row, col).
    """
    validate_roi_name(name)
    if not (cell_deg > 0 and math.isfinite(cell_deg)):
        raise ParameterError(f"--cell must be a positive number of degrees, got {cell_deg}")
    if cell_deg > 10:
        raise ParameterError(f"--cell {cell_deg} deg is larger than 10 deg: use a smaller cell (e.g. 0.5)")
    if not roi.is_valid:
        roi = make_valid(roi)
    minx, miny, maxx, maxy = roi.bounds
    col0, col1 = math.floor(minx / cell_deg), math.ceil(maxx / cell_deg)
    row_top, row_bottom = math.ceil(maxy / cell_deg), math.floor(miny / cell_deg)
    cells: list[RoiCell] = []
    for gy in range(row_top, row_bottom, -1):
        for gx in range(col0, col1):
            cell = box(gx * cell_deg, (gy - 1) * cell_deg, (gx + 1) * cell_deg, gy * cell_deg)
            clipped = _polygonal(roi.intersection(cell))
            if clipped is None or clipped.area <= 0:
                continue
            row, col = row_top - gy, gx - col0
            cells.append(RoiCell(f"{name}-r{row:03d}c{col:03d}", clipped, row, col))
    return cells
