"""Input validation everywhere: the CLI prints ONE line and exits 2 with no
traceback, and a Dagster run fails with the SAME message in its step failure.

Complements tests/test_cli.py (which covers a first set of CLI user errors) and tests/test_roi.py
(ROI file errors): here every run parameter, model, imagery and ROI-name error is checked on both
surfaces -- `plastics run` / `roi add` and a real `materialize()` / `roi_sensor` tick.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from affine import Affine
from click.testing import CliRunner
from dagster import DagsterInstance, SensorResult, SkipReason, build_sensor_context, materialize

from plastics_core.errors import ImageryError, ModelError, ParameterError, PlasticsError, RoiError
from plastics_core.geo.roi import validate_roi_name
from plastics_dagster.cli import cli
from plastics_dagster.config import DetectionParams
from plastics_dagster.partitions import partition_key
from plastics_dagster.resources import (
    ImagerySourceResource,
    ModelStoreResource,
    StoreResource,
)

PATCH_MODEL = "v1.1.0_4-23-21_patch_classifier_45px_patch.h5"
PIXEL_MODEL = "spectrogram_v0.0.11_2021-07-13.h5"
WINDOW = "2021-01-01"
UNSAFE_NAMES = ["../x", "a/b", "a b", "bäli", "a|b", "a,b", "Bali", "-x", "", "x" * 65, "a\nb", "a.b"]
#: unsafe names that can also be file names (for the roi_sensor's watched folder)
UNSAFE_FILE_NAMES = ["a b", "bäli", "a|b", "a,b", "Bali", "-x", "a.b", "ünïcødé"]


def one_line_error(result: Any) -> str:
    """The single ``Error:`` line of a CLI user error (exit 2, no traceback); returns its text."""
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert "Traceback" not in result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), lines
    return lines[0][len("Error: ") :]


def run_cli(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args))


@dataclass
class ProcResult:
    exit_code: int
    stdout: str
    stderr: str
    exception: None = None

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def run_cli_process(*args: str, cwd: Path) -> ProcResult:
    """`python -m plastics_dagster.cli ARGS` in a fresh process: the real stderr of a user's
    terminal (used where a Dagster run starts, so Dagster's own log output is part of what we check)."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run(
        [sys.executable, "-m", "plastics_dagster.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return ProcResult(proc.returncode, proc.stdout, proc.stderr)


def message_of(fn: Any) -> str:
    """The one-line message of the PlasticsError ``fn()`` raises."""
    with pytest.raises(PlasticsError) as info:
        fn()
    msg = str(info.value)
    assert "\n" not in msg and msg
    return msg


def failure_messages(result: Any) -> str:
    """Every error message (whole cause chain) of a failed run's events: step failures, resource
    init failures and the run failure -- what the Dagster UI shows."""
    texts: list[str] = []
    for event in result.all_events:
        err = getattr(event.event_specific_data, "error", None)
        while err is not None:
            texts.append(err.message.strip())
            err = err.cause
    return "\n".join(texts)


def dagster_failure(
    resources: dict[str, Any], roi: str = "test_patch", params: dict[str, Any] | None = None
) -> str:
    """Materialize ``descartes_run`` for (roi, WINDOW) with ``resources`` (and ``params`` as run
    config, as the launchpad sends them); return the failure text."""
    from dagster import DagsterInvalidConfigError

    from plastics_dagster.definitions import ALL_ASSETS, default_resources

    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("roi", [roi])
    res = default_resources(**resources)
    config = {"resources": {"params": {"config": params}}} if params else None
    try:
        result = materialize(
            ALL_ASSETS,
            selection=["descartes_run"],
            partition_key=partition_key(roi, WINDOW),
            instance=instance,
            resources=res,
            raise_on_error=False,
            run_config=config,
        )
    except DagsterInvalidConfigError as exc:  # refused by config validation: nothing ran
        return str(exc)
    assert not result.success
    return failure_messages(result)


# ----------------------------------------------------------------------------- run parameters
BAD_PARAMS = [
    ({"pred_threshold": 1.5}, "pred_threshold"),
    ({"pred_threshold": float("nan")}, "pred_threshold"),
    ({"area_threshold": -0.1}, "area_threshold"),
    ({"patch_threshold": 2.0}, "patch_threshold"),
    ({"min_sigma": 0.0}, "min_sigma"),
    ({"max_sigma": -2.0}, "max_sigma"),
    ({"min_sigma": 5.0, "max_sigma": 4.0}, "exceeds max_sigma"),
    ({"rect_width": 0.0}, "rect_width"),
    ({"mosaic_period": 0}, "mosaic_period"),
    ({"spectrogram_interval": -1}, "spectrogram_interval"),
    ({"tilesize": True}, "tilesize"),  # YAML "True" is no tile size
    ({"tilesize": 1_000_000}, "[64, 4096]"),
    ({"pad": 300}, "[0, 256]"),
    ({"max_sigma": 1e9}, "max_sigma"),
    ({"stride": 0}, "stride"),
    ({"composite_method": "mean"}, "composite_method"),
    ({"preset": "extreme"}, "preset"),
    ({"model": "nosuch.h5"}, PIXEL_MODEL),  # unknown model lists the available ones
    ({"patch_model": "nosuch.h5"}, PATCH_MODEL),
    ({"ensemble_model": "nosuch-ensemble"}, "v0.0.11_ensemble-8-25-21"),  # lists the ensembles
    ({"model": PATCH_MODEL}, "patch model"),  # input shape incompatible with the bands
    ({"patch_model": PIXEL_MODEL}, "pixel model"),
]


@pytest.mark.parametrize(("params", "needle"), BAD_PARAMS, ids=[str(p) for p, _ in BAD_PARAMS])
def test_bad_run_parameter_cli_and_dagster_same_message(
    params: dict[str, Any], needle: str, cli_env: Path
) -> None:
    """`plastics run --param K=V` and a Dagster run with the same params fail with one message
    (Dagster: refused by config validation for a bad kind, else at resource initialization,
    before any step runs)."""
    from plastics_dagster.config import detection_params

    expected = message_of(lambda: detection_params(params))
    assert needle in expected, expected
    args = ["run", "--window", WINDOW]
    for key, value in params.items():
        args += ["--param", f"{key}={value}"]
    line = one_line_error(run_cli(*args))
    assert expected in line, (expected, line)
    assert not (cli_env / "store").exists() or not list((cli_env / "store").glob("descartes_run/**/*.json"))
    failure = dagster_failure({}, params=params)
    assert expected in failure or (failure.startswith("Error in config") and needle in failure), (
        expected,
        failure,
    )


def test_runner_reports_launchpad_param_errors_in_one_line() -> None:
    """A bad parameter reaching Dagster (UI launchpad) does not fail the resources' initialisation:
    the first step fails with the one line, and the runner raises it as the one-line PlasticsError."""
    from plastics_dagster.definitions import ALL_ASSETS, default_resources
    from plastics_dagster.runner import raise_failure

    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("roi", ["test_patch"])
    result = materialize(
        ALL_ASSETS,
        selection=["descartes_run"],
        partition_key=partition_key("test_patch", WINDOW),
        instance=instance,
        resources=default_resources(),
        run_config={"resources": {"params": {"config": {"pred_threshold": 7.0}}}},
        raise_on_error=False,
    )
    assert not result.success
    assert [e.step_key for e in result.get_step_failure_events()] == ["descartes_run.plan_tiles"]
    with pytest.raises(ParameterError) as info:
        raise_failure(result)
    msg = str(info.value)
    assert "pred_threshold=7.0" in msg and "[0, 1]" in msg and "\n" not in msg, msg
    assert "plastics_core.errors" not in msg and "Traceback" not in msg, msg


def test_model_errors_name_the_choices() -> None:
    from plastics_core.params import check_model_names

    with pytest.raises(ModelError, match=r"available are spectrogram_v0\.0\.11_2021-07-13\.h5"):
        check_model_names("nosuch.h5", PATCH_MODEL, "v0.0.11_ensemble-8-25-21")
    with pytest.raises(ModelError, match="available ensembles are v0.0.11_ensemble-8-25-21"):
        check_model_names(PIXEL_MODEL, PATCH_MODEL, "nope")
    with pytest.raises(ModelError, match="incompatible with the pixel"):
        check_model_names(PATCH_MODEL, PATCH_MODEL, "v0.0.11_ensemble-8-25-21")
    check_model_names(PIXEL_MODEL, PATCH_MODEL, "v0.0.11_ensemble-8-25-21")
    # an ensemble member is a pixel model too (bare file name or full key)
    check_model_names(
        "spectrogram_v0.0.11_unit_norm_a_2021-08-25.h5", PATCH_MODEL, "v0.0.11_ensemble-8-25-21"
    )


@pytest.mark.parametrize(
    ("window", "needle"),
    [
        ("2016-10-01", "quarterly"),
        ("2021-01-15", "quarterly"),
        ("2021-03-01", "quarterly"),
        ("20210101", "not a date"),
        ("2021-02-30", "not a date"),
        ("", "not a date"),
    ],
)
def test_unknown_window(window: str, needle: str, cli_env: Path) -> None:
    line = one_line_error(run_cli("run", "--window", window))
    assert needle in line and ("YYYY-MM-DD" in line or "Jan/Apr/Jul/Oct" in line), line


def test_end_before_start_is_a_parameter_error() -> None:
    import datetime as dt

    from plastics_core.geo.periods import Period, pair_periods

    msg = message_of(lambda: Period(dt.date(2021, 4, 1), dt.date(2021, 1, 1)))
    assert "not after start" in msg
    message_of(lambda: Period(dt.date(2021, 1, 1), dt.date(2021, 1, 1)))  # empty period
    with pytest.raises(ParameterError):
        pair_periods(dt.date(2021, 1, 1), mosaic_period=0)


# ----------------------------------------------------------------------------- models
def test_checksum_mismatch_in_run(cli_env: Path, models_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = cli_env / "models"
    shutil.copytree(models_dir, bad, ignore=shutil.ignore_patterns("*.md"))
    target = bad / PIXEL_MODEL
    target.chmod(0o644)
    data = bytearray(target.read_bytes())
    mid = len(data) // 2
    data[mid : mid + 16] = bytes(255 - b for b in data[mid : mid + 16])  # corrupt: same size, wrong sha256
    target.write_bytes(bytes(data))
    monkeypatch.setenv("PLASTICS_MODEL_STORE", str(bad))
    line = one_line_error(
        run_cli_process(
            "run", "--window", WINDOW, "--param", "tilesize=256", "--param", "pad=16", cwd=cli_env
        )
    )
    assert "sha256" in line and PIXEL_MODEL in line, line
    failure = dagster_failure(
        {"models": ModelStoreResource(location=str(bad)), "params": DetectionParams(tilesize=256, pad=16)}
    )
    assert "sha256" in failure and PIXEL_MODEL in failure


# ----------------------------------------------------------------------------- imagery
def _bad_tif(folder: Path, count: int, dtype: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "S2L1C_20210115_bad.tif"
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        count=count,
        height=8,
        width=8,
        dtype=dtype,
        crs="EPSG:32750",
        transform=Affine(10, 0, 318000, 0, -10, 9054000),
    ) as dst:
        dst.write(np.ones((count, 8, 8), dtype=dtype))
    return path


@pytest.mark.parametrize(
    ("count", "dtype", "needle"), [(4, "uint16", "has 4 bands"), (12, "float32", "is float32")]
)
def test_imagery_wrong_bands_or_dtype(count: int, dtype: str, needle: str, cli_env: Path) -> None:
    folder = cli_env / f"imagery_{count}_{dtype}"
    _bad_tif(folder, count, dtype)
    line = one_line_error(
        run_cli_process(
            "run",
            "--window",
            WINDOW,
            "--imagery",
            f"local:{folder}",
            "--param",
            "tilesize=256",
            "--param",
            "pad=16",
            cwd=cli_env,
        )
    )
    assert needle in line and "infer_tile" not in line, line  # found by the preflight, before any tile step
    failure = dagster_failure(
        {
            "imagery": ImagerySourceResource(kind="local", path=str(folder)),
            "params": DetectionParams(tilesize=256, pad=16),
        }
    )
    assert needle in failure, failure


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ("nosuch", "unknown imagery kind"),
        ("local:/nonexistent/imagery", "does not exist"),
        ("local", "needs a folder"),
    ],
)
def test_imagery_source_config_errors(spec: str, needle: str, cli_env: Path) -> None:
    line = one_line_error(run_cli_process("run", "--window", WINDOW, "--imagery", spec, cwd=cli_env))
    assert needle in line, line


def test_scene_stack_rejects_wrong_bands_and_dtype() -> None:
    import datetime as dt

    from plastics_core.geo.scenes import SceneStack

    def stack(b: int, dtype: Any) -> SceneStack:
        return SceneStack(
            np.zeros((1, b, 4, 4), dtype),
            np.zeros((1, 4, 4), bool),
            "EPSG:32750",
            Affine.identity(),
            (dt.date(2021, 1, 5),),
        )

    with pytest.raises(ImageryError, match="13 bands"):
        stack(13, np.uint16)
    with pytest.raises(ImageryError, match="complex64"):
        stack(12, np.complex64)


# ----------------------------------------------------------------------------- stage commands
@pytest.mark.parametrize(
    ("opts", "needle"),
    [
        (["--min-sigma", "0"], "sigma"),
        (["--max-sigma", "-3"], "sigma"),
        (["--area-threshold", "1.1"], "area_threshold"),
        (["--pred-threshold", "-0.01"], "pred_threshold"),
        (["--min-sigma", "9", "--max-sigma", "4"], "min_sigma"),
        (["--pred-threshold", "nan"], "pred_threshold"),
        (["--band", "nosuch"], "nosuch"),
        (["--band", "9"], "band index"),
    ],
)
def test_blobs_cli_parameter_errors(opts: list[str], needle: str, tmp_path: Path) -> None:
    from plastics_core.geo.raster import Raster
    from plastics_core.storage.outputs import write_cog

    heat = tmp_path / "h.tif"
    write_cog(
        Raster(
            np.full((2, 16, 16), 0.5, np.float32),
            "EPSG:32750",
            Affine(10, 0, 318000, 0, -10, 9054000),
            ("a|b", "median"),
        ),
        heat,
    )
    out = tmp_path / "b.geojson"
    line = one_line_error(run_cli("blobs", str(heat), *opts, "-o", str(out)))
    assert needle in line, line
    assert not out.exists()


@pytest.mark.parametrize("threshold", ["-0.5", "1.01", "nan"])
def test_candidates_cli_threshold_errors(threshold: str, gpw_dir: Path, tmp_path: Path) -> None:
    et = gpw_dir / "east_timor"
    out = tmp_path / "c.geojson"
    line = one_line_error(
        run_cli(
            "candidates",
            "--blobs",
            str(et / "pixel_candidates_v0.0.11_thresh0.6_minsigma3.5.geojson"),
            "--patches",
            str(et / "patch_classifier_v1.2_stride8.geojson"),
            "--patch-threshold",
            threshold,
            "-o",
            str(out),
        )
    )
    assert "patch_threshold" in line
    assert not out.exists()


# ----------------------------------------------------------------------------- ROI names
@pytest.mark.parametrize("name", UNSAFE_NAMES, ids=[repr(n) for n in UNSAFE_NAMES])
def test_unsafe_roi_names_rejected_by_cli(name: str, cli_env: Path, gpw_dir: Path) -> None:
    expected = message_of(lambda: validate_roi_name(name))
    added = one_line_error(run_cli("roi", "add", "--", name, str(gpw_dir / "test_patch.geojson")))
    assert " ".join(expected.split()) == added, (expected, added)
    ran = one_line_error(run_cli("run", f"--roi={name}", "--window", WINDOW))
    assert " ".join(expected.split()) in ran, (expected, ran)
    assert not (cli_env / "store" / "rois").exists() or not list((cli_env / "store" / "rois").iterdir())
    assert not (cli_env / "x").exists() and not (cli_env / "x.geojson").exists()


@pytest.mark.parametrize("name", ["../x", "a b", "a,b", "bäli", "a|b"])
def test_unsafe_roi_partition_fails_in_dagster_with_same_message(name: str, tmp_path: Path) -> None:
    """Dagster accepts any dynamic partition string, so a bad name added behind our back (UI,
    API) must still fail the run with the ROI-name message and write nothing. (A ``|`` makes the
    multi-partition key ambiguous: Dagster itself refuses to launch it.)"""
    from dagster._core.errors import DagsterError

    store = tmp_path / "store"
    try:
        failure = dagster_failure({"store": StoreResource(location=str(store))}, roi=name)
    except DagsterError as exc:  # refused before any step ran
        assert "|" in name, exc
    else:
        assert message_of(lambda: validate_roi_name(name)) in failure, failure
    assert not store.exists() or not [p for p in store.rglob("*") if p.is_file()]
    assert not (tmp_path / "x").exists()


def test_roi_sensor_rejects_unsafe_file_names_consistently(
    tmp_path: Path, gpw_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rois = tmp_path / "rois"
    rois.mkdir()
    text = (gpw_dir / "test_patch.geojson").read_text()
    for name in UNSAFE_FILE_NAMES:
        (rois / f"{name}.geojson").write_text(text)
    (rois / "good_one.geojson").write_text(text)
    monkeypatch.setenv("PLASTICS_ROI_DIR", str(rois))
    store = tmp_path / "store"
    resources = {
        "params": DetectionParams(),
        "imagery": ImagerySourceResource(),
        "store": StoreResource(location=str(store)),
    }
    instance = DagsterInstance.ephemeral()
    ctx = build_sensor_context(instance=instance, resources=resources)
    result: Any = roi_sensor_tick(ctx)
    assert isinstance(result, SensorResult)
    (req,) = result.dynamic_partitions_requests or []
    assert list(req.partition_keys or []) == ["good_one"]
    keys: list[Any] = [r.partition_key for r in result.run_requests or []]
    assert {k.keys_by_dimension["roi"] for k in keys} == {"good_one"}
    assert not store.exists()  # the sensor writes nothing
    # each rejected file is remembered in the cursor: the next tick neither retries nor warns again
    assert set(json.loads(ctx.cursor or "{}")) >= {f"{n}.geojson" for n in UNSAFE_FILE_NAMES}
    again = roi_sensor_tick(build_sensor_context(instance=instance, cursor=ctx.cursor, resources=resources))
    assert isinstance(again, SkipReason)


def roi_sensor_tick(ctx: Any) -> Any:
    from plastics_dagster.sensors import roi_sensor

    return roi_sensor(ctx)


def test_roi_name_rule_is_the_same_in_every_entry_point() -> None:
    """The CLI, the registry, the sensor and the IO layout share validate_roi_name."""
    from plastics_core.storage.store import store_path
    from plastics_dagster import registry

    root = store_path("/tmp/never-written")
    for name in UNSAFE_NAMES:
        with pytest.raises(RoiError):
            registry.roi_key(root, name)
