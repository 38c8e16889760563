"""The site database as a Dagster resource (:class:`SiteDatabase`).

One setting, the SQLAlchemy URL: ``url`` in run config, e.g. ``SiteDatabase(url=EnvVar("PLASTICS_DATABASE_URL"))``
in a deployment's definitions, or left empty: then ``$PLASTICS_DATABASE_URL`` read when the
resource is used, else the embedded SQLite file beside the store's local root
(:func:`plastics_core.sitedb.engine.default_database_url`). The URL (and its password) is never
written to logs or metadata: :meth:`SiteDatabase.shown` is what they show.
"""

from __future__ import annotations

import os
from typing import Any

from dagster import ConfigurableResource
from pydantic import Field

DATABASE_URL_ENV = "PLASTICS_DATABASE_URL"


class SiteDatabase(ConfigurableResource):  # type: ignore[type-arg]
    """Where ``published_sites`` writes and ``plastics serve`` reads: SQLite file or PostgreSQL + PostGIS."""

    url: str = Field(
        default="",
        description="SQLAlchemy URL (sqlite:///FILE or postgresql://USER:PASSWORD@HOST:PORT/DB); "
        "'' = $PLASTICS_DATABASE_URL or sites.sqlite beside the store",
    )

    def resolved_url(self, store_root: str) -> str:
        """The URL to open: ``url``, else $PLASTICS_DATABASE_URL (read now), else SQLite beside ``store_root``."""
        from plastics_core.sitedb.engine import default_database_url

        return self.url or os.environ.get(DATABASE_URL_ENV, "") or default_database_url(store_root)

    def shown(self, store_root: str) -> str:
        """The resolved URL without its password (for logs and metadata)."""
        from plastics_core.sitedb.engine import shown_url

        return shown_url(self.resolved_url(store_root))

    def open(self, store_root: str) -> Any:
        """A SQLAlchemy Engine on the database, schema migrated (SiteDatabaseError: one line)."""
        from plastics_core.sitedb.engine import open_database

        return open_database(self.resolved_url(store_root))
