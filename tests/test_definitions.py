"""The Definitions load, validate with the dagster CLI, and expose the documented pieces."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from dagster import AssetKey

REPO = Path(__file__).resolve().parents[1]
KEYS = ["descartes_run", "heatmaps", "patch_geojson", "blobs", "candidates", "contours", "enriched_sites"]


def test_definitions_load() -> None:
    from plastics_dagster.definitions import defs

    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert set(KEYS) <= keys
    assert defs.resolve_job_def("detect_job") is not None
    assert {s.name for s in defs.sensors or []} >= {"roi_sensor", "imagery_sensor"}
    for name in ("params", "imagery", "models", "geocoder", "store", "io_manager"):
        assert name in (defs.resources or {})
    for key in KEYS:
        node = graph.get(AssetKey(key))
        assert node.code_version, key
        assert node.description, key
        assert node.partitions_def is not None, key
    desc = graph.get(AssetKey("descartes_run"))
    assert desc.pools == {"gpu"}
    checks = {(c.asset_key.to_user_string(), c.name) for c in graph.asset_check_keys}
    assert ("candidates", "candidates_are_blobs") in checks
    assert ("blobs", "epsg_4326") in checks


def test_dagster_definitions_validate() -> None:
    exe = Path(sys.executable).with_name("dagster")
    proc = subprocess.run([str(exe), "definitions", "validate", "-w", "workspace.yaml"], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "passed validation" in proc.stderr + proc.stdout


def test_run_hash_changes_with_params() -> None:
    from plastics_dagster.config import DetectionParams

    a = DetectionParams().run_hash("synthetic")
    assert a == DetectionParams().run_hash("synthetic")
    assert len(a) == 12
    assert a != DetectionParams(preset="low").run_hash("synthetic")
    assert a != DetectionParams(pred_threshold=0.7).run_hash("synthetic")
    assert a != DetectionParams().run_hash("local:/data")
