"""New-site alerts against a real HTTP receiver on 127.0.0.1 (ok, fails twice then ok, never answers)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from plastics_core.alerts import AlertError, AlertSite, build_message, redact_webhook, send_alert

SECRET_PATH = "/services/T000/B000/s3cr3tT0ken"


class Receiver:
    """An HTTP server on 127.0.0.1 answering ``statuses`` in turn (then 200); records the bodies."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = list(statuses)
        self.bodies: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                outer.bodies.append(json.loads(body))
                status = outer.statuses.pop(0) if outer.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{SECRET_PATH}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def silent() -> Iterator[str]:
    """A listening socket that accepts connections and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}{SECRET_PATH}"
    sock.close()


SITES = [
    AlertSite("8a2a1072b59ffff", 0.61, 115.4, -8.5, "Jl. <b>Raya</b> & Co"),
    AlertSite("8a2a1072b5affff", 0.93, 115.41, -8.51, ""),
    AlertSite("8a2a1072b5bffff", 0.72, 115.42, -8.52, "Temesi", reason="score rose from 0.40 to 0.72"),
]


def test_message_lists_top_sites_by_score_and_escapes_outside_text() -> None:
    msg = build_message("bali", SITES, "http://127.0.0.1:8000/review?roi=bali", top_n=2, publication="abc")
    text = msg["text"]
    assert text.startswith("3 new sites to review in ROI bali (publication abc)")
    assert text.index("8a2a1072b5affff") < text.index("8a2a1072b5bffff")  # 0.93 before 0.72
    assert "8a2a1072b59ffff" not in text and "… and 1 more" in text
    assert "score rose from 0.40 to 0.72" in text
    assert "<http://127.0.0.1:8000/review?roi=bali|Open the review page>" in text
    full = build_message("bali", SITES, "http://x/review", top_n=5)["text"]
    assert "Jl. &lt;b&gt;Raya&lt;/b&gt; &amp; Co" in full and "<b>" not in full
    assert [b["type"] for b in msg["blocks"]] == ["section", "section", "section"]


def test_ok_receiver_gets_one_message() -> None:
    rec = Receiver([])
    try:
        msg = build_message("bali", SITES, "http://127.0.0.1:8000/review")
        result = send_alert(rec.url, msg, timeout_s=2)
        assert (result.status, result.attempts) == (200, 1)
        assert rec.bodies == [msg]
    finally:
        rec.close()


def test_receiver_failing_twice_gets_the_message_on_the_third_attempt() -> None:
    rec = Receiver([503, 500])
    try:
        result = send_alert(rec.url, {"text": "x"}, timeout_s=2, backoff_s=0.05)
        assert (result.status, result.attempts) == (200, 3)
        assert len(rec.bodies) == 3
    finally:
        rec.close()


def test_refusing_receiver_fails_at_once_without_the_secret() -> None:
    rec = Receiver([403])
    try:
        with pytest.raises(AlertError) as err:
            send_alert(rec.url, {"text": "x"}, timeout_s=2, backoff_s=0.05)
        assert len(rec.bodies) == 1 and "HTTP 403" in str(err.value)
        assert "s3cr3t" not in str(err.value) and "/services" not in str(err.value)
    finally:
        rec.close()


def test_receiver_that_never_answers_times_out_within_the_budget(silent: str) -> None:
    start = time.monotonic()
    with pytest.raises(AlertError) as err:
        send_alert(silent, {"text": "x"}, timeout_s=0.5, max_attempts=10, max_total_s=2.0, backoff_s=0.1)
    elapsed = time.monotonic() - start
    assert elapsed < 2.0 + 0.5 + 1.0, elapsed  # max_total_s + one timeout + slack
    message = str(err.value)
    assert "no answer within the timeout" in message and "attempt" in message
    assert "s3cr3t" not in message and SECRET_PATH not in message and err.value.__cause__ is None


def test_the_review_link_never_carries_credentials() -> None:
    from plastics_dagster.alerts import AlertWebhookResource

    res = AlertWebhookResource(review_url="https://ana:pw@review.example.org:8443/plastics/?token=x")
    assert res.review_page("bali x") == "https://review.example.org:8443/plastics/review?roi=bali%20x"


def test_webhook_urls_are_redacted() -> None:
    assert (
        redact_webhook("https://user:pw@hooks.slack.com/services/T/B/XYZ?token=1")
        == "https://hooks.slack.com/…"
    )
    assert redact_webhook("http://127.0.0.1:9000/a/b") == "http://127.0.0.1:9000/…"
    assert redact_webhook("not a url") == "<webhook>"
    with pytest.raises(AlertError, match="not an http"):
        send_alert("ftp://example.org/secret", {"text": "x"})


# ---- the sensor: one message per ROI and publication, never twice ---------------------------------


def _publication(instance: Any, roi: str, run_hash: str, added: int) -> None:
    from dagster import AssetMaterialization

    instance.report_runless_asset_event(
        AssetMaterialization(
            asset_key="published_sites",
            partition=roi,
            metadata={"run_hash": run_hash, "sites_added": added, "sites_updated": 0},
        )
    )


def _tick(
    instance: Any, cursor: str | None, webhook: str, store: str, **extra: Any
) -> tuple[Any, str | None]:
    from dagster import build_sensor_context

    from plastics_dagster.alerts import AlertWebhookResource, new_site_alerts
    from plastics_dagster.resources import StoreResource
    from plastics_dagster.sitedb_resource import SiteDatabase

    resources = {
        "database": SiteDatabase(),
        "alert_webhook": AlertWebhookResource(
            webhook_url=webhook, review_url="http://127.0.0.1:8000", **extra
        ),
        "store": StoreResource(location=store),
    }
    with build_sensor_context(instance=instance, cursor=cursor, resources=resources) as ctx:
        result = new_site_alerts(ctx)
        return result, ctx.cursor


def test_sensor_alerts_once_per_publication_and_not_for_rejected_sites(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dagster import DagsterInstance

    from plastics_core.sitedb.engine import open_database
    from plastics_core.sitedb.verdicts import set_verdict
    from tests import _review_data as d

    monkeypatch.setenv("PLASTICS_DATABASE_URL", f"sqlite:///{tmp_path}/sites.sqlite")
    engine = open_database(f"sqlite:///{tmp_path}/sites.sqlite")
    first = {"2024-01-01": d.enriched({"temesi": 0.9, "north": 0.7})}
    d.publish(engine, first)
    rec = Receiver([])
    store = str(tmp_path / "store")
    try:
        with DagsterInstance.ephemeral() as instance:
            result, cursor = _tick(instance, None, rec.url, store)
            assert rec.bodies == [] and "no new publication" in str(result)
            _publication(instance, d.ROI, d.RUN, 2)
            result, cursor = _tick(instance, cursor, rec.url, store)
            assert len(rec.bodies) == 1
            text = rec.bodies[0]["text"]
            assert text.startswith(f"2 new sites to review in ROI {d.ROI}") and "TPA Temesi" in text
            assert "http://127.0.0.1:8000/review?roi=temesi" in text
            _tick(instance, cursor, rec.url, store)  # the same publication again: nothing sent
            assert len(rec.bodies) == 1
            # the reviewer rejects Temesi; the next window detects it again (score +0.02) and a new site
            set_verdict(engine, d.ROI, d.temesi_registry_id(first), "reject", "ana", "quarry")
            d.publish(
                engine, {**first, "2024-04-01": d.enriched({"temesi": 0.92, "east": 0.6}, jitter=0.001)}
            )
            _publication(instance, d.ROI, d.RUN, 1)
            _, cursor = _tick(instance, cursor, rec.url, store)
            assert len(rec.bodies) == 2
            second = rec.bodies[1]["text"]
            assert second.startswith("1 new site to review") and "Temesi" not in second
    finally:
        rec.close()
        engine.dispose()


def test_sensor_keeps_a_publication_whose_alert_failed_for_the_next_tick(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dagster import DagsterInstance

    from plastics_core.sitedb.engine import open_database
    from tests import _review_data as d

    monkeypatch.setenv("PLASTICS_DATABASE_URL", f"sqlite:///{tmp_path}/sites.sqlite")
    engine = open_database(f"sqlite:///{tmp_path}/sites.sqlite")
    d.publish(engine, {"2024-01-01": d.enriched({"temesi": 0.9})})
    failing, ok = Receiver([503] * 50), Receiver([])
    store = str(tmp_path / "store")
    try:
        with DagsterInstance.ephemeral() as instance:
            _publication(instance, d.ROI, d.RUN, 1)
            result, cursor = _tick(instance, None, failing.url, store, timeout_s=1.0, max_total_s=1.0)
            assert failing.bodies and "did not accept" in str(result) and "s3cr3t" not in str(result)
            _, cursor = _tick(instance, cursor, ok.url, store)
            _, cursor = _tick(instance, cursor, ok.url, store)
            assert len(ok.bodies) == 1
    finally:
        failing.close()
        ok.close()
        engine.dispose()
