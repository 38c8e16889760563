"""``plastics review list | set | export``: review published sites from scripts.

The same verdicts as the review page of ``plastics serve`` (``/review``), in the site database
(``--database`` or ``$PLASTICS_DATABASE_URL``, default the SQLite file beside the store):

    plastics review list --roi NAME [--all] [--margin 0.1] [--json]
    plastics review set --roi NAME SITE_ID confirm|reject|unsure [--note TEXT] [--reviewer NAME]
    plastics review export [--roi NAME] [--format csv|json] [-o FILE]
"""

from __future__ import annotations

import json
import math
import os
import sys
from typing import Any

import click

from plastics_dagster.cli._instance import open_store

_STORE_HELP = "Output store: folder or s3://bucket/prefix [default: $PLASTICS_STORE or ./.plastics/store]"
_DB_HELP = "Site database URL [default: $PLASTICS_DATABASE_URL or sites.sqlite beside the store]"
_MARGIN_HELP = "Score rise since a reject that returns a site to the queue."


def _engine(database: str | None, store: str | None) -> Any:
    from plastics_core.sitedb.engine import env_database_url, open_database

    return open_database(database or env_database_url(str(open_store(store))))


def _fmt(value: float, spec: str) -> str:
    return format(value, spec) if math.isfinite(value) else "-"


@click.group("review")
def review() -> None:
    """Review published sites: list the queue, record verdicts, export them."""


@review.command("list")
@click.option("--roi", required=True, help="ROI name.")
@click.option(
    "--all",
    "show_all",
    is_flag=True,
    help="Every published site with its latest verdict, not only the queue.",
)
@click.option(
    "--margin", type=click.FloatRange(0.0, 1.0), default=None, help=_MARGIN_HELP + " [default: 0.1]"
)
@click.option("--json", "as_json", is_flag=True, help="JSON lines instead of a table.")
@click.option("--database", help=_DB_HELP)
@click.option("--store", help=_STORE_HELP)
def list_queue(
    roi: str, show_all: bool, margin: float | None, as_json: bool, database: str | None, store: str | None
) -> None:
    """The review queue of ROI: unreviewed sites (and rejected ones whose score rose), highest score first."""
    from plastics_core.sitedb.verdicts import DEFAULT_MARGIN, review_queue, site_reviews

    engine = _engine(database, store)
    try:
        m = DEFAULT_MARGIN if margin is None else margin
        items = site_reviews(engine, roi, m) if show_all else review_queue(engine, roi, m)
    finally:
        engine.dispose()
    if as_json:
        for item in items:
            click.echo(json.dumps(item.as_json(), sort_keys=True))
        return
    if not items:
        click.echo(f"no site of ROI {roi} {'is published' if show_all else 'waits for review'}")
        return
    for item in items:
        verdict = item.latest.verdict if item.latest else "-"
        address = " ".join(item.address.split())[:40]
        click.echo(
            f"{item.site_id}  score {_fmt(item.score, '.3f')}  {item.status:<10}  last {item.last_window}  "
            f"verdict {verdict:<7}  {item.reason}  {address}".rstrip()
        )
    click.echo(f"{len(items)} site{'' if len(items) == 1 else 's'}")


@review.command("set")
@click.argument("site_id")
@click.argument("verdict", type=click.Choice(["confirm", "reject", "unsure"]))
@click.option("--roi", required=True, help="ROI name.")
@click.option("--note", default="", help="Why (plain text, at most 2000 characters).")
@click.option("--reviewer", default=None, help="Who decides [default: $PLASTICS_REVIEWER, else $USER].")
@click.option("--database", help=_DB_HELP)
@click.option("--store", help=_STORE_HELP)
def set_cmd(
    site_id: str,
    verdict: str,
    roi: str,
    note: str,
    reviewer: str | None,
    database: str | None,
    store: str | None,
) -> None:
    """Record VERDICT on SITE_ID of ROI (appended to its history; the latest counts)."""
    from plastics_core.sitedb.verdicts import set_verdict

    who = reviewer or os.environ.get("PLASTICS_REVIEWER") or os.environ.get("USER") or ""
    engine = _engine(database, store)
    try:
        rec = set_verdict(engine, roi, site_id, verdict, who, note)
    finally:
        engine.dispose()
    score = "-" if rec.score is None else f"{rec.score:.3f}"
    click.echo(
        f"{rec.verdict} recorded for site {rec.site_id} of ROI {rec.roi} by {rec.reviewer} "
        f"(score {score}, verdict #{rec.id})"
    )


@review.command("export")
@click.option("--roi", default=None, help="Only this ROI [default: every ROI].")
@click.option("--format", "fmt", type=click.Choice(["csv", "json"]), default="csv", show_default=True)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, writable=True),
    default=None,
    help="File to write [default: stdout].",
)
@click.option("--database", help=_DB_HELP)
@click.option("--store", help=_STORE_HELP)
def export(roi: str | None, fmt: str, output: str | None, database: str | None, store: str | None) -> None:
    """The whole verdict history (every verdict, oldest first) as CSV or JSON."""
    from plastics_core.sitedb.verdicts import all_verdicts, verdicts_csv

    engine = _engine(database, store)
    try:
        with engine.connect() as conn:
            records = all_verdicts(conn, roi)
    finally:
        engine.dispose()
    if fmt == "json":
        text = json.dumps([r.as_json() for r in records], indent=1, ensure_ascii=False) + "\n"
    else:
        text = verdicts_csv(records)
    if output is None:
        sys.stdout.write(text)
        return
    from pathlib import Path

    from plastics_core.storage.atomic import write_bytes

    write_bytes(text.encode("utf-8"), Path(output))
    click.echo(f"{len(records)} verdict{'' if len(records) == 1 else 's'} written to {output}", err=True)
