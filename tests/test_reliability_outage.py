"""The S3 store goes away for minutes in the middle of `plastics run`.

The local S3 API server (moto, in this process, state kept) is stopped once the first tile of
the run is in the store, then restarted:

- 20 s down, real default budgets: the run succeeds and writes every output;
- 90 s down with the store's retry budget cut to 5 s (``PLASTICS_STORE_RETRY_SECONDS``, read at
  run time): the outage is hit (the store's retry warnings on stderr, or step retries in the
  Dagster event log), and the run either rides it out with retries or fails with ONE error line
  (exit 2, no traceback); a rerun then completes and writes the same candidates as the undisturbed
  run.

Neither prints asyncio's "Task exception was never retrieved" noise.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.test_reliability_retries import Moto

pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600)]  # several whole-graph runs
WINDOW = "2021-01-01"


@pytest.fixture
def s3(tmp_path: Path) -> Iterator[tuple[Moto, dict[str, str]]]:
    import boto3

    server = Moto()
    server.start()
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": server.endpoint,
        "PLASTICS_PROGRESS": "0",
        "DAGSTER_HOME": str(tmp_path / "home"),
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }
    env.pop("PLASTICS_STORE_RETRY_SECONDS", None)
    boto3.client(
        "s3",
        endpoint_url=server.endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    ).create_bucket(Bucket=server.bucket)
    yield server, env
    server.stop()


def _keys(server: Moto, prefix: str) -> list[str]:
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=server.endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=server.bucket, Prefix=prefix)
    return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


def _run(env: dict[str, str], store: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "plastics_dagster.cli",
            "run",
            "--window",
            WINDOW,
            "--store",
            store,
            "--imagery",
            "synthetic",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _run_with_outage(
    server: Moto, env: dict[str, str], prefix: str, seconds: float
) -> subprocess.CompletedProcess[str]:
    """`plastics run` on ``s3://bucket/prefix``; S3 stopped for ``seconds`` once a tile file is stored."""
    proc = _run(env, f"s3://{server.bucket}/{prefix}")
    deadline = time.time() + 900
    while not any(k.endswith(".tif") for k in _keys(server, f"{prefix}/descartes_run/")):
        assert proc.poll() is None, proc.communicate()
        assert time.time() < deadline, "no tile written"
        time.sleep(0.5)
    server.stop()
    time.sleep(seconds)
    server.start()
    out, err = proc.communicate(timeout=1800)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _failed_steps(home: str) -> dict[str, list[str]]:
    """Steps that failed in the runs of the Dagster instance at ``home`` (one ``plastics run``: its
    detection and registry runs), by event: ``STEP_UP_FOR_RETRY`` (retried by the step's policy) and
    ``STEP_FAILURE`` (failed for good). Without an outage no step fails (synthetic imagery)."""
    from dagster import DagsterEventType, DagsterInstance

    kinds = (DagsterEventType.STEP_UP_FOR_RETRY, DagsterEventType.STEP_FAILURE)
    with DagsterInstance.from_config(home) as instance:
        events = [
            e.dagster_event
            for run in instance.get_runs()
            for e in instance.all_logs(run.run_id, of_type=set(kinds))
            if e.dagster_event
        ]
    return {kind.value: [str(e.step_key) for e in events if e.event_type == kind] for kind in kinds}


def _candidates(server: Moto, prefix: str) -> bytes:
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=server.endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    keys = [k for k in _keys(server, f"{prefix}/candidates/") if k.endswith(".geojson")]
    assert len(keys) == 1, keys
    return bytes(client.get_object(Bucket=server.bucket, Key=keys[0])["Body"].read())


def test_a_20_s_store_outage_mid_run_is_ridden_out(s3: tuple[Moto, dict[str, str]]) -> None:
    server, env = s3
    done = _run_with_outage(server, env, "twenty", 20.0)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Task exception was never retrieved" not in done.stderr
    keys = _keys(server, "twenty/")
    for asset in (
        "heatmaps",
        "patch_geojson",
        "blobs",
        "candidates",
        "contours",
        "enriched_sites",
        "preview",
        "site_registry",
    ):
        assert any(k.startswith(f"twenty/{asset}/") for k in keys), asset
    assert not [k for k in keys if k.endswith(".tmp")]
    assert b'"type":"Feature"' in _candidates(server, "twenty")


def test_a_90_s_outage_fails_in_one_line_then_a_rerun_completes(s3: tuple[Moto, dict[str, str]]) -> None:
    server, env = s3
    done = _run_with_outage(server, {**env, "PLASTICS_STORE_RETRY_SECONDS": "5"}, "ninety", 90.0)
    assert "Task exception was never retrieved" not in done.stderr
    steps = _failed_steps(env["DAGSTER_HOME"])
    lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
    warned = [ln for ln in lines if ": store unavailable (" in ln and "); retry " in ln]  # s3_call's backoff
    print(f"outage run: exit {done.returncode}; {len(warned)} store retry warnings; failed steps {steps}")
    assert warned or steps["STEP_UP_FOR_RETRY"], f"the outage was not hit: {done.stderr[-3000:]}"
    if done.returncode == 0:  # ridden out: every failed step was retried, none failed for good
        assert not steps["STEP_FAILURE"], steps
    else:  # the retries ran out: after the retry warnings, ONE line naming the store, no traceback
        others = [ln for ln in lines if ln not in warned]
        assert done.returncode == 2 and len(others) == 1 and others[0].startswith("Error: "), done.stderr[
            -3000:
        ]
        assert "store" in others[0] and steps["STEP_FAILURE"], (others, steps)
    rerun = _run(env, f"s3://{server.bucket}/ninety")
    out, err = rerun.communicate(timeout=1800)
    assert rerun.returncode == 0, err[-3000:]
    clean = _run(env, f"s3://{server.bucket}/clean")
    clean.communicate(timeout=1800)
    assert clean.returncode == 0
    assert _candidates(server, "ninety") == _candidates(server, "clean")
