"""Processing tiles: the DLTile grid of UTM tiles covering an ROI.

A tile is a ``tilesize`` x ``tilesize`` block of ``resolution`` m pixels on the UTM grid
(earthdaily.earthone.geo.DLTile, computed offline), read with ``pad`` extra pixels on every
side, so arrays are ``(tilesize + 2 * pad)`` square.

Default size arithmetic (``DEFAULT_TILESIZE = 897``, ``DEFAULT_PAD = 22``):

- the padded tile is ``897 + 2 * 22 = 941`` px (9.41 km at 10 m);
- the patch classifier reads 45 x 45 px windows at stride 8. Windows start at padded
  offsets ``0, 8, ..., 896`` and ``(941 - 45) % 8 == 0``, so the last window ends exactly on
  the last padded pixel (113 windows per axis, no uncovered strip);
- a window starting at ``s`` is centred on ``s + 22``; with ``pad = 22`` the centres are
  ``22 .. 918``, i.e. exactly the first and last core (unpadded) pixels, every 8th core
  pixel in between. A pad of at least 22 (= 45 // 2) is what lets a window be centred on
  a tile's edge pixel.

CRS: DLTile keys use the northern UTM zone (EPSG:326xx) with negative northings south of
the equator. :class:`Tile` reports southern tiles in EPSG:327xx (the CRS of Sentinel-2
granules there) by adding the 10,000,000 m false northing to the transform's origin; the
two are the same projection, so the pixel grid is unchanged. A tile is southern when the
northing of its core centre is negative.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property

from affine import Affine
from earthdaily.earthone.geo import DLTile
from pyproj import Transformer
from shapely.geometry import box as shapely_box
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from plastics_core.errors import ParameterError, RoiError

DEFAULT_TILESIZE = 897
DEFAULT_PAD = 22
#: Patch-classifier window and stride the defaults are chosen for.
PATCH_WINDOW = 45
PATCH_STRIDE = 8
_FALSE_NORTHING_SOUTH = 10_000_000.0


@dataclass(frozen=True)
class Tile:
    """One padded processing tile.

    - ``key``: the DLTile key ``tilesize:pad:resolution:utm_zone:ti:tj``.
    - ``crs``: ``EPSG:326zz`` (north) or ``EPSG:327zz`` (south).
    - ``transform``: affine pixel -> ``crs`` metres for the *padded* array (origin = top-left
      corner of pixel (0, 0) of the pad).
    - ``tilesize`` / ``pad``: core size and pad in pixels; ``resolution`` in metres.
    - ``geometry_4326``: the padded footprint as a lon/lat polygon (EPSG:4326).
    """

    key: str
    crs: str
    transform: Affine
    tilesize: int
    pad: int
    resolution: float
    geometry_4326: BaseGeometry

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, cols) of the padded array: ``tilesize + 2 * pad`` each."""
        n = self.tilesize + 2 * self.pad
        return n, n

    @property
    def core_window(self) -> tuple[slice, slice]:
        """(row, col) slices of the core (unpadded) pixels in the padded array."""
        return slice(self.pad, self.pad + self.tilesize), slice(self.pad, self.pad + self.tilesize)

    @cached_property
    def bounds(self) -> tuple[float, float, float, float]:
        """Padded (left, bottom, right, top) in ``crs`` metres."""
        rows, cols = self.shape
        left, top = self.transform @ (0, 0)
        right, bottom = self.transform @ (cols, rows)
        return min(left, right), min(top, bottom), max(left, right), max(top, bottom)


def _to_tile(dl: DLTile) -> Tile:
    zone = int(dl.zone)
    c, a, b, f, d, e = (float(v) for v in dl.geotrans)
    size = int(dl.tilesize) + 2 * int(dl.pad)
    centre_y = f + e * size / 2.0
    crs = f"EPSG:{32600 + zone}"
    if centre_y < 0:
        crs = f"EPSG:{32700 + zone}"
        f += _FALSE_NORTHING_SOUTH
    return Tile(
        key=str(dl.key),
        crs=crs,
        transform=Affine(a, b, c, d, e, f),
        tilesize=int(dl.tilesize),
        pad=int(dl.pad),
        resolution=float(dl.resolution),
        geometry_4326=shape(dl.geometry),
    )


def _check_params(tilesize: int, pad: int, resolution: float) -> None:
    if tilesize < 1 or pad < 0 or resolution <= 0:
        raise ParameterError(
            f"bad tile parameters tilesize={tilesize} pad={pad} resolution={resolution}: "
            "use tilesize >= 1, pad >= 0, resolution > 0"
        )


def plan_tiles(
    roi_geom_4326: BaseGeometry,
    tilesize: int = DEFAULT_TILESIZE,
    pad: int = DEFAULT_PAD,
    resolution: float = 10.0,
) -> list[Tile]:
    """Every DLTile whose core intersects the ROI (lon/lat, EPSG:4326), sorted by key.

    Works offline (the DLTile grid is computed locally).
    """
    return sorted(iter_tiles(roi_geom_4326, tilesize, pad, resolution), key=lambda t: t.key)


def iter_tiles(
    roi_geom_4326: BaseGeometry,
    tilesize: int = DEFAULT_TILESIZE,
    pad: int = DEFAULT_PAD,
    resolution: float = 10.0,
) -> Iterator[Tile]:
    """:func:`plan_tiles`'s tiles one at a time, in the grid's order (a caller with a bound can stop early)."""
    _check_params(tilesize, pad, resolution)
    if roi_geom_4326.is_empty:
        raise RoiError("ROI geometry is empty: give an ROI polygon with a non-zero area")
    for dl in DLTile.iter_from_shape(roi_geom_4326, resolution=resolution, tilesize=tilesize, pad=pad):
        yield _to_tile(dl)


def tile_from_key(key: str) -> Tile:
    """The Tile of a DLTile key ``tilesize:pad:resolution:utm_zone:ti:tj``."""
    try:
        return _to_tile(DLTile.from_key(key))
    except Exception as exc:  # DLTile raises assorted errors on malformed keys
        raise ParameterError(
            f"bad tile key {key!r} ({exc}): use tilesize:pad:resolution:utm_zone:ti:tj, e.g. 897:22:10.0:50:-18:-109"
        ) from exc


def box_tile(lon: float, lat: float, width_deg: float, name: str, resolution: float = 10.0) -> Tile:
    """A square UTM grid (``resolution`` m, snapped) covering a ``width_deg`` box at (lon, lat)."""
    zone = int((lon + 180) // 6) + 1
    crs = f"EPSG:{(32600 if lat >= 0 else 32700) + zone}"
    x, y = Transformer.from_crs("EPSG:4326", crs, always_xy=True).transform(lon, lat)
    half = width_deg / 2 * 111_320.0  # metres per degree of latitude (and longitude at the equator)
    n = int(math.ceil(2 * half / resolution))
    left = math.floor((x - half) / resolution) * resolution
    top = math.ceil((y + half) / resolution) * resolution
    transform = Affine(resolution, 0.0, left, 0.0, -resolution, top)
    to4326 = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    (x0, x1), (y0, y1) = to4326.transform([left, left + n * resolution], [top - n * resolution, top])
    return Tile(f"box:{name}", crs, transform, n, 0, resolution, shapely_box(x0, y0, x1, y1))
