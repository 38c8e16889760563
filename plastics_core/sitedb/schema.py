"""Tables of the site database (SQLAlchemy 2 declarative models; geometry EPSG:4326).

Geometry columns: on PostgreSQL they are PostGIS ``geometry(<type>, 4326)`` columns
(GeoAlchemy2) with GiST indexes, and bounding-box queries use ``&&`` / ``ST_MakeEnvelope``.
On SQLite they hold the same geometry as WKB (``BLOB``, no SpatiaLite needed): bounding-box
queries there use the sites' ``lon`` / ``lat`` columns and their B-tree index, which is exact
for points. Read geometry back with :func:`plastics_core.sitedb.geometry.to_shapely`.

Tables (``run_hash``: the 12-hex run hash of :func:`plastics_core.params.run_hash`, which includes
the ROI geometry, parameters, models and imagery source, so two runs never share rows):

- ``runs``: one row per published run hash: ROI, parameters, model checksums, imagery source,
  code version, publication sequence number (per ROI, the highest is the ROI's latest run).
- ``sites``: one row per (run hash, ``site_id``): the registry's site (``site_id``: the H3 cell
  of its first detection), Point geometry, first/last detected window, status, latest scores,
  area (km²), address, JSON time series.
- ``detections``: one row per (run hash, site, window): that window's detection of the site
  (pixel score, patch statistics, contour area statistics).
- ``contours``: one row per (run hash, site, contour date): the site's outline of that date
  (MultiPolygon) and its area in km².

Each row of ``sites`` / ``detections`` / ``contours`` carries ``digest``, the sha256 of its
published content, so a republication counts rows added / updated / unchanged.
"""

from __future__ import annotations

import datetime as dt

