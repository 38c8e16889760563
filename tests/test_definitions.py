"""The Definitions load, validate with the dagster CLI, and expose the documented pieces."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from dagster import AssetKey

REPO = Path(__file__).resolve().parents[1]
KEYS = ["descartes_run", "heatmaps", "patch_geojson", "blobs", "candidates", "contours", "enriched_sites"]


def test_definitions_load() -> None:
    from plastics_dagster.definitions import defs

    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert set(KEYS) <= keys
    detect = defs.resolve_job_def("detect_job")  # raises when it is missing: check what it materializes
    assert {k.to_user_string() for k in detect.asset_layer.executable_asset_keys} >= set(KEYS)
    assert detect.partitions_def == graph.get(AssetKey("descartes_run")).partitions_def
    assert {s.name for s in defs.sensors or []} >= {"roi_sensor", "imagery_sensor"}
    for name in ("params", "imagery", "models", "geocoder", "store"):
        assert name in (defs.resources or {})
    for key in KEYS:
        node = graph.get(AssetKey(key))
        assert node.code_version, key
        assert node.description, key
        assert node.partitions_def is not None, key
    from plastics_dagster.io_manager import DESCARTES_RUN_IO, GEOJSON_IO, RASTER_FOLDER_IO

    formats = {
        "descartes_run": DESCARTES_RUN_IO,
        "heatmaps": RASTER_FOLDER_IO,
        "site_registry": GEOJSON_IO,
        **{k: GEOJSON_IO for k in ("patch_geojson", "blobs", "candidates", "contours", "enriched_sites")},
    }
    for key, io_key in formats.items():  # each asset names its format; each format is registered
        assert (
            defs.resolve_assets_def(AssetKey(key)).get_io_manager_key_for_asset_key(AssetKey(key)) == io_key
        ), key
        assert io_key in (defs.resources or {}), io_key
    desc = graph.get(AssetKey("descartes_run"))
    assert desc.pools == {"gpu"}
    checks = {(c.asset_key.to_user_string(), c.name) for c in graph.asset_check_keys}
    assert ("candidates", "candidates_are_blobs") in checks
    assert ("blobs", "epsg_4326") in checks


def test_dagster_definitions_validate() -> None:
    exe = Path(sys.executable).with_name("dagster")
    proc = subprocess.run(
        [str(exe), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "passed validation" in proc.stderr + proc.stdout


def test_run_hash_changes_with_params() -> None:
    from plastics_dagster.config import DetectionParams

    a = DetectionParams().run_hash("synthetic", "roi")
    assert a == DetectionParams().run_hash("synthetic", "roi")
    assert len(a) == 12
    assert a != DetectionParams(preset="low").run_hash("synthetic", "roi")
    assert a != DetectionParams(pred_threshold=0.7).run_hash("synthetic", "roi")
    assert a != DetectionParams().run_hash("local:/data", "roi")
    assert a != DetectionParams().run_hash("synthetic", "other roi")


def test_one_detect_job_whose_executor_is_the_deployments() -> None:
    """Each deployment's entry module serves the same jobs and assets; only detect_job's executor
    differs (registry_job always runs in-process)."""
    from plastics_dagster import definitions, definitions_celery, definitions_k8s

    executors = {}
    for module in (definitions, definitions_celery, definitions_k8s):
        repo = module.defs.get_repository_def()
        assert sorted(j.name for j in repo.get_all_jobs() if not j.name.startswith("__")) == [
            "detect_job",
            "registry_job",
        ]
        assert repo.asset_graph.get_all_asset_keys() == (
            definitions.defs.get_repository_def().asset_graph.get_all_asset_keys()
        )
        assert module.defs.resolve_job_def("registry_job").executor_def.name == "in_process"
        executors[module.__name__] = module.defs.resolve_job_def("detect_job").executor_def.name
    assert executors == {
        "plastics_dagster.definitions": "in_process",
        "plastics_dagster.definitions_celery": "celery",
        "plastics_dagster.definitions_k8s": "k8s",
    }


def test_no_import_cycles_or_private_dagster_imports(shared_dir: Path) -> None:
    """Among the modules of both packages (the shared tool lists every cycle and private import)."""
    tool = shared_dir / "tools" / "import_cycles.py"
    if not tool.is_file():
        pytest.fail(
            f"{tool} not found: the shared folder beside the repository (or $PLASTICS_SHARED) must hold it"
        )
    proc = subprocess.run([sys.executable, str(tool)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "no import cycle, no private dagster import" in proc.stdout


def test_definitions_use_no_deprecated_dagster_api() -> None:
    """Building the definitions in a fresh interpreter warns nothing from this project's code (the
    suite itself ignores third-party DeprecationWarnings)."""
    import subprocess
    import sys

    code = (
        "import warnings; warnings.simplefilter('error', DeprecationWarning); "
        "warnings.filterwarnings('ignore', category=DeprecationWarning, module=r'(?!plastics_)'); "
        "import plastics_dagster.definitions as d; d.defs.resolve_job_def('detect_job')"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_make_ui_prepares_the_demo(cli_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``make ui`` writes the instance, registers the demo ROI and names the imagery of the UI's runs
    (synthetic, the demo world, unless PLASTICS_IMAGERY is set)."""
    from dagster import DagsterInstance

    from plastics_dagster.cli._instance import prepare_ui

    monkeypatch.setenv("PLASTICS_IMAGERY", "synthetic")
    lines = prepare_ui()
    assert DagsterInstance.from_config(str(cli_env / "home")).get_dynamic_partitions("roi") == ["test_patch"]
    assert (cli_env / "store" / "rois" / "test_patch.geojson").exists()
    assert lines[-1] == "imagery of the UI's runs: PLASTICS_IMAGERY=synthetic"
    monkeypatch.delenv("PLASTICS_IMAGERY")
    assert "PLASTICS_IMAGERY is not set" in prepare_ui()[-1]  # run again: nothing changes, nothing fails
    makefile = (Path(__file__).resolve().parents[1] / "Makefile").read_text()
    ui = makefile.split("\nui:", 1)[1].split("\n\n", 1)[0]
    assert (
        'PLASTICS_IMAGERY="$${PLASTICS_IMAGERY:-synthetic}"' in ui
        and "prepare_ui" not in ui
        and "main()" in ui
    )
