"""Read the latest review verdict of every site of an ROI, for outputs that show it (the site
registry, the preview map, ``plastics sites``).

:func:`read_site_verdicts` returns a plain dict ``detection or registry site id -> verdict``
(``confirm`` | ``reject`` | ``unsure``): every id a verdict was given to, plus every detection id
of a published site whose verdict was given to any of its ids (``sites.site_ids``), so a window's
own site id finds its site's verdict. The dict is ordered from the oldest verdict to the newest;
when a site's ids carry different verdicts, the newest counts
(:func:`plastics_core.method.site_registry.verdict_label`).

Reading never creates or migrates a database: no SQLite file yet, or a database without the
``verdicts`` table, gives an empty dict (every site ``unreviewed``).
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from sqlalchemy import inspect, select
from sqlalchemy.exc import SQLAlchemyError

from plastics_core.sitedb.engine import SiteDatabaseError, create_database_engine, describe, shown_url
from plastics_core.sitedb.schema import Site
from plastics_core.sitedb.verdicts import VerdictRecord, _ids, latest_verdicts, verdict_for


def _sqlite_file_missing(url: str) -> bool:
    """True for a SQLite URL whose database file does not exist yet (nothing was published)."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return False
    database = parsed.database or ""
    return database not in ("", ":memory:") and not Path(database).expanduser().exists()


def read_site_verdicts(url: str, roi: str) -> dict[str, str]:
    """``{site id: latest verdict}`` of ``roi`` in the database at ``url`` (see the module
    docstring), ordered oldest verdict first. Empty when the database or its verdicts do not exist.

    Raises :class:`~plastics_core.sitedb.engine.SiteDatabaseError` (one line, no password) when
    the database exists but cannot be read.
    """
    if _sqlite_file_missing(url):
        return {}
    engine = create_database_engine(url)
    try:
        with engine.connect() as conn:
            if not inspect(conn).has_table("verdicts"):
                return {}
            latest = latest_verdicts(conn, roi)
            if not latest:
                return {}
            found: dict[str, VerdictRecord] = dict(latest)
            sites = conn.execute(select(Site.site_id, Site.site_ids).where(Site.roi == roi))
            for site_id, site_ids in sites:
                ids = _ids(SimpleNamespace(site_id=site_id, site_ids=site_ids))
                rec = verdict_for(ids, latest)
                if rec is None:
                    continue
                for i in ids:
                    if i not in found or found[i].id < rec.id:
                        found[i] = rec
    except SQLAlchemyError as err:
        raise SiteDatabaseError(
            f"cannot read the review verdicts of ROI {roi!r} from {shown_url(url)}: {describe(err, url)}"
        ) from None
    finally:
        engine.dispose()
    ordered = sorted(found.items(), key=lambda item: (item[1].id, item[0]))
    return {site_id: rec.verdict for site_id, rec in ordered}
