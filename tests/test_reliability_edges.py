"""Edge cases of the command line and the store: each ends in one bounded line, before any work.

- windows (and ``--start`` / ``--end``) go through one strict ``YYYY-MM-DD`` parser everywhere:
  ``2021-1-1`` is refused by ``run``, ``preview`` and the runner alike;
- ``preview --run-hash`` with a hash that is not stored never shows another run's page;
- a YAML alias bomb in ``--param`` is refused before it is expanded; every error line is bounded;
- the polar limit of ROIs: the check and its message use the same constants;
- ``roi split`` is bounded (tiles, cells) before it plans or writes, and all-or-nothing;
- ``roi remove`` refuses an ROI a run is using (a purge under a run would fail it half-way).
"""

from __future__ import annotations

import errno
import json
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from dagster import DagsterInstance

from plastics_core.errors import ParameterError, RoiError
from plastics_dagster.cli import cli
from plastics_dagster.cli._base import MAX_ERROR_CHARS

WINDOW = "2021-01-01"


def run_cli(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args))


def one_line_error(result: Any) -> str:
    """The single ``Error:`` line of a CLI user error (exit 2, no traceback), at most
    ``MAX_ERROR_CHARS`` long; returns its text."""
    assert result.exit_code == 2, (result.exit_code, result.output[-2000:], result.exception)
    assert "Traceback" not in result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), lines[:3]
    text = lines[0][len("Error: ") :]
    assert len(text) <= MAX_ERROR_CHARS, len(text)
    return text


def _polygon(path: Path, lon0: float, lat0: float, lon1: float, lat1: float) -> Path:
    ring = [[lon0, lat0], [lon1, lat0], [lon1, lat1], [lon0, lat1], [lon0, lat0]]
    path.write_text(json.dumps({"type": "Polygon", "coordinates": [ring]}))
    return path


# ----------------------------------------------------------------------------- windows
@pytest.mark.parametrize(
    "args",
    [
        ("run", "--window", "2021-1-1", "--imagery", "synthetic"),
        ("run", "--start", "2019-1-1", "--end", "2021-06-30", "--imagery", "synthetic"),
        ("preview", "--roi", "test_patch", "--window", "2021-1-1"),
        ("run", "--window", "2021-01-01T00:00", "--imagery", "synthetic"),
        ("run", "--window", "٢٠٢١-٠١-٠١", "--imagery", "synthetic"),  # non-ASCII digits
    ],
)
def test_loose_dates_are_one_line_naming_the_form(args: tuple[str, ...], cli_env: Path) -> None:
    line = one_line_error(run_cli(*args))
    assert "YYYY-MM-DD" in line and "quarter" in line, line
    assert not (cli_env / "store").exists()  # refused before anything was written


def test_end_date_is_parsed_strictly_too(cli_env: Path) -> None:
    line = one_line_error(
        run_cli("run", "--start", "2019-01-01", "--end", "2021-6-30", "--imagery", "synthetic")
    )
    assert line.startswith("--end '2021-6-30'") and "YYYY-MM-DD" in line, line


def test_one_parser_for_runner_and_partitions() -> None:
    import datetime as dt

    from plastics_core.geo.periods import parse_day
    from plastics_dagster.config import DetectionParams
    from plastics_dagster.partitions import parse_window
    from plastics_dagster.runner import pair_starts

    assert parse_day("2021-01-01") == dt.date(2021, 1, 1)
    for bad in ("2021-1-1", "2021-01-1", " 2021-01-01", "2021-01-01\n", "+2021-01-01", "2021/01/01"):
        with pytest.raises(ParameterError, match="YYYY-MM-DD"):
            parse_day(bad)
        with pytest.raises(ParameterError, match="YYYY-MM-DD"):
            parse_window(bad)
        with pytest.raises(ParameterError, match="YYYY-MM-DD"):  # was a ValueError traceback
            pair_starts(bad, DetectionParams(pairs=2))
    assert pair_starts(WINDOW, DetectionParams(pairs=2)) == ["2020-10-01", "2021-01-01"]


# ----------------------------------------------------------------------------- preview --run-hash
def _page(store: Path, run_hash: str) -> Path:
    page = store / "preview" / "test_patch" / WINDOW / f"{run_hash}.html"
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(f"<html>{run_hash}</html>")
    return page


