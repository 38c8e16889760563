"""GPW's sites endpoints (``/sites``, ``/sites/{id}``, ``/sites/{id}/contours``), ``/rois`` and exports.

Points and outlines are GeoJSON (RFC 7946, EPSG:4326 lon/lat). Each ROI's latest published run
is served unless ``run`` names a run hash. ``bbox`` keeps GPW's order ``minlon,maxlon,minlat,maxlat``.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
import re
from typing import Annotated, Any
from urllib.parse import quote, urlencode

import orjson
import shapely
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from plastics_core.api.deps import get_engine
from plastics_core.api.problems import Problem
from plastics_core.sitedb import queries
from plastics_core.sitedb.engine import SiteDatabaseError
from plastics_core.sitedb.page_feature import CLOSE
from plastics_core.sitedb.schema import ID_MAX, NAME_MAX
from plastics_core.sitedb.verdicts import attach_verdicts
from plastics_core.storage.csv_safe import neutralize_cell

GEOJSON = "application/geo+json"
#: page size bounds of /sites and /sites/{id}/contours (GPW's default 100)
DEFAULT_LIMIT, MAX_LIMIT = 100, 1000
#: row bounds of the exports
EXPORT_DEFAULT_LIMIT, EXPORT_MAX_LIMIT = 10_000, 100_000
MAX_OFFSET = 10_000_000
WORLD = queries.BBox(-180.0, -90.0, 180.0, 90.0)
_RUN = re.compile(r"^[0-9a-f]{6,64}$")
_BBOX_HELP = "four numbers minlon,maxlon,minlat,maxlat in degrees (EPSG:4326), e.g. 115.0,116.0,-9.0,-8.0"

router = APIRouter(tags=["sites"])

Limit = Annotated[int, Query(ge=0, le=MAX_LIMIT, description=f"Maximum number of features (0..{MAX_LIMIT}).")]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Features to skip (ordered by site id).")]
Run = Annotated[
    str | None,
    Query(max_length=64, description="Run hash to serve (default: each ROI's latest published run)."),
]
Roi = Annotated[str | None, Query(max_length=NAME_MAX, description="Only sites of this ROI.")]
BBoxText = Annotated[str | None, Query(max_length=200, description=f"Bounding box: {_BBOX_HELP}.")]
ExportLimit = Annotated[
    int, Query(ge=0, le=EXPORT_MAX_LIMIT, description=f"Maximum rows (0..{EXPORT_MAX_LIMIT}).")
]


class SitesQuery(BaseModel):
    """The query parameters that choose a page of sites: ``/sites``, pages of up to
    :data:`MAX_LIMIT` features."""

    bbox: BBoxText = None
    limit: Limit = DEFAULT_LIMIT
    offset: Offset = 0
    run: Run = None
    roi: Roi = None


class ExportQuery(SitesQuery):
    """``/export/sites.csv`` and ``/export/sites.geojson``: as :class:`SitesQuery`, pages of up
    to :data:`EXPORT_MAX_LIMIT` rows."""

    limit: ExportLimit = EXPORT_DEFAULT_LIMIT


def parse_bbox(text: str | None) -> queries.BBox:
    """GPW's ``minlon,maxlon,minlat,maxlat`` -> :class:`plastics_core.sitedb.queries.BBox`; a
    :class:`Problem` (400, one sentence) when malformed, not finite, out of range or reversed."""
    if text is None or text.strip() == "":
        return WORLD
    parts = text.split(",")
    try:
        values = [float(p) for p in parts] if len(parts) == 4 else []
    except ValueError:
        values = []
    if len(values) != 4:
        raise Problem(400, f"bbox must be {_BBOX_HELP}.")
    if not all(math.isfinite(v) for v in values):
        raise Problem(
            400, f"bbox holds a value that is not a finite number (NaN or infinity): use {_BBOX_HELP}."
        )
    min_lon, max_lon, min_lat, max_lat = values
    if not (
        -180 <= min_lon <= 180 and -180 <= max_lon <= 180 and -90 <= min_lat <= 90 and -90 <= max_lat <= 90
    ):
        raise Problem(
            400, "bbox is out of range: longitudes must lie in [-180, 180] and latitudes in [-90, 90]."
        )
    if min_lon > max_lon or min_lat > max_lat:
        raise Problem(
            400, "bbox is reversed: give minlon,maxlon,minlat,maxlat with each minimum at most its maximum."
        )
    return queries.BBox(min_lon, min_lat, max_lon, max_lat)


def _run(run: str | None) -> str | None:
    if run is not None and not _RUN.fullmatch(run):
        raise Problem(400, "run must be a run hash (6 to 64 lower-case hexadecimal characters).")
    return run


def _iso(value: Any) -> str | None:
    """A database date or datetime as ISO 8601 text (other values as text, None as None)."""
    if value is None:
        return None
    return value.isoformat() if isinstance(value, dt.date) else str(value)


def _finite(value: float | None) -> float | None:
    """A database float (or None) when finite, else None (JSON has no NaN or infinity): one
    comparison, which NaN fails."""
    return value if value is not None and -math.inf < value < math.inf else None


def site_ref(request: Request, site_id: str, run: str | None = None) -> str:
    """Absolute URL of ``/sites/{site_id}`` (the id percent-encoded; ``?run=`` when given)."""
    url = f"{str(request.base_url).rstrip('/')}/sites/{quote(site_id, safe='')}"
    return f"{url}?{urlencode({'run': run})}" if run else url


def site_properties(site: dict[str, Any], series: bool = True) -> dict[str, Any]:
    """The JSON properties of a site (no ``ref``); ``series``: with the JSON time series
    ``pixel_scores``, ``patch_scores``, ``areas_km2`` (left out of lists: ``/sites/{id}`` has them)."""
    props: dict[str, Any] = {
        "id": site["site_id"],
        "first_detected": _iso(site["first_window"]),
        "last_detected": _iso(site["last_window"]),
        "roi": site["roi"],
        "run_hash": site["run_hash"],
        "name": site["name"],
        "status": site["status"],
        "n_windows": site["n_windows"],
        "score": _finite(site["score_latest"]),
        "patch_score": _finite(site["patch_latest"]),
        "score_max": _finite(site["score_max"]),
        "area_km2": _finite(site["area_km2_latest"]),
        "address": site["address"],
        "verdict": site.get("verdict"),  # the latest review verdict, None when unreviewed
    }
    for key in ("pixel_scores", "patch_scores", "areas_km2") if series else ():
        try:
            props[key] = json.loads(site[key] or "{}")
        except json.JSONDecodeError:
            props[key] = {}
    return props


def site_feature(
    request: Request, site: dict[str, Any], run: str | None, series: bool = True
) -> dict[str, Any]:
    """A GeoJSON Point Feature: GPW's ``id``, ``first_detected``, ``last_detected``, ``ref`` and the rest."""
    props = site_properties(site, series)
    props["ref"] = site_ref(request, site["site_id"], run)
    return {
        "type": "Feature",
        "id": site["site_id"],
        "properties": props,
        "geometry": {"type": "Point", "coordinates": [site["lon"], site["lat"]]},
    }


