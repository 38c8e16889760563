"""Resume: a run SIGKILLed after 2 of 4 tiles, re-executed from failure, runs only the missing tiles.

The run (multiprocess executor, one step at a time) executes in a child process against a
persistent instance (temp DAGSTER_HOME). When 2 tile summaries exist under the run-hash folder,
the child's whole process group (run coordinator and step processes) gets SIGKILL. A killed run
stays STARTED; Dagster's run monitoring (daemon) would mark it failed, here ``resume(...,
mark_failed=True)`` does. :func:`plastics_dagster.resume.resume` re-executes from failure (Dagster's
from-failure steps plus the never-started tiles Dagster's own from-failure misses): only the
infer_tile steps that had not succeeded run, tiles whose files were written before the kill are
skipped, and the final outputs equal an uninterrupted run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from dagster import AssetSelection, DagsterEventType, DagsterInstance, DagsterRunStatus, materialize
from dagster._core.execution.plan.state import KnownExecutionState

from plastics_dagster.resume import resume, resume_steps
from tests import _fanout_util as fu

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _infer_steps(instance: DagsterInstance, run_id: str, event: DagsterEventType) -> set[str]:
    records = instance.get_records_for_run(run_id, of_type=event).records
    return {
        str(r.event_log_entry.step_key) for r in records if "infer_tile" in (r.event_log_entry.step_key or "")
    }


def _skipped(instance: DagsterInstance, run_id: str) -> dict[str, bool]:
    out = {}
    for r in instance.get_records_for_run(run_id, of_type=DagsterEventType.STEP_OUTPUT).records:
        entry: Any = r.event_log_entry
        if "infer_tile" in (entry.step_key or ""):
            out[str(entry.step_key)] = bool(entry.dagster_event.event_specific_data.metadata["skipped"].value)
    return out


def _kill_after_two_tiles(home: Path, store: Path, models_dir: Path) -> tuple[int, dict[str, int]]:
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    code = f"from tests._fanout_util import child_run; child_run({str(store)!r}, {str(models_dir)!r})"
    child = subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=REPO,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 400
    try:
        while len(fu.tile_markers(store)) < 2:
            assert child.poll() is None, f"the child run ended (rc {child.returncode}) before 2 tiles"
            assert time.monotonic() < deadline, "no 2 tiles within 400 s"
            time.sleep(0.02)
        os.killpg(child.pid, signal.SIGKILL)
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
        child.wait()
    return child.returncode, {p.name: p.stat().st_mtime_ns for p in fu.tile_markers(store)}


@pytest.fixture(scope="module")
def resumed(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> dict[str, Any]:
    home, store = tmp_path_factory.mktemp("dagster_home"), tmp_path_factory.mktemp("resume_store")
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    with DagsterInstance.from_config(str(home)) as instance:
        fu.register(instance, store)
        rc, at_kill = _kill_after_two_tiles(home, store, models_dir)
        (parent,) = instance.get_runs()
        assert rc == -signal.SIGKILL and parent.status == DagsterRunStatus.STARTED
        parent_ok = _infer_steps(instance, parent.run_id, DagsterEventType.STEP_SUCCESS)
        child = resume(instance, parent.run_id, fu.fanout_job, mark_failed=True)
        failed: Any = instance.get_run_by_id(parent.run_id)
        dagster_steps, _ = KnownExecutionState.build_resume_retry_reexecution(instance, failed)
        assert child.success
        return {
            "dagster_from_failure": set(dagster_steps),
            "resume_steps": set(resume_steps(instance, parent.run_id)),
            "store": store,
            "at_kill": at_kill,
            "parent_ok": parent_ok,
            "child_started": _infer_steps(instance, child.run_id, DagsterEventType.STEP_START),
            "child_skipped": _skipped(instance, child.run_id),
            "child_plan": instance.get_records_for_run(
                child.run_id, of_type=DagsterEventType.STEP_START
            ).records,
        }


def test_killed_mid_way(resumed: dict[str, Any]) -> None:
    assert 2 <= len(resumed["at_kill"]) < 4, "the kill landed after the last tile: tiles finished too fast"
    assert len(resumed["parent_ok"]) <= len(resumed["at_kill"])


def test_resume_adds_the_never_started_tiles(resumed: dict[str, Any]) -> None:
    infer = {s for s in resumed["resume_steps"] if "infer_tile" in s}
    assert resumed["dagster_from_failure"] <= resumed["resume_steps"]
    assert len(infer) == 4 - len(resumed["parent_ok"])  # every planned tile not finished in the parent


def test_reexecution_runs_only_missing_tiles(resumed: dict[str, Any]) -> None:
    all_steps = set(resumed["child_skipped"]) | resumed["parent_ok"]
    assert len(all_steps) == 4
    assert resumed["child_started"] == all_steps - resumed["parent_ok"]
    started = {r.event_log_entry.step_key for r in resumed["child_plan"]}
    assert "descartes_run.plan_tiles" not in started
    computed = [k for k, skipped in resumed["child_skipped"].items() if not skipped]
    assert len(computed) == 4 - len(resumed["at_kill"])  # every tile computed exactly once overall
    store = resumed["store"]
    assert {
        p.name: p.stat().st_mtime_ns for p in fu.tile_markers(store) if p.name in resumed["at_kill"]
    } == resumed["at_kill"]  # files written before the kill were not rewritten


def test_resumed_outputs_equal_uninterrupted_run(resumed: dict[str, Any], tmp_path: Path) -> None:
    from plastics_dagster.definitions import ALL_ASSETS

    instance = DagsterInstance.ephemeral()
    fu.register(instance, tmp_path)
    result = materialize(
        ALL_ASSETS,
        selection=AssetSelection.assets("descartes_run", "heatmaps", "patch_geojson"),
        partition_key=fu.partition(),
        instance=instance,
        resources=fu.resources(tmp_path),
    )
    assert result.success
    fu.assert_same_outputs(resumed["store"], tmp_path)


def test_resume_refuses_unknown_or_running_runs(resumed: dict[str, Any]) -> None:
    from plastics_core.errors import ParameterError

    instance = DagsterInstance.ephemeral()
    with pytest.raises(ParameterError, match="not found"):
        resume(instance, "no-such-run", fu.fanout_job)
    run = instance.create_run_for_job(fu.fanout_job())  # NOT_STARTED: nothing to resume
    with pytest.raises(ParameterError, match="not failed"):
        resume(instance, run.run_id, fu.fanout_job)
