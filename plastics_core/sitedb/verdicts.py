"""Review verdicts on published sites: append-only history, latest verdict, and the review queue.

A verdict is a reviewer's decision on one site of an ROI: ``confirm`` (a dump site), ``reject``
(not one: a quarry, a field...) or ``unsure``, with a note. Verdicts are keyed by ROI and the
registry's ``site_id``, not by run hash, so they hold across runs and windows: a site detected
again in a later window keeps its registry ``site_id`` (the id of its first detection), and a site
of another run matches a verdict given to any of its detection ids (``sites.site_ids``).

The table ``verdicts`` is append-only (the database refuses UPDATE and DELETE, see revision
``sitedb_0002``): a new verdict is a new row; the latest row of a site (highest ``id``) counts.
Each row records the site's latest pixel score (``score``, [0, 1]) and latest window when it was
given, so a rejected site whose score has since risen by at least ``margin`` returns to the queue
with that reason; other rejected, confirmed and unsure sites stay out of it.

The queue of an ROI (:func:`review_queue`) lists the sites of the ROI's latest published run that
need a look, highest latest score first: unreviewed sites, and rejected sites whose score rose.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Date, DateTime, Engine, Float, Integer, String, Text, func, insert, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Mapped, mapped_column

from plastics_core.errors import PlasticsError
from plastics_core.sitedb.engine import describe, write_transaction
from plastics_core.sitedb.schema import ID_MAX, NAME_MAX, Base, Run, Site

VERDICTS = ("confirm", "reject", "unsure")
#: default rise of the latest pixel score over the score at a reject that re-queues the site
DEFAULT_MARGIN = 0.1
NOTE_MAX = 2000
REVIEWER_MAX = 200


class VerdictError(PlasticsError):
    """A verdict cannot be recorded: unknown verdict, site or ROI, empty reviewer, note too long."""


class Verdict(Base):
    """One row of the append-only verdict history (``verdicts``)."""

    __tablename__ = "verdicts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    roi: Mapped[str] = mapped_column(String(NAME_MAX))
    site_id: Mapped[str] = mapped_column(String(ID_MAX))
    verdict: Mapped[str] = mapped_column(String(10))
    reviewer: Mapped[str] = mapped_column(String(REVIEWER_MAX))
    note: Mapped[str] = mapped_column(Text, default="")
    score: Mapped[float | None] = mapped_column(Float, nullable=True)
    window: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


_VERDICTS = Verdict.__table__
_SITES = Site.__table__


@dataclass(frozen=True)
class VerdictRecord:
    """A stored verdict. ``score``: the site's latest pixel score when it was given (None if unknown);
    ``window``: the site's latest detection window then; ``created_at``: UTC."""

    id: int
    roi: str
    site_id: str
    verdict: str
    reviewer: str
    note: str
    score: float | None
    window: dt.date | None
    created_at: dt.datetime

    def as_json(self) -> dict[str, Any]:
        """A JSON-ready dict (dates as ISO 8601 strings)."""
        return {
            "id": self.id,
            "roi": self.roi,
            "site_id": self.site_id,
            "verdict": self.verdict,
            "reviewer": self.reviewer,
            "note": self.note,
            "score": self.score,
            "window": self.window.isoformat() if self.window else None,
            "created_at": self.created_at.isoformat(),
        }


@dataclass(frozen=True)
class QueueItem:
    """A site waiting for review: its registry fields (``score`` = latest pixel score in [0, 1] or
    NaN, ``area_km2`` the latest contour area, ``lon``/``lat`` EPSG:4326), why it is queued
    (``unreviewed`` or ``score rose from X to Y since it was rejected``) and its latest verdict."""

    roi: str
    run_hash: str
    site_id: str
    score: float
    patch: float
    lon: float
    lat: float
    address: str
    status: str
    first_window: str
    last_window: str
    n_windows: int
    area_km2: float
    reason: str
    latest: VerdictRecord | None

    def as_json(self) -> dict[str, Any]:
        def num(v: float) -> float | None:
            return v if math.isfinite(v) else None

        return {
            "roi": self.roi,
            "run_hash": self.run_hash,
            "site_id": self.site_id,
            "score": num(self.score),
            "patch": num(self.patch),
            "lon": self.lon,
            "lat": self.lat,
            "address": self.address,
            "status": self.status,
            "first_window": self.first_window,
            "last_window": self.last_window,
            "n_windows": self.n_windows,
            "area_km2": num(self.area_km2),
            "reason": self.reason,
            "latest": self.latest.as_json() if self.latest else None,
        }


