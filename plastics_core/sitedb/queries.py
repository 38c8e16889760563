"""Read the site database: sites in a bounding box, one site, its contours, the ROIs and runs.

Every function takes the run to read as ``run`` (a run hash) or, when None, each ROI's latest
published run (the highest ``runs.sequence`` of that ROI). Only bound parameters reach SQL.
Bounding boxes are (min lon, min lat, max lon, max lat) in EPSG:4326 degrees, edges included.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import orjson
from sqlalchemy import (
    BindParameter,
    Connection,
    Dialect,
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
from plastics_core.sitedb.schema import SRID, Contour, Detection, Run, Site, table
from plastics_core.sitedb.verdicts import Verdict

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


def _nul(*values: str | None) -> bool:
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
    if _nul(run, roi):
        return []
    stmt, params = bbox_select(engine.dialect.name, bbox, limit=limit, offset=offset, run=run, roi=roi)
    try:
        with read_connection(engine) as conn:
            return _records(conn.execute(stmt, params))
    except SQLAlchemyError as err:
        raise _fail(engine, err) from None


#: the JSON time series a page of sites leaves out
SERIES_FIELDS = ("pixel_scores", "patch_scores", "areas_km2")
#: the columns of a page of sites as the API lists them (:data:`SITE_FIELDS` without the time
#: series; ``site_ids`` stays last)
PAGE_FIELDS = tuple(f for f in SITE_FIELDS if f not in SERIES_FIELDS)


@dataclass(frozen=True)
class SitePage:
    """A page of sites: ``rows`` (tuples in :data:`PAGE_FIELDS` order, then the id and verdict of
    the newest verdict given to the site's own id) and ``verdicts`` (the latest review verdict of
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
    newest: dict[tuple[str, str], tuple[int, str]] = {}
    for verdict_id, roi, site_id, verdict in conn.execute(stmt, params):
        key = (str(roi), str(site_id))
        if key not in newest or newest[key][0] < int(verdict_id):
            newest[key] = (int(verdict_id), str(verdict))
    out: list[tuple[int, str] | None] = []
    for roi, site in zip(rois, ids, strict=True):
        found = [newest[(roi, i)] for i in site if (roi, i) in newest]
        out.append(max(found) if found else None)
    return out


#: placeholders of a statement compiled for psycopg2 (``%(name)s``)
_PYFORMAT = re.compile(r"%\((\w+)\)s")


@dataclass(frozen=True)
class Prepared:
    """A statement as a PostgreSQL prepared statement: its ``name``, the ``PREPARE`` text (``$n``
    placeholders) and the bound parameter names in ``$n`` order with their compiled defaults."""

    name: str
    prepare: str
    names: tuple[str, ...]
    defaults: dict[str, Any]


@lru_cache(maxsize=64)
def prepared(stmt: Select[Any], dialect: Dialect) -> Prepared:
    """``stmt`` compiled once for ``dialect`` (psycopg2) and turned into a ``PREPARE`` statement:
    each ``%(name)s`` becomes ``$n``; the name is a digest of the SQL text."""
    compiled = stmt.compile(dialect=dialect)
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        if match.group(1) not in names:
            names.append(match.group(1))
        return f"${names.index(match.group(1)) + 1}"

    sql = _PYFORMAT.sub(number, compiled.string).replace("%%", "%")
    name = "plastics_" + hashlib.sha256(sql.encode()).hexdigest()[:16]
    return Prepared(name, f"PREPARE {name} AS {sql}", tuple(names), dict(compiled.params))


#: ``info`` key of a pooled connection: the names of the statements prepared on it
_PREPARED_KEY = "plastics_prepared"


def _execute_prepared(pooled: Any, plan: Prepared, execute: str, values: list[Any]) -> list[tuple[Any, ...]]:
    """Run ``plan`` on a pooled psycopg2 connection in autocommit, preparing it first when this
    connection has not yet (its names are kept in the pooled connection's ``info``)."""
    driver: Any = pooled.driver_connection
    done: set[str] = pooled.info.setdefault(_PREPARED_KEY, set())
    driver.autocommit = True
    try:
        with driver.cursor() as cursor:
            if plan.name not in done:
                cursor.execute(plan.prepare)
                done.add(plan.name)
            cursor.execute(execute, values)
            return [tuple(r) for r in cursor.fetchall()]
    finally:
        if not driver.closed:
            driver.autocommit = False


def prepared_rows(engine: Engine, stmt: Select[Any], params: dict[str, Any]) -> list[tuple[Any, ...]]:
    """The rows of ``stmt`` with ``params`` on PostgreSQL, run as a server-side prepared statement
    (planned once per pooled connection: a page read is planned in about as long as it runs) in
    autocommit on the driver's cursor (no BEGIN / ROLLBACK round trips). A connection the server
    dropped (a restart, a failover) is discarded and the read made once more on a new one; a
    connection on which the statement failed otherwise is discarded too (with its prepared
    statements), and the failure is a :class:`SiteDatabaseError`."""
    plan = prepared(stmt, engine.dialect)
    values = [params[n] if n in params else plan.defaults[n] for n in plan.names]
    execute = f"EXECUTE {plan.name} ({', '.join(['%s'] * len(values))})" if values else f"EXECUTE {plan.name}"
    for attempt in (1, 2):
        pooled = None
        try:
            pooled = engine.raw_connection()
            return _execute_prepared(pooled, plan, execute, values)
        except engine.dialect.loaded_dbapi.Error as err:
            if pooled is not None:  # with its prepared statements (a schema change may void them)
                dropped = engine.dialect.is_disconnect(err, pooled.dbapi_connection, None)
                pooled.invalidate(err)
                if attempt == 1 and dropped:
                    engine.dispose()  # the other pooled connections went with the server's sessions
                    continue
            raise SiteDatabaseError(
                f"site database {shown_url(engine.url)} failed ({describe(err, engine.url)}): "
                "check that it is running"
            ) from None
        finally:
            if pooled is not None:
                pooled.close()
    raise AssertionError("unreachable")  # pragma: no cover


#: index of ``site_ids`` (the detection ids, a JSON list) in a page row
_SITE_IDS = len(PAGE_FIELDS) - 1


def other_ids(rows: Sequence[tuple[Any, ...]]) -> list[list[str]]:
    """The detection ids of each page row besides the site's own id (often none)."""
    return [_site_ids(r[0], r[_SITE_IDS])[1:] for r in rows]


def other_id_verdicts(
    conn: Connection, rows: Sequence[tuple[Any, ...]], ids: Sequence[list[str]]
) -> dict[int, tuple[int, str]]:
    """The newest verdict (id, value) given to the detection ids of each page row besides its own
    (``ids``: :func:`other_ids`), by row index (rows without such a verdict left out): one
    statement, none when no row lists other ids. The verdicts given to a site's own id come with
    the page itself."""
    others = [k for k, extra in enumerate(ids) if extra]
    found = page_verdicts(conn, [rows[k][1] for k in others], [ids[k] for k in others])
    return {k: v for k, v in zip(others, found, strict=True) if v is not None}


def site_page(
    engine: Engine,
    bbox: BBox,
    *,
    limit: int = 100,
    offset: int = 0,
    run: str | None = None,
    roi: str | None = None,
) -> SitePage:
    """A page of sites in ``bbox`` (as :func:`sites_in_bbox`, columns :data:`PAGE_FIELDS`) with
    their latest review verdicts, rows as tuples: one statement (on PostgreSQL a prepared one:
    :func:`prepared_rows`), and a second one only when a site of the page lists detection ids
    besides its own (:func:`other_id_verdicts`; on SQLite in the same read transaction)."""
    if _nul(run, roi):
        return SitePage([], [])
    stmt, params = bbox_select(
        engine.dialect.name,
        bbox,
        limit=limit,
        offset=offset,
        run=run,
        roi=roi,
        fields=PAGE_FIELDS,
        own_verdict=True,
    )
    try:
        if engine.dialect.name == "postgresql":  # autocommit: rows and verdicts are two reads
            rows = prepared_rows(engine, stmt, params)
            ids = other_ids(rows)
            extra_verdicts = {}
            if any(ids):
                with read_connection(engine) as conn:
                    extra_verdicts = other_id_verdicts(conn, rows, ids)
        else:  # one read transaction
            with read_connection(engine) as conn:
                rows = [tuple(r) for r in conn.execute(stmt, params)]
                extra_verdicts = other_id_verdicts(conn, rows, other_ids(rows))
    except SQLAlchemyError as err:
        raise _fail(engine, err) from None
    verdicts: list[str | None] = []
    for k, row in enumerate(rows):
        own = (int(row[-2]), str(row[-1])) if row[-2] is not None else None
        candidates = [c for c in (own, extra_verdicts.get(k)) if c is not None]
        verdicts.append(max(candidates)[1] if candidates else None)
    return SitePage(rows, verdicts)


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
