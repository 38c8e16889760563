"""The site database: every published site, detection, contour and run of the graph.

One schema (:mod:`plastics_core.sitedb.schema`), two backends: an embedded SQLite file (the
default, beside the store) and PostgreSQL 15 + PostGIS 3 for deployments, selected by one URL.
Alembic migrations (:mod:`plastics_core.sitedb.migrations`) are applied when a database is
opened (:func:`plastics_core.sitedb.engine.open_database`). Writes go through
:func:`plastics_core.sitedb.publish.publish_roi` (which also renders each site's ``/sites`` Feature:
:mod:`plastics_core.sitedb.page_feature`), reads through :mod:`plastics_core.sitedb.queries` (and,
for the sites API's ``/sites`` on PostgreSQL, :mod:`plastics_core.sitedb.async_pages`).
"""

from plastics_core.sitedb.engine import SiteDatabaseError, open_database

__all__ = ["SiteDatabaseError", "open_database"]
