"""The sites API (FastAPI): GPW's ``/sites`` contract over the site database, served by ``plastics serve``.

:func:`plastics_core.api.app.create_app` builds the application; routers read the database
through :func:`plastics_core.api.deps.get_engine`. Writes need credentials from the environment
(:func:`plastics_core.api.auth.require_writer`).
"""
