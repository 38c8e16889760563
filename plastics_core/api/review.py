"""The review page (``/review``) and its JSON endpoints, served by ``plastics serve``.

- ``GET /review``: the page (static HTML, CSS and JS of ``plastics_core/api/static``; Leaflet from
  the offline copy of :mod:`plastics_core.report.leaflet_offline` under ``/review/leaflet/``). The
  page fetches everything below as JSON and inserts text with ``textContent`` only; its
  Content-Security-Policy allows scripts, styles, images and requests from this server alone.
- ``GET /review/api/rois``: published ROIs with their queue length and whether the run is a
  synthetic demo scene.
- ``GET /review/api/queue?roi=&margin=``: the ROI's review queue (highest score first).
- ``GET /review/api/site?roi=&site_id=``: one site: scores and areas over time, contours (GeoJSON
  FeatureCollection, EPSG:4326), chips per window, verdict history.
- ``GET /review/api/chip?roi=&site_id=&window=&kind=heatmap|truecolor``: a PNG chip from the store;
  its EPSG:4326 bounds come with the site's ``chips``.
- ``POST /review/api/verdicts`` (JSON ``{roi, site_id, verdict, note}``): needs credentials
  (:func:`plastics_core.api.auth.require_writer`); the reviewer is the authenticated name.
  ``GET /review/login`` asks the browser for those credentials and returns to the page.
"""

from __future__ import annotations

import json
import math
from importlib import resources
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Engine

from plastics_core.api.auth import require_writer
from plastics_core.api.deps import get_engine, get_store_root
from plastics_core.api.problems import Problem
from plastics_core.sitedb import queries
from plastics_core.sitedb.schema import ID_MAX, NAME_MAX
from plastics_core.sitedb.verdicts import (
    DEFAULT_MARGIN,
    NOTE_MAX,
    VERDICTS,
    VerdictError,
    history,
    review_item,
    review_queue,
    set_verdict,
    site_reviews,
)

#: the page's Content-Security-Policy: nothing inline, nothing from elsewhere
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
PAGE_HEADERS = {"Content-Security-Policy": CSP, "X-Frame-Options": "DENY", "Cache-Control": "no-store"}
STATIC_FILES = {
    "review.html": "text/html; charset=utf-8",
    "review.js": "text/javascript; charset=utf-8",
    "review.css": "text/css; charset=utf-8",
}
LEAFLET_FILES = {"leaflet.js": "text/javascript; charset=utf-8", "leaflet.css": "text/css; charset=utf-8"}

router = APIRouter(tags=["review"])

RoiQ = Annotated[str, Query(min_length=1, max_length=NAME_MAX, description="ROI name.")]
SiteQ = Annotated[str, Query(min_length=1, max_length=ID_MAX, description="Registry site id.")]
MarginQ = Annotated[
    float, Query(ge=0.0, le=1.0, description="Score rise since a reject that re-queues a site.")
]


class VerdictIn(BaseModel):
    """Body of ``POST /review/api/verdicts``."""

    model_config = ConfigDict(extra="forbid")
    roi: str = Field(min_length=1, max_length=NAME_MAX)
    site_id: str = Field(min_length=1, max_length=ID_MAX)
    verdict: str = Field(pattern="^(confirm|reject|unsure)$")
    note: str = Field(default="", max_length=NOTE_MAX)


def _static(name: str) -> bytes:
    return (resources.files("plastics_core.api") / "static" / name).read_bytes()


def _file_response(data: bytes, media_type: str, page: bool = False) -> Response:
    headers = dict(PAGE_HEADERS) if page else {"Cache-Control": "no-cache"}
    return Response(data, media_type=media_type, headers=headers)


@router.get("/review", include_in_schema=False)
def review_page() -> Response:
    """The review page (HTML; data comes from the JSON endpoints)."""
    return _file_response(_static("review.html"), STATIC_FILES["review.html"], page=True)


@router.get("/review/static/{name}", include_in_schema=False)
def review_static(name: str) -> Response:
    if name not in STATIC_FILES or name == "review.html":
        raise Problem(404, f"no static file {name!r}: the review page uses review.js and review.css.")
    return _file_response(_static(name), STATIC_FILES[name])


