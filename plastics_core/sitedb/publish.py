"""Publish one ROI's registry, detections and contours of one run hash, in one transaction.

:func:`publish_roi` upserts: a row whose content is unchanged is left alone, a changed row is
updated in place, a new row is inserted, and rows of the same run hash that the registry no longer
holds are deleted. Everything happens in one transaction: an error (or a killed process) leaves
the database as it was. Publications of one ROI are serialized (PostgreSQL advisory lock, SQLite
write lock); different ROIs touch different rows. Other run hashes of the ROI are never touched.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import pandas as pd
import shapely
from shapely.geometry import Point
from shapely.geometry.base import BaseGeometry
from sqlalchemy import Connection, Engine, Table, delete, func, insert, select, text, update
from sqlalchemy.exc import SQLAlchemyError

from plastics_core.errors import PlasticsError
from plastics_core.sitedb.engine import SiteDatabaseError, describe, shown_url, write_transaction
from plastics_core.sitedb.geometry import as_multipolygon, to_db_many
from plastics_core.sitedb.page_feature import render
from plastics_core.sitedb.schema import HASH_MAX, ID_MAX, NAME_MAX, Contour, Detection, Run, Site, table

TABLES = ("sites", "detections", "contours")


@dataclass(frozen=True)
class RunInfo:
    """What identifies and describes a run: its hash, ROI, parameters (JSON-able), model sha256s,
    imagery source name and code version."""

    run_hash: str
    roi: str
    params: Mapping[str, Any] = field(default_factory=dict)
    model_checksums: Mapping[str, str] = field(default_factory=dict)
    imagery_source: str = ""
    code_version: str = ""


@dataclass
class Counts:
    """Rows of one table: added, updated (content changed), unchanged, removed (no longer published)."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0


@dataclass
class PublishResult:
    """Counts per table (:data:`TABLES`) of one publication, and the ROI's publication sequence."""

    run_hash: str
    roi: str
    sequence: int
    counts: dict[str, Counts]

    def metadata(self) -> dict[str, int | str]:
        """Flat counts: ``sites_added``, ``sites_updated`` ... plus ``added`` / ``updated`` /
        ``unchanged`` / ``removed`` over all tables, ``run_hash`` and ``sequence``."""
        out: dict[str, int | str] = {"run_hash": self.run_hash, "sequence": self.sequence}
        for kind in ("added", "updated", "unchanged", "removed"):
            out[kind] = sum(getattr(c, kind) for c in self.counts.values())
            for name, c in self.counts.items():
                out[f"{name}_{kind}"] = getattr(c, kind)
        return out


def _num(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _date(v: Any) -> dt.date | None:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    text_ = str(v)[:10]
    try:
        return dt.date.fromisoformat(text_)
    except ValueError:
        return None


def _text(v: Any, limit: int | None = None) -> str:
    s = "" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v).replace("\x00", "")
    return s if limit is None else s[:limit]  # PostgreSQL text holds no NUL character


def _check_id(kind: str, value: str, limit: int) -> str:
    if not value or len(value) > limit or "\x00" in value:
        raise PlasticsError(
            f"cannot publish {kind} {value[:40]!r}: it must be 1 to {limit} characters, none NUL"
        )
    return value


def _digest(row: Mapping[str, Any], geom_hex: str = "") -> str:
    canon = {
        k: (round(v, 9) if isinstance(v, float) else v.isoformat() if isinstance(v, dt.date) else v)
        for k, v in sorted(row.items())
    }
    payload = json.dumps(canon, sort_keys=True, default=str) + geom_hex
    return hashlib.sha256(payload.encode()).hexdigest()


@dataclass
class _Row:
    key: tuple[Any, ...]
    values: dict[str, Any]
    geom: BaseGeometry | None


def site_rows(registry: gpd.GeoDataFrame) -> list[_Row]:
    """Rows of ``sites`` from a registry (:data:`plastics_core.method.site_registry.REGISTRY_COLUMNS`)."""
    rows = []
    for rec in (
        pd.DataFrame(registry.drop(columns=registry.geometry.name)).to_dict("records")
        if len(registry)
        else []
    ):
        sid = _check_id("site id", "" if rec.get("site_id") is None else str(rec.get("site_id")), ID_MAX)
        lon, lat = _num(rec.get("lon")), _num(rec.get("lat"))
        if lon is None or lat is None:
            raise PlasticsError(f"cannot publish site {sid!r}: its lon/lat are not finite numbers")
        values = {
            "site_id": sid,
            "name": _text(rec.get("name"), NAME_MAX),
            "status": _text(rec.get("status"), 20),
            "first_window": _date(rec.get("first_window")),
            "last_window": _date(rec.get("last_window")),
            "n_windows": int(_num(rec.get("n_windows")) or 0),
            "lon": lon,
            "lat": lat,
            "score_latest": _num(rec.get("score_latest")),
            "patch_latest": _num(rec.get("patch_latest")),
            "score_max": _num(rec.get("score_max")),
            "area_km2_latest": _num(rec.get("area_km2_latest")),
            "address": _text(rec.get("address")),
            "pixel_scores": _text(rec.get("pixel_scores")) or "{}",
            "patch_scores": _text(rec.get("patch_scores")) or "{}",
            "areas_km2": _text(rec.get("areas_km2")) or "{}",
            "site_ids": _text(rec.get("site_ids")) or "[]",
        }
        rows.append(_Row((sid,), values, Point(lon, lat)))
    return rows


