"""Concurrency: parallel runs of different partitions write disjoint keys; two
writers of the same key (same partition and parameters) never leave a corrupt or mixed file.

- two processes hammer the SAME key with different payloads through the IO manager's
  ``atomic_write`` (local disk and the local S3 server) while the test reads it: every read is
  exactly one writer's payload, the final file too, and no temp file is left;
- (slow) three real `plastics run` processes at once: two of the same partition, one of another
  window, into one store: all succeed, windows write disjoint files, every GeoJSON parses and is
  byte-identical to a sequential reference run.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]

WRITER = r"""
import sys
from plastics_core.storage.store import atomic_write, store_path
store, tag, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
target = store_path(store) / "blobs" / "r" / "2021-01-01" / "h.geojson"
feature = '{"type":"Feature","properties":{"writer":"%s"},"geometry":null}' % tag
payload = ('{"type":"FeatureCollection","features":[' + ",".join([feature] * 20000) + "]}\n").encode()
print("ready", flush=True)
sys.stdin.readline()
for _ in range(n):
    atomic_write(target, payload)
print("done", flush=True)
"""


def payload(tag: str) -> bytes:
    feature = '{"type":"Feature","properties":{"writer":"' + tag + '"},"geometry":null}'
    return ('{"type":"FeatureCollection","features":[' + ",".join([feature] * 20000) + "]}\n").encode()


def race(store: str, read: Any, n: int, env: dict[str, str] | None = None) -> list[bytes]:
    """Two writer processes (payload A / B, ``n`` writes each) start together; reads meanwhile."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, store, tag, str(n)],
            cwd=REPO,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        for tag in ("A", "B")
    ]
    for p in procs:
        assert p.stdout is not None and p.stdout.readline().strip() == b"ready"
    for p in procs:
        assert p.stdin is not None
        p.stdin.write(b"go\n")
        p.stdin.flush()
    seen: list[bytes] = []
    while any(p.poll() is None for p in procs):
        data = read()
        if data is not None:
            seen.append(data)
    for p in procs:
        assert p.wait(timeout=120) == 0
    final = read()
    assert final is not None
    seen.append(final)
    return seen


def check_reads(seen: list[bytes]) -> None:
    a, b = payload("A"), payload("B")
    assert seen and all(s in (a, b) for s in seen), {len(s) for s in seen if s not in (a, b)}
    json.loads(seen[-1])


def test_two_processes_same_local_key(tmp_path: Path) -> None:
    target = tmp_path / "store" / "blobs" / "r" / "2021-01-01" / "h.geojson"

    def read() -> bytes | None:
        try:
            return target.read_bytes()
        except FileNotFoundError:
            return None

    seen = race(str(tmp_path / "store"), read, n=40)
    check_reads(seen)
    assert len(seen) > 5
    assert [p.name for p in target.parent.iterdir()] == ["h.geojson"]  # no temp file left


def test_two_processes_same_s3_key(monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3
    from moto.server import ThreadedMotoServer

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        env = {
            **os.environ,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        }
        s3 = boto3.client(
            "s3",
            endpoint_url=env["AWS_ENDPOINT_URL"],
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        s3.create_bucket(Bucket="race")
        key = "store/blobs/r/2021-01-01/h.geojson"

        def read() -> bytes | None:
            try:
                return bytes(s3.get_object(Bucket="race", Key=key)["Body"].read())
            except s3.exceptions.NoSuchKey:
                return None

        seen = race("s3://race/store", read, n=10, env=env)
        check_reads(seen)
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket="race")["Contents"]]
        assert keys == [key]
        assert not s3.list_multipart_uploads(Bucket="race").get("Uploads")
    finally:
        server.stop()


def run_command(window: str) -> list[str]:
    """The ``plastics run`` command line for ``window`` (a quarter start, ``YYYY-MM-DD``) that
    every run here uses: synthetic imagery, 256 px tiles with 16 px padding, one pair, JSON summary."""
    return [
        sys.executable,
        "-m",
        "plastics_dagster.cli",
        "run",
        "--window",
        window,
        "--imagery",
        "synthetic",
        "--param",
        "tilesize=256",
        "--param",
        "pad=16",
        "--param",
        "pairs=1",
        "--json",
    ]


@pytest.mark.slow
def test_parallel_runs_same_and_different_partitions(tmp_path: Path, models_dir: Path) -> None:
    store = tmp_path / "store"
    base = {
        **os.environ,
        "PLASTICS_STORE": str(store),
        "PLASTICS_PROGRESS": "0",
        "PLASTICS_MODEL_STORE": str(models_dir),
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "OMP_NUM_THREADS": "1",
    }
    jobs = [("same-1", "2021-01-01"), ("same-2", "2021-01-01"), ("other", "2020-10-01")]
    procs = []
    for name, window in jobs:
        env = {**base, "DAGSTER_HOME": str(tmp_path / f"home-{name}")}
        procs.append(
            subprocess.Popen(
                run_command(window),
                cwd=tmp_path,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    outs = [p.communicate(timeout=600) for p in procs]
    for (name, _), proc, (_out, err) in zip(jobs, procs, outs, strict=True):
        assert proc.returncode == 0, (name, err[-3000:])
    summaries = [json.loads(out[out.index("{") :]) for out, _ in outs]
    assert summaries[0]["run_hash"] == summaries[1]["run_hash"] == summaries[2]["run_hash"]
    h = summaries[0]["run_hash"]

    files = [p for p in store.rglob("*") if p.is_file()]
    assert not [p for p in files if p.name.endswith(".tmp")]
    by_window: dict[str, set[str]] = {}
    for f in files:
        parts = f.relative_to(store).parts
        if parts[0] in ("rois", "site_registry", "composites"):  # per-ROI files, shared by every window
            continue
        if parts[0] == "preview" and "reports" in parts:  # one report per site found: differs by window
            continue
        by_window.setdefault(parts[2], set()).add("/".join(parts[:2] + parts[3:]))
    assert set(by_window) == {"2021-01-01", "2020-10-01"}
    assert by_window["2021-01-01"] == by_window["2020-10-01"]  # the same layout, in disjoint folders
    for f in files:
        if f.suffix == ".geojson":
            assert json.loads(f.read_text())["type"] == "FeatureCollection", f

    # reference: the same partition, sequentially, into a fresh store -> byte-identical GeoJSON
    # (a subprocess with the same environment, one BLAS/OpenMP thread included: float sums depend on it)
    ref = tmp_path / "ref"
    seq = subprocess.run(
        run_command("2021-01-01"),
        cwd=tmp_path,
        env={**base, "PLASTICS_STORE": str(ref), "DAGSTER_HOME": str(tmp_path / "home-ref")},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert seq.returncode == 0, seq.stderr[-3000:]
    for f in ref.rglob("*.geojson"):
        if "rois" in f.parts or "site_registry" in f.parts:  # per ROI: the concurrent store holds two windows
            continue
        assert (store / f.relative_to(ref)).read_bytes() == f.read_bytes(), f
    assert (store / "candidates" / "test_patch" / "2021-01-01" / f"{h}.geojson").is_file()