def _utc(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _record(row: Any) -> VerdictRecord:
    return VerdictRecord(
        id=int(row.id),
        roi=str(row.roi),
        site_id=str(row.site_id),
        verdict=str(row.verdict),
        reviewer=str(row.reviewer),
        note=str(row.note),
        score=row.score,
        window=row.window,
        created_at=_utc(row.created_at),
    )


def _num(value: Any) -> float:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return math.nan
    return f


def _ids(site: Any) -> list[str]:
    """The site's own id first, then the ids of its detections (JSON list ``site_ids``)."""
    try:
        extra = [str(i) for i in json.loads(site.site_ids or "[]")]
    except (TypeError, ValueError):
        extra = []
    return [str(site.site_id), *(i for i in extra if i != str(site.site_id))]


def latest_run_hash(conn: Connection, roi: str) -> str | None:
    """The run hash of the ROI's latest publication (highest ``runs.sequence``), None if none."""
    row = conn.execute(
        select(Run.run_hash)
        .where(Run.roi == roi)
        .order_by(Run.sequence.desc(), Run.published_at.desc())
        .limit(1)
    ).first()
    return str(row[0]) if row else None


def _verdict_rows(conn: Connection, roi: str, site_ids: Iterable[str] | None = None) -> list[VerdictRecord]:
    query = select(_VERDICTS).where(Verdict.roi == roi)
    if site_ids is not None:
        query = query.where(Verdict.site_id.in_(list(site_ids)))
    return [_record(r) for r in conn.execute(query.order_by(Verdict.id))]


def latest_verdicts(conn: Connection, roi: str) -> dict[str, VerdictRecord]:
    """site_id -> its latest verdict, for every site of ``roi`` that has one."""
    latest: dict[str, VerdictRecord] = {}
    for rec in _verdict_rows(conn, roi):
        latest[rec.site_id] = rec  # ordered by id: the last one wins
    return latest


def verdict_for(ids: Sequence[str], latest: Mapping[str, VerdictRecord]) -> VerdictRecord | None:
    """The latest verdict given to any of a site's ``ids`` (its registry id and detection ids)."""
    found = [latest[i] for i in ids if i in latest]
    return max(found, key=lambda r: r.id) if found else None


def history(conn: Connection, roi: str, site_id: str) -> list[VerdictRecord]:
    """Every verdict of the site, oldest first (by its registry id only)."""
    return _verdict_rows(conn, roi, [site_id])


def all_verdicts(conn: Connection, roi: str | None = None) -> list[VerdictRecord]:
    """The whole verdict history (of ``roi``, or of every ROI), oldest first."""
    query = select(_VERDICTS) if roi is None else select(_VERDICTS).where(Verdict.roi == roi)
    return [_record(r) for r in conn.execute(query.order_by(Verdict.id))]


def queue_reason(score: float, latest: VerdictRecord | None, margin: float) -> str | None:
    """Why a site with latest score ``score`` and verdict ``latest`` is in the queue, None if it is not:
    ``unreviewed``; or a rejected site whose score rose by at least ``margin`` since the reject."""
    if latest is None:
        return "unreviewed"
    if latest.verdict != "reject":
        return None
    before = _num(latest.score)
    if math.isfinite(score) and math.isfinite(before) and score >= before + margin - 1e-12:
        return f"score rose from {before:.3f} to {score:.3f} since it was rejected"
    return None


def _sites(conn: Connection, roi: str, run_hash: str) -> list[Any]:
    return list(conn.execute(select(_SITES).where(Site.roi == roi, Site.run_hash == run_hash)))


def _item(site: Any, reason: str, latest: VerdictRecord | None) -> QueueItem:
    def day(v: Any) -> str:
        return v.isoformat() if isinstance(v, dt.date) else str(v or "")

    return QueueItem(
        roi=str(site.roi),
        run_hash=str(site.run_hash),
        site_id=str(site.site_id),
        score=_num(site.score_latest),
        patch=_num(site.patch_latest),
        lon=float(site.lon),
        lat=float(site.lat),
        address=str(site.address or ""),
        status=str(site.status),
        first_window=day(site.first_window),
        last_window=day(site.last_window),
        n_windows=int(site.n_windows or 0),
        area_km2=_num(site.area_km2_latest),
        reason=reason,
        latest=latest,
    )


def _rank(item: QueueItem) -> tuple[float, str]:
    return (-item.score if math.isfinite(item.score) else math.inf, item.site_id)


def _sites_with_verdicts(
    engine: Engine, roi: str, run_hash: str | None
) -> list[tuple[Any, VerdictRecord | None]]:
    """Each site row of the ROI's run ``run_hash`` (None: its latest publication) paired with the latest
    verdict given to any of its ids (None when unreviewed), in database order. Empty when nothing is
    published."""
    with engine.connect() as conn:
        run = run_hash or latest_run_hash(conn, roi)
        if run is None:
            return []
        latest = latest_verdicts(conn, roi)
        return [(site, verdict_for(_ids(site), latest)) for site in _sites(conn, roi, run)]


def site_reviews(
    engine: Engine, roi: str, margin: float = DEFAULT_MARGIN, run_hash: str | None = None
) -> list[QueueItem]:
    """Every site of the ROI's run (default: its latest publication) with its latest verdict and
    ``reason`` (the queue reason, or ``reviewed``), highest score first. Empty when nothing is published."""
    reviews = []
    for site, verdict in _sites_with_verdicts(engine, roi, run_hash):
        reason = queue_reason(_num(site.score_latest), verdict, margin) or "reviewed"
        reviews.append(_item(site, reason, verdict))
    return sorted(reviews, key=_rank)


def review_queue(
    engine: Engine, roi: str, margin: float = DEFAULT_MARGIN, run_hash: str | None = None
) -> list[QueueItem]:
    """The sites of ``roi`` to review (see the module docstring), highest latest score first."""
    if not (math.isfinite(margin) and 0.0 <= margin <= 1.0):
        raise VerdictError(f"review margin {margin} is outside [0, 1]: give a score rise such as 0.1")
    queue = []
    for site, verdict in _sites_with_verdicts(engine, roi, run_hash):
        reason = queue_reason(_num(site.score_latest), verdict, margin)
        if reason is not None:
            queue.append(_item(site, reason, verdict))
    return sorted(queue, key=_rank)


def _clean_reviewer(reviewer: str) -> str:
    name = " ".join(str(reviewer).split())
    if not name or len(name) > REVIEWER_MAX:
        raise VerdictError(
            f"reviewer name must be 1-{REVIEWER_MAX} characters: set who reviews (e.g. --reviewer NAME)"
        )
    return name


def set_verdict(
    engine: Engine,
    roi: str,
    site_id: str,
    verdict: str,
    reviewer: str,
    note: str = "",
    *,
    now: dt.datetime | None = None,
) -> VerdictRecord:
    """Append a verdict on ``site_id`` of ``roi`` (a site of the ROI's latest publication) and return it.

    Raises :class:`VerdictError` (one line) for an unknown verdict, site or ROI, an empty reviewer or
    a note longer than :data:`NOTE_MAX` characters. The note is stored as given (plain text)."""
    if verdict not in VERDICTS:
        raise VerdictError(f"verdict {verdict!r} is not one of {', '.join(VERDICTS)}")
    who = _clean_reviewer(reviewer)
    text = str(note)
    if len(text) > NOTE_MAX:
        raise VerdictError(f"the note has {len(text)} characters: keep it to {NOTE_MAX}")
    when = _utc(now or dt.datetime.now(dt.UTC))
    try:
        with write_transaction(engine) as conn:
            run = latest_run_hash(conn, roi)
            if run is None:
                raise VerdictError(
                    f"ROI {roi!r} has no published sites: publish it first (materialize "
                    "published_sites, or `plastics demo`)"
                )
            site = conn.execute(
                select(_SITES).where(Site.roi == roi, Site.run_hash == run, Site.site_id == site_id)
            ).first()
            if site is None:
                raise VerdictError(
                    f"site {site_id!r} is not a published site of ROI {roi!r}: "
                    f"`plastics review list --roi {roi} --all` shows its sites"
                )
            values = {
                "roi": roi,
                "site_id": site_id,
                "verdict": verdict,
                "reviewer": who,
                "note": text,
                "score": None if not math.isfinite(_num(site.score_latest)) else float(site.score_latest),
                "window": site.last_window,
                "created_at": when,
            }
            new_id = conn.execute(insert(Verdict).values(**values).returning(Verdict.id)).scalar_one()
    except SQLAlchemyError as err:
        raise VerdictError(
            f"the verdict was not recorded ({describe(err, engine.url)}): check the site database and retry"
        ) from None
    return VerdictRecord(id=int(new_id), **values)


def precision_counts(engine: Engine, roi: str, run_hash: str | None = None) -> dict[str, int]:
    """Latest verdicts of the sites of the ROI's run: ``{"confirm": n, "reject": n, "unsure": n,
    "unreviewed": n, "sites": n}``."""
    counts = {"confirm": 0, "reject": 0, "unsure": 0, "unreviewed": 0, "sites": 0}
    for _site, verdict in _sites_with_verdicts(engine, roi, run_hash):
        counts["sites"] += 1
        counts[verdict.verdict if verdict else "unreviewed"] += 1
    return counts


def verdict_count(engine: Engine) -> int:
    """How many verdicts are stored (every ROI)."""
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(Verdict)).scalar_one())