def _registry_index(registry: gpd.GeoDataFrame) -> dict[tuple[str, str], str]:
    """(detection H3 id, window) -> registry site id."""
    index: dict[tuple[str, str], str] = {}
    for rec in (
        pd.DataFrame(registry.drop(columns=registry.geometry.name)).to_dict("records")
        if len(registry)
        else []
    ):
        try:
            ids = json.loads(str(rec.get("site_ids") or "[]")) or [str(rec["site_id"])]
            windows = json.loads(str(rec.get("windows") or "[]"))
        except json.JSONDecodeError:
            ids, windows = [str(rec["site_id"])], []
        for det in ids:
            for window in windows:
                index.setdefault((str(det), str(window)), str(rec["site_id"]))
    return index


def detection_and_contour_rows(
    registry: gpd.GeoDataFrame,
    per_window: Mapping[str, tuple[gpd.GeoDataFrame | None, gpd.GeoDataFrame | None]],
) -> tuple[list[_Row], list[_Row]]:
    """Rows of ``detections`` and ``contours`` from each window's enriched sites and contours,
    attached to the registry's sites (a shared contour date: the latest window wins)."""
    index = _registry_index(registry)
    detections: list[_Row] = []
    contours: dict[tuple[str, dt.date], tuple[dt.date, list[BaseGeometry], float]] = {}
    for window in sorted(per_window):
        enriched, outlines = per_window[window]
        wdate = _date(window)
        if enriched is None or len(enriched) == 0 or wdate is None:
            continue
        by_name: dict[str, str] = {}
        for rec in pd.DataFrame(enriched.drop(columns=enriched.geometry.name)).to_dict("records"):
            det = _text(rec.get("site_id")) or _text(rec.get("name"))
            sid = index.get((det, window))
            lon, lat = _num(rec.get("lon")), _num(rec.get("lat"))
            if sid is None or lon is None or lat is None:
                continue
            by_name[_text(rec.get("name"))] = sid
            values = {
                "site_id": sid,
                "window": wdate,
                "detection_id": _text(det, ID_MAX),
                "name": _text(rec.get("name"), NAME_MAX),
                "lon": lon,
                "lat": lat,
                "pixel_score": _num(rec.get("score")),
                "patch_mean": _num(rec.get("patch_mean")),
                "area_km2_mean": _num(rec.get("area_km2_mean")),
                "area_km2_min": _num(rec.get("area_km2_min")),
                "area_km2_max": _num(rec.get("area_km2_max")),
                "n_frames": int(_num(rec.get("n_frames")) or 0),
            }
            detections.append(_Row((sid, wdate), values, None))
        if outlines is None or len(outlines) == 0 or "name" not in outlines.columns:
            continue
        frame = pd.DataFrame(outlines.drop(columns=outlines.geometry.name))
        for rec, geom in zip(frame.to_dict("records"), outlines.geometry, strict=True):
            sid = by_name.get(_text(rec.get("name")))
            day = _date(rec.get("date"))
            if sid is None or day is None or geom is None or geom.is_empty:
                continue
            prev = contours.get((sid, day))
            if prev is not None and prev[0] == wdate:
                contours[(sid, day)] = (wdate, [*prev[1], geom], prev[2] + (_num(rec.get("area_km2")) or 0.0))
            else:  # first, or a later window replaces an earlier one's outline of that date
                contours[(sid, day)] = (wdate, [geom], _num(rec.get("area_km2")) or 0.0)
    contour_rows = []
    for (sid, day), (wdate, geoms, area) in sorted(contours.items()):
        multi = as_multipolygon(geoms[0] if len(geoms) == 1 else shapely.union_all(geoms))
        if multi.is_empty:
            continue
        values = {"site_id": sid, "date": day, "window": wdate, "area_km2": area}
        contour_rows.append(_Row((sid, day), values, multi))
    return detections, contour_rows


_KEYS: dict[str, tuple[str, ...]] = {
    "sites": ("site_id",),
    "detections": ("site_id", "window"),
    "contours": ("site_id", "date"),
}
_TABLE: dict[str, Table] = {
    "sites": table(Site),
    "detections": table(Detection),
    "contours": table(Contour),
}


def _key_of(values: Mapping[str, Any], names: Iterable[str]) -> tuple[Any, ...]:
    return tuple(_date(values[n]) if n in ("window", "date") else values[n] for n in names)


