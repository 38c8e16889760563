"""The API application: :func:`create_app` (used by ``plastics serve`` and the tests).

Routes: :data:`ROUTERS` (the sites endpoints, then any router added there), ``/`` (an index),
``/health``, ``/openapi.json`` and ``/docs`` (OpenAPI; Swagger UI served from the pinned
``swagger-ui-bundle`` package under ``/docs-assets/``, so the page works offline), and
``/preview/...``: the preview pages and site reports of a local store
(``<store>/preview/<roi>/<window>/<run-hash>.html``), read-only.

:func:`app_from_environment` builds the application in each ``plastics serve --workers N`` process.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import anyio.to_thread
from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy import Engine
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from swagger_ui_bundle import swagger_ui_path

from plastics_core.api import review, sites
from plastics_core.api.problems import install_handlers
from plastics_core.sitedb.async_pages import PagePool
from plastics_core.sitedb.engine import open_database

#: routers every application includes, in order (add a feature's router here)
ROUTERS: list[APIRouter] = [sites.router, review.router]
#: headers on every response
SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}
#: where the Swagger UI files (JavaScript, CSS, icon) of ``/docs`` are served
DOCS_ASSETS = "/docs-assets"
#: environment variables through which ``plastics serve --workers N`` hands its options to
#: :func:`app_from_environment` in each worker process (never a database password: the URL is
#: found again from ``PLASTICS_DATABASE_URL`` or the store, as ``plastics serve`` found it)
SERVE_STORE_ENV = "PLASTICS_SERVE_STORE"
#: ``plastics serve --threads`` handed to its worker processes
SERVE_THREADS_ENV = "PLASTICS_SERVE_THREADS"
#: requests one server process works on at once: its endpoint thread pool, and on PostgreSQL the
#: connections of its ``/sites`` reads (:class:`plastics_core.sitedb.async_pages.PagePool`). The
#: API's requests are short and CPU-bound, so a small number avoids threads, connections and
#: database processes contending for the cores (PostGIS, 2 cores, 20 clients, one process, same
#: code: p95 51.5 ms with 4, 59.5 ms with 2; docs/PERFORMANCE.md)
DEFAULT_THREADS = 4


class SecurityHeaders:
    """ASGI middleware: :data:`SECURITY_HEADERS` on every http response (unless already set)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for key, value in SECURITY_HEADERS.items():
                    if key not in headers:
                        headers.append(key, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)


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
    threads: int = DEFAULT_THREADS,
) -> FastAPI:
    """The API over the site database at ``database_url`` (opened and migrated now: a
    :class:`plastics_core.sitedb.engine.SiteDatabaseError` when unreachable), serving the
    previews of ``store_root`` when it is a local folder. ``routers``: added after :data:`ROUTERS`;
    ``engine``: an already-open Engine to use instead of opening ``database_url``; ``threads``: the
    requests this process works on at once (the rest wait in its event loop).

    The Engine opened here lends pooled connections without a test round trip (``pre_ping``
    off: one less round trip per request); a page of ``/sites`` read on a connection the server
    dropped is read again on a new one, and any other request on such a connection answers 503
    once, after which the pool holds only new connections."""
    app = FastAPI(
        title="plastics sites API", version="1", description=DESCRIPTION, docs_url=None, redoc_url=None
    )
    app.state.engine = engine if engine is not None else open_database(database_url, pre_ping=False)
    app.state.pages = (
        PagePool(app.state.engine.url, threads) if app.state.engine.dialect.name == "postgresql" else None
    )
    root = local_root(store_root)
    app.state.store_root = str(root) if root is not None else None
    install_handlers(app)

    app.add_middleware(SecurityHeaders)
    app.mount(DOCS_ASSETS, StaticFiles(directory=str(swagger_ui_path)), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_ASSETS}/favicon-32x32.png",
            swagger_ui_parameters={"validatorUrl": None},  # no badge fetched from swagger.io
        )

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
    app.router.on_startup.append(partial(_limit_threads, threads))
    app.router.on_shutdown.append(app.state.engine.dispose)
    if app.state.pages is not None:
        app.router.on_shutdown.append(app.state.pages.close)
    return app


def _limit_threads(threads: int) -> None:
    """Size the event loop's thread pool, where FastAPI runs the synchronous endpoints."""
    anyio.to_thread.current_default_thread_limiter().total_tokens = threads


def app_from_environment() -> FastAPI:
    """The application of one ``plastics serve`` worker process (uvicorn's factory): the store
    root from :data:`SERVE_STORE_ENV` (set by ``plastics serve``), the database from
    ``PLASTICS_DATABASE_URL`` or the store, as ``plastics serve`` chose them."""
    from plastics_core.sitedb.engine import env_database_url

    root = os.environ.get(SERVE_STORE_ENV) or None
    threads = int(os.environ.get(SERVE_THREADS_ENV) or DEFAULT_THREADS)
    return create_app(env_database_url(root or ""), root, threads=threads)