def alert_sites(
    engine: Engine, roi: str, run_hash: str | None = None, margin: float = DEFAULT_MARGIN
) -> list[QueueItem]:
    """The queued sites a publication of ``roi`` brought: new sites (detected only in the latest
    window) nobody has reviewed, and rejected sites whose score rose by ``margin``; highest score
    first. A rejected site detected again without that rise is not among them."""
    return [
        i
        for i in review_queue(engine, roi, margin, run_hash)
        if (i.reason == "unreviewed" and i.status == "new") or i.reason.startswith("score rose")
    ]


EXPORT_COLUMNS = ["id", "roi", "site_id", "verdict", "reviewer", "note", "score", "window", "created_at"]


def verdicts_csv(records: Sequence[VerdictRecord]) -> str:
    """Verdicts as CSV text (:data:`EXPORT_COLUMNS`, one row per verdict); text cells that a
    spreadsheet would read as a formula get a leading ``'``."""
    import csv
    import io

    from plastics_core.storage.csv_safe import neutralize_cell

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(EXPORT_COLUMNS)
    for rec in records:
        row = rec.as_json()
        writer.writerow(
            [
                neutralize_cell(row[c]) if isinstance(row[c], str) else ("" if row[c] is None else row[c])
                for c in EXPORT_COLUMNS
            ]
        )
    return buf.getvalue()


