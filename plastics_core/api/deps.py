"""Request dependencies shared by the API's routers: the database engine and the store root."""

from __future__ import annotations

from fastapi import Request
from sqlalchemy import Engine


def get_engine(request: Request) -> Engine:
    """The site database Engine of the application (opened and migrated by ``create_app``)."""
    engine: Engine = request.app.state.engine
    return engine


def get_store_root(request: Request) -> str | None:
    """The local store root the application serves previews from (None: no previews)."""
    root: str | None = request.app.state.store_root
    return root
