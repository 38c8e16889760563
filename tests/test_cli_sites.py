"""`plastics sites --roi NAME`: the ROI's site registry as a table, CSV or GeoJSON; one-line errors.

Nothing is mocked. The slow tests read back the registry of the session's `plastics demo` run
(conftest ``demo_run``: synthetic imagery, TPA Temesi planted, real GPW models); the fast ones
materialize the real ``site_registry`` asset with no window stored (an empty registry).
"""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from dagster import DagsterInstance, materialize

from plastics_dagster.cli import cli

ROI = "test_patch"


def sites(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, ["sites", *args], env={"PLASTICS_PROGRESS": "0", **(env or {})})


def user_error(result: Result, *needles: str) -> str:
    """Exit 2, exactly one stderr line 'Error: ...' naming every needle, no traceback; returns it."""
    assert result.exit_code == 2, (result.exit_code, result.output)
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), lines
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    assert "Traceback" not in result.output and not result.stdout
    return lines[0]


@pytest.fixture(scope="module")
def ran(demo_run: tuple[subprocess.CompletedProcess[str], Path]) -> dict[str, Any]:
    """The session's `plastics demo` (test_patch, 2021-01-01, synthetic imagery, default parameters):
    its store, the run hash it printed, and the site ids of the registry GeoJSON it wrote."""
    proc, tmp = demo_run
    assert proc.returncode == 0, proc.stdout + proc.stderr
    match = re.search(r"^run hash\s+([0-9a-f]{12})$", proc.stdout, re.M)
    assert match, proc.stdout
    store, run_hash = tmp / "store", match.group(1)
    doc = json.loads((store / "site_registry" / ROI / f"{run_hash}.geojson").read_text())
    ids = [f["properties"]["site_id"] for f in doc["features"]]
    assert ids, "the planted TPA Temesi gives at least one site"
    return {"store": str(store), "run_hash": run_hash, "ids": ids, "doc": doc}


@pytest.mark.slow
def test_table_lists_every_registry_site(ran: dict[str, Any]) -> None:
    result = sites("--roi", ROI, "--store", ran["store"], "--imagery", "synthetic")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert ran["run_hash"] in lines[0] and ROI in lines[0]
    assert lines[1].split()[:2] == ["site_id", "status"]
    for sid in ran["ids"]:
        assert any(ln.startswith(sid) for ln in lines[3:]), (sid, result.stdout)
    n = len(ran["ids"])
    assert lines[-1].startswith(f"{n} site{'' if n == 1 else 's'}: ")


@pytest.mark.slow
def test_explicit_run_hash_csv_and_json(ran: dict[str, Any]) -> None:
    base = ("--roi", ROI, "--store", ran["store"], "--run-hash", ran["run_hash"])
    table = sites(*base)
    assert table.exit_code == 0 and all(sid in table.stdout for sid in ran["ids"]), table.output
    as_csv = sites(*base, "--csv")
    assert as_csv.exit_code == 0, as_csv.output
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert [r["site_id"] for r in rows] == ran["ids"] and {r["status"] for r in rows} == {"new"}
    as_json = sites(*base, "--json")
    assert as_json.exit_code == 0, as_json.output
    assert json.loads(as_json.stdout) == ran["doc"]


@pytest.mark.slow
def test_other_parameters_list_the_available_run_hash(ran: dict[str, Any]) -> None:
    result = sites("--roi", ROI, "--store", ran["store"], "--preset", "low")
    user_error(
        result,
        "no site registry for ROI 'test_patch' at run hash",
        f"available: {ran['run_hash']}",
        "--run-hash",
    )


@pytest.fixture()
def empty_store(tmp_path: Path) -> tuple[str, str]:
    """The real ``site_registry`` asset materialized for test_patch with no window stored."""
    from plastics_dagster.assets.preview import site_registry
    from plastics_dagster.cli.sites import params_run_hash
    from plastics_dagster.definitions import ALL_ASSETS, default_resources
    from plastics_dagster.resources import ImagerySourceResource, StoreResource

    store = str(tmp_path / "store")
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("roi", [ROI])
    res = default_resources(
        store=StoreResource(location=store), imagery=ImagerySourceResource(kind="synthetic")
    )
    assert materialize(
        ALL_ASSETS, selection=[site_registry], instance=instance, resources=res, partition_key=ROI
    ).success
    from plastics_core.storage.store import store_path

    return store, params_run_hash({}, "synthetic", store_path(store), ROI)


def test_empty_registry_prints_header_and_zero_sites(empty_store: tuple[str, str]) -> None:
    store, run_hash = empty_store
    result = sites("--roi", ROI, "--store", store, "--imagery", "synthetic")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 2 and run_hash in lines[0], lines
    assert lines[1].startswith("0 sites")
    as_csv = sites("--roi", ROI, "--store", store, "--run-hash", run_hash, "--csv")
    assert as_csv.exit_code == 0 and as_csv.stdout.startswith("site_id,status,first_window"), as_csv.output
    as_json = sites("--roi", ROI, "--store", store, "--run-hash", run_hash, "--json")
    assert as_json.exit_code == 0 and json.loads(as_json.stdout)["features"] == []


def test_unknown_run_hash_lists_the_available_ones(empty_store: tuple[str, str]) -> None:
    store, run_hash = empty_store
    result = sites("--roi", ROI, "--store", store, "--param", "patch_threshold=0.9", "--imagery", "synthetic")
    user_error(result, f"available: {run_hash}", "(use --run-hash")


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (("--roi", ROI), ("no site registry for ROI 'test_patch'", "plastics run --roi test_patch --window")),
        (("--roi", "never-added"), ("plastics roi add never-added", "plastics run --roi never-added")),
        (("--roi", "a/b"), ("'a/b'", "not allowed")),
        (("--roi", ROI, "--run-hash", "../../etc"), ("--run-hash", "12 hex digits")),
        (("--roi", ROI, "--run-hash", "0123456789ab", "--preset", "low"), ("--run-hash",)),
        (("--roi", ROI, "--csv", "--json"), ("--csv", "--json")),
        (("--roi", ROI, "--param", "nosuch=1"), ("KEY=VALUE",)),
        (("--roi", ROI, "--param", "tilesize=big"), ("tilesize",)),
        (("--roi", ROI, "--preset", "extreme"), ("--preset",)),
        ((), ("--roi",)),
    ],
)
def test_user_errors_are_one_line_exit_2(
    args: tuple[str, ...], needles: tuple[str, ...], tmp_path: Path
) -> None:
    store = tmp_path / "store"
    user_error(sites(*args, "--store", str(store)), *needles)
    assert not store.exists(), "reading the registry creates nothing"