def attach_verdicts(engine: Engine, sites: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``sites`` (dicts with ``roi``, ``site_id`` and ``site_ids``, as the site queries return them),
    each given ``verdict``: its latest verdict (``confirm`` | ``reject`` | ``unsure``) or None.

    One query for the whole page: the verdicts of these ROIs given to any of these sites' ids."""
    from types import SimpleNamespace

    if not sites:
        return sites
    ids = [_ids(SimpleNamespace(site_id=s["site_id"], site_ids=s.get("site_ids"))) for s in sites]
    rois = sorted({str(s["roi"]) for s in sites})
    wanted = sorted({i for site_ids in ids for i in site_ids})
    latest: dict[tuple[str, str], VerdictRecord] = {}
    with engine.connect() as conn:
        query = select(_VERDICTS).where(Verdict.roi.in_(rois), Verdict.site_id.in_(wanted))
        for row in conn.execute(query.order_by(Verdict.id)):
            rec = _record(row)
            latest[(rec.roi, rec.site_id)] = rec  # ordered by id: the last one wins
    for site, site_ids in zip(sites, ids, strict=True):
        roi = str(site["roi"])
        per_id = {i: latest[(roi, i)] for i in site_ids if (roi, i) in latest}
        found = verdict_for(site_ids, per_id)
        site["verdict"] = found.verdict if found else None
    return sites


def review_item(engine: Engine, roi: str, site_id: str, margin: float = DEFAULT_MARGIN) -> QueueItem | None:
    """One site of the ROI's latest publication with its latest verdict and ``reason`` (as
    :func:`site_reviews`), None when it is not published there."""
    with engine.connect() as conn:
        run = latest_run_hash(conn, roi)
        if run is None:
            return None
        site = conn.execute(
            select(_SITES).where(Site.roi == roi, Site.run_hash == run, Site.site_id == site_id)
        ).first()
        if site is None:
            return None
        ids = _ids(site)
        latest = {r.site_id: r for r in _verdict_rows(conn, roi, ids)}
    verdict = verdict_for(ids, latest)
    return _item(site, queue_reason(_num(site.score_latest), verdict, margin) or "reviewed", verdict)
