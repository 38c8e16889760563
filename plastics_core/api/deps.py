"""Request dependencies shared by the API's routers: the database engine and the store root."""

from __future__ import annotations

from fastapi import Request
from sqlalchemy import Engine


async def get_engine(request: Request) -> Engine:
    """The site database Engine of the application (opened and migrated by ``create_app``).
    A coroutine although it does not wait: FastAPI runs a plain function dependency in its
    thread pool, one more hand-over per request for reading an attribute."""
    engine: Engine = request.app.state.engine
    return engine


def get_store_root(request: Request) -> str | None:
    """The local store root the application serves previews from (None: no previews)."""
    root: str | None = request.app.state.store_root
    return root
