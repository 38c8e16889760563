"""The `plastics` CLI: help everywhere, one-line user errors (exit 2), real stage re-runs, the demo.

Everything runs the real code paths: click's CliRunner for the fast commands, a subprocess
(`python -m plastics_dagster.cli`) for the end-to-end demo. Nothing is mocked.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import click
import numpy as np
import pytest
from affine import Affine
from click.testing import CliRunner, Result

from plastics_dagster.cli import cli

EAST_TIMOR_BLOBS = "pixel_candidates_v0.0.11_thresh0.6_minsigma3.5.geojson"
EAST_TIMOR_PATCHES = "patch_classifier_v1.2_stride8.geojson"
EAST_TIMOR_PUBLISHED = "published_candidates_patch_threshold_0.4.geojson"


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A private Dagster home and output store for one test."""
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    monkeypatch.setenv("PLASTICS_STORE", str(tmp_path / "store"))
    monkeypatch.setenv("PLASTICS_PROGRESS", "0")
    return {"DAGSTER_HOME": str(tmp_path / "dagster_home"), "PLASTICS_STORE": str(tmp_path / "store")}


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def all_command_paths(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = [prefix]
    for name, cmd in sorted(group.commands.items()):
        if isinstance(cmd, click.Group):
            paths += all_command_paths(cmd, (*prefix, name))
        else:
            paths.append((*prefix, name))
    return paths


def test_every_command_has_help() -> None:
    paths = all_command_paths(cli)
    expected = {
        ("demo",),
        ("run",),
        ("sites",),
        ("roi", "add"),
        ("roi", "list"),
        ("blobs",),
        ("candidates",),
        ("models", "list"),
        ("models", "pull"),
        ("models", "verify"),
    }
    assert expected <= set(paths)
    for path in paths:
        result = CliRunner().invoke(cli, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert "Usage: plastics" in result.output, path


def _user_error(result: Result, needle: str) -> None:
    """Exit code 2, exactly one non-empty stderr line starting 'Error:', naming ``needle``."""
    assert result.exit_code == 2, (result.exit_code, result.output)
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith("Error: "), lines
    assert needle.lower() in lines[0].lower(), lines
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("roi", "add", "missing", "/nonexistent/roi.geojson"), "not found"),
        (("roi", "add", "a/b", "{gpw}/test_patch.geojson"), "'a/b'"),
        (("run", "--window", "2021-13-01"), "2021-13-01"),
        (("run", "--window", "2021-02-01"), "quarterly"),
        (("run", "--roi", "a/b", "--window", "2021-01-01"), "'a/b'"),
        (("run", "--roi", "never-added", "--window", "2021-01-01"), "plastics roi add"),
        (("run", "--window", "2021-01-01", "--preset", "extreme"), "--preset"),
        (("run", "--window", "2021-01-01", "--param", "nosuch=1"), "KEY=VALUE"),
        (
            ("run", "--window", "2021-01-01", "--param", "tilesize=abc"),
            "tilesize=abc: Input should be a valid integer",
        ),
        (
            (
                "candidates",
                "--blobs",
                "{et}/" + EAST_TIMOR_BLOBS,
                "--patches",
                "{et}/" + EAST_TIMOR_PATCHES,
                "--patch-threshold",
                "1.5",
                "-o",
                "{tmp}/c.geojson",
            ),
            "patch_threshold",
        ),
        (("blobs", "{tmp}/missing.tif", "-o", "{tmp}/b.geojson"), "does not exist"),
        (("models", "verify", "nosuch_model.h5"), "unknown model"),
        (("models", "pull", "nosuch_model.h5"), "unknown model"),
        (("models", "list", "--store", "ftp://example.org/models"), "unsupported model store"),
        (("roi", "split", "bali", "{gpw}/bali.geojson", "--cell", "0.25", "--tilesize", "3"), "tilesize"),
        (("roi", "split", "bali", "{gpw}/bali.geojson", "--cell", "0.25", "--tilesize", "20000"), "tilesize"),
        (
            (
                "run",
                "--roi",
                "test_patch",
                "--window",
                "2021-01-01",
                "--imagery",
                "synthetic",
                "--store",
                "gs://bucket/x",
            ),
            "store gs:// is not supported",
        ),
        (
            (
                "run",
                "--roi",
                "test_patch",
                "--window",
                "2021-01-01",
                "--imagery",
                "synthetic",
                "--store",
                "S3://bucket/x",
            ),
            "store S3:// is not supported",
        ),
        (("nosuchcommand",), "No such command"),
        (("run",), "--window"),
    ],
)
def test_user_errors_are_one_line_exit_2(
    args: tuple[str, ...], needle: str, env: dict[str, str], gpw_dir: Path, tmp_path: Path
) -> None:
    filled = [a.format(gpw=gpw_dir, et=gpw_dir / "east_timor", tmp=tmp_path) for a in args]
    _user_error(CliRunner().invoke(cli, filled), needle)
    assert not (tmp_path / "c.geojson").exists()  # no partial output on error


