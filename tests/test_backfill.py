"""A real backfill of 2 partitions: `dagster job backfill` against a temporary DAGSTER_HOME.

The backfill CLI creates one run per partition; the instance's DefaultRunCoordinator launches
them right away through the code location's gRPC server (in subprocesses). We wait for both
runs, then assert each partition of every asset is materialized in the instance and on disk.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from dagster import AssetKey, DagsterInstance, DagsterRunStatus, RunsFilter

from plastics_dagster.partitions import partition_key
from plastics_dagster.registry import register_roi
from plastics_dagster.resources import StoreResource

REPO = Path(__file__).resolve().parents[1]
WINDOWS = ["2020-10-01", "2021-01-01"]
DAGSTER_YAML = """\
run_coordinator:
  module: dagster._core.run_coordinator.default_run_coordinator
  class: DefaultRunCoordinator
telemetry:
  enabled: false
"""


@pytest.mark.slow
def test_cli_backfill_two_partitions(
    tmp_path: Path, gpw_dir: Path, models_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(DAGSTER_YAML)
    store = tmp_path / "store"
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "PLASTICS_STORE": str(store),
        "PLASTICS_MODEL_STORE": str(models_dir),
        "PLASTICS_IMAGERY": "synthetic",
    }
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with DagsterInstance.get() as instance:
        register_roi(
            instance, StoreResource(location=str(store)).path(), "temesi", gpw_dir / "test_patch.geojson"
        )
        keys = ",".join(str(partition_key("temesi", w)) for w in WINDOWS)
        exe = Path(sys.executable).with_name("dagster")
        proc = subprocess.run(
            [
                str(exe),
                "job",
                "backfill",
                "-w",
                "workspace.yaml",
                "-j",
                "detect_job",
                "--partitions",
                keys,
                "--noprompt",
            ],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
        deadline = time.time() + 600
        while time.time() < deadline:
            runs = instance.get_runs(RunsFilter(job_name="detect_job"))
            if len(runs) == 2 and all(r.is_finished for r in runs):
                break
            time.sleep(2)
        runs = instance.get_runs(RunsFilter(job_name="detect_job"))
        assert len(runs) == 2
        assert {r.status for r in runs} == {DagsterRunStatus.SUCCESS}, [r.status for r in runs]
        assert {r.tags.get("dagster/backfill") for r in runs} != {None}
        for asset in ("descartes_run", "enriched_sites"):
            done = instance.get_materialized_partitions(AssetKey(asset))
            assert {str(partition_key("temesi", w)) for w in WINDOWS} <= set(done), asset
        for w in WINDOWS:
            assert list((store / "enriched_sites" / "temesi" / w).glob("*.geojson"))
