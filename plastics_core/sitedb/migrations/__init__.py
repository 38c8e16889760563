"""Alembic migrations of the site database (applied by :func:`plastics_core.sitedb.engine.migrate`)."""
