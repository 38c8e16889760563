"""Verdicts in the site database (SQLite and, with .ci/with-services, PostgreSQL + PostGIS): append-only
history, latest verdict, the review queue, and rejected sites detected again in the next window."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

from plastics_core.sitedb.engine import current_revision, open_database
from plastics_core.sitedb.verdicts import (
    VerdictError,
    all_verdicts,
    history,
    precision_counts,
    review_queue,
    set_verdict,
    site_reviews,
)
from tests import _review_data as d
from tests._sitedb import BACKENDS, database_url

W1, W2 = "2024-01-01", "2024-04-01"
FIRST = {"temesi": 0.90, "north": 0.70, "west": 0.55}


@pytest.fixture(params=BACKENDS)
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    for url in database_url(request.param, tmp_path):
        eng = open_database(url)
        yield eng
        eng.dispose()


def test_migrations_reach_the_verdicts_revision(engine: Engine) -> None:
    from alembic.script import ScriptDirectory

    from plastics_core.sitedb.engine import _MIGRATIONS

    script = ScriptDirectory(str(_MIGRATIONS))
    head = script.get_current_head()
    assert current_revision(engine) == head
    assert "sitedb_0002" in {r.revision for r in script.iterate_revisions(head, "base")}


def test_verdicts_are_appended_and_the_latest_counts(engine: Engine) -> None:
    d.publish(engine, {W1: d.enriched(FIRST)})
    queue = review_queue(engine, d.ROI)
    assert [i.address for i in queue][0] == "TPA Temesi, Gianyar, Bali"  # highest score first
    assert [round(i.score, 2) for i in queue] == [0.90, 0.70, 0.55]
    assert {i.reason for i in queue} == {"unreviewed"}
    top = queue[0].site_id
    t0 = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    set_verdict(engine, d.ROI, top, "unsure", "ana", "looks like a quarry?", now=t0)
    second = set_verdict(engine, d.ROI, top, "confirm", "budi", "landfill, visible in 2023", now=t0)
    assert second.score == pytest.approx(0.90) and second.window == dt.date.fromisoformat(W1)
    with engine.connect() as conn:
        past = history(conn, d.ROI, top)
    assert [(v.verdict, v.reviewer) for v in past] == [("unsure", "ana"), ("confirm", "budi")]
    assert past[0].created_at == t0
    assert [i.site_id for i in review_queue(engine, d.ROI)] == [q.site_id for q in queue[1:]]
    assert precision_counts(engine, d.ROI) == {
        "confirm": 1,
        "reject": 0,
        "unsure": 0,
        "unreviewed": 2,
        "sites": 3,
    }
    reviewed = {i.site_id: i for i in site_reviews(engine, d.ROI)}
    assert reviewed[top].reason == "reviewed" and reviewed[top].latest is not None
    assert reviewed[top].latest.verdict == "confirm"


def test_the_database_refuses_to_rewrite_history(engine: Engine) -> None:
    d.publish(engine, {W1: d.enriched(FIRST)})
    top = review_queue(engine, d.ROI)[0].site_id
    set_verdict(engine, d.ROI, top, "reject", "ana")
    for statement in ("UPDATE verdicts SET verdict = 'confirm'", "DELETE FROM verdicts"):
        with pytest.raises(SQLAlchemyError, match="append-only"), engine.begin() as conn:
            conn.execute(text(statement))
    with engine.connect() as conn:
        assert [v.verdict for v in all_verdicts(conn, d.ROI)] == ["reject"]


def test_rejected_site_detected_again_stays_out_unless_its_score_rises(engine: Engine) -> None:
    first = {W1: d.enriched(FIRST)}
    d.publish(engine, first)
    temesi = d.temesi_registry_id(first)
    set_verdict(engine, d.ROI, temesi, "reject", "ana", "a quarry")
    assert temesi not in [i.site_id for i in review_queue(engine, d.ROI)]
    # the next window detects it again, its blob centre moved by ~100 m (another H3 cell), score +0.05
    again = {**first, W2: d.enriched({**FIRST, "temesi": 0.95, "east": 0.60}, jitter=0.001)}
    d.publish(engine, again)
    queue = review_queue(engine, d.ROI, margin=0.1)
    assert temesi not in [i.site_id for i in queue]
    assert "east" in [i.address or "east" for i in queue]  # a site new in W2 is queued
    # with a smaller margin the rise (0.90 -> 0.95) re-queues it, with the reason
    requeued = {i.site_id: i for i in review_queue(engine, d.ROI, margin=0.05)}
    assert requeued[temesi].reason == "score rose from 0.900 to 0.950 since it was rejected"


def test_bad_verdicts_are_one_line_errors(engine: Engine) -> None:
    d.publish(engine, {W1: d.enriched(FIRST)})
    top = review_queue(engine, d.ROI)[0].site_id
    cases = [
        ((d.ROI, top, "maybe", "ana"), "not one of confirm, reject, unsure"),
        ((d.ROI, top, "confirm", "  "), "reviewer name"),
        ((d.ROI, "8f0000000000000", "confirm", "ana"), "not a published site"),
        (("nowhere", top, "confirm", "ana"), "no published sites"),
        (("'; DROP TABLE verdicts; --", top, "confirm", "ana"), "no published sites"),
    ]
    for args, match in cases:
        with pytest.raises(VerdictError, match=match) as err:
            set_verdict(engine, *args)
        assert "\n" not in str(err.value)
    with pytest.raises(VerdictError, match="keep it to 2000"):
        set_verdict(engine, d.ROI, top, "confirm", "ana", "x" * 2001)
    with pytest.raises(VerdictError, match="outside"):
        review_queue(engine, d.ROI, margin=float("nan"))
    assert len(review_queue(engine, d.ROI)) == 3  # nothing was recorded, the table still exists


def test_hostile_notes_are_stored_verbatim(engine: Engine) -> None:
    d.publish(engine, {W1: d.enriched(FIRST)})
    top = review_queue(engine, d.ROI)[0].site_id
    note = "</textarea><script>alert(1)</script> ${7*7} `x` '; DROP TABLE verdicts; --"
    set_verdict(engine, d.ROI, top, "reject", "ana", note)
    with engine.connect() as conn:
        assert history(conn, d.ROI, top)[-1].note == note


def test_nothing_published_is_an_empty_queue(engine: Engine) -> None:
    assert review_queue(engine, "empty") == [] and site_reviews(engine, "empty") == []
