"""Hostile and broken inputs (windows, parameters, endpoints, ROIs, rasters): each gives ONE line and exit 2
(no traceback, no output written), and a kill between a temp write and its rename leaves nothing
that the next write does not clean up."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from affine import Affine
from click.testing import CliRunner, Result

from plastics_dagster.cli import cli
from tests.test_cli import EAST_TIMOR_BLOBS, EAST_TIMOR_PATCHES, _heatmap_cog


def one_line(result: Result, *needles: str) -> str:
    assert result.exit_code == 2, (result.exit_code, result.output)
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle.lower() in lines[0].lower(), lines[0]
    return lines[0]


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def test_future_window_and_unparsable_param(cli_env: Path) -> None:
    one_line(invoke("run", "--window", "2099-01-01"), "2099-01-01", "not complete")
    one_line(invoke("run", "--window", "2021-01-01", "--param", "model=[unclosed"), "--param", "yaml")
    one_line(invoke("run", "--window", "2021-01-01", "--param", "model={a: [b"), "--param")
    assert not (cli_env / "store").exists() or not list((cli_env / "store").rglob("*.geojson"))


@pytest.mark.parametrize("command", ["run", "sites"])
def test_unreachable_s3_endpoint_is_one_line(
    cli_env: Path, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens on the discard port
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    monkeypatch.setenv("PLASTICS_STORE_RETRY_SECONDS", "0")
    args = ["run", "--window", "2021-01-01"] if command == "run" else ["sites", "--roi", "test_patch"]
    line = one_line(
        invoke(*args, "--store", "s3://nobucket/prefix"), "http://127.0.0.1:9", "AWS_ENDPOINT_URL"
    )
    assert "testing" not in line


def test_output_may_not_be_an_input(tmp_path: Path, gpw_dir: Path) -> None:
    heat = _heatmap_cog(tmp_path)
    before = heat.read_bytes()
    one_line(invoke("blobs", str(heat), "-o", str(heat)), "is the input")
    one_line(invoke("blobs", str(heat), "-o", str(tmp_path / "." / "heatmap.tif")), "is the input")
    assert heat.read_bytes() == before
    et = tmp_path / "et"
    et.mkdir()
    for name in (EAST_TIMOR_BLOBS, EAST_TIMOR_PATCHES):
        (et / name).write_bytes((gpw_dir / "east_timor" / name).read_bytes())
    for target in (EAST_TIMOR_BLOBS, EAST_TIMOR_PATCHES):
        before = (et / target).read_bytes()
        one_line(
            invoke(
                "candidates",
                "--blobs",
                str(et / EAST_TIMOR_BLOBS),
                "--patches",
                str(et / EAST_TIMOR_PATCHES),
                "--patch-threshold",
                "0.4",
                "-o",
                str(et / target),
            ),
            "is the input",
        )
        assert (et / target).read_bytes() == before


@pytest.mark.parametrize("mean", ["null", "NaN", "5.0", "-0.1", "Infinity"])
def test_patch_means_outside_unit_interval_are_refused(tmp_path: Path, gpw_dir: Path, mean: str) -> None:
    doc = json.loads((gpw_dir / "east_timor" / EAST_TIMOR_PATCHES).read_text())
    doc["features"] = doc["features"][:3]
    text = json.dumps(doc).replace('"mean": ', '"mean_": ')
    bad = json.loads(text)
    for i, f in enumerate(bad["features"]):
        f["properties"]["mean"] = 0.5 if i != 1 else "@"
    patches = tmp_path / "patches.geojson"
    patches.write_text(json.dumps(bad).replace('"@"', mean))
    out = tmp_path / "c.geojson"
    one_line(
        invoke(
            "candidates",
            "--blobs",
            str(gpw_dir / "east_timor" / EAST_TIMOR_BLOBS),
            "--patches",
            str(patches),
            "--patch-threshold",
            "0.4",
            "-o",
            str(out),
        ),
        "'mean'",
        "feature 1",
    )
    assert not out.exists()


@pytest.mark.parametrize("value", [np.inf, -np.inf])
def test_infinite_heatmap_values_are_refused(tmp_path: Path, value: float) -> None:
    from plastics_core.geo.raster import Raster
    from plastics_core.storage.outputs import write_cog

    data = np.full((1, 64, 64), 0.2, np.float32)
    data[0, 10, 10] = value
    write_cog(
        Raster(
            data=data,
            crs="EPSG:32750",
            transform=Affine(10, 0, 318000, 0, -10, 9054000),
            band_descriptions=("median",),
            name="t",
        ),
        tmp_path / "h.tif",
    )
    out = tmp_path / "b.geojson"
    one_line(invoke("blobs", str(tmp_path / "h.tif"), "-o", str(out)), "infinite")
    assert not out.exists()


def _roi(path: Path, ring: list[list[float]]) -> Path:
    path.write_text(json.dumps({"type": "Polygon", "coordinates": [ring]}))
    return path


def test_polar_rois_are_refused_for_the_right_reason(cli_env: Path) -> None:
    north_cap = _roi(cli_env / "north.geojson", [[-180, 85], [180, 85], [180, 90], [-180, 90], [-180, 85]])
    south_cap = _roi(
        cli_env / "south.geojson", [[-180, -90], [180, -90], [180, -80], [-180, -80], [-180, -90]]
    )
    ring = _roi(cli_env / "ring.geojson", [[-180, 86], [180, 86], [180, 87], [-180, 87], [-180, 86]])
    for path, pole in ((north_cap, "North Pole"), (south_cap, "South Pole"), (ring, "North Pole")):
        line = one_line(invoke("roi", "add", "polar", str(path)), pole)
        assert "antimeridian" not in line
    wide = _roi(cli_env / "wide.geojson", [[-170, 10], [175, 10], [175, 11], [-170, 11], [-170, 10]])
    assert "antimeridian" in one_line(invoke("roi", "add", "wide", str(wide)))
    svalbard = _roi(
        cli_env / "svalbard.geojson", [[15.0, 78.0], [15.1, 78.0], [15.1, 78.05], [15.0, 78.05], [15.0, 78.0]]
    )
    assert invoke("roi", "add", "svalbard", str(svalbard)).exit_code == 0  # high latitude, not polar


def test_too_large_roi_names_an_option_that_exists(cli_env: Path) -> None:
    big = _roi(cli_env / "big.geojson", [[10, 0], [15, 0], [15, 5], [10, 5], [10, 0]])
    line = one_line(invoke("roi", "add", "big", str(big)), "plastics roi split")
    assert "--force" not in line


def test_run_hash_with_a_trailing_newline_is_refused(cli_env: Path) -> None:
    one_line(invoke("sites", "--roi", "test_patch", "--run-hash", "0123456789ab\n"), "not a run hash")


_KILLED_WRITE = """
import os, sys
from plastics_core.storage import atomic
with atomic.atomic_writer(sys.argv[1]) as fh:
    fh.write(b"partial")
    fh.flush()
    os._exit(9)  # killed between the temp write and the rename
"""


def test_a_killed_write_leaves_a_temp_file_that_the_next_write_removes(tmp_path: Path) -> None:
    from plastics_core.storage.atomic import write_bytes

    target = tmp_path / "out" / "blobs.geojson"
    subprocess.run(
        [sys.executable, "-c", _KILLED_WRITE, str(target)],
        check=False,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    )
    left = [p.name for p in target.parent.iterdir()]
    assert len(left) == 1 and left[0].endswith(".tmp") and not target.exists(), left
    mine = target.parent / f".other.geojson.p{os.getpid()}-inflight.tmp"  # a write in progress: kept
    mine.write_bytes(b"")
    write_bytes(b"{}", target.parent / "candidates.geojson")  # any write in the folder cleans up
    assert sorted(p.name for p in target.parent.iterdir()) == sorted(["candidates.geojson", mine.name])


def test_registry_table_fence_is_longer_than_any_backtick_run_in_it() -> None:
    from plastics_dagster.assets.preview import _code_block

    block = _code_block("name ```` evil\n```\n# heading")
    fence = block.splitlines()[0]
    assert set(fence) == {"`"} and len(fence) == 5 and block.endswith("\n" + fence)
