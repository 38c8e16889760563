"""The API application: :func:`create_app` (used by ``plastics serve`` and the tests).

Routes: :data:`ROUTERS` (the sites endpoints, then any router added there), ``/`` (an index),
``/health``, ``/openapi.json`` and ``/docs`` (OpenAPI), and ``/preview/...``: the preview pages
and site reports of a local store (``<store>/preview/<roi>/<window>/<run-hash>.html``), read-only.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy import Engine

from plastics_core.api import review, sites
from plastics_core.api.problems import install_handlers
from plastics_core.sitedb.engine import open_database

#: routers every application includes, in order (add a feature's router here)
ROUTERS: list[APIRouter] = [sites.router, review.router]
#: headers on every response
SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}
DESCRIPTION = (
    "Plastic-waste sites found by the plastics asset graph (Global Plastic Watch's models), as GeoJSON. "
    "Each ROI's latest published run is served unless `run` names a run hash. Errors are RFC 7807 "
    "`application/problem+json`. Reads need no credentials; writes need HTTP basic or bearer credentials "
    "configured on the server (PLASTICS_API_USERS / PLASTICS_API_TOKEN)."
)


def local_root(store_root: str | None) -> Path | None:
    """The store root as a local folder, or None for a remote store (``s3://``) or none."""
    if not store_root:
        return None
    if "://" in store_root and not store_root.startswith("file://"):
        return None
    return Path(store_root.removeprefix("file://")).expanduser().absolute()


def create_app(
    database_url: str,
    store_root: str | None = None,
    *,
    routers: Sequence[APIRouter] = (),
    engine: Engine | None = None,
) -> FastAPI:
    """The API over the site database at ``database_url`` (opened and migrated now: a
    :class:`plastics_core.sitedb.engine.SiteDatabaseError` when unreachable), serving the
    previews of ``store_root`` when it is a local folder. ``routers``: added after :data:`ROUTERS`;
    ``engine``: an already-open Engine to use instead of opening ``database_url``."""
    app = FastAPI(title="plastics sites API", version="1", description=DESCRIPTION)
    app.state.engine = engine if engine is not None else open_database(database_url)
    root = local_root(store_root)
    app.state.store_root = str(root) if root is not None else None
    install_handlers(app)

    @app.middleware("http")
    async def _headers(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        for key, value in SECURITY_HEADERS.items():
            response.headers.setdefault(key, value)
        return response

    @app.get("/", summary="Index of the API")
    def index(request: Request) -> dict[str, Any]:
        base = str(request.base_url).rstrip("/")
        return {
            "name": "plastics sites API",
            "openapi": f"{base}/openapi.json",
            "docs": f"{base}/docs",
            "sites": f"{base}/sites?bbox=-180,180,-90,90",
            "rois": f"{base}/rois",
            "previews": f"{base}/preview/" if root is not None else None,
        }

    @app.get("/health", summary="Liveness")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    for router in [*ROUTERS, *routers]:
        app.include_router(router)
    if root is not None:  # files only below <store>/preview; StaticFiles refuses paths leaving it
        app.mount("/preview", StaticFiles(directory=root / "preview", check_dir=False), name="preview")
    app.router.on_shutdown.append(app.state.engine.dispose)
    return app
