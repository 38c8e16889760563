"""Operating from the UI: complete windows only, the instance's run-queue limits, `plastics roi
remove`, readable step keys (real CLI through CliRunner, real Dagster instances; nothing mocked)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from dagster import AssetMaterialization, DagsterInstance

from plastics_dagster.cli import cli
from plastics_dagster.partitions import (
    IMAGERY_LAG_DAYS,
    check_complete,
    complete_windows,
    partition_key,
    window_partitions,
)


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PLASTICS_STORE", str(tmp_path / "store"))
    monkeypatch.setenv("PLASTICS_PROGRESS", "0")
    return tmp_path


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_window_dimension_ends_at_the_last_complete_window() -> None:
    keys = window_partitions.get_partition_keys()
    today = dt.date.today()
    done = complete_windows(today + dt.timedelta(days=366))  # no lag question: a year later
    last = dt.date.fromisoformat(keys[-1])
    # the last key's pair partner (6 months later, 3 months long) has ended; the next key's has not
    assert dt.date(last.year + (last.month + 8) // 12, (last.month + 8) % 12 + 1, 1) <= today
    assert keys[-1] in done and keys[0] == "2017-07-01"
    assert complete_windows(today)[-1] in (keys[-1], keys[-2])  # equal unless within the lag days


def test_incomplete_and_future_windows_are_refused() -> None:
    from plastics_core.errors import ParameterError

    check_complete("2021-01-01", dt.date(2021, 10, 1) + dt.timedelta(days=IMAGERY_LAG_DAYS))
    with pytest.raises(ParameterError, match="not complete until 2021-10-06.*newest complete window is 2020-10-01"):
        check_complete("2021-01-01", dt.date(2021, 10, 1))
    with pytest.raises(ParameterError, match="not complete"):
        check_complete("2040-01-01")


def test_cli_refuses_a_future_window_in_one_line(env: Path) -> None:
    result = invoke("run", "--roi", "test_patch", "--window", "2040-01-01")
    assert result.exit_code == 2
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "window 2040-01-01 is not complete" in lines[0] and "Traceback" not in result.output


def test_instance_yaml_limits_runs_and_gpu_pool(env: Path) -> None:
    from plastics_dagster.cli._instance import GPU_POOL_LIMIT, MAX_CONCURRENT_RUNS, open_instance

    instance = open_instance()
    cfg = instance.get_concurrency_config()
    assert cfg.run_queue_config is not None and cfg.run_queue_config.max_concurrent_runs == MAX_CONCURRENT_RUNS
    assert cfg.pool_config.default_pool_limit == GPU_POOL_LIMIT
    assert instance.telemetry_enabled is False
    assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
    custom = "telemetry:\n  enabled: false\n"
    (env / "home" / "dagster.yaml").write_text(custom)
    open_instance()
    assert (env / "home" / "dagster.yaml").read_text() == custom  # an operator's file is never overwritten


def test_roi_remove_keeps_outputs_unless_purge(env: Path, gpw_dir: Path) -> None:
    geo = gpw_dir / "test_patch.geojson"
    assert invoke("roi", "add", "temesi", str(geo)).exit_code == 0
    assert invoke("roi", "add", "other", str(geo)).exit_code == 0
    for name in ("temesi", "other"):
        out = env / "store" / "enriched_sites" / name / "2021-01-01"
        out.mkdir(parents=True)
        (out / "x.geojson").write_text("{}")
    result = invoke("roi", "remove", "temesi")
    assert result.exit_code == 0 and "1 stored path deleted" in result.output, result.output
    instance = DagsterInstance.from_config(str(env / "home"))
    assert instance.get_dynamic_partitions("roi") == ["other"]
    assert not (env / "store" / "rois" / "temesi.geojson").exists()
    assert (env / "store" / "enriched_sites" / "temesi" / "2021-01-01" / "x.geojson").exists()
    result = invoke("roi", "remove", "other", "--purge")
    assert result.exit_code == 0 and not (env / "store" / "enriched_sites" / "other").exists()
    again = invoke("roi", "remove", "other")
    assert again.exit_code == 2 and "is not registered" in again.output and len(again.output.strip().splitlines()) == 1


def test_step_keys_are_short_and_unique() -> None:
    from plastics_dagster.fanout import mapping_key

    assert mapping_key("897:22:10.0:50:-21:-106") == "z50_xm21_ym106"
    keys = ["897:22:10.0:50:-20:-105", "897:22:10.0:50:20:-105", "897:22:10.0:50:-20:105", "897:22:10.0:51:-20:105"]
    assert len({mapping_key(k) for k in keys}) == 4


@pytest.mark.slow
def test_automation_requests_new_partitions_and_follows_upstream() -> None:
    """Declarative automation, evaluated with Dagster's own evaluator: nothing on the first tick; a
    new ROI -> its latest-window partition of every detection asset, once; an updated window of an
    ROI -> its site_registry."""
    import dagster as dg

    from plastics_dagster.definitions import defs

    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("roi", ["a"])
    result = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    assert result.total_requested == 0
    instance.add_dynamic_partitions("roi", ["b"])
    result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=result.cursor)
    latest = window_partitions.get_last_partition_key()
    assert result.total_requested == 8  # descartes_run ... preview, one partition each
    for name in ("descartes_run", "enriched_sites", "preview"):
        assert result.get_requested_partitions(dg.AssetKey(name)) == {str(partition_key("b", latest))}
    result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=result.cursor)
    assert result.total_requested == 0  # requested once
    instance.report_runless_asset_event(AssetMaterialization("enriched_sites", partition=str(partition_key("a", "2021-01-01"))))
    result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=result.cursor)
    assert result.get_requested_partitions(dg.AssetKey("site_registry")) == {"a"}
    assert result.total_requested == 1  # an old window: its downstream detection assets are backfills
    sensors = {s.name: s for s in defs.get_repository_def().sensor_defs}
    assert sensors["registry_automation"].default_status == dg.DefaultSensorStatus.RUNNING
    assert sensors["detection_automation"].default_status == dg.DefaultSensorStatus.STOPPED


