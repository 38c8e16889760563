"""Open the site database from one URL and bring its schema to the latest Alembic revision.

URLs (SQLAlchemy form): ``sqlite:///path/to/sites.sqlite`` (embedded, the default: see
:func:`default_database_url`) or ``postgresql://user:password@host:5432/dbname`` (PostgreSQL 15 +
PostGIS 3; driver psycopg2). Every error this module raises is one line that names the database
with its password removed (:func:`shown_url`), never the password itself.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from plastics_core.errors import PlasticsError
from plastics_core.redact import redact

#: the file name of the embedded database, beside the store's local root folder
SQLITE_NAME = "sites.sqlite"
#: seconds a connection attempt to PostgreSQL may take before the database counts as unreachable
CONNECT_TIMEOUT_S = 5
#: seconds a SQLite writer waits for another writer's lock before failing
SQLITE_BUSY_S = 60
_MIGRATIONS = Path(__file__).resolve().parent / "migrations"
#: execution option: begin SQLite transactions with ``BEGIN IMMEDIATE`` (take the write lock first)
IMMEDIATE = {"plastics_sqlite_begin": "BEGIN IMMEDIATE"}
#: advisory lock key serializing schema migrations on PostgreSQL (any constant bigint)
_MIGRATION_LOCK = 0x706C6173746963  # "plastic"


class SiteDatabaseError(PlasticsError):
    """The site database is unreachable, refuses a statement, or its URL is unusable (one line)."""


def default_database_url(store_root: str) -> str:
    """``sqlite:///<parent of the store>/sites.sqlite`` for a local store root (a folder path or
    ``file://`` URL); ``sqlite:///./.plastics/sites.sqlite`` for a remote store (``s3://``)."""
    if "://" in store_root and not store_root.startswith("file://"):
        folder = Path(".plastics")
    else:
        folder = Path(store_root.removeprefix("file://")).expanduser().absolute().parent
    return f"sqlite:///{folder / SQLITE_NAME}"


def _parse(url: str) -> URL:
    try:
        return make_url(url)
    except (ArgumentError, ValueError) as err:
        raise SiteDatabaseError(
            f"unusable site database URL {redact(str(url))!r} ({type(err).__name__}): use "
            "sqlite:///FILE or postgresql://USER:PASSWORD@HOST:PORT/DB in PLASTICS_DATABASE_URL"
        ) from None


def shown_url(url: str | URL) -> str:
    """The URL as messages may show it: no password, no query string."""
    parsed = url if isinstance(url, URL) else _parse(url)
    return redact(parsed.render_as_string(hide_password=True).replace(":***@", "@"))


def scrub(message: str, url: str | URL | None) -> str:
    """``message`` on one line with the URL's password and any URL userinfo / query removed."""
    text = " ".join(str(message).split())
    if url is not None:
        parsed = url if isinstance(url, URL) else _parse(url)
        if parsed.password:
            text = text.replace(str(parsed.password), "***")
    return redact(text)


def describe(err: BaseException, url: str | URL | None, limit: int = 200) -> str:
    """A one-line reason for a database error: the driver's first line, password removed."""
    orig = getattr(err, "orig", None)
    first = str(orig if orig is not None else err).strip().splitlines()
    text = scrub(first[0] if first else type(err).__name__, url) or type(err).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _sqlite_events(engine: Engine) -> None:
    """Let SQLAlchemy, not pysqlite, emit BEGIN (so a transaction holds its DDL and can take the
    write lock first: :data:`IMMEDIATE`); WAL journal (readers never block the writer)."""

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_S * 1000}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql(str(conn.get_execution_options().get("plastics_sqlite_begin", "BEGIN")))


def create_database_engine(url: str, *, pre_ping: bool = True) -> Engine:
    """An Engine for ``url`` (no connection made yet). SQLite: the file's folder is created.
    PostgreSQL: ``pre_ping`` tests each pooled connection with a round trip before lending it
    (a connection the server dropped is replaced unseen); without it, the first statement on a
    dropped connection fails, and SQLAlchemy then discards every connection the pool held."""
    parsed = _parse(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            folder = Path(parsed.database).expanduser().absolute().parent
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise SiteDatabaseError(
                    f"cannot create the folder of site database {shown_url(parsed)} "
                    f"({err.strerror}): choose a writable path in PLASTICS_DATABASE_URL"
                ) from None
        engine = create_engine(parsed, connect_args={"timeout": SQLITE_BUSY_S})
        _sqlite_events(engine)
        return engine
    if backend == "postgresql":
        if "+" not in parsed.drivername:  # psycopg2 (installed with the project), whatever the default
            parsed = parsed.set(drivername="postgresql+psycopg2")
        return create_engine(
            parsed, pool_pre_ping=pre_ping, connect_args={"connect_timeout": CONNECT_TIMEOUT_S}
        )
    raise SiteDatabaseError(
        f"unsupported site database {shown_url(parsed)!r}: use sqlite:///FILE or "
        "postgresql://USER:PASSWORD@HOST:PORT/DB"
    )


def _alembic_config(connection: Connection) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def migrate(engine: Engine, revision: str = "head") -> None:
    """Upgrade the schema to ``revision`` (Alembic), serialized across processes (SQLite: the write
    lock; PostgreSQL: an advisory lock). Raises :class:`SiteDatabaseError` (one line)."""
    from alembic import command

    try:
        with engine.connect().execution_options(**IMMEDIATE) as conn:
            if engine.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
            command.upgrade(_alembic_config(conn), revision)
            conn.commit()
    except SQLAlchemyError as err:
        raise SiteDatabaseError(
            f"site database {shown_url(engine.url)} is unusable ({describe(err, engine.url)}): "
            "check PLASTICS_DATABASE_URL and that the database is running"
        ) from None


def current_revision(engine: Engine) -> str | None:
    """The schema's Alembic revision, None for an empty database."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def check_reachable(url: str) -> None:
    """Connect once to a server database (PostgreSQL; at most :data:`CONNECT_TIMEOUT_S` seconds)
    and run ``SELECT 1``; :class:`SiteDatabaseError` in one line, password removed, when the URL is
    unusable, the server unreachable or the credentials refused. A SQLite file needs no server:
    only its URL is checked."""
    engine = create_database_engine(url)
    try:
        if engine.dialect.name == "sqlite":
            return
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except SQLAlchemyError as err:
        raise SiteDatabaseError(
            f"site database {shown_url(url)} is unreachable ({describe(err, url)}): start it or "
            "correct PLASTICS_DATABASE_URL (or the database resource's url)"
        ) from None
    finally:
        engine.dispose()


def open_database(url: str, *, upgrade: bool = True, pre_ping: bool = True) -> Engine:
    """An Engine on the site database at ``url``, its schema upgraded to the latest revision
    (``pre_ping``: as :func:`create_database_engine`).

    Raises :class:`SiteDatabaseError` in one line (password removed) when the URL is unusable or
    the database unreachable.
    """
    engine = create_database_engine(url, pre_ping=pre_ping)
    if upgrade:
        try:
            migrate(engine)
        except SiteDatabaseError:
            engine.dispose()
            raise
    return engine


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """One transaction for a publication: committed when the block ends, rolled back on any
    error (the database is left as it was). SQLite takes its write lock at BEGIN."""
    with engine.connect().execution_options(**IMMEDIATE) as conn, conn.begin():
        yield conn


def env_database_url(store_root: str) -> str:
    """``$PLASTICS_DATABASE_URL`` (read now) or :func:`default_database_url` of ``store_root``."""
    return os.environ.get("PLASTICS_DATABASE_URL") or default_database_url(store_root)
