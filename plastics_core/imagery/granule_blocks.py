"""Which blocks of a granule band a tile needs: the geometry of the block-level decode cache.

A granule band (one JPEG 2000 file: 10980 x 10980 px at 10 m, 5490 at 20 m, 1830 at 60 m in ESA
products) is cut into **blocks**: GDAL's blocks of the file, which for a tiled JPEG 2000 are its
code tiles (1024 x 1024 px in ESA products), so decoding a block decodes whole code tiles and
nothing else. A tile of the tile grid needs the
blocks its pixels' sample points fall in, on the band's own grid (its CRS and transform), plus
``margin`` source pixels for the resampling kernel; with a ``need`` mask (tile pixels that are
still wanted, e.g. not cloud) a block that no wanted pixel samples is not needed at all.

Everything here is pure geometry on (CRS, affine transform, shape); no pixels are read.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from affine import Affine
from rasterio.crs import CRS
from rasterio.warp import transform_bounds
from rasterio.windows import Window

#: (crs, affine transform, (rows, cols)) of the grid a read lands on.
Grid = tuple[str, Affine, tuple[int, int]]
#: A code tile smaller than MIN_SIDE px gives blocks of several code tiles (the smallest multiple
#: >= MIN_SIDE); a source whose blocks exceed MAX_SIDE (untiled) is cut into DEFAULT_SIDE blocks.
MIN_SIDE, MAX_SIDE, DEFAULT_SIDE = 256, 2048, 1024


@dataclass(frozen=True)
class BandMeta:
    """A granule band's grid and block layout: ``width`` x ``height`` px of ``dtype`` on ``crs``
    (WKT) / ``transform`` (metres per pixel in ``transform.a``), ``nodata`` (None: untagged, as in
    ESA products), cut into ``block`` = (rows, cols) px blocks (the last row/column may be smaller);
    ``overviews``: the decimation factors of its overviews (JPEG 2000 resolution levels)."""

    width: int
    height: int
    crs: str
    transform: Affine
    dtype: str
    nodata: float | None
    block: tuple[int, int]
    overviews: tuple[int, ...] = ()

    @classmethod
    def of(cls, src: Any, min_side: int = MIN_SIDE) -> BandMeta:
        """The meta of an open rasterio dataset (band 1); blocks are whole code tiles (GDAL's
        block shape), at least ``min_side`` px, at most :data:`MAX_SIDE`."""
        sides = tuple(
            DEFAULT_SIDE if n > MAX_SIDE else n * max(1, math.ceil(min_side / n))
            for n in (int(n) for n in src.block_shapes[0])
        )
        return cls(
            int(src.width),
            int(src.height),
            src.crs.to_wkt(),
            src.transform,
            str(src.dtypes[0]),
            src.nodata,
            (sides[0], sides[1]),
            tuple(int(f) for f in src.overviews(1)),
        )

    def to_json(self) -> str:
        return json.dumps(
            {
                "width": self.width,
                "height": self.height,
                "crs": self.crs,
                "transform": list(self.transform)[:6],
                "dtype": self.dtype,
                "nodata": self.nodata,
                "block": list(self.block),
                "overviews": list(self.overviews),
            }
        )

    @classmethod
    def from_json(cls, text: str) -> BandMeta:
        d = json.loads(text)
        return cls(
            int(d["width"]),
            int(d["height"]),
            str(d["crs"]),
            Affine(*d["transform"]),
            str(d["dtype"]),
            None if d["nodata"] is None else float(d["nodata"]),
            (int(d["block"][0]), int(d["block"][1])),
            tuple(int(f) for f in d.get("overviews", ())),
        )

    def level_for(self, resolution: float) -> int | None:
        """The overview level to read for a grid of ``resolution`` m (None: full resolution)."""
        return coarsest_level(self.overviews, abs(self.transform.a), resolution)

    def block_window(self, row: int, col: int) -> Window:
        """Pixel window of block (``row``, ``col``) on the band's grid."""
        bh, bw = self.block
        x0, y0 = col * bw, row * bh
        return Window(x0, y0, min(bw, self.width - x0), min(bh, self.height - y0))


def coarsest_level(factors: tuple[int, ...] | list[int], pixel: float, resolution: float) -> int | None:
    """Index of the coarsest overview (decimation ``factors`` of a band of ``pixel`` m) whose
    pixels are not larger than ``resolution`` m; None: none is (read full resolution)."""
    fits = [i for i, f in enumerate(factors) if f * pixel <= resolution * 1.0001]
    return max(fits) if fits else None