@router.get("/review/leaflet/{name}", include_in_schema=False)
def review_leaflet(name: str) -> Response:
    """Leaflet's JS and CSS (its images inlined) from the offline copy on disk."""
    from plastics_core.report.leaflet_offline import load_leaflet

    if name not in LEAFLET_FILES:
        raise Problem(404, f"no Leaflet file {name!r}: leaflet.js and leaflet.css are served.")
    assets = load_leaflet()
    text = assets.js if name == "leaflet.js" else assets.css
    return _file_response(text.encode("utf-8"), LEAFLET_FILES[name])


@router.get("/review/login", include_in_schema=False)
def review_login(
    request: Request,
    reviewer: Annotated[str, Depends(require_writer)],
    roi: Annotated[str | None, Query(max_length=NAME_MAX)] = None,
) -> Response:
    """Ask for the reviewer's credentials (HTTP basic), then go back to the page."""
    target = "/review" + (f"?roi={quote(roi, safe='')}" if roi else "")
    return RedirectResponse(target, status_code=303)


def _synthetic(source: Any) -> bool:
    return str(source or "").startswith("synthetic")


def _roi_run(engine: Engine, roi: str) -> dict[str, Any] | None:
    return next((r for r in queries.list_rois(engine) if r["roi"] == roi), None)


def _number(value: Any) -> float | None:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _series(text: Any) -> dict[str, float | None]:
    try:
        data = json.loads(str(text or "{}"))
    except ValueError:
        return {}
    return {str(k): _number(v) for k, v in sorted(data.items())} if isinstance(data, dict) else {}


@router.get("/review/api/rois", summary="ROIs to review")
def review_rois(
    engine: Annotated[Engine, Depends(get_engine)], margin: MarginQ = DEFAULT_MARGIN
) -> dict[str, Any]:
    out = []
    for r in queries.list_rois(engine):
        out.append(
            {
                "roi": r["roi"],
                "run_hash": r["run_hash"],
                "sites": r["sites"],
                "queue": len(review_queue(engine, r["roi"], margin)),
                "synthetic": _synthetic(r.get("imagery_source")),
                "imagery_source": r.get("imagery_source"),
            }
        )
    return {"rois": out}


@router.get("/review/api/queue", summary="The review queue of an ROI")
def review_queue_json(
    engine: Annotated[Engine, Depends(get_engine)], roi: RoiQ, margin: MarginQ = DEFAULT_MARGIN
) -> dict[str, Any]:
    run = _roi_run(engine, roi)
    items = review_queue(engine, roi, margin)
    reviewed = [i.as_json() for i in site_reviews(engine, roi, margin) if i.latest is not None]
    return {
        "roi": roi,
        "run_hash": run["run_hash"] if run else None,
        "synthetic": _synthetic(run.get("imagery_source")) if run else False,
        "margin": margin,
        "queue": [i.as_json() for i in items],
        "reviewed": reviewed,
    }


def _site_row(engine: Engine, roi: str, site_id: str) -> tuple[dict[str, Any], Any]:
    item = review_item(engine, roi, site_id)
    site = queries.get_site(engine, site_id, run=item.run_hash) if item is not None else None
    if site is not None:
        return site, item
    raise Problem(404, f"site {site_id!r} is not a published site of ROI {roi!r}: pick one from the queue.")


def _store(request: Request) -> Any:
    root = get_store_root(request)
    if root is None:
        return None
    from upath import UPath

    return UPath(root)


