"""RFC 7807 ``application/problem+json`` errors: every error response of the API is one of these.

``detail`` is one sentence naming the problem and the fix. Validation errors of query and path
parameters are answered 400 (not FastAPI's 422), as GPW's API did.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from plastics_core.sitedb.engine import SiteDatabaseError

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger("plastics.api")


class Problem(Exception):
    """Raise to answer ``status`` with a problem document whose detail is ``detail``."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers or {}


def problem_response(
    request: Request, status: int, detail: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    """The problem document (type ``about:blank``, title = the HTTP reason phrase, status, detail, instance)."""
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "instance": request.url.path,
    }
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _validation_detail(err: RequestValidationError) -> str:
    first = err.errors()[0] if err.errors() else {}
    loc = [str(p) for p in first.get("loc", ()) if p not in ("query", "path", "body")]
    where = f"parameter {'.'.join(loc)!r}" if loc else "the request"
    msg = str(first.get("msg", "is invalid")).rstrip(".")
    return f"{where}: {msg[:1].lower()}{msg[1:]}."


def install_handlers(app: FastAPI) -> None:
    """Answer HTTP errors, validation errors, :class:`Problem` and database failures as problems."""

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(request, exc.status, exc.detail, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return problem_response(request, 400, _validation_detail(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = (
            exc.detail
            if isinstance(exc.detail, str) and exc.status_code != 404
            else (
                f"nothing at {request.url.path}: see /docs for the endpoints"
                if exc.status_code == 404
                else HTTPStatus(exc.status_code).phrase
            )
        )
        return problem_response(request, exc.status_code, detail, dict(exc.headers or {}))

    @app.exception_handler(SiteDatabaseError)
    async def _database(request: Request, exc: SiteDatabaseError) -> JSONResponse:
        log.error("%s", exc)  # one line, password removed; never sent to the client
        return problem_response(request, 503, "the site database is unavailable: retry later.")