def _grid_bounds(grid: Grid, rows: slice, cols: slice) -> tuple[float, float, float, float]:
    """(left, bottom, right, top) of the grid's pixel rows/cols slice, in the grid's CRS."""
    _, t, _ = grid
    xs = [t.c + t.a * c + t.b * r for c in (cols.start, cols.stop) for r in (rows.start, rows.stop)]
    ys = [t.f + t.d * c + t.e * r for c in (cols.start, cols.stop) for r in (rows.start, rows.stop)]
    return min(xs), min(ys), max(xs), max(ys)


def _pixel_window(
    bounds: tuple[float, float, float, float], t: Affine, margin: int, height: int, width: int
) -> tuple[int, int, int, int] | None:
    """Rows [r0, r1) and cols [c0, c1) of the grid ``t`` covering ``bounds`` (its CRS) plus
    ``margin`` px, clipped to height x width; None when empty."""
    inv = ~t
    corners = [inv @ (x, y) for x in (bounds[0], bounds[2]) for y in (bounds[1], bounds[3])]
    cs, rs = [p[0] for p in corners], [p[1] for p in corners]
    c0, c1 = max(0, math.floor(min(cs)) - margin), min(width, math.ceil(max(cs)) + margin)
    r0, r1 = max(0, math.floor(min(rs)) - margin), min(height, math.ceil(max(rs)) + margin)
    return (r0, r1, c0, c1) if r0 < r1 and c0 < c1 else None


def needed_blocks(
    meta: BandMeta, grid: Grid, need: np.ndarray | None = None, margin: int = 2
) -> tuple[Window | None, list[tuple[int, int]]]:
    """The source window and the blocks (row, col) that a read of the band onto ``grid`` needs.

    ``need``: (rows, cols) bool on ``grid`` (None: every pixel). The window covers the wanted
    pixels' bounding box plus ``margin`` source pixels (the resampling kernel), clipped to the
    band; a block inside it is needed when some wanted pixel lies within ``margin`` source pixels
    of it. (None, []) when nothing is wanted or the grid misses the band.
    """
    crs, _, (rows, cols) = grid
    if need is not None:
        if need.shape != (rows, cols):
            raise ValueError(f"need mask {need.shape} is not the grid's shape {(rows, cols)}")
        r_any, c_any = np.flatnonzero(need.any(axis=1)), np.flatnonzero(need.any(axis=0))
        if r_any.size == 0:
            return None, []
        rs, cs = slice(int(r_any[0]), int(r_any[-1]) + 1), slice(int(c_any[0]), int(c_any[-1]) + 1)
    else:
        rs, cs = slice(0, rows), slice(0, cols)
    src_crs, dst_crs = CRS.from_wkt(meta.crs), CRS.from_user_input(crs)
    bounds = _grid_bounds(grid, rs, cs)
    if src_crs != dst_crs:
        bounds = transform_bounds(dst_crs, src_crs, *bounds, densify_pts=21)
    win = _pixel_window(bounds, meta.transform, margin, meta.height, meta.width)
    if win is None:
        return None, []
    r0, r1, c0, c1 = win
    blocks = []
    bh, bw = meta.block
    for br in range(r0 // bh, (r1 - 1) // bh + 1):
        for bc in range(c0 // bw, (c1 - 1) // bw + 1):
            if need is None or _wanted(meta, grid, need, br, bc, margin, src_crs, dst_crs):
                blocks.append((br, bc))
    return Window(c0, r0, c1 - c0, r1 - r0), blocks


def _wanted(
    meta: BandMeta, grid: Grid, need: np.ndarray, br: int, bc: int, margin: int, src_crs: CRS, dst_crs: CRS
) -> bool:
    """Whether a wanted pixel of ``grid`` lies within ``margin`` source pixels of block (br, bc)."""
    w = meta.block_window(br, bc)
    t = meta.transform
    expanded = _grid_bounds(
        (meta.crs, t, (meta.height, meta.width)),
        slice(int(w.row_off) - margin, int(w.row_off + w.height) + margin),
        slice(int(w.col_off) - margin, int(w.col_off + w.width) + margin),
    )
    if src_crs != dst_crs:
        expanded = transform_bounds(src_crs, dst_crs, *expanded, densify_pts=21)
    rows, cols = need.shape
    win = _pixel_window(expanded, grid[1], 1, rows, cols)
    return win is not None and bool(need[win[0] : win[1], win[2] : win[3]].any())