def test_unknown_run_hash_never_falls_back_to_another_page(cli_env: Path) -> None:
    store = cli_env / "store"
    only = _page(store, "0123456789ab")
    line = one_line_error(
        run_cli("preview", "--roi", "test_patch", "--window", WINDOW, "--run-hash", "deadbeef0000")
    )
    assert "deadbeef0000" in line and "0123456789ab" in line and str(only) not in line, line
    _page(store, "ba9876543210")
    line = one_line_error(
        run_cli("preview", "--roi", "test_patch", "--window", WINDOW, "--run-hash", "deadbeef0000")
    )
    assert "0123456789ab" in line and "ba9876543210" in line, line
    ok = run_cli("preview", "--roi", "test_patch", "--window", WINDOW, "--run-hash", "0123456789ab")
    assert ok.exit_code == 0 and ok.stdout.strip() == str(only), ok.output


# ----------------------------------------------------------------------------- bounded error lines
def test_yaml_alias_bomb_is_refused_before_expansion(cli_env: Path) -> None:
    layers = ["&a [x,x,x,x,x,x,x,x,x]"] + [
        f"&{c} [{','.join([f'*{p}'] * 9)}]" for p, c in zip("abcdefgh", "bcdefghi", strict=True)
    ]
    bomb = "[" + ",".join(layers) + "]"  # 9**9 = 387 M strings once expanded
    start = time.perf_counter()
    result = run_cli("run", "--param", f"pairs={bomb}", "--window", WINDOW, "--imagery", "synthetic")
    line = one_line_error(result)
    assert time.perf_counter() - start < 30
    assert "--param" in line and "characters long" in line, line
    short = one_line_error(run_cli("run", "--param", "pairs=[&a [1,2], *a]", "--window", WINDOW))
    assert "anchors and aliases" in short, short


@pytest.mark.parametrize(
    "args",
    [
        ("run", "--param", "pairs=" + "9" * 100_000, "--window", WINDOW),
        ("run", "--param", "x" * 100_000 + "=3", "--window", WINDOW),
        ("roi", "add", "a" * 100_000, "nofile.geojson"),
    ],
)
def test_every_error_line_is_bounded(args: tuple[str, ...], cli_env: Path) -> None:
    line = one_line_error(run_cli(*args))
    assert len(line) <= MAX_ERROR_CHARS


def test_bounded_keeps_the_fix_at_the_end() -> None:
    from plastics_dagster.cli._base import bounded

    text = "problem " + "x" * 5000 + " : the fix"
    out = bounded(text)
    assert (
        len(out) <= MAX_ERROR_CHARS
        and out.startswith("problem ")
        and out.endswith(": the fix")
        and " ... " in out
    )
    assert bounded("short") == "short"


# ----------------------------------------------------------------------------- polar limit
def test_polar_limit_check_and_message_agree(cli_env: Path) -> None:
    from plastics_core.geo.roi import MAX_LAT_N, MAX_LAT_S, read_roi

    south = _polygon(cli_env / "south.geojson", 10.0, -(MAX_LAT_S + 3), 10.5, -(MAX_LAT_S + 2.5))
    line = one_line_error(run_cli("roi", "add", "south", str(south)))
    assert f"{MAX_LAT_S:.0f} deg S" in line and f"{MAX_LAT_S + 3:.2f} deg S" in line, line
    north = _polygon(cli_env / "north.geojson", 10.0, MAX_LAT_N + 0.2, 10.5, MAX_LAT_N + 0.5)
    with pytest.raises(RoiError, match=f"{MAX_LAT_N:.0f} deg N"):
        read_roi(north)
    inside = _polygon(cli_env / "inside.geojson", 10.0, -(MAX_LAT_S - 0.5), 10.5, -(MAX_LAT_S - 0.2))
    assert read_roi(inside).bounds[1] == -(MAX_LAT_S - 0.2)  # just inside the limit: accepted


# ----------------------------------------------------------------------------- roi split
def _partitions(home: Path) -> list[str]:
    with DagsterInstance.from_config(str(home)) as inst:
        return sorted(inst.get_dynamic_partitions("roi"))


