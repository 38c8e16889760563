"""Alembic environment of the site database: runs on the connection the caller passes in
``config.attributes["connection"]`` (see :func:`plastics_core.sitedb.engine.migrate`)."""

from alembic import context

from plastics_core.sitedb.schema import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
