"""`plastics run` stops on SIGTERM / SIGINT mid-tile, and a rerun completes.

A real CLI run (subprocess, local store, synthetic imagery, real models) is signalled while its
``infer_tile`` step executes. It must end promptly with one line and exit 130, leave its Dagster
run marked failed or canceled, leave no temporary files in the store, and a rerun of the same
command must complete the partition. Started as a background job would be (SIGINT ignored), the
way a shell, `timeout`, Celery or Kubernetes start it. A signal that Dagster holds past the end of
one run (it raises interrupts only inside a step) stops the CLI before the next run starts.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600)]  # several whole-graph runs
WINDOW = "2021-01-01"


def _cli(tmp: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "plastics_dagster.cli",
        "run",
        "--window",
        WINDOW,
        "--store",
        str(tmp / "store"),
        "--imagery",
        "synthetic",
        *extra,
    ]


def _env(tmp: Path) -> dict[str, str]:
    return {
        **os.environ,
        "DAGSTER_HOME": str(tmp / "home"),
        "PLASTICS_PROGRESS": "0",
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }


def _ignore_sigint() -> None:  # what `cmd &` in a non-interactive shell does
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.parametrize("signo", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_mid_tile_stops_the_run_and_a_rerun_completes(tmp_path: Path, signo: int) -> None:
    from dagster import DagsterInstance, DagsterRunStatus

    proc = subprocess.Popen(
        _cli(tmp_path, "-v"),
        env=_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=_ignore_sigint,
    )
    assert proc.stdout is not None
    seen: list[str] = []
    for line in proc.stdout:  # the verbose Dagster log: wait until a tile is being computed
        seen.append(line)
        if "infer_tile" in line and "STEP_START" in line:
            break
    else:
        pytest.fail("the run ended before any tile started:\n" + "".join(seen[-40:]))
    time.sleep(2.0)
    proc.send_signal(signo)
    try:
        rest, _ = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail(f"{signal.Signals(signo).name} did not stop the run")
    assert proc.returncode == 130, rest[-3000:]
    errors = [ln for ln in rest.splitlines() if ln.startswith("Error: ")]
    assert len(errors) == 1 and "interrupted" in errors[0], rest[-3000:]
    assert "Traceback" not in rest.split("Error: ")[-1]
    store = tmp_path / "store"
    assert not [p for p in store.rglob("*") if p.name.endswith(".tmp")]
    with DagsterInstance.from_config(str(tmp_path / "home")) as instance:
        runs = instance.get_runs()
    assert runs and all(
        r.status in (DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED)
        for r in runs
    ), [r.status for r in runs]  # no run left started
    if "between two Dagster runs" not in errors[0]:  # the signal landed in a step: that run failed
        assert runs[0].status in (DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED), runs[0].status
    rerun = subprocess.run(
        _cli(tmp_path), env=_env(tmp_path), capture_output=True, text=True, timeout=1800, check=False
    )
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert list((store / "candidates").rglob("*.geojson")) and list((store / "preview").rglob("*.html"))


@pytest.mark.parametrize("signo", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_swallowed_by_a_handler_is_still_seen_between_runs(signo: int) -> None:
    """Dagster's run-level handler records a signal and drops it when the run ends; the CLI's wakeup
    pipe sees it anyway, and nothing is requested without a signal."""
    from plastics_dagster.cli._stop import stoppable

    with stoppable() as stop:
        assert not stop.requested()
        for sig in (signal.SIGINT, signal.SIGTERM):  # what Dagster's capture_interrupts installs
            signal.signal(sig, lambda *_: None)
        os.kill(os.getpid(), signo)
        time.sleep(0.05)
        assert stop.requested() and stop.requested()  # sticky
    assert signal.getsignal(signal.SIGINT) is not None


def test_a_requested_stop_starts_no_dagster_run(tmp_path: Path) -> None:
    from dagster import DagsterInstance

    from plastics_dagster.runner import RunInterrupted, materialize_partition

    with DagsterInstance.ephemeral() as instance:
        with pytest.raises(RunInterrupted, match="between two Dagster runs"):
            materialize_partition(
                "test_patch",
                WINDOW,
                store=str(tmp_path / "store"),
                imagery="synthetic",
                instance=instance,
                stop_requested=lambda: True,
            )
        assert instance.get_runs() == []
