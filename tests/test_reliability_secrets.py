"""Secrets never leak into logs, metadata or outputs.

Fake credentials are planted in the environment (AWS, EarthOne, Descartes Labs, Nominatim
contact, ...) while the session's shared graph run executes (the ``graph_run`` fixture of
tests/conftest.py: synthetic imagery with TPA Temesi, real models, the ROI registry job too, a
temporary store and a temporary persistent DagsterInstance). Then
EVERY output file, every file of the instance (sqlite event log, run storage, compute logs) and
every event record of every run (serialized) is searched for the secret values.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests._graph_run import FAKE_SECRETS, GraphRun

SECRETS = FAKE_SECRETS


def _leaks(blob: bytes) -> list[str]:
    return [k for k, v in SECRETS.items() if v.encode() in blob]


def test_demo_run_found_the_site(graph_run: GraphRun) -> None:
    assert graph_run.summary.success and graph_run.summary.candidates
    # one detect_job run of the window (its quarter's descartes_run included), then the ROI's registry
    assert sorted(r.job_name for r in graph_run.runs) == ["detect_job", "registry_job"]


def test_no_secret_in_output_files(graph_run: GraphRun) -> None:
    files = [p for p in graph_run.store.rglob("*") if p.is_file()]
    assert len(files) >= 10
    leaks = {str(p): _leaks(p.read_bytes()) for p in files}
    assert not {p: k for p, k in leaks.items() if k}


def test_no_secret_in_instance_storage(graph_run: GraphRun) -> None:
    """sqlite event logs / run storage / compute logs of the instance, byte for byte."""
    files = [p for p in graph_run.home.rglob("*") if p.is_file()]
    assert any(p.suffix == ".db" for p in files), files
    leaks = {str(p): _leaks(p.read_bytes()) for p in files}
    assert not {p: k for p, k in leaks.items() if k}


def test_no_secret_in_event_records(graph_run: GraphRun) -> None:
    from dagster._serdes import serialize_value

    records = graph_run.records
    assert len(records) > 50
    for run_id, entry in records:
        text = serialize_value(entry)
        assert not _leaks(text.encode()), (run_id, entry.dagster_event_type, _leaks(text.encode()))
    for run in graph_run.runs:
        text = serialize_value(run)
        assert not _leaks(text.encode()), ("run config / tags", run.run_id)


def test_failure_messages_do_not_echo_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A STAC URL with user:password and a signed query string: the run hash source name, the
    manifest source and the retry error message never show them."""
    from plastics_core.retry import NO_WAIT, retry_call
    from plastics_dagster.resources import ImagerySourceResource

    secret = SECRETS["PLASTICS_S3_SECRET"]
    url = f"https://user:{secret}@stac.example.invalid/v1?token={secret}"
    name = ImagerySourceResource(kind="stac", path=url).source_name()
    assert secret not in name and "stac.example.invalid" in name, name

    def boom() -> None:
        raise ConnectionError(f"connection reset while fetching {url}")

    with pytest.raises(Exception) as info:
        retry_call(boom, what="STAC search", policy=NO_WAIT, sleep=lambda s: None)
    assert secret not in str(info.value)