def test_threshold_out_of_range_for_blobs(tmp_path: Path) -> None:
    heat = _heatmap_cog(tmp_path)
    result = CliRunner().invoke(
        cli, ["blobs", str(heat), "--pred-threshold", "1.5", "-o", str(tmp_path / "b.geojson")]
    )
    _user_error(result, "pred_threshold")
    assert not (tmp_path / "b.geojson").exists()


@pytest.mark.parametrize(
    ("option", "value", "needle"),
    [("--max-sigma", "1e9", "max_sigma=1000000000.0"), ("--min-sigma", "0", "min_sigma=0.0")],
)
def test_blob_sigmas_have_the_run_parameters_bounds(
    tmp_path: Path, option: str, value: str, needle: str
) -> None:
    """``plastics blobs`` refuses what ``plastics run --param`` refuses, with the same line."""
    from plastics_core.errors import ParameterError
    from plastics_core.params import make_params

    heat = _heatmap_cog(tmp_path)
    result = CliRunner().invoke(cli, ["blobs", str(heat), option, value, "-o", str(tmp_path / "b.geojson")])
    _user_error(result, needle)
    with pytest.raises(ParameterError) as run_error:
        make_params({option.removeprefix("--").replace("-", "_"): float(value)})
    assert str(run_error.value) in result.output
    assert "(0, 200]" in result.output
    assert not (tmp_path / "b.geojson").exists()


def test_candidates_east_timor_returns_the_five_published(gpw_dir: Path, tmp_path: Path) -> None:
    et = gpw_dir / "east_timor"
    out = tmp_path / "candidates.geojson"
    result = invoke(
        "candidates",
        "--blobs",
        str(et / EAST_TIMOR_BLOBS),
        "--patches",
        str(et / EAST_TIMOR_PATCHES),
        "--patch-threshold",
        "0.4",
        "-o",
        str(out),
    )
    assert result.exit_code == 0, result.output
    got = {f["properties"]["name"] for f in json.loads(out.read_text())["features"]}
    published = {
        f["properties"]["name"] for f in json.loads((et / EAST_TIMOR_PUBLISHED).read_text())["features"]
    }
    assert len(published) == 5
    assert got == published
    assert "candidates       5:" in result.output


def _heatmap_cog(tmp_path: Path) -> Path:
    """A 2-band heatmap COG (pair + median) over east Bali with one bright Gaussian blob."""
    from plastics_core.geo.raster import Raster
    from plastics_core.storage.outputs import write_cog

    yy, xx = np.mgrid[0:200, 0:200]
    blob = 0.95 * np.exp(-((yy - 120) ** 2 + (xx - 80) ** 2) / (2 * 6.0**2))
    data = np.stack([blob, blob]).astype(np.float32)
    data[:, :5, :5] = np.nan  # masked corner
    raster = Raster(
        data=data,
        crs="EPSG:32750",
        transform=Affine(10, 0, 318000, 0, -10, 9054000),
        band_descriptions=("2021-01-01_2021-04-01|2021-07-01_2021-10-01", "median"),
        name="test",
    )
    path = tmp_path / "heatmap.tif"
    write_cog(raster, path)
    return path


def test_blobs_on_a_heatmap_cog(tmp_path: Path) -> None:
    from pyproj import Transformer

    heat = _heatmap_cog(tmp_path)
    out = tmp_path / "blobs.geojson"
    result = invoke("blobs", str(heat), "--preset", "high", "-o", str(out))
    assert result.exit_code == 0, result.output
    feats = json.loads(out.read_text())["features"]
    assert len(feats) == 1
    lon, lat = feats[0]["geometry"]["coordinates"]
    x, y = Transformer.from_crs(4326, 32750, always_xy=True).transform(lon, lat)
    assert abs(x - (318000 + 80.5 * 10)) < 30 and abs(y - (9054000 - 120.5 * 10)) < 30
    # a stricter threshold than the blob's peak finds nothing, and still writes a valid empty file
    result = invoke("blobs", str(heat), "--pred-threshold", "0.99", "-o", str(out))
    assert result.exit_code == 0
    assert json.loads(out.read_text())["features"] == []


