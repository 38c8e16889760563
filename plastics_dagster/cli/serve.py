"""``plastics serve``: the sites API and the stored preview pages over http (uvicorn).

The database is ``$PLASTICS_DATABASE_URL`` or the embedded ``sites.sqlite`` beside the store
(where ``plastics run`` / ``plastics demo`` publish); an unreachable database is one line (exit 2)
before the server starts. Binds 127.0.0.1 unless ``--host`` says otherwise. ``--workers N``
runs N server processes (uvicorn workers; default 1): each opens its own connection pool, so
N up to the number of CPU cores serves more concurrent clients (PostgreSQL, or SQLite in WAL
mode, where readers never block each other). ``--threads N`` (default 2) is how many requests
each process works on at once: the requests are short and CPU-bound, so a small number keeps
threads, pooled connections and database processes from contending for the cores.
"""

from __future__ import annotations

import click

_STORE_HELP = "Output store whose previews are served: folder [default: $PLASTICS_STORE or ./.plastics/store]"


def serve_banner(host: str, port: int, shown_database: str) -> str:
    """The line ``plastics serve`` prints before it starts."""
    shown_host = f"[{host}]" if ":" in host else host
    return (
        f"plastics serve: site database {shown_database}\n"
        f"  sites API  http://{shown_host}:{port}/sites?bbox=-180,180,-90,90   (OpenAPI: /docs, /openapi.json)\n"
        f"  previews   http://{shown_host}:{port}/preview/<roi>/<window>/<run-hash>.html\n"
        f"  review     http://{shown_host}:{port}/review   (verdicts need PLASTICS_API_USERS credentials)\n"
        "  Ctrl-C stops"
    )


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535), help="TCP port.")
@click.option("--store", help=_STORE_HELP)
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Server processes (uvicorn workers); up to the number of CPU cores serves more concurrent clients.",
)
@click.option(
    "--threads",
    default=4,  # plastics_core.api.app.DEFAULT_THREADS (not imported here: the CLI starts fast)
    show_default=True,
    type=click.IntRange(1, 256),
    help="Requests each server process works on at once (its threads; on PostgreSQL also its "
    "connections for /sites); the others wait their turn.",
)
@click.option(
    "--access-log/--no-access-log", default=True, show_default=True, help="Log one line per request."
)
def serve(host: str, port: int, store: str | None, workers: int, threads: int, access_log: bool) -> None:
    """Serve the site database (GPW's /sites API) and the preview pages of the store."""
    import os

    import uvicorn

    from plastics_core.api.app import SERVE_STORE_ENV, SERVE_THREADS_ENV, create_app
    from plastics_core.sitedb.engine import env_database_url, shown_url
    from plastics_dagster.cli._instance import store_location

    root = store_location(store)
    url = env_database_url(root)
    app = create_app(
        url, root, threads=threads
    )  # opens and migrates the database: SiteDatabaseError -> one line, exit 2
    click.echo(serve_banner(host, port, shown_url(url)))
    if workers == 1:
        uvicorn.run(app, host=host, port=port, log_level="info", server_header=False, access_log=access_log)
        return
    app.state.engine.dispose()  # each worker process opens its own (the database is migrated)
    os.environ[SERVE_STORE_ENV] = root
    os.environ[SERVE_THREADS_ENV] = str(threads)
    uvicorn.run(
        "plastics_core.api.app:app_from_environment",
        factory=True,
        workers=workers,
        timeout_worker_healthcheck=60,  # a worker busy on a loaded machine is not a hung one
        host=host,
        port=port,
        log_level="info",
        server_header=False,
        access_log=access_log,
    )


def browse_hint(store: str, roi: str, near: tuple[float, float], label: str) -> list[str]:
    """Lines telling how to browse what a run published: ``plastics serve`` and the URL of the
    ROI's published site nearest to ``near`` (lon, lat; EPSG:4326) named ``label``. Empty when the
    database holds no site of ``roi``."""
    import math

    from plastics_core.sitedb import queries
    from plastics_core.sitedb.engine import env_database_url, open_database

    engine = open_database(env_database_url(store))
    try:
        sites = queries.sites_in_bbox(engine, queries.BBox(-180, -90, 180, 90), limit=1000, roi=roi)
    finally:
        engine.dispose()
    if not sites:
        return []
    lon0, lat0 = near
    best = min(
        sites, key=lambda s: math.hypot((s["lon"] - lon0) * math.cos(math.radians(lat0)), s["lat"] - lat0)
    )
    from urllib.parse import quote

    return [
        f"published {len(sites)} site{'' if len(sites) == 1 else 's'} of {roi} to the site database; browse them with:",
        "  plastics serve",
        f"  then open http://127.0.0.1:8000/sites/{quote(best['site_id'], safe='')}  ({label})",
        f"  and review it at http://127.0.0.1:8000/review?roi={quote(roi, safe='')}",
    ]
