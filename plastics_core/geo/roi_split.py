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
from plastics_core.geo.roi import roi_area_km2, validate_roi_name
from plastics_core.geo.tiles import DEFAULT_PAD, DEFAULT_TILESIZE, Tile, iter_tiles

#: a cell polygon stays this far (metres) inside its tiles' outer core edges
EDGE_M = 0.25
_M_PER_DEG = 111_320.0
#: default bound on the cell ROIs one split registers (``plastics roi split --max-cells``)
MAX_CELLS = 5_000
#: default bound on the tiles one split plans (``--max-tiles``): Indonesia is ~22,000 tiles
MAX_TILES = 50_000
#: peak memory of :func:`split_roi` per planned tile in bytes, for the estimate in refusals: the largest of
#: the resident-memory growth per tile measured splitting 1 x 1 and 3 x 3 deg ROIs at the default tile size
#: into 0.25 and 0.05 deg cells (15-25 kB: tile objects, lon/lat cores densified to 100 m, cell unions)
BYTES_PER_TILE = 25_000


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


@dataclass(frozen=True)
class SplitEstimate:
    """What a split would make, estimated from the ROI's area before any tile is planned:
    ``tiles`` (planned tiles), ``cells`` (cell ROIs, at most one per tile), ``memory_bytes``
    (peak memory of planning, :data:`BYTES_PER_TILE` per tile)."""

    tiles: int
    cells: int
    memory_bytes: int


def estimate_split(
    roi: BaseGeometry, cell_deg: float, tilesize: int = DEFAULT_TILESIZE, resolution: float = 10.0
) -> SplitEstimate:
    """:class:`SplitEstimate` of splitting ``roi`` (EPSG:4326) into ``cell_deg`` cells: tiles from the
    area (equal-area km^2) over one tile core's area, cells from the area over one grid cell's area at
    the ROI's mid-latitude (never more than the tiles)."""
    area = roi_area_km2(roi)
    tile_km = tilesize * resolution / 1000.0
    tiles = max(1, math.ceil(area / tile_km**2))
    mid_lat = math.radians((roi.bounds[1] + roi.bounds[3]) / 2.0)
    cell_km2 = (cell_deg * _M_PER_DEG / 1000.0) ** 2 * max(math.cos(mid_lat), 0.01)
    cells = min(tiles, max(1, math.ceil(area / cell_km2)))
    return SplitEstimate(tiles=tiles, cells=cells, memory_bytes=tiles * BYTES_PER_TILE)


def _too_many_tiles(count: int, max_tiles: int, about: str) -> ParameterError:
    gigabytes = count * BYTES_PER_TILE / 1e9
    return ParameterError(
        f"the ROI holds {about}{count:,} tiles, more than --max-tiles {max_tiles:,} (planning them "
        f"needs about {gigabytes:.1f} GB of memory): split the file into smaller ROIs first, or "
        "raise --max-tiles if the machine has the memory"
    )


def _too_many_cells(count: int, max_cells: int, cell_deg: float, about: str) -> ParameterError:
    larger = cell_deg * math.ceil(math.sqrt(count / max_cells) * 10) / 10 + 0.0
    return ParameterError(
        f"--cell {cell_deg:g} would make {about}{count:,} cell ROIs, more than --max-cells "
        f"{max_cells:,}: give a larger --cell (e.g. {min(larger, 10.0):g}) or raise --max-cells"
    )


def check_split(
    roi: BaseGeometry,
    cell_deg: float,
    tilesize: int = DEFAULT_TILESIZE,
    resolution: float = 10.0,
    max_cells: int = MAX_CELLS,
    max_tiles: int = MAX_TILES,
) -> SplitEstimate:
    """The split's :class:`SplitEstimate`; ParameterError (one line: the estimate, the limit and
    the fix) when it exceeds ``max_tiles`` or ``max_cells``. Cheap: no tile is planned."""
    if not (cell_deg > 0 and math.isfinite(cell_deg)):
        raise ParameterError(f"--cell must be a positive number of degrees, got {cell_deg}")
    if cell_deg > 10:
        raise ParameterError(f"--cell {cell_deg} deg is larger than 10 deg: use a smaller cell (e.g. 0.5)")
    if max_cells < 1 or max_tiles < 1:
        raise ParameterError(
            f"--max-cells {max_cells} / --max-tiles {max_tiles}: give positive whole numbers"
        )
    est = estimate_split(roi, cell_deg, tilesize, resolution)
    if est.tiles > max_tiles:
        raise _too_many_tiles(est.tiles, max_tiles, "about ")
    if est.cells > max_cells:
        raise _too_many_cells(est.cells, max_cells, cell_deg, "about ")
    return est


def split_roi(
    name: str,
    roi: BaseGeometry,
    cell_deg: float,
    tilesize: int = DEFAULT_TILESIZE,
    pad: int = DEFAULT_PAD,
    resolution: float = 10.0,
    max_cells: int = MAX_CELLS,
    max_tiles: int = MAX_TILES,
) -> list[RoiCell]:
    """Tile-aligned grid cells of ``cell_deg`` degrees clipped to ``roi`` (EPSG:4326).

    The grid is anchored at multiples of ``cell_deg`` degrees, so re-splitting the same ROI
    with the same cell and tile sizes gives the same names and polygons. Returns cells sorted
    by (row, col); grid cells without a tile are dropped. ``tilesize``/``pad``/``resolution``:
    the tile grid the runs will use (planner defaults). Bounded: ParameterError (one line) when the
    estimate (:func:`check_split`), the tiles actually planned or the cells made exceed
    ``max_tiles`` / ``max_cells``; planning stops at the first tile over the bound.
    """
    validate_roi_name(name)
    if not roi.is_valid:
        roi = make_valid(roi)
    check_split(roi, cell_deg, tilesize, resolution, max_cells, max_tiles)
    row_top = math.ceil(roi.bounds[3] / cell_deg)
    col0 = math.floor(roi.bounds[0] / cell_deg)
    owned: dict[tuple[int, int], list[tuple[str, Polygon]]] = defaultdict(list)
    for count, tile in enumerate(iter_tiles(roi, tilesize, pad, resolution), start=1):
        if count > max_tiles:
            raise _too_many_tiles(count, max_tiles, "more than ")
        core = core_4326(tile)
        centre = core.centroid
        gy, gx = math.floor(centre.y / cell_deg), math.floor(centre.x / cell_deg)
        owned[(row_top - 1 - gy, gx - col0)].append((tile.key, core))
    if len(owned) > max_cells:
        raise _too_many_cells(len(owned), max_cells, cell_deg, "")
    cells: list[RoiCell] = []
    for (row, col), tiles in sorted(owned.items()):
        area = unary_union([c for _, c in tiles]).buffer(-EDGE_M / _M_PER_DEG, join_style="mitre")
        clipped = _polygonal(roi.intersection(area))
        if clipped is None or clipped.area <= 0:
            continue
        cells.append(
            RoiCell(f"{name}-r{row:03d}c{col:03d}", clipped, row, col, tuple(sorted(k for k, _ in tiles)))
        )
    return cells