def test_stac_and_model_store_urls_are_redacted_in_errors_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    """A STAC URL and a model-store URL carrying user:password and a token: retry warnings, the
    final error, the source's name and the model store's messages show neither."""
    import datetime as dt
    import logging

    from shapely.geometry import box

    from plastics_core.errors import PlasticsError
    from plastics_core.geo.periods import Period
    from plastics_core.imagery.stac import StacSource
    from plastics_core.models import DEFAULT_MODEL
    from plastics_core.models.store import ModelStore
    from plastics_core.retry import RetryPolicy

    secret = SECRETS["PLASTICS_S3_SECRET"]
    url = f"http://user:{secret}@127.0.0.1:9/stac?token={secret}"  # port 9 (discard): refused at once
    source = StacSource(url=url, retry=RetryPolicy(attempts=2, base_delay=0.0, max_delay=0.0, jitter=0.0))
    with caplog.at_level(logging.WARNING), pytest.raises(PlasticsError) as info:
        source.search(box(115.0, -8.6, 115.1, -8.5), Period(dt.date(2021, 1, 1), dt.date(2021, 4, 1)))
    assert caplog.records, "the retry was logged"
    for text in [str(info.value), source.name, *(r.getMessage() for r in caplog.records)]:
        assert secret not in text and "127.0.0.1:9" in text, text
    store = ModelStore(f"http://user:{secret}@127.0.0.1:9/models?token={secret}")
    with pytest.raises(PlasticsError) as info:
        store.resolve(DEFAULT_MODEL)
    assert secret not in str(info.value) and "127.0.0.1:9" in str(info.value)
    assert secret not in repr(store) and secret not in store.shown


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("stac:http://user:pass@host/v1?token=SECRET", "stac:http://***@host/v1?token=***"),
        ("http://AKID:SECRET@127.0.0.1:1", "http://***@127.0.0.1:1"),
        (
            "postgresql+psycopg://app:SECRET@db:5432/sites?sslmode=require",
            "postgresql+psycopg://***@db:5432/sites?sslmode=***",
        ),
        (
            "https://h/x.tif?X-Amz-Signature=SECRET&X-Amz-Credential=AKID",
            "https://h/x.tif?X-Amz-Signature=***&X-Amz-Credential=***",
        ),
        ("GET /v1/search?token=SECRET failed (403)", "GET /v1/search?token=*** failed (403)"),
        ("https://u:pa/ss?w#rd@host/v1", "https://***@host/v1"),
        ("host=db user=app password=SECRET dbname=x", "host=db user=app password=*** dbname=x"),
        ("http://h/v1?SECRET", "http://h/v1?***"),
    ],
)
def test_redact_masks_userinfo_query_values_and_passwords(text: str, shown: str) -> None:
    from plastics_core.redact import redact

    assert redact(text) == shown and redact(shown) == shown


@pytest.mark.parametrize(
    "text",
    [
        "stac:http://127.0.0.1:8000/v1#sentinel-2-l2a;max_cloud_cover=30",
        "s3://bucket/prefix/a.tif",
        "local:/data/scenes",
        "https://earth-search.aws.element84.com/v1",
        "what? nothing here",
        "ratio=0.5 of tiles",
    ],
)
def test_redact_leaves_text_without_secrets_unchanged(text: str) -> None:
    from plastics_core.redact import redact

    assert redact(text) == text


def test_source_names_and_run_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    """A catalog URL without secrets names the source exactly as before (same run hashes); with
    secrets, the name masks them and keeps the selection; another token is the same run."""
    from plastics_dagster.config import detection_params
    from plastics_dagster.resources import ImagerySourceResource

    plain = ImagerySourceResource(kind="stac", path="http://127.0.0.1:8000/v1", max_cloud_cover=30)
    assert plain.source_name() == "stac:http://127.0.0.1:8000/v1;max_cloud_cover=30"
    names = [
        ImagerySourceResource(
            kind="stac", path=f"http://u:{t}@127.0.0.1:8000/v1?token={t}", max_cloud_cover=30
        ).source_name()
        for t in ("SECRETONE", "SECRETTWO")
    ]
    assert names[0] == names[1] == "stac:http://***@127.0.0.1:8000/v1?token=***;max_cloud_cover=30"
    params = detection_params({})
    assert (
        params.run_hash(names[0], "r")
        == params.run_hash(names[1], "r")
        != params.run_hash(plain.source_name(), "r")
    )


def test_chained_causes_are_redacted() -> None:
    """The cause Dagster stores with a spent retry budget is a stand-in named like the library's
    error, its text redacted; the original error (with the token) is not chained."""
    from plastics_core.retry import NO_WAIT, RetryBudgetExceeded, retry_call

    secret = SECRETS["PLASTICS_S3_SECRET"]

    def boom() -> None:
        raise ConnectionError(f"connection reset by http://h/v1/search?token={secret}")

    with pytest.raises(RetryBudgetExceeded) as info:
        retry_call(boom, what="STAC search", policy=NO_WAIT, sleep=lambda s: None)
    cause = info.value.__cause__
    assert cause is not None and type(cause).__name__ == "ConnectionError" and info.value.__suppress_context__
    assert secret not in str(cause) and "token=***" in str(cause) and cause.__cause__ is None


def test_unreachable_store_line_masks_endpoint_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    from plastics_core.storage.store import unreachable_store_error

    secret = SECRETS["PLASTICS_S3_SECRET"]
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://AKIDCANARY1:{secret}@127.0.0.1:1")
    err = unreachable_store_error(type("EndpointConnectionError", (Exception,), {})("down"))
    assert err is not None and secret not in str(err) and "AKIDCANARY1" not in str(err)
    assert "http://***@127.0.0.1:1" in str(err)