def contour_feature(request: Request, contour: dict[str, Any], run: str | None) -> dict[str, Any]:
    """A GeoJSON MultiPolygon Feature of one contour (``id`` = site id, ``date``, ``area_km2``, ``ref``)."""
    return {
        "type": "Feature",
        "properties": {
            "id": contour["site_id"],
            "date": _iso(contour["date"]),
            "window": _iso(contour["window"]),
            "area_km2": _finite(contour["area_km2"]),
            "ref": site_ref(request, contour["site_id"], run),
        },
        "geometry": shapely.geometry.mapping(contour["geometry"]),
    }


def _find_site(engine: Engine, site_id: str, run: str | None) -> dict[str, Any]:
    site = queries.get_site(engine, site_id, run=run) if len(site_id) <= ID_MAX else None
    if site is None:
        where = f" in run {run}" if run else ""
        raise Problem(
            404, f"no published site with id {site_id[:80]!r}{where}: list sites with /sites?bbox=..."
        )
    return attach_verdicts(engine, [site])[0]


_FC = {"description": "GeoJSON FeatureCollection", "content": {GEOJSON: {}}}
_PROBLEMS: dict[int | str, dict[str, Any]] = {
    400: {"description": "Invalid parameter (application/problem+json, one sentence in `detail`)"},
    404: {"description": "Unknown site (application/problem+json)"},
    503: {"description": "The site database is unavailable (application/problem+json)"},
}


def _page(query: SitesQuery | ExportQuery, engine: Engine) -> queries.SitePage:
    """The page of sites an export asks for: parameters checked (a :class:`Problem`, 400), then
    one read (:func:`plastics_core.sitedb.queries.site_page`)."""
    box, run_hash = parse_bbox(query.bbox), _run(query.run)
    return queries.site_page(engine, box, limit=query.limit, offset=query.offset, run=run_hash, roi=query.roi)


