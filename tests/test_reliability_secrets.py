"""Secrets never leak (issue 7, item 6).

Fake credentials are planted in the environment (AWS, EarthOne, Descartes Labs, Nominatim
contact, ...); the demo graph runs (synthetic imagery with TPA Temesi, real models, the ROI
registry job too) into a temporary store with a temporary persistent DagsterInstance. Then
EVERY output file, every file of the instance (sqlite event log, run storage, compute logs) and
every event record of every run (serialized) is searched for the secret values.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dagster import DagsterInstance

SECRETS = {
    "AWS_SECRET_ACCESS_KEY": "fakeAwsSecret-7d1e4c-DO-NOT-LEAK",
    "AWS_SESSION_TOKEN": "fakeAwsSessionToken-93b2aa-DO-NOT-LEAK",
    "EARTHONE_CLIENT_SECRET": "fakeEarthOneSecret-5f0c11-DO-NOT-LEAK",
    "EARTHONE_REFRESH_TOKEN": "fakeEarthOneRefresh-e21b07-DO-NOT-LEAK",
    "DESCARTESLABS_CLIENT_SECRET": "fakeDLSecret-a4c9d2-DO-NOT-LEAK",
    "DESCARTESLABS_REFRESH_TOKEN": "fakeDLRefresh-0b7f3e-DO-NOT-LEAK",
    "PLASTICS_S3_SECRET": "fakePlasticsS3-66aa01-DO-NOT-LEAK",
}
NON_SECRET_ENV = {"AWS_ACCESS_KEY_ID": "AKIAFAKEID", "EARTHONE_CLIENT_ID": "fake-client-id",
                  "DESCARTESLABS_CLIENT_ID": "fake-dl-client-id"}


def _leaks(blob: bytes) -> list[str]:
    return [k for k, v in SECRETS.items() if v.encode() in blob]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    mp = pytest.MonkeyPatch()
    for key, value in {**SECRETS, **NON_SECRET_ENV}.items():
        mp.setenv(key, value)
    root = tmp_path_factory.mktemp("secrets")
    home = root / "dagster_home"
    home.mkdir()
    store = root / "store"
    from plastics_dagster.runner import materialize_partition

    try:
        with DagsterInstance.local_temp(str(home)) as instance:
            summary = materialize_partition("test_patch", "2021-01-01", overrides={"tilesize": 256, "pad": 16},
                                            store=str(store), imagery="synthetic", instance=instance)
            records = []
            for run in instance.get_runs():
                records += [(run.run_id, e) for e in instance.all_logs(run.run_id)]
            runs = instance.get_runs()
            yield {"summary": summary, "store": store, "home": home, "records": records, "runs": runs}
    finally:
        mp.undo()


def test_demo_run_found_the_site(demo_run: dict[str, Any]) -> None:
    summary = demo_run["summary"]
    assert summary.success and summary.candidates and len(demo_run["runs"]) == 2  # detect + registry


def test_no_secret_in_output_files(demo_run: dict[str, Any]) -> None:
    files = [p for p in demo_run["store"].rglob("*") if p.is_file()]
    assert len(files) >= 10
    leaks = {str(p): _leaks(p.read_bytes()) for p in files}
    assert not {p: k for p, k in leaks.items() if k}


def test_no_secret_in_instance_storage(demo_run: dict[str, Any]) -> None:
    """sqlite event logs / run storage / compute logs of the instance, byte for byte."""
    files = [p for p in Path(demo_run["home"]).rglob("*") if p.is_file()]
    assert any(p.suffix == ".db" for p in files), files
    leaks = {str(p): _leaks(p.read_bytes()) for p in files}
    assert not {p: k for p, k in leaks.items() if k}


def test_no_secret_in_event_records(demo_run: dict[str, Any]) -> None:
    from dagster._serdes import serialize_value

    records = demo_run["records"]
    assert len(records) > 50
    for run_id, entry in records:
        text = serialize_value(entry)
        assert not _leaks(text.encode()), (run_id, entry.dagster_event_type, _leaks(text.encode()))
    for run in demo_run["runs"]:
        text = serialize_value(run)
        assert not _leaks(text.encode()), ("run config / tags", run.run_id)


def test_failure_messages_do_not_echo_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A STAC URL with user:password and a signed query string: the run hash source name, the
    manifest source and the retry error message never show them."""
    from plastics_core.imagery.retry import NO_WAIT, retry_call
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
