"""Read the site database: sites in a bounding box, one site, its contours, the ROIs and runs.

Every function takes the run to read as ``run`` (a run hash) or, when None, each ROI's latest
published run (the highest ``runs.sequence`` of that ROI). Only bound parameters reach SQL.
Bounding boxes are (min lon, min lat, max lon, max lat) in EPSG:4326 degrees, edges included.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, Select, and_, func, select
from sqlalchemy.exc import SQLAlchemyError

from plastics_core.sitedb.engine import SiteDatabaseError, describe, shown_url
from plastics_core.sitedb.geometry import to_shapely
from plastics_core.sitedb.schema import SRID, Contour, Detection, Run, Site, table

#: site columns every query returns (``geom`` is left out: ``lon``/``lat`` hold the point)
SITE_FIELDS = (
    "site_id",
    "roi",
    "run_hash",
    "name",
    "status",
    "first_window",
    "last_window",
    "n_windows",
    "lon",
    "lat",
    "score_latest",
    "patch_latest",
    "score_max",
    "area_km2_latest",
    "address",
    "pixel_scores",
    "patch_scores",
    "areas_km2",
    "site_ids",
)


#: boxes up to this area (square degrees) use the (lon, lat) index on SQLite, larger ones the run index
SQLITE_SMALL_BOX_DEG2 = 100.0


@dataclass(frozen=True)
class BBox:
    """A bounding box in EPSG:4326 degrees (edges included)."""

    min_lon: float
    min_lat: float
    max_lon: float
    max_lat: float


def _fail(engine: Engine | Connection, err: SQLAlchemyError) -> SiteDatabaseError:
    url = engine.engine.url if isinstance(engine, Connection) else engine.url
    return SiteDatabaseError(
        f"site database {shown_url(url)} failed ({describe(err, url)}): check that it is running"
    )


def run_hashes(conn: Connection, run: str | None = None, roi: str | None = None) -> list[str]:
    """``[run]`` if that run is published (else ``[]``), or the latest run hash of every ROI (of
    ``roi`` only when given)."""
    runs = table(Run)
    if run is not None:
        stmt = select(runs.c.run_hash).where(runs.c.run_hash == run)
        if roi is not None:
            stmt = stmt.where(runs.c.roi == roi)
        return [str(r) for r in conn.execute(stmt).scalars()]
    latest = select(runs.c.roi, func.max(runs.c.sequence).label("seq")).group_by(runs.c.roi)
    if roi is not None:
        latest = latest.where(runs.c.roi == roi)
    sub = latest.subquery()
    stmt2 = select(runs.c.run_hash).join(sub, and_(runs.c.roi == sub.c.roi, runs.c.sequence == sub.c.seq))
    return sorted(str(r) for r in conn.execute(stmt2).scalars())


def _site_select() -> Select[Any]:
    t = table(Site)
    return select(*(t.c[f] for f in SITE_FIELDS))


def _records(rows: Any) -> list[dict[str, Any]]:
    return [dict(r._mapping) for r in rows]


def sites_in_bbox(
    engine: Engine,
    bbox: BBox,
    *,
    limit: int = 100,
    offset: int = 0,
    run: str | None = None,
    roi: str | None = None,
) -> list[dict[str, Any]]:
    """Sites (dicts of :data:`SITE_FIELDS`) whose point lies in ``bbox``, ordered by
    (``site_id``, ``roi``), ``limit`` rows from ``offset``.

    PostGIS: the GiST index (``geom && ST_MakeEnvelope(...)``); SQLite: the (lon, lat) index.
    """
    t = table(Site)
    if any(
        "\x00" in v for v in (run or "", roi or "")
    ):  # stored text never holds NUL (PostgreSQL refuses it)
        return []
    try:
        with engine.connect() as conn:
            hashes = run_hashes(conn, run, roi)
            if not hashes:
                return []
            stmt = _site_select().where(t.c.run_hash.in_(hashes))
            if engine.dialect.name == "postgresql":
                envelope = func.ST_MakeEnvelope(bbox.min_lon, bbox.min_lat, bbox.max_lon, bbox.max_lat, SRID)
                stmt = stmt.where(t.c.geom.op("&&")(envelope))
            else:
                # a small box: `run_hash || ''` keeps SQLite off the run_hash index (every site of
                # the listed runs) so that it uses the (lon, lat) index the box narrows down
                small = (bbox.max_lon - bbox.min_lon) * (bbox.max_lat - bbox.min_lat) <= SQLITE_SMALL_BOX_DEG2
                stmt = _site_select().where(
                    (t.c.run_hash + "").in_(hashes) if small else t.c.run_hash.in_(hashes),
                    t.c.lon.between(bbox.min_lon, bbox.max_lon),
                    t.c.lat.between(bbox.min_lat, bbox.max_lat),
                )
            stmt = stmt.order_by(t.c.site_id, t.c.roi).limit(limit).offset(offset)
            return _records(conn.execute(stmt))
    except SQLAlchemyError as err:
        raise _fail(engine, err) from None


def get_site(engine: Engine, site_id: str, *, run: str | None = None) -> dict[str, Any] | None:
    """The site ``site_id`` of ``run`` (or of its ROI's latest run; the latest-published ROI
    first when several ROIs hold that id), or None."""
    t, runs = table(Site), table(Run)
    if "\x00" in site_id or "\x00" in (run or ""):
        return None
    try:
        with engine.connect() as conn:
            hashes = run_hashes(conn, run)
            if not hashes:
                return None
            stmt = (
                _site_select()
                .join(runs, runs.c.run_hash == t.c.run_hash)
                .where(t.c.site_id == site_id, t.c.run_hash.in_(hashes))
                .order_by(runs.c.published_at.desc())
                .limit(1)
            )
            rows = _records(conn.execute(stmt))
            return rows[0] if rows else None
    except SQLAlchemyError as err:
        raise _fail(engine, err) from None


def site_contours(
    engine: Engine, site_id: str, run_hash: str, *, limit: int | None = None, offset: int = 0
) -> list[dict[str, Any]]:
    """Contours of a site in one run, oldest first: ``date``, ``window``, ``area_km2``, ``geometry``
    (shapely MultiPolygon, EPSG:4326)."""
    t = table(Contour)
    stmt = (
        select(t.c.site_id, t.c.date, t.c.window, t.c.area_km2, t.c.geom)
        .where(t.c.site_id == site_id, t.c.run_hash == run_hash)
        .order_by(t.c.date)
        .offset(offset)
    )
    if limit is not None:
        stmt = stmt.limit(limit)
    try:
        with engine.connect() as conn:
            rows = _records(conn.execute(stmt))
    except SQLAlchemyError as err:
        raise _fail(engine, err) from None
    for row in rows:
        row["geometry"] = to_shapely(row.pop("geom"))
    return rows


def site_detections(engine: Engine, site_id: str, run_hash: str) -> list[dict[str, Any]]:
    """Detections of a site in one run, oldest window first (dicts of the ``detections`` columns)."""
    t = table(Detection)
    cols = [c for c in t.c if c.name not in ("id", "digest")]
    try:
        with engine.connect() as conn:
            return _records(
                conn.execute(
                    select(*cols).where(t.c.site_id == site_id, t.c.run_hash == run_hash).order_by(t.c.window)
                )
            )
    except SQLAlchemyError as err:
        raise _fail(engine, err) from None


def list_rois(engine: Engine) -> list[dict[str, Any]]:
    """One dict per ROI (by name): its latest run (``run_hash``, ``sequence``, ``published_at``,
    ``imagery_source``, ``code_version``), the number of its sites in that run and every run hash
    published for it (``runs``, latest first)."""
    runs, sites = table(Run), table(Site)
    try:
        with engine.connect() as conn:
            all_runs = _records(conn.execute(select(runs).order_by(runs.c.roi, runs.c.sequence.desc())))
            counts: dict[str, int] = dict(
                conn.execute(select(sites.c.run_hash, func.count()).group_by(sites.c.run_hash)).all()
            )
    except SQLAlchemyError as err:
        raise _fail(engine, err) from None
    out: dict[str, dict[str, Any]] = {}
    for r in all_runs:
        entry = out.setdefault(
            r["roi"],
            {
                "roi": r["roi"],
                "run_hash": r["run_hash"],
                "sequence": r["sequence"],
                "published_at": _utc(r["published_at"]),
                "imagery_source": r["imagery_source"],
                "code_version": r["code_version"],
                "sites": int(counts.get(r["run_hash"], 0)),
                "runs": [],
            },
        )
        entry["runs"].append(r["run_hash"])
    return list(out.values())


def get_run(engine: Engine, run_hash: str) -> dict[str, Any] | None:
    """The ``runs`` row of ``run_hash`` (params / model_checksums as JSON text), or None."""
    runs = table(Run)
    try:
        with engine.connect() as conn:
            rows = _records(conn.execute(select(runs).where(runs.c.run_hash == run_hash)))
    except SQLAlchemyError as err:
        raise _fail(engine, err) from None
    if not rows:
        return None
    rows[0]["published_at"] = _utc(rows[0]["published_at"])
    return rows[0]


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    """SQLite returns naive datetimes for timezone-aware columns: they were stored in UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value
