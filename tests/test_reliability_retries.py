"""Retries with backoff on transient faults.

- the local S3 API server (moto, started here on a free 127.0.0.1 port) is stopped mid-run and
  restarted: the run succeeds and the store holds exactly the expected objects (no duplicates,
  no temp keys), with the same bytes as a run on local disk would write;
- S3 down for good: the write fails with one clear line once the retry budget is spent;
- Dagster RetryPolicy on the network-bound assets: a transient fault is retried and succeeds,
  a persistent one fails after the policy's retries; user errors are never retried.

The STAC "500 twice, then 200" and "budget spent" cases of the imagery source itself are in
tests/test_imagery_stac.py (test_retry_then_success, test_retry_budget_exhausted).
"""

from __future__ import annotations

import datetime as dt
import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from dagster import DagsterInstance, materialize

from plastics_core.errors import PlasticsError
from plastics_core.geo.periods import Period
from plastics_core.imagery.synthetic import SyntheticSource
from plastics_dagster.config import DetectionParams
from plastics_dagster.resources import ImagerySourceResource, StoreResource

WINDOW = "2021-01-01"
SMALL: dict[str, Any] = {"tilesize": 256, "pad": 16, "pairs": 1}  # one pair per window: fast
NETWORK_BOUND = ("descartes_run", "contours", "preview")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Moto:
    """A moto S3 server on a fixed port that can be stopped and restarted (state is kept)."""

    def __init__(self) -> None:
        import uuid

        self.bucket = f"plastics-{uuid.uuid4().hex[:12]}"  # moto keeps state per process: one bucket per test
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.server: Any = None
        self.lock = threading.Lock()

    def start(self) -> None:
        from moto.server import ThreadedMotoServer

        with self.lock:
            self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
            self.server.start()

    def stop(self) -> None:
        with self.lock:
            if self.server is not None:
                self.server.stop()
                self.server = None


@pytest.fixture
def moto(monkeypatch: pytest.MonkeyPatch) -> Iterator[Moto]:
    server = Moto()
    server.start()
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": server.endpoint,
    }.items():
        monkeypatch.setenv(key, value)
    import boto3

    boto3.client("s3", endpoint_url=server.endpoint).create_bucket(Bucket=server.bucket)
    yield server
    server.stop()


def outage_on(
    monkeypatch: pytest.MonkeyPatch, server: Moto, method: str, nth: int, seconds: float
) -> dict[str, Any]:
    """Stop the S3 server right before the ``nth`` ``method`` call; restart it ``seconds`` later."""
    import s3fs

    real = s3fs.S3FileSystem._call_s3
    state: dict[str, Any] = {"count": 0, "stopped_at": None, "call_seconds": 0.0}

    async def call(self: Any, name: str, *args: Any, **kwargs: Any) -> Any:
        if name == method:
            state["count"] += 1
            if state["count"] == nth:
                server.stop()
                state["stopped_at"] = time.time()
                threading.Timer(seconds, server.start).start()
                t0 = time.time()
                out = await real(self, name, *args, **kwargs)
                state["call_seconds"] = time.time() - t0
                return out
        return await real(self, name, *args, **kwargs)

    monkeypatch.setattr(s3fs.S3FileSystem, "_call_s3", call)
    return state


def run_graph(
    store: str, imagery: ImagerySourceResource | None = None, selection: Any = None, **params: Any
) -> Any:
    from plastics_dagster.checks import ALL_CHECKS
    from plastics_dagster.definitions import ALL_ASSETS, default_resources
    from plastics_dagster.jobs import DETECT_SELECTION
    from plastics_dagster.partitions import partition_key

    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("roi", ["test_patch"])
    res = default_resources(
        params=DetectionParams(**SMALL, **params),
        imagery=imagery or ImagerySourceResource(),
        store=StoreResource(location=store),
    )
    return materialize(
        [*ALL_ASSETS, *ALL_CHECKS],
        selection=selection or DETECT_SELECTION,
        instance=instance,
        resources=res,
        partition_key=partition_key("test_patch", WINDOW),
        raise_on_error=False,
    )