def test_split_of_a_continent_is_refused_at_once(cli_env: Path) -> None:
    big = _polygon(cli_env / "big.geojson", 60.0, -10.0, 160.0, 40.0)  # ~5.5 M km2 of 0.25 deg cells
    start = time.perf_counter()
    line = one_line_error(run_cli("roi", "split", "big", str(big), "--cell", "0.05"))
    assert time.perf_counter() - start < 30, "refused before planning"
    assert "--max-tiles 50,000" in line and "GB of memory" in line, line
    assert not (cli_env / "store" / "rois").exists()
    line = one_line_error(
        run_cli("roi", "split", "big", str(big), "--cell", "0.05", "--max-tiles", "100000000")
    )
    assert "--max-cells 5,000" in line and "larger --cell" in line, line


def test_split_cell_bound_is_exact_after_planning(cli_env: Path) -> None:
    from plastics_core.geo.roi import read_roi
    from plastics_core.geo.roi_split import split_roi

    small = _polygon(cli_env / "small.geojson", 115.0, -8.5, 115.3, -8.2)
    cells = split_roi("small", read_roi(small), 0.1, max_cells=12)
    assert len(cells) == 12
    with pytest.raises(ParameterError, match="would make 12 cell ROIs, more than --max-cells 11"):
        split_roi("small", read_roi(small), 0.1, max_cells=11, max_tiles=10_000)


def test_cli_split_defaults_are_the_core_bounds() -> None:
    import importlib

    from plastics_core.geo import roi_split

    roi = importlib.import_module("plastics_dagster.cli.roi")  # the module (``cli.roi`` is the click group)
    assert (roi.MAX_CELLS, roi.MAX_TILES) == (roi_split.MAX_CELLS, roi_split.MAX_TILES)


def test_split_is_all_or_nothing(cli_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from plastics_dagster import registry

    small = _polygon(cli_env / "small.geojson", 115.0, -8.5, 115.3, -8.2)
    assert run_cli("roi", "split", "small", str(small), "--cell", "0.1").exit_code == 0
    rois = cli_env / "store" / "rois"
    before = {p.name: p.read_bytes() for p in rois.iterdir()}
    assert len(before) == 12 and len(_partitions(cli_env / "home")) == 12
    real, calls = registry.store_roi, []

    def disk_full_on_the_fifth(store: Any, name: str, geom: Any) -> Any:
        calls.append(name)
        if len(calls) == 5:
            raise OSError(errno.ENOSPC, "No space left on device", name)
        return real(store, name, geom)

    monkeypatch.setattr(registry, "store_roi", disk_full_on_the_fifth)
    result = run_cli("roi", "split", "other", str(small), "--cell", "0.1")
    assert result.exit_code == 2 and "No space left" in result.stderr
    assert {p.name: p.read_bytes() for p in rois.iterdir()} == before  # none of the new cells stays
    assert len(_partitions(cli_env / "home")) == 12
    calls.clear()  # re-splitting the same ROI into the same names restores what was there
    result = run_cli("roi", "split", "small", str(small), "--cell", "0.1")
    assert result.exit_code == 2
    assert {p.name: p.read_bytes() for p in rois.iterdir()} == before


# ----------------------------------------------------------------------------- roi remove under a run
def test_remove_is_refused_while_a_run_uses_the_roi(cli_env: Path, gpw_dir: Path) -> None:
    from dagster import DagsterRun, DagsterRunStatus

    assert run_cli("roi", "add", "bali", str(gpw_dir / "test_patch.geojson")).exit_code == 0
    with DagsterInstance.from_config(str(cli_env / "home")) as inst:
        run = DagsterRun(
            job_name="detect_job",
            run_id="0f0f0f0f-0000-4000-8000-000000000001",
            status=DagsterRunStatus.STARTED,
            tags={"plastics/roi": "bali", "plastics/window": WINDOW},
        )
        inst.add_run(run)
    line = one_line_error(run_cli("roi", "remove", "bali", "--purge"))
    assert "in use by 1 run" in line and run.run_id in line, line
    assert (cli_env / "store" / "rois" / "bali.geojson").exists() and "bali" in _partitions(cli_env / "home")
    with DagsterInstance.from_config(str(cli_env / "home")) as inst:
        inst.report_run_failed(run)  # the run ended
    assert run_cli("roi", "remove", "bali", "--purge").exit_code == 0
    assert "bali" not in _partitions(cli_env / "home")