def test_roi_add_and_list(env: dict[str, str], gpw_dir: Path) -> None:
    result = invoke("roi", "add", "temesi", str(gpw_dir / "test_patch.geojson"))
    assert result.exit_code == 0, result.output
    assert (Path(env["PLASTICS_STORE"]) / "rois" / "temesi.geojson").is_file()
    listed = invoke("roi", "list")
    assert re.search(r"^temesi\t", listed.output, re.M), listed.output


def test_models_list_and_verify(models_dir: Path) -> None:
    listed = invoke("models", "list", "--store", str(models_dir))
    assert listed.exit_code == 0
    assert "present  9ad795ffbff7  spectrogram_v0.0.11_2021-07-13.h5" in listed.output
    verified = invoke("models", "verify", "--store", str(models_dir), "spectrogram_v0.0.11_2021-07-13.h5")
    assert verified.exit_code == 0
    assert "ok 9ad795ffbff74fc2edea2ba9eb2c9fe8423df1f8981d088026d4f2b2e64a2d4b" in verified.output


def test_checksum_mismatch_is_a_user_error(tmp_path: Path) -> None:
    bad = tmp_path / "models"
    bad.mkdir()
    (bad / "spectrogram_v0.0.11_2021-07-13.h5").write_bytes(b"not the published model")
    result = CliRunner().invoke(cli, ["models", "verify", "--store", str(bad)])
    _user_error(result, "sha256")


@pytest.mark.slow
def test_demo_finds_tpa_temesi(demo_run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    proc, tmp_path = demo_run
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    for noise in ("oneDNN", "absl::", "cuda", "TF-TRT", "tensorflow"):  # TensorFlow's startup lines
        assert noise not in proc.stderr, proc.stderr[-2000:]
    match = re.search(r"found TPA Temesi: nearest candidate (\d+) m away", proc.stdout)
    assert match, proc.stdout
    assert int(match.group(1)) < 500
    for key in ("tiles", "blobs", "candidates", "contour area", "geocode status", "output folder"):
        assert re.search(rf"^{key}\s", proc.stdout, re.M), (key, proc.stdout)
    assert str(tmp_path / "store") in proc.stdout
    assert list((tmp_path / "store" / "candidates" / "test_patch").glob("*/*.geojson"))
    # published to the embedded database beside the store; the printed URL is Temesi's site there
    browse = re.search(
        r"^  then open http://127\.0\.0\.1:8000/sites/(\S+)  \(TPA Temesi\)$", proc.stdout, re.M
    )
    assert browse and "  plastics serve" in proc.stdout, proc.stdout
    from plastics_core.sitedb import queries
    from plastics_core.sitedb.engine import open_database

    engine = open_database(f"sqlite:///{tmp_path / 'sites.sqlite'}")
    site = queries.get_site(engine, browse.group(1))
    engine.dispose()
    assert site is not None and site["roi"] == "test_patch"


def test_roi_split_bali_registers_cells(env: dict[str, str], gpw_dir: Path) -> None:
    from dagster import DagsterInstance

    from plastics_core.geo.roi import read_roi, roi_area_km2

    result = invoke("roi", "split", "bali", str(gpw_dir / "bali.geojson"), "--cell", "0.25")
    assert result.exit_code == 0, result.output
    files = sorted((Path(env["PLASTICS_STORE"]) / "rois").glob("bali-r*c*.geojson"))
    assert len(files) > 5
    parts = DagsterInstance.from_config(env["DAGSTER_HOME"]).get_dynamic_partitions("roi")
    assert sorted(parts) == sorted(f.stem for f in files)
    total = sum(roi_area_km2(read_roi(f)) for f in files)
    assert abs(total - roi_area_km2(read_roi(gpw_dir / "bali.geojson"))) < 1.0  # cells tile the island
    again = invoke("roi", "split", "bali", str(gpw_dir / "bali.geojson"), "--cell", "0.25")
    assert "0 newly registered" in again.output  # idempotent
    _user_error(
        CliRunner().invoke(cli, ["roi", "split", "bali", str(gpw_dir / "bali.geojson"), "--cell", "-1"]),
        "--cell",
    )
