"""A site's ``/sites`` Feature, rendered once when the site is written (``sites.page_feature``).

``/sites`` serves pages of up to 1,000 Point Features. Everything in a feature but two members is
fixed when the site is published, so it is rendered to JSON then, and a request only appends what
depends on it: the site's latest review verdict and its ``ref`` URL (which names the server).

The stored text is the Feature as orjson writes it, with ``geometry`` before ``properties`` and
the closing braces of ``properties`` and of the Feature left off::

    {"type":"Feature","id":"8972...","geometry":{"type":"Point","coordinates":[lon,lat]},
     "properties":{"id":...,"first_detected":"2021-01-01",...,"address":"..."

:func:`plastics_core.api.sites.feature_page_body` closes it with ``,"verdict":...,"ref":"..."}}``.
Coordinates are EPSG:4326 lon/lat degrees; dates ISO 8601; a score or area that is not a finite
number is ``null``. A change of this format needs a migration that renders the stored rows again
(as ``sitedb_0003`` rendered them first).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy import Connection

#: site columns a feature is rendered from
FEATURE_SOURCE = (
    "site_id",
    "roi",
    "run_hash",
    "name",
    "status",
    "first_window",
    "last_window",
    "n_windows",
    "lon",
    "lat",
    "score_latest",
    "patch_latest",
    "score_max",
    "area_km2_latest",
    "address",
)
#: the text that closes a stored feature after its request-dependent members
CLOSE = "}}"


def render(site: Mapping[str, Any]) -> str:
    """The stored ``/sites`` Feature of ``site`` (a mapping with :data:`FEATURE_SOURCE`; dates as
    ``datetime.date`` or ISO text): JSON text without its last two closing braces."""
    doc = {
        "type": "Feature",
        "id": site["site_id"],
        "geometry": {"type": "Point", "coordinates": [site["lon"], site["lat"]]},
        "properties": {
            "id": site["site_id"],
            "first_detected": site["first_window"],
            "last_detected": site["last_window"],
            "roi": site["roi"],
            "run_hash": site["run_hash"],
            "name": site["name"],
            "status": site["status"],
            "n_windows": site["n_windows"],
            "score": site["score_latest"],
            "patch_score": site["patch_latest"],
            "score_max": site["score_max"],
            "area_km2": site["area_km2_latest"],
            "address": site["address"],
        },
    }
    text = orjson.dumps(doc).decode()
    assert text.endswith(CLOSE)  # properties last: its brace, then the Feature's
    return text[: -len(CLOSE)]


def render_missing(conn: Connection, batch: int = 2000) -> int:
    """Render ``page_feature`` for every site that has none (in batches of ``batch`` rows, on
    ``conn``'s transaction); the number rendered. Used by the migration that added the column
    and by bulk loads that write ``sites`` without :func:`plastics_core.sitedb.publish.publish_roi`."""
    sites = sa.table(
        "sites",
        sa.column("id", sa.Integer),
        sa.column("page_feature", sa.Text),
        *(sa.column(c, sa.Date if c.endswith("_window") else None) for c in FEATURE_SOURCE),
    )
    update = (
        sa.update(sites).where(sites.c.id == sa.bindparam("_id")).values(page_feature=sa.bindparam("_text"))
    )
    done, last = 0, -1
    while True:
        rows = conn.execute(
            sa.select(sites.c.id, *(sites.c[c] for c in FEATURE_SOURCE))
            .where(sites.c.page_feature.is_(None), sites.c.id > last)
            .order_by(sites.c.id)
            .limit(batch)
        ).all()
        if not rows:
            return done
        conn.execute(update, [{"_id": r.id, "_text": render(r._asdict())} for r in rows])
        done, last = done + len(rows), rows[-1].id