def _sync(conn: Connection, name: str, run: RunInfo, rows: list[_Row], dialect: str) -> Counts:
    tbl = _TABLE[name]
    keys = _KEYS[name]
    existing = {
        _key_of(dict(r._mapping), keys): (r.id, r.digest)
        for r in conn.execute(
            select(tbl.c.id, tbl.c.digest, *(tbl.c[k] for k in keys)).where(tbl.c.run_hash == run.run_hash)
        )
    }
    counts = Counts()
    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    seen: set[tuple[Any, ...]] = set()
    unique = []
    for row in rows:
        if row.key not in seen:
            seen.add(row.key)
            unique.append(row)
    shapes = [row.geom for row in unique if row.geom is not None]
    hexes = iter(shapely.to_wkb(shapes, hex=True, output_dimension=2) if shapes else [])
    db_geoms = iter(to_db_many(shapes, dialect))
    for row in unique:
        has_geom = row.geom is not None
        digest = _digest(row.values, str(next(hexes)) if has_geom else "")
        values = {**row.values, "run_hash": run.run_hash, "roi": run.roi, "digest": digest}
        if name == "sites":  # with its ROI and run hash the site's /sites Feature is complete; left
            # out of the digest, as it follows from the digested values (an upgraded row stays unchanged)
            values["page_feature"] = render(values)
        if has_geom:
            values["geom"] = next(db_geoms)
        found = existing.get(row.key)
        if found is None:
            inserts.append(values)
            counts.added += 1
        elif found[1] != digest:
            updates.append({**values, "_id": found[0]})
            counts.updated += 1
        else:
            counts.unchanged += 1
    stale = [ident for key, (ident, _) in existing.items() if key not in seen]
    for start in range(0, len(stale), 500):
        conn.execute(delete(tbl).where(tbl.c.id.in_(stale[start : start + 500])))
    counts.removed = len(stale)
    if inserts:
        conn.execute(insert(tbl), inserts)
    if updates:
        from sqlalchemy import bindparam

        cols = [c for c in updates[0] if c != "_id"]
        stmt = update(tbl).where(tbl.c.id == bindparam("_id")).values({c: bindparam(f"v_{c}") for c in cols})
        conn.execute(stmt, [{"_id": u["_id"], **{f"v_{c}": u[c] for c in cols}} for u in updates])
    return counts


def _upsert_run(conn: Connection, run: RunInfo) -> int:
    runs = table(Run)
    now = dt.datetime.now(dt.UTC)
    sequence = (
        int(
            conn.execute(
                select(func.coalesce(func.max(runs.c.sequence), 0)).where(runs.c.roi == run.roi)
            ).scalar_one()
        )
        + 1
    )
    values = {
        "roi": run.roi,
        "params": json.dumps(dict(run.params), sort_keys=True, default=str),
        "model_checksums": json.dumps(dict(run.model_checksums), sort_keys=True),
        "imagery_source": run.imagery_source[:500],
        "code_version": run.code_version[:100],
        "sequence": sequence,
        "published_at": now,
    }
    if conn.execute(select(runs.c.run_hash).where(runs.c.run_hash == run.run_hash)).first() is None:
        conn.execute(insert(runs).values(run_hash=run.run_hash, **values))
    else:
        conn.execute(update(runs).where(runs.c.run_hash == run.run_hash).values(**values))
    return sequence


def publish_roi(
    engine: Engine,
    run: RunInfo,
    registry: gpd.GeoDataFrame,
    per_window: Mapping[str, tuple[gpd.GeoDataFrame | None, gpd.GeoDataFrame | None]],
    *,
    before_commit: Callable[[Connection], None] | None = None,
) -> PublishResult:
    """Upsert ``run``'s sites (from ``registry``, EPSG:4326), detections and contours (from
    ``per_window``: window -> (enriched sites, contours)) in one transaction; return the counts.

    ``before_commit`` (tests) runs inside the transaction after every write. Raises
    :class:`SiteDatabaseError` (one line, no password) when the database fails; nothing is then
    written. Bad rows (an id longer than 64 characters, no coordinates) raise
    :class:`plastics_core.errors.PlasticsError` before the transaction starts.
    """
    _check_id("run hash", run.run_hash, HASH_MAX)
    _check_id("ROI name", run.roi, NAME_MAX)
    sites = site_rows(registry)
    detections, contours = detection_and_contour_rows(registry, per_window)
    dialect = engine.dialect.name
    try:
        with write_transaction(engine) as conn:
            if dialect == "postgresql":  # one publication of an ROI at a time
                conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:roi))"), {"roi": run.roi})
            sequence = _upsert_run(conn, run)
            counts = {
                "sites": _sync(conn, "sites", run, sites, dialect),
                "detections": _sync(conn, "detections", run, detections, dialect),
                "contours": _sync(conn, "contours", run, contours, dialect),
            }
            if before_commit is not None:
                before_commit(conn)
    except SQLAlchemyError as err:
        raise SiteDatabaseError(
            f"publishing ROI {run.roi!r} to site database {shown_url(engine.url)} failed "
            f"({describe(err, engine.url)}); nothing was written: rerun when the database "
            "is available"
        ) from None
    return PublishResult(run.run_hash, run.roi, sequence, counts)
