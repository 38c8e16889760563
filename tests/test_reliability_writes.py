"""Atomic, idempotent writes through the IO manager.

- re-materializing a partition with the same parameters rewrites byte-identical GeoJSON, COGs
  and VRT (the manifest differs only in its timings);
- a different parameter writes new run-hash files and leaves every other file untouched;
- a write that dies half-way (the file handle raises after writing half the bytes, or the
  process is SIGKILLed) leaves the previous version intact and no half file at the target;
- on S3 every object is one PUT (no multipart), and a failed PUT keeps the old object.

The graph runs for real (synthetic imagery, real models) with 256 px tiles; the tests start
from a copy of the session's shared run (``graph_run`` in tests/conftest.py).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import geopandas as gpd
import pytest
from dagster import DagsterInstance, materialize
from shapely.geometry import Point

from plastics_dagster.config import DetectionParams
from plastics_dagster.resources import ImagerySourceResource, StoreResource
from tests._graph_run import GRAPH_RUN_PARAMS, GRAPH_RUN_WINDOW, GraphRun

pytestmark = pytest.mark.usefixtures("short_step_retries")  # failing writes are retried by the real policies
WINDOW = GRAPH_RUN_WINDOW
SMALL: dict[str, Any] = GRAPH_RUN_PARAMS
REPO = Path(__file__).resolve().parents[1]


def run_graph(store: Path, selection: Any = None, **params: Any) -> Any:
    from plastics_dagster.checks import ALL_CHECKS
    from plastics_dagster.definitions import ALL_ASSETS, default_resources
    from plastics_dagster.jobs import DETECT_SELECTION
    from plastics_dagster.partitions import partition_key

    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("roi", ["test_patch"])
    res = default_resources(
        params=DetectionParams(**SMALL, **params),
        imagery=ImagerySourceResource(),
        store=StoreResource(location=str(store)),
    )
    return materialize(
        [*ALL_ASSETS, *ALL_CHECKS],
        selection=selection or DETECT_SELECTION,
        instance=instance,
        resources=res,
        partition_key=partition_key("test_patch", WINDOW),
        raise_on_error=False,
    )


def snapshot(store: Path) -> dict[Path, tuple[bytes, int]]:
    return {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(store.rglob("*")) if p.is_file()}


@pytest.fixture
def store(graph_run: GraphRun, tmp_path: Path) -> Path:
    """A private copy of the session's shared run's store (tests may rewrite it)."""
    assert graph_run.summary.success and graph_run.summary.window == WINDOW
    copy = tmp_path / "store"
    shutil.copytree(graph_run.store, copy)
    return copy


@pytest.mark.slow  # re-materializes the whole graph
def test_rematerialize_same_params_is_byte_identical(store: Path) -> None:
    before = snapshot(store)
    assert run_graph(store).success
    after = snapshot(store)
    assert after.keys() == before.keys(), set(after) ^ set(before)
    changed = [p for p in before if before[p][0] != after[p][0]]
    # only the manifest (its timings) may change; every GeoJSON / COG / VRT / CSV / HTML is byte-identical
    assert all(p.suffix == ".json" and "descartes_run" in p.parts for p in changed), changed
    for p in (p for p in changed if p.suffix == ".json"):
        old, new = json.loads(before[p][0]), json.loads(after[p][0])
        old.pop("timings"), new.pop("timings")
        assert old == new
    geojson = [p for p in before if p.suffix == ".geojson"]
    assert len(geojson) >= 6 and all(before[p][0] == after[p][0] for p in geojson)
    assert not [p for p in after if p.name.endswith(".tmp")]


@pytest.mark.slow  # re-materializes the whole graph
def test_new_param_writes_new_run_hash_and_leaves_others_untouched(store: Path) -> None:
    before = snapshot(store)
    old_hashes = {p.stem for p in (store / "blobs" / "test_patch" / WINDOW).iterdir()}
    result = run_graph(store, patch_threshold=0.5)
    assert result.success
    after = snapshot(store)
    assert all(after[p] == before[p] for p in before), [p for p in before if after[p] != before[p]]
    new_hashes = {p.stem for p in (store / "blobs" / "test_patch" / WINDOW).iterdir()} - old_hashes
    assert len(new_hashes) == 1
    (h,) = new_hashes
    for asset in ("patch_geojson", "blobs", "candidates", "contours", "enriched_sites"):
        assert (store / asset / "test_patch" / WINDOW / f"{h}.geojson").is_file(), asset
    assert (store / "descartes_run" / "test_patch" / WINDOW / f"{h}.json").is_file()


class _Killed(OSError):
    pass


def _half_writing_fdopen(monkeypatch: pytest.MonkeyPatch, needle: str) -> list[str]:
    """Make writes to temp files whose path contains ``needle`` write half their bytes, then raise."""
    real = os.fdopen
    hits: list[str] = []

    class HalfWriter:
        def __init__(self, fh: Any, path: str) -> None:
            self.fh, self.path = fh, path

        def write(self, data: bytes) -> int:
            self.fh.write(data[: len(data) // 2])
            self.fh.flush()
            hits.append(self.path)
            raise _Killed(f"killed while writing {self.path}")

        def __getattr__(self, name: str) -> Any:
            return getattr(self.fh, name)

        def __enter__(self) -> Any:
            return self

        def __exit__(self, *exc: Any) -> None:
            self.fh.close()

    def fdopen(fd: int, *args: Any, **kwargs: Any) -> Any:
        fh = real(fd, *args, **kwargs)
        try:
            path = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            return fh
        return HalfWriter(fh, path) if needle in path and path.endswith(".tmp") else fh

    monkeypatch.setattr(os, "fdopen", fdopen)
    return hits


@pytest.mark.parametrize("asset", ["blobs", "candidates", "heatmaps", "descartes_run"])
def test_write_killed_midway_keeps_previous_version(
    asset: str, store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Re-materialize with a failing writer: the step fails, the old files are intact, no half file."""
    before = snapshot(store)
    hits = _half_writing_fdopen(monkeypatch, f"/{asset}/test_patch/")
    result = run_graph(store, selection=[asset])
    monkeypatch.undo()
    assert hits, "the failing writer was never used"
    assert not result.success
    after = snapshot(store)
    assert {p: b for p, (b, _) in after.items()} == {p: b for p, (b, _) in before.items()}
    assert not [p for p in store.rglob("*") if p.name.endswith(".tmp")]


