"""Geometry values to and from the site database's geometry columns (EPSG:4326 degrees).

PostgreSQL (PostGIS): written as EWKT text (``SRID=4326;POINT (lon lat)``, full precision),
read as GeoAlchemy2 ``WKBElement``. SQLite: written and read as WKB bytes.
"""

from __future__ import annotations

from typing import Any

import shapely
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry

from plastics_core.sitedb.schema import SRID


def to_db(geom: BaseGeometry, dialect: str) -> Any:
    """The value to bind for ``geom`` on a connection of ``dialect`` (``postgresql`` or ``sqlite``)."""
    if dialect == "postgresql":
        return f"SRID={SRID};{shapely.to_wkt(geom, rounding_precision=-1)}"
    return shapely.to_wkb(geom)


def to_db_many(geoms: list[BaseGeometry], dialect: str) -> list[Any]:
    """:func:`to_db` of every geometry of ``geoms`` (vectorized)."""
    if not geoms:
        return []
    if dialect == "postgresql":
        return [f"SRID={SRID};{w}" for w in shapely.to_wkt(geoms, rounding_precision=-1)]
    return list(shapely.to_wkb(geoms))


def to_shapely(value: Any) -> BaseGeometry | None:
    """A geometry read from the database (``WKBElement``, ``bytes``/``memoryview`` WKB, or None)."""
    if value is None:
        return None
    data = getattr(value, "data", value)  # WKBElement keeps the WKB in .data
    if isinstance(data, str):
        return (
            shapely.from_wkb(bytes.fromhex(data))
            if not data.startswith("SRID=")
            else shapely.from_wkt(data.split(";", 1)[1])
        )
    return shapely.from_wkb(bytes(data))


def as_multipolygon(geom: BaseGeometry) -> MultiPolygon:
    """``geom``'s polygonal parts as one MultiPolygon (lines and points dropped; empty if none)."""
    if isinstance(geom, MultiPolygon):
        return geom
    if isinstance(geom, Polygon):
        return MultiPolygon([geom])
    parts = [g for g in getattr(geom, "geoms", []) if isinstance(g, Polygon | MultiPolygon)]
    polys: list[Polygon] = []
    for part in parts:
        polys.extend(part.geoms if isinstance(part, MultiPolygon) else [part])
    return MultiPolygon(polys)
