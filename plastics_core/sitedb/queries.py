"""Read the site database: sites in a bounding box, one site, its contours, the ROIs and runs.

Every function takes the run to read as ``run`` (a run hash) or, when None, each ROI's latest
published run (the highest ``runs.sequence`` of that ROI). Only bound parameters reach SQL.
Bounding boxes are (min lon, min lat, max lon, max lat) in EPSG:4326 degrees, edges included.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import orjson
from sqlalchemy import (
    BindParameter,
    Connection,
    Engine,
    Float,
    Select,
    String,
    bindparam,
    func,
    select,
    text,
)
from sqlalchemy.exc import SQLAlchemyError

from plastics_core.sitedb.engine import SiteDatabaseError, describe, shown_url
from plastics_core.sitedb.geometry import to_shapely
from plastics_core.sitedb.page_feature import FEATURE_SOURCE
from plastics_core.sitedb.schema import SRID, Contour, Detection, Run, Site, table
from plastics_core.sitedb.verdicts import Verdict

#: site columns every query returns (``geom`` is left out: ``lon``/``lat`` hold the point): those
#: a stored Feature is rendered from, the JSON time series, the detection ids
SITE_FIELDS = (*FEATURE_SOURCE, "pixel_scores", "patch_scores", "areas_km2", "site_ids")


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


def latest_runs(roi: str | BindParameter[str] | None = None) -> Select[Any]:
    """``SELECT run_hash`` of each ROI's latest published run (of ``roi`` only when given): a
    subquery the page queries embed, so they read the current runs in the same statement. Written
    as "no run of the same ROI has a higher sequence" (an anti-join), which both planners
    estimate well: PostgreSQL then scans the bounding box first and hashes the runs."""
    runs, newer = table(Run).alias("latest_run"), table(Run).alias("newer_run")
    stmt = select(runs.c.run_hash).where(
        ~select(newer.c.run_hash)
        .where(newer.c.roi == runs.c.roi, newer.c.sequence > runs.c.sequence)
        .exists()
    )
    return stmt.where(runs.c.roi == roi) if roi is not None else stmt


def run_hashes(conn: Connection, run: str | None = None, roi: str | None = None) -> list[str]:
    """``[run]`` if that run is published (else ``[]``), or the latest run hash of every ROI (of
    ``roi`` only when given)."""
    runs = table(Run)
    if run is not None:
        stmt = select(runs.c.run_hash).where(runs.c.run_hash == run)
        if roi is not None:
            stmt = stmt.where(runs.c.roi == roi)
        return [str(r) for r in conn.execute(stmt).scalars()]
    return sorted(str(r) for r in conn.execute(latest_runs(roi)).scalars())


def _site_select() -> Select[Any]:
    t = table(Site)
    return select(*(t.c[f] for f in SITE_FIELDS))


def _records(rows: Any) -> list[dict[str, Any]]:
    return [dict(r._mapping) for r in rows]


@contextmanager
def read_connection(engine: Engine) -> Iterator[Connection]:
    """A connection for reads: PostgreSQL in autocommit (no BEGIN / ROLLBACK round trips around
    a page's statements), SQLite as usual (a read transaction, in-process)."""
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            yield conn
    else:
        with engine.connect() as conn:
            yield conn


def holds_nul(*values: str | None) -> bool:
    """True when a filter holds NUL: stored text never does (PostgreSQL refuses it in a query)."""
    return any("\x00" in v for v in values if v is not None)


@lru_cache(maxsize=64)
def _bbox_statement(
    dialect: str, small: bool, by_run: bool, by_roi: bool, fields: tuple[str, ...], own_verdict: bool = False
) -> Select[Any]:
    t = table(Site)
    stmt = select(*(t.c[f] for f in fields))
    if own_verdict:  # the newest verdict given to the site's own id (index ix_verdicts_roi_site)
        v = table(Verdict)
        newest = (
            select(v.c.id)
            .where(v.c.roi == t.c.roi, v.c.site_id == t.c.site_id)
            .order_by(v.c.id.desc())
            .limit(1)
        )
        stmt = stmt.add_columns(
            newest.scalar_subquery().label("own_verdict_id"),
            newest.with_only_columns(v.c.verdict).scalar_subquery().label("own_verdict"),
        )
    run_column = t.c.run_hash + "" if dialect == "sqlite" and small else t.c.run_hash
    if by_run:
        stmt = stmt.where(run_column == bindparam("run"))
        if by_roi:
            stmt = stmt.where(t.c.roi == bindparam("roi"))
    else:
        stmt = stmt.where(
            run_column.in_(latest_runs(bindparam("roi", type_=String) if by_roi else None).scalar_subquery())
        )
    corners = [bindparam(k, type_=Float) for k in ("min_lon", "min_lat", "max_lon", "max_lat")]
    if dialect == "postgresql":
        stmt = stmt.where(t.c.geom.op("&&")(func.ST_MakeEnvelope(*corners, SRID)))
    else:
        stmt = stmt.where(t.c.lon.between(corners[0], corners[2]), t.c.lat.between(corners[1], corners[3]))
    return stmt.order_by(t.c.site_id, t.c.roi).limit(bindparam("limit")).offset(bindparam("offset"))


def bbox_select(
    dialect: str,
    bbox: BBox,
    *,
    limit: int,
    offset: int,
    run: str | None = None,
    roi: str | None = None,
    fields: Sequence[str] = SITE_FIELDS,
    own_verdict: bool = False,
) -> tuple[Select[Any], dict[str, Any]]:
    """One statement and its parameters for a page of sites in ``bbox`` (columns ``fields`` of
    ``sites``), ordered by (``site_id``, ``roi``): of run ``run``, or of each ROI's latest run
    (:func:`latest_runs`, in the same statement); of ROI ``roi`` when given. The statement is
    built once per shape (backend, filters, columns) and reused: only parameters change.
    ``own_verdict``: two more columns, the id and the verdict of the newest review verdict given
    to the site's own id (None when none).

    PostGIS: the GiST index (``geom && ST_MakeEnvelope(...)``); SQLite: the (lon, lat) index for a
    small box (``run_hash || ''`` keeps SQLite off the run_hash index, which lists every site of
    the runs), the run index for a large one.
    """
    small = (bbox.max_lon - bbox.min_lon) * (bbox.max_lat - bbox.min_lat) <= SQLITE_SMALL_BOX_DEG2
    stmt = _bbox_statement(dialect, small, run is not None, roi is not None, tuple(fields), own_verdict)
    params: dict[str, Any] = {
        "min_lon": bbox.min_lon,
        "min_lat": bbox.min_lat,
        "max_lon": bbox.max_lon,
        "max_lat": bbox.max_lat,
        "limit": limit,
        "offset": offset,
    }
    if run is not None:
        params["run"] = run
    if roi is not None:
        params["roi"] = roi
    return stmt, params


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
    (``site_id``, ``roi``), ``limit`` rows from ``offset`` (one statement: :func:`bbox_select`)."""
    if holds_nul(run, roi):
        return []
    stmt, params = bbox_select(engine.dialect.name, bbox, limit=limit, offset=offset, run=run, roi=roi)
    try:
        with read_connection(engine) as conn:
            return _records(conn.execute(stmt, params))
    except SQLAlchemyError as err:
        raise _fail(engine, err) from None


#: the JSON time series a page of sites leaves out
SERIES_FIELDS = ("pixel_scores", "patch_scores", "areas_km2")
#: the columns of a page of sites as the exports list them (:data:`SITE_FIELDS` without the time
#: series; ``site_ids`` stays last)
PAGE_FIELDS = tuple(f for f in SITE_FIELDS if f not in SERIES_FIELDS)
#: the columns of a page of ``/sites``: the stored Feature (:mod:`plastics_core.sitedb.page_feature`)
#: and what its verdict needs (``site_ids`` last)
FEATURE_PAGE_FIELDS = ("site_id", "roi", "page_feature", "site_ids")


@dataclass(frozen=True)
class SitePage:
    """A page of sites: ``rows`` (tuples of the page's columns, :data:`PAGE_FIELDS` or
    :data:`FEATURE_PAGE_FIELDS`, then the id and verdict of the newest verdict given to the site's
    own id) and ``verdicts`` (the latest review verdict of
    each row over all its ids, ``confirm`` | ``reject`` | ``unsure`` or None)."""

    rows: list[tuple[Any, ...]]
    verdicts: list[str | None]


_PAGE_VERDICTS = {
    # the verdicts of these ROIs given to any of these ids (ids: one array or JSON array)
    "postgresql": text(
        "SELECT id, roi, site_id, verdict FROM verdicts WHERE roi = ANY(:rois) AND site_id = ANY(:ids)"
    ),
    "sqlite": text(
        "SELECT id, roi, site_id, verdict FROM verdicts "
        "WHERE roi IN (SELECT value FROM json_each(:rois)) "
        "AND site_id IN (SELECT value FROM json_each(:ids))"
    ),
}


def _site_ids(site_id: str, site_ids: str | None) -> list[str]:
    """The site's own id first, then the ids of its detections (JSON list ``site_ids``)."""
    if not site_ids or site_ids == "[]":
        return [site_id]
    try:
        others = [str(i) for i in orjson.loads(site_ids)]
    except (TypeError, ValueError):
        others = []
    return [site_id, *(i for i in others if i != site_id)]


def newest_verdicts(
    found: Iterable[Sequence[Any]], rois: Sequence[str], ids: Sequence[Sequence[str]]
) -> list[tuple[int, str] | None]:
    """The newest verdict (its id and value) of each site among ``found`` (rows ``id, roi,
    site_id, verdict`` of the verdicts table): given within the site's ROI (``rois``) to any of
    its ids (``ids``), None when none."""
    newest: dict[tuple[str, str], tuple[int, str]] = {}
    for verdict_id, roi, site_id, verdict in found:
        key = (str(roi), str(site_id))
        if key not in newest or newest[key][0] < int(verdict_id):
            newest[key] = (int(verdict_id), str(verdict))
    out: list[tuple[int, str] | None] = []
    for roi, site in zip(rois, ids, strict=True):
        candidates = [newest[(roi, i)] for i in site if (roi, i) in newest]
        out.append(max(candidates) if candidates else None)
    return out


def page_verdicts(
    conn: Connection, rois: Sequence[str], ids: Sequence[Sequence[str]]
) -> list[tuple[int, str] | None]:
    """The newest verdict (its id and value) of each site (``ids``: each site's ids; ``rois``:
    each site's ROI) given within its ROI to any of its ids, None when none. One statement."""
    if not ids:
        return []
    wanted = sorted({i for site in ids for i in site})
    distinct_rois = sorted(set(rois))
    if conn.dialect.name == "postgresql":
        params: dict[str, Any] = {"rois": distinct_rois, "ids": wanted}
        stmt = _PAGE_VERDICTS["postgresql"]
    else:
        params = {"rois": json.dumps(distinct_rois), "ids": json.dumps(wanted)}
        stmt = _PAGE_VERDICTS["sqlite"]
    return newest_verdicts(conn.execute(stmt, params), rois, ids)


#: index of ``site_ids`` (the detection ids, a JSON list) in a page row: the last column, before
#: the own verdict's id and value
_SITE_IDS = -3


def other_ids(rows: Sequence[Sequence[Any]]) -> list[list[str]]:
    """The detection ids of each page row besides the site's own id (often none: an empty list
    or one holding only the own id is recognised without parsing it)."""
    out: list[list[str]] = []
    for r in rows:
        listed = r[_SITE_IDS]
        alone = not listed or listed == "[]" or listed == f'["{r[0]}"]'
        out.append([] if alone else _site_ids(r[0], listed)[1:])
    return out


def rows_needing_verdicts(rows: Sequence[Sequence[Any]], ids: Sequence[list[str]]) -> list[int]:
    """Indexes of the page rows that list detection ids besides their own (``ids``:
    :func:`other_ids`): their verdicts need a second statement."""
    return [k for k, extra in enumerate(ids) if extra]


def other_id_verdicts(
    conn: Connection, rows: Sequence[Sequence[Any]], ids: Sequence[list[str]]
) -> dict[int, tuple[int, str]]:
    """The newest verdict (id, value) given to the detection ids of each page row besides its own
    (``ids``: :func:`other_ids`), by row index (rows without such a verdict left out): one
    statement, none when no row lists other ids. The verdicts given to a site's own id come with
    the page itself."""
    others = rows_needing_verdicts(rows, ids)
    found = page_verdicts(conn, [rows[k][1] for k in others], [ids[k] for k in others])
    return {k: v for k, v in zip(others, found, strict=True) if v is not None}


def assemble_page(rows: list[tuple[Any, ...]], extra_verdicts: dict[int, tuple[int, str]]) -> SitePage:
    """A :class:`SitePage` of ``rows`` (the page's columns, then the id and verdict of the newest
    verdict given to the site's own id): each row's verdict is the newer of its own-id verdict
    and ``extra_verdicts`` (by row index: :func:`other_id_verdicts`)."""
    if not extra_verdicts:  # each row's verdict is the one given to its own id (or None)
        return SitePage(rows, [row[-1] for row in rows])
    verdicts: list[str | None] = []
    for k, row in enumerate(rows):
        own = (int(row[-2]), str(row[-1])) if row[-2] is not None else None
        extra = extra_verdicts.get(k)
        newest = max(own, extra) if own is not None and extra is not None else own or extra
        verdicts.append(newest[1] if newest is not None else None)
    return SitePage(rows, verdicts)


def page_select(
    dialect: str,
    bbox: BBox,
    *,
    limit: int = 100,
    offset: int = 0,
    run: str | None = None,
    roi: str | None = None,
    fields: tuple[str, ...] = PAGE_FIELDS,
) -> tuple[Select[Any], dict[str, Any]]:
    """The statement and parameters of a page of sites (:func:`bbox_select` with columns
    ``fields``, :data:`PAGE_FIELDS` or :data:`FEATURE_PAGE_FIELDS`, and the newest verdict given
    to each site's own id)."""
    return bbox_select(
        dialect, bbox, limit=limit, offset=offset, run=run, roi=roi, fields=fields, own_verdict=True
    )


def site_page(
    engine: Engine,
    bbox: BBox,
    *,
    limit: int = 100,
    offset: int = 0,
    run: str | None = None,
    roi: str | None = None,
    fields: tuple[str, ...] = PAGE_FIELDS,
) -> SitePage:
    """A page of sites in ``bbox`` (as :func:`sites_in_bbox`, columns ``fields``) with
    their latest review verdicts, rows as tuples, in one read transaction: one statement
    (:func:`page_select`), and a second one only when a site of the page lists detection ids
    besides its own (:func:`other_id_verdicts`). The sites API reads its pages on PostgreSQL
    with :class:`plastics_core.sitedb.async_pages.PagePool` instead (same statements)."""
    if holds_nul(run, roi):
        return SitePage([], [])
    stmt, params = page_select(
        engine.dialect.name, bbox, limit=limit, offset=offset, run=run, roi=roi, fields=fields
    )
    try:
        with engine.connect() as conn:
            rows = [tuple(r) for r in conn.execute(stmt, params)]
            extra_verdicts = other_id_verdicts(conn, rows, other_ids(rows))
    except SQLAlchemyError as err:
        raise _fail(engine, err) from None
    return assemble_page(rows, extra_verdicts)


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