def test_serializer_error_writes_nothing(store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = snapshot(store)

    def broken(gdf: Any) -> bytes:
        raise TypeError("cannot serialize")

    monkeypatch.setattr("plastics_core.storage.outputs.geojson_bytes", broken)
    assert not run_graph(store, selection=["blobs"]).success
    assert snapshot(store) == before


KILL_SCRIPT = r"""
import sys, time
from plastics_core.storage.store import atomic_write, store_path
target = store_path(sys.argv[1]) / "blobs" / "r" / "w" / "h.geojson"
payload = b"x" * (64 << 20)
print("ready", flush=True)
atomic_write(target, payload)
print("done", flush=True)
"""


def test_sigkill_during_write_leaves_previous_version(tmp_path: Path) -> None:
    """A process SIGKILLed while writing 64 MiB never leaves a half file at the target."""
    from plastics_core.storage.store import atomic_write, store_path

    target = store_path(str(tmp_path)) / "blobs" / "r" / "w" / "h.geojson"
    old = b'{"type":"FeatureCollection","features":[]}\n'
    atomic_write(target, old)
    proc = subprocess.Popen(
        [sys.executable, "-c", KILL_SCRIPT, str(tmp_path)], stdout=subprocess.PIPE, cwd=REPO
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
    folder = Path(target.path).parent
    deadline = time.time() + 60
    while time.time() < deadline and not any(p.name.endswith(".tmp") for p in folder.iterdir()):
        time.sleep(0.001)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert Path(target.path).read_bytes() == old
    # the target is never half-written; a hidden temp file may be left by SIGKILL (never read, as
    # the IO manager only reads <run-hash>.<ext>) and is replaced by the next successful write
    assert [p.name for p in folder.iterdir() if not p.name.startswith(".")] == ["h.geojson"]


# ----------------------------------------------------------------------------- S3
@pytest.fixture
def moto(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, str]]:
    """(endpoint, bucket): moto keeps its state per process, so each test gets its own bucket."""
    import uuid

    from moto.server import ThreadedMotoServer

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
    }.items():
        monkeypatch.setenv(key, value)
    import boto3

    bucket = f"writes-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=bucket)
    yield endpoint, bucket
    server.stop()


def _record_s3_calls(monkeypatch: pytest.MonkeyPatch, fail_key: str | None = None) -> list[tuple[str, str]]:
    import s3fs

    calls: list[tuple[str, str]] = []
    real = s3fs.S3FileSystem._call_s3

    async def call(self: Any, method: str, *args: Any, **kwargs: Any) -> Any:
        calls.append((method, str(kwargs.get("Key", ""))))
        if fail_key and method == "put_object" and str(kwargs.get("Key", "")).endswith(fail_key):
            raise ValueError("connection dropped mid-upload")
        return await real(self, method, *args, **kwargs)

    monkeypatch.setattr(s3fs.S3FileSystem, "_call_s3", call)
    return calls


def _gdf(n: int) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {"name": [f"blob_{i}" for i in range(n)], "score": [0.5] * n},
        geometry=[Point(115 + i * 1e-4, -8.5) for i in range(n)],
        crs="EPSG:4326",
    )


def test_s3_writes_are_single_puts_and_failed_put_keeps_old(
    moto: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import boto3

    from plastics_core.storage.outputs import geojson_bytes
    from plastics_core.storage.store import atomic_write, store_path

    endpoint, bucket = moto
    s3 = boto3.client("s3", endpoint_url=endpoint)
    target = store_path(f"s3://{bucket}/store") / "blobs" / "r" / WINDOW / "abc.geojson"
    old, new = geojson_bytes(_gdf(3)), geojson_bytes(_gdf(20000))  # ~2 MB: still one PUT
    calls = _record_s3_calls(monkeypatch)
    atomic_write(target, old)
    atomic_write(target, new)
    puts = [c for c in calls if c[0] == "put_object"]
    assert len(puts) == 2 and not [
        c for c in calls if "multipart" in c[0].lower() or c[0] == "upload_part"
    ], calls
    assert s3.get_object(Bucket=bucket, Key="store/blobs/r/2021-01-01/abc.geojson")["Body"].read() == new
    monkeypatch.undo()

    _record_s3_calls(monkeypatch, fail_key="abc.geojson")
    with pytest.raises(Exception, match="connection dropped"):
        atomic_write(target, old)
    monkeypatch.undo()
    body = s3.get_object(Bucket=bucket, Key="store/blobs/r/2021-01-01/abc.geojson")["Body"].read()
    assert body == new  # the failed PUT changed nothing
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert keys == ["store/blobs/r/2021-01-01/abc.geojson"]
    assert not s3.list_multipart_uploads(Bucket=bucket).get("Uploads")