def bucket_objects(server: Moto) -> dict[str, bytes]:
    import boto3

    s3 = boto3.client("s3", endpoint_url=server.endpoint)
    out: dict[str, bytes] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=server.bucket):
        for obj in page.get("Contents", []):
            out[obj["Key"]] = s3.get_object(Bucket=server.bucket, Key=obj["Key"])["Body"].read()
    return out


@pytest.mark.slow
def test_s3_server_restarted_mid_run(moto: Moto, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """Outages during a tile write (PUT) and during an input read (GET) are ridden out."""
    puts = outage_on(monkeypatch, moto, "put_object", nth=3, seconds=1.5)
    result = run_graph(f"s3://{moto.bucket}/store")
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    assert puts["stopped_at"] is not None and puts["call_seconds"] >= 1.0, puts  # the outage really happened
    monkeypatch.undo()
    objects = bucket_objects(moto)
    # reference: the same partition on local disk
    local = tmp_path / "store"
    assert run_graph(str(local)).success
    expected = {
        f"store/{p.relative_to(local).as_posix()}": p.read_bytes() for p in local.rglob("*") if p.is_file()
    }
    assert set(objects) == set(expected), set(objects) ^ set(expected)  # no duplicates, no temp keys
    for key, data in expected.items():
        if key.endswith((".geojson", ".tif", ".vrt", ".csv")):
            assert objects[key] == data, key


def test_s3_outage_during_read_and_write_is_ridden_out(moto: Moto, monkeypatch: pytest.MonkeyPatch) -> None:
    from plastics_core.storage.store import atomic_write, store_path

    target = store_path(f"s3://{moto.bucket}/store") / "blobs" / "r" / WINDOW / "h.geojson"
    state = outage_on(monkeypatch, moto, "put_object", nth=1, seconds=1.0)
    atomic_write(target, b"one")
    assert state["stopped_at"] is not None
    monkeypatch.undo()
    state = outage_on(monkeypatch, moto, "get_object", nth=1, seconds=1.0)
    assert target.read_bytes() == b"one"
    assert state["stopped_at"] is not None
    monkeypatch.undo()
    assert list(bucket_objects(moto)) == ["store/blobs/r/2021-01-01/h.geojson"]


def test_s3_down_for_good_is_one_clear_line(moto: Moto, monkeypatch: pytest.MonkeyPatch) -> None:
    """Retry budget spent: one-line PlasticsError naming the operation, not a botocore traceback."""
    from plastics_core.storage.store import atomic_write, store_path

    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    monkeypatch.setenv("PLASTICS_STORE_RETRY_SECONDS", "2")  # read at each call
    target = store_path(f"s3://{moto.bucket}/store") / "blobs" / "r" / WINDOW / "h.geojson"
    moto.stop()
    with pytest.raises(PlasticsError) as info:
        atomic_write(target, b"x")
    msg = str(info.value)
    assert "\n" not in msg and "failed for 2 s" in msg and f"s3://{moto.bucket}/store/blobs" in msg, msg
    assert "testing" not in msg  # no credentials in the message


# ----------------------------------------------------------------------------- Dagster retries
def retry_policies(name: str) -> dict[str, Any]:
    """op name -> retry policy of every op of asset ``name`` (graph-backed assets: each inner op)."""
    from dagster import GraphDefinition

    from plastics_dagster.definitions import ALL_ASSETS

    asset = next(a for a in ALL_ASSETS if hasattr(a, "key") and a.key.path[-1] == name)
    node = asset.node_def
    ops = list(node.iterate_op_defs()) if isinstance(node, GraphDefinition) else [node]
    return {op.name: op.retry_policy for op in ops}


def test_network_bound_assets_have_a_retry_policy() -> None:
    for name in (*NETWORK_BOUND, "enriched_sites"):
        for op_name, policy in retry_policies(name).items():
            assert policy is not None, (name, op_name)
            assert policy.max_retries >= 1 and policy.delay and policy.delay > 0 and policy.backoff, (
                name,
                op_name,
            )


FAULTS: dict[str, int] = {}


class FlakyImagery(ImagerySourceResource):
    """Synthetic source (no scenes: fast) whose ``load`` raises ConnectionError ``failures`` times."""

    failures: int = 1
    key: str = "flaky"

    def source_name(self) -> str:
        return f"synthetic:flaky-{self.key}"

    def get_source(self) -> Any:
        inner = SyntheticSource(empty_periods=[Period(dt.date(2000, 1, 1), dt.date(2100, 1, 1))])
        key, failures = self.key, self.failures

        class Flaky:
            name = "flaky"

            def search(self, geom: Any, period: Period) -> Any:
                return inner.search(geom, period)

            def load(self, tile: Any, period: Period) -> Any:
                FAULTS[key] = FAULTS.get(key, 0) + 1
                if FAULTS[key] <= failures:
                    raise ConnectionError(f"connection reset by imagery server (fault {FAULTS[key]})")
                return inner.load(tile, period)

        return Flaky()


def _events(result: Any, kind: str) -> list[Any]:
    return [e for e in result.all_events if e.event_type_value == kind]


@pytest.mark.usefixtures("short_step_retries")
def test_transient_imagery_fault_is_retried_by_dagster(tmp_path: Any) -> None:
    FAULTS.clear()
    result = run_graph(
        str(tmp_path / "store"), FlakyImagery(failures=1, key="once"), selection=["descartes_run"]
    )
    assert result.success
    assert len(_events(result, "STEP_UP_FOR_RETRY")) == 1
    manifests = list((tmp_path / "store" / "descartes_run").rglob("*.json"))
    assert len(manifests) == 1 and json.loads(manifests[0].read_text())["tiles"]


@pytest.mark.usefixtures("short_step_retries")
def test_persistent_fault_fails_after_the_retry_budget(tmp_path: Any) -> None:
    FAULTS.clear()
    result = run_graph(
        str(tmp_path / "store"), FlakyImagery(failures=99, key="always"), selection=["descartes_run"]
    )
    assert not result.success
    failures = [e for e in result.all_events if e.is_step_failure]
    assert failures
    retries = _events(result, "STEP_UP_FOR_RETRY")
    for failure in failures:  # every failing step used up exactly its policy's retries, then failed
        policy = retry_policies("descartes_run").get(failure.step_key.split("[")[0].split(".")[-1])
        assert policy is not None, failure.step_key
        assert sum(e.step_key == failure.step_key for e in retries) == policy.max_retries
        assert "connection reset by imagery server" in failure.step_failure_data.error.to_string()
    # nothing half-written: no tile, manifest or claim marker (claims may leave empty folders)
    assert not [p for p in (tmp_path / "store" / "descartes_run").rglob("*") if p.is_file()]


def test_user_errors_are_not_retried(tmp_path: Any) -> None:
    result = run_graph(
        str(tmp_path / "store"),
        ImagerySourceResource(kind="local", path=str(tmp_path / "nope")),
        selection=["descartes_run"],
    )
    assert not result.success
    assert not _events(result, "STEP_UP_FOR_RETRY")
    from plastics_dagster.runner import raise_failure

    with pytest.raises(PlasticsError, match="does not exist") as info:
        raise_failure(result)
    assert "plastics_core.errors" not in str(info.value)  # the user sees the message, not a class path


def test_orphaned_connection_tasks_of_the_s3_client_print_nothing(caplog: pytest.LogCaptureFixture) -> None:
    """asyncio's "Task exception was never retrieved" for a connection closed during an S3 outage
    (the request itself is retried) is dropped once an S3 store is used; other asyncio errors pass."""
    import logging

    from plastics_core.storage.store import store_path

    store_path("s3://bucket/store")
    log = logging.getLogger("asyncio")
    orphan = "Task exception was never retrieved\nfuture: <Task finished name='Task-48'>"
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        err = ConnectionResetError("Cannot write to closing transport")
        log.error(orphan, exc_info=(type(err), err, None))
        other = ValueError("a real bug")
        log.error(orphan, exc_info=(type(other), other, None))
        log.error("Unclosed client session")
    assert [r.getMessage().splitlines()[0] for r in caplog.records] == [
        "Task exception was never retrieved",
        "Unclosed client session",
    ]
    assert all(not isinstance(r.exc_info[1] if r.exc_info else None, ConnectionError) for r in caplog.records)
