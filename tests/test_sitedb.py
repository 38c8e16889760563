"""The site database on both backends (SQLite file; PostgreSQL + PostGIS from .ci/with-services):
upserts, one-transaction publication, concurrency, run hashes, migrations, hostile values, errors."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import socket
import threading
from typing import Any

import pytest
from sqlalchemy import Engine, select, text

from plastics_core.errors import PlasticsError
from plastics_core.sitedb import queries
from plastics_core.sitedb.engine import (
    SiteDatabaseError,
    create_database_engine,
    current_revision,
    migrate,
    open_database,
)
from plastics_core.sitedb.publish import RunInfo, publish_roi
from plastics_core.sitedb.schema import Contour, Detection, Run, Site, table
from tests._sitedb import registry_inputs

WINDOWS = ("2021-01-01", "2021-04-01", "2021-07-01")
EVERYWHERE = queries.BBox(-180, -90, 180, 90)


def dump(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the first revision's tables (geometry as text), in a stable order."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    with engine.connect() as conn:
        for model in (Run, Site, Detection, Contour):
            tbl = table(model)
            cols = [c for c in tbl.c if c.name not in ("geom", "page_feature")]  # later revision
            rows = conn.execute(select(*cols).order_by(*tbl.primary_key.columns)).all()
            out[tbl.name] = [tuple(r) for r in rows]
        for model in (Site, Contour):
            tbl = table(model)
            geom = "ST_AsText(geom)" if engine.dialect.name == "postgresql" else "hex(geom)"
            out[f"{tbl.name}.geom"] = [
                tuple(r) for r in conn.execute(text(f"SELECT id, {geom} FROM {tbl.name} ORDER BY id"))
            ]  # fixed identifiers only
    return out


def run(roi: str = "bali", run_hash: str = "a1b2c3d4e5f6") -> RunInfo:
    return RunInfo(
        run_hash=run_hash,
        roi=roi,
        params={"pred_threshold": 0.6},
        model_checksums={"m": "0" * 64},
        imagery_source="synthetic",
        code_version="1",
    )


def test_republishing_adds_nothing_twice(sitedb_url: str) -> None:
    engine = open_database(sitedb_url)
    registry, per_window = registry_inputs(15, WINDOWS[:2])
    first = publish_roi(engine, run(), registry, per_window)
    n_det = sum(len(g) for g, _ in per_window.values())
    assert (first.counts["sites"].added, first.counts["detections"].added) == (len(registry), n_det)
    assert first.counts["contours"].added == n_det  # one square per detection and window date
    before = dump(engine)
    again = publish_roi(engine, run(), registry, per_window)
    assert again.metadata()["added"] == again.metadata()["updated"] == again.metadata()["removed"] == 0
    assert again.metadata()["unchanged"] == first.metadata()["added"]
    after = dump(engine)
    assert {k: v for k, v in after.items() if k != "runs"} == {k: v for k, v in before.items() if k != "runs"}
    # a third window: every site's row changes (status, last window...), new detections and contours only
    registry3, per_window3 = registry_inputs(15, WINDOWS)
    third = publish_roi(engine, run(), registry3, per_window3)
    new_det = len(per_window3[WINDOWS[2]][0])
    assert third.counts["detections"].added == new_det
    assert third.counts["detections"].unchanged == n_det
    assert third.counts["sites"].added + third.counts["sites"].updated + third.counts[
        "sites"
    ].unchanged == len(registry3)
    assert third.counts["sites"].updated > 0
    assert len(queries.sites_in_bbox(engine, EVERYWHERE, limit=1000)) == len(registry3)
    engine.dispose()


def test_a_failure_mid_publication_leaves_the_database_as_it_was(sitedb_url: str) -> None:
    engine = open_database(sitedb_url)
    registry, per_window = registry_inputs(10, WINDOWS[:1])
    publish_roi(engine, run(), registry, per_window)
    before = dump(engine)
    registry2, per_window2 = registry_inputs(10, WINDOWS[:2])

    def killed(conn: Any) -> None:  # every row is written; the process dies before COMMIT
        assert conn.execute(text("SELECT count(*) FROM detections")).scalar_one() > len(before["detections"])
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        publish_roi(engine, run(), registry2, per_window2, before_commit=killed)
    assert dump(engine) == before
    done = publish_roi(engine, run(), registry2, per_window2)  # the rerun completes
    assert done.counts["detections"].added == len(per_window2[WINDOWS[1]][0])
    engine.dispose()


def test_a_database_outage_during_publication_is_one_line_and_rolls_back(sitedb_url: str) -> None:
    if not sitedb_url.startswith("postgresql"):
        pytest.skip("a server outage needs the server backend (SQLite has no connection to lose)")
    engine = open_database(sitedb_url)
    registry, per_window = registry_inputs(10, WINDOWS[:1])
    publish_roi(engine, run(), registry, per_window)
    before = dump(engine)
    registry2, per_window2 = registry_inputs(10, WINDOWS[:2])

    def outage(conn: Any) -> None:  # the server ends this session (as a restart or failover does)
        conn.execute(text("SELECT pg_terminate_backend(pg_backend_pid())"))

    with pytest.raises(SiteDatabaseError) as info:
        publish_roi(engine, run(), registry2, per_window2, before_commit=outage)
    message = str(info.value)
    assert "\n" not in message and "nothing was written" in message and "rerun" in message
    password = engine.url.password
    assert password and str(password) not in message
    assert dump(engine) == before
    publish_roi(engine, run(), registry2, per_window2)
    assert len(dump(engine)["detections"]) > len(before["detections"])
    engine.dispose()


def test_two_rois_published_at_once_do_not_interfere(sitedb_url: str) -> None:
    engine = open_database(sitedb_url)
    inputs = {
        "bali": registry_inputs(40, WINDOWS, seed=1),
        "java": registry_inputs(40, WINDOWS, seed=2, lon0=110.0, lat0=-7.5),
    }
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def publish(roi: str) -> None:
        try:
            barrier.wait()
            publish_roi(engine, run(roi, f"{roi}00000000"[:12]), *inputs[roi])
        except BaseException as err:  # noqa: BLE001 - reported by the assertion below
            errors.append(err)

    threads = [threading.Thread(target=publish, args=(roi,)) for roi in inputs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    for roi, (registry, _) in inputs.items():
        got = queries.sites_in_bbox(engine, EVERYWHERE, limit=1000, roi=roi)
        assert sorted(s["site_id"] for s in got) == sorted(registry["site_id"])
    assert {r["roi"]: r["sites"] for r in queries.list_rois(engine)} == {
        roi: len(reg) for roi, (reg, _) in inputs.items()
    }
    engine.dispose()


def test_runs_under_other_hashes_are_kept_apart(sitedb_url: str) -> None:
    engine = open_database(sitedb_url)
    reg_a, pw_a = registry_inputs(8, WINDOWS[:2], seed=3)
    reg_b, pw_b = registry_inputs(5, WINDOWS[:2], seed=4)
    publish_roi(engine, run(run_hash="aaaaaaaaaaaa"), reg_a, pw_a)
    other = publish_roi(engine, run(run_hash="bbbbbbbbbbbb"), reg_b, pw_b)
    assert other.metadata()["added"] != 0 and other.metadata()["unchanged"] == 0

    def ids(rows: list[dict[str, Any]]) -> list[str]:
        return sorted(r["site_id"] for r in rows)

    latest = queries.sites_in_bbox(engine, EVERYWHERE, limit=1000)
    assert ids(latest) == sorted(reg_b["site_id"]) and {r["run_hash"] for r in latest} == {"bbbbbbbbbbbb"}
    assert ids(queries.sites_in_bbox(engine, EVERYWHERE, limit=1000, run="aaaaaaaaaaaa")) == sorted(
        reg_a["site_id"]
    )
    assert queries.list_rois(engine)[0]["runs"] == ["bbbbbbbbbbbb", "aaaaaaaaaaaa"]
    publish_roi(engine, run(run_hash="aaaaaaaaaaaa"), reg_a, pw_a)  # published again: the latest again
    assert ids(queries.sites_in_bbox(engine, EVERYWHERE, limit=1000)) == sorted(reg_a["site_id"])
    assert queries.sites_in_bbox(engine, EVERYWHERE, run="cccccccccccc") == []
    engine.dispose()


def _page_cases() -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = []
    for box in (EVERYWHERE, queries.BBox(115.0, -8.8, 115.4, -8.4), queries.BBox(0.0, 0.0, 1.0, 1.0)):
        for filters in ({}, {"roi": "java"}, {"run": "aaaaaaaaaaaa"}, {"roi": "' OR 1=1 --"}):
            for limit, offset in ((1000, 0), (7, 0), (7, 14)):
                cases.append({"bbox": box, "limit": limit, "offset": offset, **filters})
    return cases


def _publish_two_rois(engine: Engine) -> None:
    reg_a, pw_a = registry_inputs(40, WINDOWS[:2], seed=3)
    reg_b, pw_b = registry_inputs(25, WINDOWS[:1], seed=4)
    publish_roi(engine, run("bali", "aaaaaaaaaaaa"), reg_a, pw_a)
    publish_roi(engine, run("java", "bbbbbbbbbbbb"), reg_b, pw_b)


def test_a_page_holds_the_rows_the_statement_selects(sitedb_url: str) -> None:
    """``site_page`` returns the rows ``sites_in_bbox`` reads, for every filter, box and page."""
    engine = open_database(sitedb_url)
    _publish_two_rois(engine)
    nonempty = 0
    cases = _page_cases()
    for case in cases:
        page = queries.site_page(engine, **case)
        expected = [
            tuple(row[f] for f in queries.PAGE_FIELDS) for row in queries.sites_in_bbox(engine, **case)
        ]
        assert [row[: len(queries.PAGE_FIELDS)] for row in page.rows] == expected
        assert page.verdicts == [None] * len(expected)
        nonempty += bool(expected)
    assert nonempty >= len(cases) // 3
    engine.dispose()


def test_the_event_loop_reads_the_pages_site_page_reads(sitedb_url: str) -> None:
    """:class:`PagePool` (asyncpg, the server's ``/sites``) returns ``site_page``'s pages, for every
    filter, box and page, verdicts included (given to a site's own id and to its other detection
    ids), past the five executions after which the server may plan a prepared statement
    generically; and after a schema change voids the statements it prepared."""
    if not sitedb_url.startswith("postgresql"):
        pytest.skip("the event-loop reads are the server backend's")
    from plastics_core.sitedb.async_pages import PagePool
    from plastics_core.sitedb.verdicts import Verdict, set_verdict

    engine = open_database(sitedb_url)
    _publish_two_rois(engine)
    bali = [s["site_id"] for s in queries.sites_in_bbox(engine, EVERYWHERE, limit=1000, roi="bali")]
    set_verdict(engine, "bali", bali[0], "confirm", "curator")
    set_verdict(engine, "bali", bali[3], "reject", "curator")
    sites = table(Site)
    with engine.begin() as conn:  # a site that took over an earlier detection id, judged before
        conn.execute(
            sites.update()
            .where(sites.c.roi == "bali", sites.c.site_id == bali[5])
            .values(site_ids=json.dumps([bali[5], "an-earlier-id"]))
        )
        conn.execute(
            table(Verdict)
            .insert()
            .values(
                roi="bali",
                site_id="an-earlier-id",
                verdict="unsure",
                reviewer="curator",
                note="",
                created_at=dt.datetime.now(dt.UTC),
            )
        )
    cases = _page_cases()

    async def read_all(pool: PagePool) -> list[queries.SitePage]:
        return [await pool.site_page(**case) for case in cases]

    async def read(pool: PagePool) -> tuple[list[queries.SitePage], list[queries.SitePage]]:
        first = await read_all(pool)
        with engine.begin() as conn:  # a selected column changes type under the prepared statements
            conn.execute(text("ALTER TABLE sites ALTER COLUMN name TYPE text"))
        again = await read_all(pool)
        await pool.close()
        return first, again

    expected = [queries.site_page(engine, **case) for case in cases]
    assert sum("confirm" in p.verdicts for p in expected) and sum("unsure" in p.verdicts for p in expected)
    first, again = asyncio.run(read(PagePool(engine.url, size=2)))
    assert first == expected and again == expected
    engine.dispose()


def _downgrade(engine: Engine, revision: str) -> None:
    from alembic import command

    from plastics_core.sitedb.engine import _alembic_config

    with engine.begin() as conn:
        command.downgrade(_alembic_config(conn), revision)


def test_upgrade_from_the_first_revision_keeps_the_data(sitedb_url: str) -> None:
    """A database created at the first revision holds published data (published with the
    present code, then taken back to the first revision's schema); upgraded, it keeps every row,
    and the migration renders each site's /sites Feature as publication writes it."""
    engine = create_database_engine(sitedb_url)
    migrate(engine, "sitedb_0001")
    assert current_revision(engine) == "sitedb_0001"
    migrate(engine)
    registry, per_window = registry_inputs(12, WINDOWS)
    publish_roi(engine, run(), registry, per_window)
    sites = table(Site)
    with engine.connect() as conn:
        published = conn.execute(select(sites.c.id, sites.c.page_feature).order_by(sites.c.id)).all()
    assert published and all(feature for _, feature in published)
    _downgrade(engine, "sitedb_0001")
    assert current_revision(engine) == "sitedb_0001"
    before = dump(engine)
    engine.dispose()
    upgraded = open_database(sitedb_url)
    from alembic.script import ScriptDirectory

    from plastics_core.sitedb.engine import _MIGRATIONS

    head = ScriptDirectory(str(_MIGRATIONS)).get_current_head()
    assert current_revision(upgraded) == head
    assert dump(upgraded) == before
    with upgraded.connect() as conn:
        rendered = conn.execute(select(sites.c.id, sites.c.page_feature).order_by(sites.c.id)).all()
    assert rendered == published
    again = publish_roi(upgraded, run(), registry, per_window)
    assert again.metadata()["added"] == 0 and again.metadata()["updated"] == 0
    upgraded.dispose()


HOSTILE = [
    "x'); DROP TABLE sites; --",
    "' OR '1'='1",
    'roi"; DELETE FROM runs; --',
    "%s%s%(x)s",
    "Robert'); --",
    "名前 ☃ \\ \u202e",
]


def test_hostile_roi_names_and_ids_are_only_data(sitedb_url: str) -> None:
    engine = open_database(sitedb_url)
    registry, per_window = registry_inputs(len(HOSTILE), WINDOWS[:1], drop=0.0)
    mapping = dict(zip(registry["site_id"], HOSTILE, strict=True))
    registry["site_id"] = registry["site_id"].map(mapping)
    registry["site_ids"] = registry["site_ids"].map(lambda s: json.dumps([mapping[i] for i in json.loads(s)]))
    for enriched, _ in per_window.values():
        enriched["site_id"] = enriched["site_id"].map(mapping)
    for roi in HOSTILE[:3]:
        result = publish_roi(
            engine, run(roi, "deadbeef0001"[:10] + str(HOSTILE.index(roi))), registry, per_window
        )
        assert result.counts["sites"].added == len(HOSTILE)
    for roi in HOSTILE[:3]:
        got = queries.sites_in_bbox(engine, EVERYWHERE, limit=1000, roi=roi)
        assert sorted(s["site_id"] for s in got) == sorted(HOSTILE)
    for sid in HOSTILE:
        site = queries.get_site(engine, sid)
        assert site is not None and site["site_id"] == sid
        assert len(queries.site_contours(engine, sid, site["run_hash"])) == 1
    assert queries.get_site(engine, "' OR 1=1 --") is None
    assert sorted(r["roi"] for r in queries.list_rois(engine)) == sorted(HOSTILE[:3])
    with pytest.raises(PlasticsError, match="1 to 64 characters"):
        publish_roi(engine, run(), registry.assign(site_id="x" * 65), per_window)
    engine.dispose()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_unreachable_database_is_one_line_without_the_password() -> None:
    secret = "S3cret-pw-DO-NOT-LEAK"
    with pytest.raises(SiteDatabaseError) as info:
        open_database(f"postgresql://plastics:{secret}@127.0.0.1:{_closed_port()}/sites")
    message = str(info.value)
    assert "\n" not in message and secret not in message
    assert "127.0.0.1" in message and "PLASTICS_DATABASE_URL" in message
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_unusable_urls_are_one_line(tmp_path: Any) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    for url, words in [
        (f"sqlite:///{blocker}/sub/sites.sqlite", "cannot create the folder"),
        ("mysql://u:pw-LEAK@h/db", "unsupported site database"),
        ("not a url at all", "unusable site database URL"),
    ]:
        with pytest.raises(SiteDatabaseError, match=words) as info:
            open_database(url)
        assert "\n" not in str(info.value) and "pw-LEAK" not in str(info.value)


def test_a_wrong_password_is_refused_without_showing_it(sitedb_url: str) -> None:
    if not sitedb_url.startswith("postgresql"):
        pytest.skip("passwords exist on the server backend only")
    from sqlalchemy.engine import make_url

    wrong = make_url(sitedb_url).set(password="Wrong-pw-DO-NOT-LEAK")
    with pytest.raises(SiteDatabaseError) as info:
        open_database(wrong.render_as_string(hide_password=False))
    message = str(info.value)
    assert "Wrong-pw-DO-NOT-LEAK" not in message and "\n" not in message
    assert "password authentication failed" in message


def test_the_resource_resolves_the_url_and_never_shows_the_password(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    from plastics_dagster.sitedb_resource import SiteDatabase

    monkeypatch.delenv("PLASTICS_DATABASE_URL", raising=False)
    store = tmp_path / "store"
    assert SiteDatabase().resolved_url(str(store)) == f"sqlite:///{tmp_path / 'sites.sqlite'}"
    assert SiteDatabase().resolved_url("s3://bucket/store").endswith("/.plastics/sites.sqlite")
    monkeypatch.setenv("PLASTICS_DATABASE_URL", "postgresql://ana:Env-pw-DO-NOT-LEAK@db.example:5432/sites")
    resource = SiteDatabase()
    assert resource.resolved_url(str(store)).startswith("postgresql://ana:")
    assert "Env-pw-DO-NOT-LEAK" not in resource.shown(
        str(store)
    ) and "db.example:5432/sites" in resource.shown(str(store))
    configured = SiteDatabase(url=f"sqlite:///{tmp_path / 'other.sqlite'}")
    assert configured.resolved_url(str(store)) == f"sqlite:///{tmp_path / 'other.sqlite'}"