async def read_page(request: Request, query: SitesQuery) -> queries.SitePage:
    """The page of sites ``/sites`` asks for (columns
    :data:`plastics_core.sitedb.queries.FEATURE_PAGE_FIELDS`): parameters checked (a
    :class:`Problem`, 400), then read on the application's
    :class:`plastics_core.sitedb.async_pages.PagePool` (PostgreSQL: in the event loop) or, on
    SQLite, by :func:`plastics_core.sitedb.queries.site_page` in the thread pool."""
    box, run_hash = parse_bbox(query.bbox), _run(query.run)
    pages = request.app.state.pages
    fields = queries.FEATURE_PAGE_FIELDS
    if pages is not None:
        page: queries.SitePage = await pages.site_page(
            box, limit=query.limit, offset=query.offset, run=run_hash, roi=query.roi, fields=fields
        )
        return page
    return await run_in_threadpool(
        queries.site_page,
        request.app.state.engine,
        box,
        limit=query.limit,
        offset=query.offset,
        run=run_hash,
        roi=query.roi,
        fields=fields,
    )


#: ids that stay as they are in a URL path (H3 ids): no percent-encoding needed
_SAFE_ID = re.compile(r"[A-Za-z0-9_.~-]+")


def page_features(request: Request, page: queries.SitePage, run: str | None) -> list[dict[str, Any]]:
    """The Point Features of a page (as :func:`site_feature` with ``series=False``), built from
    its rows without intermediate dicts. Scores and areas are the stored floats, NaN included:
    :func:`feature_collection` writes a non-finite number as null (JSON has none)."""
    base = f"{str(request.base_url).rstrip('/')}/sites/"
    query = f"?{urlencode({'run': run})}" if run else ""
    safe = _SAFE_ID.fullmatch
    features = []
    for row, verdict in zip(page.rows, page.verdicts, strict=True):
        (site_id, roi, run_hash, name, status, first, last, n_windows, lon, lat) = row[:10]
        score, patch, score_max, area, address = row[10:15]
        features.append(
            {
                "type": "Feature",
                "id": site_id,
                "properties": {
                    "id": site_id,
                    "first_detected": first.isoformat() if first is not None else None,
                    "last_detected": last.isoformat() if last is not None else None,
                    "roi": roi,
                    "run_hash": run_hash,
                    "name": name,
                    "status": status,
                    "n_windows": n_windows,
                    "score": score,
                    "patch_score": patch,
                    "score_max": score_max,
                    "area_km2": area,
                    "address": address,
                    "verdict": verdict,
                    "ref": f"{base}{site_id if safe(site_id) else quote(site_id, safe='')}{query}",
                },
                "geometry": {"type": "Point", "coordinates": [lon, lat]},
            }
        )
    return features


#: a verdict as JSON text
_VERDICT_JSON = {None: "null", "confirm": '"confirm"', "reject": '"reject"', "unsure": '"unsure"'}


def feature_page_body(request: Request, page: queries.SitePage, run: str | None) -> bytes:
    """The ``/sites`` FeatureCollection of a page read with
    :data:`plastics_core.sitedb.queries.FEATURE_PAGE_FIELDS`: each site's stored Feature
    (:mod:`plastics_core.sitedb.page_feature`) closed with its ``verdict`` and ``ref``, the same
    document :func:`page_features` builds from the columns. The server's URL, which comes from
    the request's Host header, is written as a JSON string (escaped); a site id enters the URL
    percent-encoded. A site stored without its Feature (written by another program) is a
    :class:`plastics_core.sitedb.engine.SiteDatabaseError`."""
    base = orjson.dumps(f"{str(request.base_url).rstrip('/')}/sites/").decode()[1:-1]
    query = f"?{urlencode({'run': run})}" if run else ""
    safe = _SAFE_ID.fullmatch
    parts = []
    for row, verdict in zip(page.rows, page.verdicts, strict=True):
        site_id, roi, head = row[0], row[1], row[2]
        if head is None:
            raise SiteDatabaseError(
                f"site {site_id[:80]!r} of ROI {roi[:80]!r} has no stored feature: publish the ROI again"
            )
        ref = site_id if safe(site_id) else quote(site_id, safe="")
        said = _VERDICT_JSON.get(verdict) or orjson.dumps(verdict).decode()
        parts.append(f'{head},"verdict":{said},"ref":"{base}{ref}{query}"{CLOSE}')
    return ('{"type":"FeatureCollection","features":[' + ",".join(parts) + "]}").encode()


def feature_collection(features: list[dict[str, Any]], **members: Any) -> Response:
    """A GeoJSON FeatureCollection response (``members``: foreign members before ``features``),
    serialised once with orjson (non-finite numbers become null)."""
    body = orjson.dumps({"type": "FeatureCollection", **members, "features": features})
    return Response(body, media_type=GEOJSON)


