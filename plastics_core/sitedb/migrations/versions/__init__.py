"""Alembic revisions of the site database, oldest first (see ``../README``)."""