@router.get("/review/api/site", summary="A site to review: scores, contours, chips, verdicts")
def review_site(
    request: Request, engine: Annotated[Engine, Depends(get_engine)], roi: RoiQ, site_id: SiteQ
) -> dict[str, Any]:
    import shapely

    from plastics_core.api.review_chips import chip_history, heatmap_windows, render_chip

    site, item = _site_row(engine, roi, site_id)
    run = item.run_hash
    contours = [
        {
            "type": "Feature",
            "geometry": shapely.geometry.mapping(c["geometry"]),
            "properties": {
                "date": str(c["date"]),
                "window": str(c["window"]),
                "area_km2": _number(c["area_km2"]),
            },
        }
        for c in queries.site_contours(engine, site_id, run)
        if c["geometry"] is not None
    ]
    store = _store(request)
    windows = heatmap_windows(store, roi, run) if store is not None else []
    seen = set(_series(site.get("pixel_scores")))
    chip_windows = [w for w in windows if w in seen] or windows
    base = f"/review/api/chip?roi={quote(roi, safe='')}&site_id={quote(site_id, safe='')}"
    chips: list[dict[str, Any]] = []
    refs = chip_history(store, roi, run, chip_windows, item.lon, item.lat) if store is not None else []
    for ref in refs:
        label = ref.period.split("_")[0]
        chips.append(
            {
                "label": label,
                "window": ref.window,
                "kind": "truecolor",
                "url": f"{base}&window={ref.window}&kind=truecolor&period={ref.period}",
            }
        )
        chips.append(
            {
                "label": label,
                "window": ref.window,
                "kind": "heatmap",
                "url": f"{base}&window={ref.window}&kind=heatmap&band={ref.band}",
            }
        )
    if not refs:  # heatmaps without pair bands: one median chip per window
        for w in chip_windows:
            for kind in ("truecolor", "heatmap"):
                chips.append({"label": w, "window": w, "kind": kind, "url": f"{base}&window={w}&kind={kind}"})
    bounds = None
    if store is not None and chip_windows:
        latest = render_chip(store, roi, run, chip_windows[-1], item.lon, item.lat, "heatmap")
        bounds = list(latest.bounds) if latest is not None else None
    with engine.connect() as conn:
        past = [v.as_json() for v in history(conn, roi, site_id)]
    run_info = _roi_run(engine, roi) or {}
    return {
        "site": item.as_json(),
        "pixel_scores": _series(site.get("pixel_scores")),
        "patch_scores": _series(site.get("patch_scores")),
        "areas_km2": _series(site.get("areas_km2")),
        "contours": {"type": "FeatureCollection", "features": contours},
        "chips": chips,
        "chip_bounds": bounds,
        "chips_note": None if store is not None else "this server has no local store: no image chips",
        "history": past,
        "synthetic": _synthetic(run_info.get("imagery_source")),
    }


@router.get("/review/api/chip", summary="A PNG chip of a site in one window", include_in_schema=False)
def review_chip(
    request: Request,
    engine: Annotated[Engine, Depends(get_engine)],
    roi: RoiQ,
    site_id: SiteQ,
    window: Annotated[str, Query(pattern=r"^\d{4}-\d{2}-\d{2}$")],
    kind: Annotated[str, Query(pattern="^(heatmap|truecolor)$")],
    band: Annotated[int | None, Query(ge=1, le=1000)] = None,
    period: Annotated[str | None, Query(pattern=r"^\d{4}-\d{2}-\d{2}_\d{4}-\d{2}-\d{2}$")] = None,
) -> Response:
    from plastics_core.api.review_chips import render_chip

    store = _store(request)
    if store is None:
        raise Problem(404, "this server has no local store to read image chips from: start it with --store.")
    _, item = _site_row(engine, roi, site_id)
    chip = render_chip(store, roi, item.run_hash, window, item.lon, item.lat, kind, band=band, period=period)
    if chip is None:
        what = "cached true-colour composite" if kind == "truecolor" else "heatmap"
        raise Problem(
            404,
            f"the store holds no {what} of site {site_id} for window {window}"
            f"{' period ' + period if period else ''}.",
        )
    return Response(chip.png, media_type="image/png", headers={"Cache-Control": "max-age=3600"})


@router.post("/review/api/verdicts", summary="Record a verdict (needs credentials)", status_code=201)
def post_verdict(
    request: Request,
    body: VerdictIn,
    engine: Annotated[Engine, Depends(get_engine)],
    reviewer: Annotated[str, Depends(require_writer)],
) -> JSONResponse:
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
        raise Problem(415, "send the verdict as application/json.")
    origin = request.headers.get("origin")
    if origin and origin.rstrip("/") != str(request.base_url).rstrip("/"):
        raise Problem(403, "verdicts are accepted from this server's own review page only.")
    if body.verdict not in VERDICTS:
        raise Problem(400, f"verdict must be one of {', '.join(VERDICTS)}.")
    try:
        rec = set_verdict(engine, body.roi, body.site_id, body.verdict, reviewer, body.note)
    except VerdictError as err:
        raise Problem(
            404 if "not a published site" in str(err) or "no published sites" in str(err) else 400, str(err)
        ) from None
    return JSONResponse(rec.as_json(), status_code=201)


def static_folder() -> Path:
    """The folder of the page's static files (package data)."""
    return Path(str(resources.files("plastics_core.api") / "static"))
