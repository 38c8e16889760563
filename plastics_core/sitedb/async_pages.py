"""Pages of sites read on PostgreSQL from an event loop: the sites API's ``/sites`` (asyncpg).

The same statements as :func:`plastics_core.sitedb.queries.site_page` (:func:`queries.page_select`,
then the verdicts of the detection ids a page lists besides the sites' own), compiled once per
shape for asyncpg and run on a small pool of asyncpg connections in autocommit. asyncpg prepares
each statement once per connection (binary protocol, its statement cache) and decodes rows in C,
and the request never leaves the server's event loop: a page costs the server about half the CPU
time of the same read through SQLAlchemy and psycopg2 in a worker thread (``bench/sitedb.py``,
docs/PERFORMANCE.md).

Connections come from the database URL's host, port, user, password, database and query options
(``sslmode``, ``sslrootcert``, ...; ``connect_timeout`` becomes asyncpg's connect timeout). Every
failure is a :class:`plastics_core.sitedb.engine.SiteDatabaseError` in one line, password removed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import asyncpg
from sqlalchemy import Select
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.engine import URL

from plastics_core.sitedb import queries
from plastics_core.sitedb.engine import CONNECT_TIMEOUT_S, SiteDatabaseError, describe, shown_url

#: the verdicts of these ROIs given to any of these ids (as ``queries._PAGE_VERDICTS``)
_VERDICTS_SQL = (
    "SELECT id, roi, site_id, verdict FROM verdicts WHERE roi = ANY($1::text[]) AND site_id = ANY($2::text[])"
)
#: errors after which a connection is gone (the server restarted, failed over or ended the
#: session) or unusable (a session ended while the driver was between messages leaves its
#: protocol state inconsistent: an InternalClientError)
_DROPPED = (
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.InternalClientError,
    asyncpg.InterfaceError,
    ConnectionError,
)


@dataclass(frozen=True)
class Compiled:
    """A statement compiled for asyncpg: its SQL (``$n`` placeholders) and the names of its bound
    parameters in ``$n`` order with their compiled defaults (literals SQLAlchemy bound itself)."""

    sql: str
    names: tuple[str, ...]
    defaults: dict[str, Any]

    def values(self, params: dict[str, Any]) -> list[Any]:
        """The positional values of ``params`` (defaults for the parameters it does not name)."""
        return [params[n] if n in params else self.defaults[n] for n in self.names]


@lru_cache(maxsize=64)
def compiled(stmt: Select[Any]) -> Compiled:
    """``stmt`` compiled once for asyncpg (statements are built once per shape, so this is too)."""
    out = stmt.compile(dialect=asyncpg_dialect())  # type: ignore[no-untyped-call]
    return Compiled(out.string, tuple(out.positiontup or ()), dict(out.params))


def connect_options(url: URL) -> dict[str, Any]:
    """asyncpg connection arguments of a SQLAlchemy PostgreSQL URL: its DSN (driver name and
    ``connect_timeout`` removed) and the connect timeout in seconds."""
    query = dict(url.query)
    timeout = float(str(query.pop("connect_timeout", CONNECT_TIMEOUT_S)))
    dsn = url.set(drivername="postgresql", query=query).render_as_string(hide_password=False)
    return {"dsn": dsn, "timeout": timeout}


async def _keep_session(conn: asyncpg.Connection) -> None:
    """A connection goes back to the pool as it is: the pool's reads change no session state
    (no transaction, setting, lock or listener), so asyncpg's reset round trip is left out."""


class PagePool:
    """Up to ``size`` asyncpg connections to the PostgreSQL site database at ``url``, opened on
    first use in the running event loop (a new pool when the loop changes, as under a test
    client). :meth:`site_page` is :func:`plastics_core.sitedb.queries.site_page` for a server's
    event loop.

    Reads take their turn first-come first-served (an asyncio semaphore of ``size``): asyncpg's
    own pool lets a newly arrived read take a freed connection before one that waited, which
    under load lets a few requests wait many turns (PostGIS, 20 clients: p95 79-91 ms with the
    pool alone)."""

    def __init__(self, url: URL, size: int) -> None:
        self.url, self.size = url, size
        self._pool: asyncpg.Pool | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._turns = asyncio.Semaphore(size)
        self._opening = asyncio.Lock()

    async def _connections(self) -> asyncpg.Pool:
        """The pool of the running event loop, opened once (concurrent first reads wait for it)."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # asyncio's primitives and asyncpg's pool belong to one loop
            self._loop, self._pool = loop, None
            self._turns, self._opening = asyncio.Semaphore(self.size), asyncio.Lock()
        if self._pool is None:
            async with self._opening:
                if self._pool is None:
                    pool = asyncpg.create_pool(
                        min_size=0,
                        max_size=self.size,
                        statement_cache_size=64,
                        reset=_keep_session,
                        **connect_options(self.url),
                    )
                    await pool
                    self._pool = pool
        return self._pool

    async def close(self) -> None:
        """Close the connections (those of the running event loop's pool)."""
        if self._pool is not None and self._loop is asyncio.get_running_loop():
            await self._pool.close()
        self._pool = self._loop = None

    def _error(self, err: BaseException) -> SiteDatabaseError:
        return SiteDatabaseError(
            f"site database {shown_url(self.url)} failed ({describe(err, self.url)}): check that it is running"
        )

    async def site_page(
        self,
        bbox: queries.BBox,
        *,
        limit: int = 100,
        offset: int = 0,
        run: str | None = None,
        roi: str | None = None,
        fields: tuple[str, ...] = queries.PAGE_FIELDS,
    ) -> queries.SitePage:
        """A page of sites in ``bbox`` with their latest review verdicts, as
        :func:`plastics_core.sitedb.queries.site_page` returns it. A read on a connection the
        server dropped (a restart, a failover) is made once more on a new connection; any other
        failure is a :class:`SiteDatabaseError`."""
        if queries.holds_nul(run, roi):
            return queries.SitePage([], [])
        stmt, params = queries.page_select(
            "postgresql", bbox, limit=limit, offset=offset, run=run, roi=roi, fields=fields
        )
        plan = compiled(stmt)
        values = plan.values(params)
        for attempt in (1, 2):
            try:
                pool = await self._connections()
                async with self._turns, pool.acquire() as conn:
                    rows = [tuple(r) for r in await conn.fetch(plan.sql, *values)]
                    extra = await self._other_id_verdicts(conn, rows)
                return queries.assemble_page(rows, extra)
            except _DROPPED as err:
                if attempt == 1 and self._pool is not None:
                    await self._pool.expire_connections()  # the others went with the server's sessions
                    continue
                raise self._error(err) from None
            except (TimeoutError, asyncpg.PostgresError, OSError) as err:
                raise self._error(err) from None
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    async def _other_id_verdicts(
        conn: asyncpg.Connection, rows: Sequence[tuple[Any, ...]]
    ) -> dict[int, tuple[int, str]]:
        """As :func:`plastics_core.sitedb.queries.other_id_verdicts`, on ``conn``."""
        ids = queries.other_ids(rows)
        others = queries.rows_needing_verdicts(rows, ids)
        if not others:
            return {}
        rois, wanted = [rows[k][1] for k in others], [ids[k] for k in others]
        found = await conn.fetch(
            _VERDICTS_SQL, sorted(set(rois)), sorted({i for site in wanted for i in site})
        )
        newest = queries.newest_verdicts(found, rois, wanted)
        return {k: v for k, v in zip(others, newest, strict=True) if v is not None}