from geoalchemy2 import Geometry
from sqlalchemy import (
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeEngine

SRID = 4326
#: longest accepted ROI name / site id / run hash (the API refuses longer ids before any query)
NAME_MAX = 200
ID_MAX = 64
HASH_MAX = 64


def geometry(kind: str) -> TypeEngine[object]:
    """A geometry column type: PostGIS ``geometry(kind, 4326)`` on PostgreSQL, WKB ``BLOB`` elsewhere.

    The GiST index is created by the migration (PostgreSQL only), not by the type.
    """
    return Geometry(kind, srid=SRID, spatial_index=False).with_variant(LargeBinary(), "sqlite")


class Base(DeclarativeBase):
    """Declarative base of the site database's tables."""


class Run(Base):
    """A published run: one per run hash (the run hash already identifies the ROI geometry)."""

    __tablename__ = "runs"

    run_hash: Mapped[str] = mapped_column(String(HASH_MAX), primary_key=True)
    roi: Mapped[str] = mapped_column(String(NAME_MAX), index=True)
    params: Mapped[str] = mapped_column(Text, default="{}")  # JSON object, sorted keys
    model_checksums: Mapped[str] = mapped_column(Text, default="{}")  # JSON object name -> sha256
    imagery_source: Mapped[str] = mapped_column(String(500), default="")
    code_version: Mapped[str] = mapped_column(String(100), default="")
    #: per ROI: 1 + the highest sequence number of the ROI's runs when this run was last published
    sequence: Mapped[int] = mapped_column(Integer, default=0)
    published_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class Site(Base):
    """A registry site of one run (Point, EPSG:4326)."""

    __tablename__ = "sites"
    __table_args__ = (
        UniqueConstraint("run_hash", "site_id", name="uq_sites_run_site"),
        Index("ix_sites_lon_lat", "lon", "lat"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_hash: Mapped[str] = mapped_column(
        String(HASH_MAX), ForeignKey("runs.run_hash", ondelete="CASCADE"), index=True
    )
    roi: Mapped[str] = mapped_column(String(NAME_MAX), index=True)
    site_id: Mapped[str] = mapped_column(String(ID_MAX), index=True)
    name: Mapped[str] = mapped_column(String(NAME_MAX), default="")
    status: Mapped[str] = mapped_column(String(20), default="")
    first_window: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    last_window: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    n_windows: Mapped[int] = mapped_column(Integer, default=0)
    lon: Mapped[float] = mapped_column(Float)
    lat: Mapped[float] = mapped_column(Float)
    score_latest: Mapped[float | None] = mapped_column(Float, nullable=True)
    patch_latest: Mapped[float | None] = mapped_column(Float, nullable=True)
    score_max: Mapped[float | None] = mapped_column(Float, nullable=True)
    area_km2_latest: Mapped[float | None] = mapped_column(Float, nullable=True)
    address: Mapped[str] = mapped_column(Text, default="")
    pixel_scores: Mapped[str] = mapped_column(Text, default="{}")  # JSON {window: score}
    patch_scores: Mapped[str] = mapped_column(Text, default="{}")  # JSON {window: patch mean}
    areas_km2: Mapped[str] = mapped_column(Text, default="{}")  # JSON {contour date: km²}
    site_ids: Mapped[str] = mapped_column(Text, default="[]")  # JSON [H3 ids of its detections]
    digest: Mapped[str] = mapped_column(String(64))
    geom: Mapped[object] = mapped_column(geometry("POINT"))
    #: the site's /sites Feature as JSON text, rendered when written (plastics_core.sitedb.page_feature)
    page_feature: Mapped[str | None] = mapped_column(Text, nullable=True)


class Detection(Base):
    """One window's detection of a site (Point of that detection, EPSG:4326)."""

    __tablename__ = "detections"
    __table_args__ = (
        UniqueConstraint("run_hash", "site_id", "window", name="uq_detections_run_site_window"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_hash: Mapped[str] = mapped_column(
        String(HASH_MAX), ForeignKey("runs.run_hash", ondelete="CASCADE"), index=True
    )
    roi: Mapped[str] = mapped_column(String(NAME_MAX), index=True)
    site_id: Mapped[str] = mapped_column(String(ID_MAX), index=True)  # the registry site
    window: Mapped[dt.date] = mapped_column(Date)
    detection_id: Mapped[str] = mapped_column(String(ID_MAX), default="")  # this window's H3 cell
    name: Mapped[str] = mapped_column(String(NAME_MAX), default="")
    lon: Mapped[float] = mapped_column(Float)
    lat: Mapped[float] = mapped_column(Float)
    pixel_score: Mapped[float | None] = mapped_column(Float, nullable=True)
    patch_mean: Mapped[float | None] = mapped_column(Float, nullable=True)
    area_km2_mean: Mapped[float | None] = mapped_column(Float, nullable=True)
    area_km2_min: Mapped[float | None] = mapped_column(Float, nullable=True)
    area_km2_max: Mapped[float | None] = mapped_column(Float, nullable=True)
    n_frames: Mapped[int] = mapped_column(Integer, default=0)
    digest: Mapped[str] = mapped_column(String(64))


class Contour(Base):
    """A site's outline on one date (MultiPolygon, EPSG:4326) and its area in km²."""

    __tablename__ = "contours"
    __table_args__ = (UniqueConstraint("run_hash", "site_id", "date", name="uq_contours_run_site_date"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_hash: Mapped[str] = mapped_column(
        String(HASH_MAX), ForeignKey("runs.run_hash", ondelete="CASCADE"), index=True
    )
    roi: Mapped[str] = mapped_column(String(NAME_MAX), index=True)
    site_id: Mapped[str] = mapped_column(String(ID_MAX), index=True)
    date: Mapped[dt.date] = mapped_column(Date)
    window: Mapped[dt.date] = mapped_column(Date)  # the detection window that traced it
    area_km2: Mapped[float | None] = mapped_column(Float, nullable=True)
    digest: Mapped[str] = mapped_column(String(64))
    geom: Mapped[object] = mapped_column(geometry("MULTIPOLYGON"))


def table(model: type[Base]) -> Table:
    """The Core ``Table`` of a model (for ``select`` / ``insert`` / ``update`` statements)."""
    tbl = model.__table__
    if not isinstance(tbl, Table):
        raise TypeError(f"{model.__name__} is not mapped to a table")
    return tbl
