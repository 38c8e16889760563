"""The ImagerySource protocol: what every imagery backend provides.

A source answers two questions for a tile and a period: which scenes exist
(:meth:`ImagerySource.search`, cheap, used by sensors and manifests) and their pixels on
the tile's exact grid (:meth:`ImagerySource.load`, a :class:`~plastics_core.geo.scenes.SceneStack`
in model band order, DN, with a per-pixel mask).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from shapely.geometry.base import BaseGeometry

    from plastics_core.geo.periods import Period
    from plastics_core.geo.scenes import SceneStack
    from plastics_core.geo.tiles import Tile


@dataclass(frozen=True)
class SceneInfo:
    """One acquisition known to a source: id, acquisition date, scene cloud cover in percent
    (``None`` when unknown)."""

    id: str
    date: dt.date
    cloud_cover: float | None = None


@runtime_checkable
class ImagerySource(Protocol):
    """A source of Sentinel-2 L1C scenes (synthetic, local GeoTIFF, STAC, EarthOne)."""

    #: short identifier recorded in manifests, e.g. ``synthetic`` or ``local:/data/s2``.
    name: str

    def search(self, geometry_4326: BaseGeometry, period: Period) -> list[SceneInfo]:
        """Scenes intersecting ``geometry_4326`` (EPSG:4326) acquired within ``period``."""
        ...

    def load(self, tile: Tile, period: Period) -> SceneStack:
        """Scenes of ``period`` on ``tile``'s grid (tile.crs, tile.transform, tile.shape).

        Returns a SceneStack with possibly zero time steps (empty is not an error).
        """
        ...


@runtime_checkable
class CheckableSource(Protocol):
    """A source that can check its inputs cheaply (headers, not pixels) before any tile is read."""

    def validate(self) -> None:
        """Raise an :class:`~plastics_core.errors.ImageryError` naming the first bad input."""
        ...