@router.get(
    "/sites",
    summary="Sites in a bounding box",
    response_class=Response,
    responses={200: _FC, **_PROBLEMS},
)
async def list_sites(request: Request, query: Annotated[SitesQuery, Query()]) -> Response:
    """A FeatureCollection of site points (``id``, ``first_detected``, ``last_detected``, ``ref``, ...)."""
    body = feature_page_body(request, await read_page(request, query), query.run)
    return Response(body, media_type=GEOJSON)


@router.get(
    "/sites/{site_id}",
    summary="A site's contour history",
    response_class=Response,
    responses={200: _FC, **_PROBLEMS},
)
def site_history(
    request: Request, site_id: str, engine: Annotated[Engine, Depends(get_engine)], run: Run = None
) -> Response:
    """The site's contours over time (MultiPolygons, oldest first); the site itself in the
    foreign member ``site`` (a Point Feature)."""
    site = _find_site(engine, site_id, _run(run))
    contours = queries.site_contours(engine, site["site_id"], site["run_hash"])
    return feature_collection(
        [contour_feature(request, c, run) for c in contours], site=site_feature(request, site, run)
    )


@router.get(
    "/sites/{site_id}/contours",
    summary="A site's contours, paged",
    response_class=Response,
    responses={200: _FC, **_PROBLEMS},
)
def site_contours(
    request: Request,
    site_id: str,
    engine: Annotated[Engine, Depends(get_engine)],
    limit: Limit = DEFAULT_LIMIT,
    offset: Offset = 0,
    run: Run = None,
) -> Response:
    """The site's contours (MultiPolygons with ``date`` and ``area_km2``), oldest first."""
    site = _find_site(engine, site_id, _run(run))
    contours = queries.site_contours(engine, site["site_id"], site["run_hash"], limit=limit, offset=offset)
    return feature_collection([contour_feature(request, c, run) for c in contours])


@router.get("/sites/{site_id}/countours", include_in_schema=False)
def site_countours(
    request: Request,
    site_id: str,
    engine: Annotated[Engine, Depends(get_engine)],
    limit: Limit = DEFAULT_LIMIT,
    offset: Offset = 0,
    run: Run = None,
) -> Response:
    """GPW's original spelling of ``/sites/{id}/contours``."""
    return site_contours(request, site_id, engine, limit, offset, run)


@router.get("/rois", summary="Published ROIs and their runs")
def list_rois(request: Request, engine: Annotated[Engine, Depends(get_engine)]) -> dict[str, Any]:
    """Every ROI with its latest run (hash, publication time, imagery, sites) and all its run hashes."""
    base = str(request.base_url).rstrip("/")
    rois = []
    for roi in queries.list_rois(engine):
        rois.append(
            {
                **roi,
                "published_at": _iso(roi["published_at"]),
                "sites_url": f"{base}/sites?{urlencode({'roi': roi['roi']})}",
            }
        )
    return {"rois": rois}


EXPORT_COLUMNS = (
    "id",
    "roi",
    "run_hash",
    "name",
    "status",
    "first_detected",
    "last_detected",
    "n_windows",
    "lon",
    "lat",
    "score",
    "patch_score",
    "score_max",
    "area_km2",
    "address",
)


def _csv_number(value: Any) -> Any:
    """A CSV cell of a number: empty for None and for a non-finite float."""
    return "" if value is None or (isinstance(value, float) and not math.isfinite(value)) else value


@router.get(
    "/export/sites.csv",
    summary="Sites as CSV",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}}, **_PROBLEMS},
)
def export_csv(
    request: Request,
    engine: Annotated[Engine, Depends(get_engine)],
    query: Annotated[ExportQuery, Query()],
) -> Response:
    """The sites of ``bbox`` as UTF-8 CSV (:data:`EXPORT_COLUMNS`); text cells that a spreadsheet
    would run as a formula start with ``'``."""
    features = page_features(request, _page(query, engine), query.run)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(EXPORT_COLUMNS)
    for feature in features:
        lon, lat = feature["geometry"]["coordinates"]
        row = {**feature["properties"], "lon": lon, "lat": lat}
        writer.writerow(
            [
                neutralize_cell(row[c]) if isinstance(row[c], str) else _csv_number(row[c])
                for c in EXPORT_COLUMNS
            ]
        )
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="sites.csv"'},
    )


@router.get(
    "/export/sites.geojson",
    summary="Sites as a GeoJSON file",
    response_class=Response,
    responses={200: _FC, **_PROBLEMS},
)
def export_geojson(
    request: Request,
    engine: Annotated[Engine, Depends(get_engine)],
    query: Annotated[ExportQuery, Query()],
) -> Response:
    """As ``/sites`` with export-sized pages, as a download (``sites.geojson``)."""
    response = feature_collection(page_features(request, _page(query, engine), query.run))
    response.headers["Content-Disposition"] = 'attachment; filename="sites.geojson"'
    return response
