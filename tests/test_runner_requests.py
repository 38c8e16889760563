"""``plastics run`` launches what the UI launches: one ``detect_job`` run of the (roi, window)
partition (the window's missing quarters computed by its ``heatmaps`` step and recorded as their
``descartes_run`` partitions), then the ROI's ``registry_job`` run; its progress bar follows
the runs' events (plastics_dagster/cli/_progress.py), not Dagster's stderr.

Real runs: test_patch on synthetic imagery (TPA Temesi planted), the real models, 256 px tiles
and a 2-pair window, a temporary store and persistent Dagster instance.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dagster import AssetKey, DagsterEventType, DagsterInstance

pytestmark = pytest.mark.slow

WINDOW = "2021-01-01"
QUARTERS = ["2020-10-01", "2021-01-01"]  # the 2-pair window's quarters
FAST = {"tilesize": 256, "pad": 16, "pairs": 2}


def _stored_quarters(store: Path, roi: str, run_hash: str) -> list[str]:
    """Quarters whose pair the store holds for ``run_hash`` (their manifest is written last)."""
    return sorted(p.parent.name for p in (store / "descartes_run" / roi).glob(f"*/{run_hash}.json"))


@pytest.fixture(scope="module")
def request_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """One ``materialize_partition`` with the CLI's progress listener on a bar writing to a buffer."""
    from tqdm import tqdm

    from plastics_dagster.cli._progress import QUIET, Progress
    from plastics_dagster.runner import materialize_partition

    root = tmp_path_factory.mktemp("requests")
    (root / "home").mkdir()
    buffer = io.StringIO()
    with DagsterInstance.local_temp(str(root / "home")) as instance:
        with tqdm(file=buffer, disable=False, unit="step") as bar:
            progress = Progress(bar, QUIET)
            summary = materialize_partition(
                "test_patch",
                WINDOW,
                dict(FAST),
                store=str(root / "store"),
                imagery="synthetic",
                instance=instance,
                on_event=progress.on_event,
                log_level=progress.log_level,
            )
        yield {
            "summary": summary,
            "store": root / "store",
            "instance": instance,
            "progress": progress,
            "bar": buffer.getvalue(),
        }


def test_one_detect_run_then_the_registry_run(request_run: dict[str, Any]) -> None:
    instance: DagsterInstance = request_run["instance"]
    runs = sorted(instance.get_runs(), key=lambda r: r.job_name)
    assert [(r.job_name, r.tags.get("dagster/partition")) for r in runs] == [
        ("detect_job", f"test_patch|{WINDOW}"),
        ("registry_job", "test_patch"),
    ]
    # the job's whole selection ran, descartes_run of the window's quarter included
    detect = runs[0]
    started = {
        r.event_log_entry.step_key
        for r in instance.get_records_for_run(detect.run_id, of_type=DagsterEventType.STEP_START).records
    }
    assert {"descartes_run.plan_tiles", "heatmaps", "enriched_sites", "preview"} <= started, started


def test_every_stored_quarter_is_a_materialized_descartes_run_partition(request_run: dict[str, Any]) -> None:
    summary, store = request_run["summary"], request_run["store"]
    instance: DagsterInstance = request_run["instance"]
    assert _stored_quarters(store, "test_patch", summary.run_hash) == QUARTERS
    # what the UI's partition status of descartes_run reads
    materialized = instance.get_materialized_partitions(AssetKey("descartes_run"))
    assert sorted(str(k) for k in materialized) == [f"test_patch|{q}" for q in QUARTERS]
    events = instance.fetch_materializations(AssetKey("descartes_run"), limit=100).records
    assert {e.run_id for e in events} == {r.run_id for r in instance.get_runs() if r.job_name == "detect_job"}
    backends = {e.partition_key: e.asset_materialization.metadata for e in events}  # type: ignore[union-attr]
    assert backends[f"test_patch|{QUARTERS[0]}"]["backend"].value == "in-window"  # the heatmaps step
    assert backends[f"test_patch|{QUARTERS[1]}"]["backend"].value == "local"  # the fan-out


def test_summary_counts_and_times_each_quarter_computed(request_run: dict[str, Any]) -> None:
    summary = request_run["summary"]
    assert summary.success and summary.pairs == 2 and summary.tiles >= 1
    assert summary.pairs_computed == 2 * summary.tiles  # both quarters, every tile
    assert list(summary.timings["pairs_s"]) == QUARTERS
    assert all(s > 0 for s in summary.timings["pairs_s"].values())


def test_progress_comes_from_the_event_stream(request_run: dict[str, Any]) -> None:
    instance: DagsterInstance = request_run["instance"]
    progress = request_run["progress"]
    successes = sum(
        len(instance.get_records_for_run(r.run_id, of_type=DagsterEventType.STEP_SUCCESS).records)
        for r in instance.get_runs()
    )
    assert progress.done == successes > 10 and progress.failed == []
    assert sorted(q for q, _, _ in progress.quarters) == QUARTERS
    assert all(n == request_run["summary"].tiles for _, n, _ in progress.quarters)
    bar = request_run["bar"]
    assert f"quarter {QUARTERS[0]}: {request_run['summary'].tiles} tile pairs computed in " in bar
    assert f"{successes}step" in bar.replace(" ", "")  # the bar's last count


def test_cli_shows_a_bar_not_the_dagster_log_and_verbose_shows_the_log(
    request_run: dict[str, Any], tmp_path: Path
) -> None:
    """``plastics run`` (a subprocess, as a user starts it) on the stored quarters: stderr holds the
    bar (forced on a non-terminal) and no Dagster log line; ``-v`` prints Dagster's event log."""
    args = ["run", "--window", WINDOW, "--imagery", "synthetic", "--store", str(request_run["store"])]
    args += [item for key, value in FAST.items() for item in ("--param", f"{key}={value}")]
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "home"), "PLASTICS_PROGRESS": "1"}

    def plastics(*extra: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "plastics_dagster.cli", *args, *extra]
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, check=False)

    quiet = plastics("--json")
    assert quiet.returncode == 0, quiet.stderr[-3000:]
    assert json.loads(quiet.stdout)["pairs_computed"] == 0  # every quarter was stored
    assert re.search(rf"test_patch {WINDOW}: \d+step \[", quiet.stderr) and "published_sites" in quiet.stderr
    assert " - dagster - " not in quiet.stderr and "STEP_START" not in quiet.stderr, quiet.stderr[-3000:]
    verbose = plastics("-v")
    assert verbose.returncode == 0, verbose.stderr[-3000:]
    assert " - dagster - " in verbose.stderr and "STEP_START" in verbose.stderr
    assert "infer_tile" in verbose.stderr and "registry_job" in verbose.stderr
    assert not re.search(r"\d+step \[", verbose.stderr)  # no bar
