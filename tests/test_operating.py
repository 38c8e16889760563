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
    with pytest.raises(
        ParameterError, match="not complete until 2021-10-06.*newest complete window is 2020-10-01"
    ):
        check_complete("2021-01-01", dt.date(2021, 10, 1))
    with pytest.raises(ParameterError, match="not complete"):
        check_complete("2040-01-01")


def test_cli_refuses_a_future_window_in_one_line(cli_env: Path) -> None:
    result = invoke("run", "--roi", "test_patch", "--window", "2040-01-01")
    assert result.exit_code == 2
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert (
        len(lines) == 1
        and "window 2040-01-01 is not complete" in lines[0]
        and "Traceback" not in result.output
    )


def test_instance_yaml_limits_runs_and_gpu_pool(cli_env: Path) -> None:
    from plastics_dagster.cli._instance import GPU_POOL_LIMIT, MAX_CONCURRENT_RUNS, open_instance

    instance = open_instance()
    cfg = instance.get_concurrency_config()
    assert (
        cfg.run_queue_config is not None and cfg.run_queue_config.max_concurrent_runs == MAX_CONCURRENT_RUNS
    )
    assert cfg.pool_config.default_pool_limit == GPU_POOL_LIMIT
    assert instance.telemetry_enabled is False
    assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
    custom = "telemetry:\n  enabled: false\n"
    (cli_env / "home" / "dagster.yaml").write_text(custom)
    open_instance()
    assert (
        cli_env / "home" / "dagster.yaml"
    ).read_text() == custom  # an operator's file is never overwritten


def test_roi_remove_keeps_outputs_unless_purge(cli_env: Path, gpw_dir: Path) -> None:
    geo = gpw_dir / "test_patch.geojson"
    assert invoke("roi", "add", "temesi", str(geo)).exit_code == 0
    assert invoke("roi", "add", "other", str(geo)).exit_code == 0
    for name in ("temesi", "other"):
        out = cli_env / "store" / "enriched_sites" / name / "2021-01-01"
        out.mkdir(parents=True)
        (out / "x.geojson").write_text("{}")
        cached = cli_env / "store" / "composites" / name / "abc123abc123" / "tile"
        cached.mkdir(parents=True)
        (cached / "2021-01-01_2021-04-01.npz").write_bytes(b"")
    result = invoke("roi", "remove", "temesi")
    assert result.exit_code == 0 and "1 stored path deleted" in result.output, result.output
    assert (cli_env / "store" / "composites" / "temesi").exists()
    instance = DagsterInstance.from_config(str(cli_env / "home"))
    assert instance.get_dynamic_partitions("roi") == ["other"]
    assert not (cli_env / "store" / "rois" / "temesi.geojson").exists()
    assert (cli_env / "store" / "enriched_sites" / "temesi" / "2021-01-01" / "x.geojson").exists()
    result = invoke("roi", "remove", "other", "--purge")
    assert result.exit_code == 0 and not (cli_env / "store" / "enriched_sites" / "other").exists()
    assert not (cli_env / "store" / "composites" / "other").exists()  # cached composites go too
    again = invoke("roi", "remove", "other")
    assert (
        again.exit_code == 2
        and "is not registered" in again.output
        and len(again.output.strip().splitlines()) == 1
    )


def test_step_keys_are_short_and_unique() -> None:
    from plastics_dagster.tile_steps import mapping_key

    assert mapping_key("897:22:10.0:50:-21:-106") == "z50_xm21_ym106"
    keys = [
        "897:22:10.0:50:-20:-105",
        "897:22:10.0:50:20:-105",
        "897:22:10.0:50:-20:105",
        "897:22:10.0:51:-20:105",
    ]
    assert len({mapping_key(k) for k in keys}) == 4


@pytest.mark.slow
def test_automation_requests_new_partitions_and_follows_upstream() -> None:
    """Declarative automation, evaluated with Dagster's own evaluator: nothing on the first tick; a
    new ROI -> its latest-window partition of every detection asset, once; an updated window of an
    ROI -> its site_registry and published_sites."""
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
    instance.report_runless_asset_event(
        AssetMaterialization("enriched_sites", partition=str(partition_key("a", "2021-01-01")))
    )
    result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=result.cursor)
    assert result.get_requested_partitions(dg.AssetKey("site_registry")) == {"a"}
    assert result.get_requested_partitions(dg.AssetKey("published_sites")) == {
        "a"
    }  # automated like the registry
    assert result.total_requested == 2  # an old window: its downstream detection assets are backfills
    sensors = {s.name: s for s in defs.get_repository_def().sensor_defs}
    assert sensors["registry_automation"].default_status == dg.DefaultSensorStatus.RUNNING
    assert sensors["detection_automation"].default_status == dg.DefaultSensorStatus.STOPPED


def _step_failures(result: object) -> dict[str, object]:
    return {e.step_key: e.step_failure_data for e in result.all_events if e.is_step_failure}  # type: ignore[attr-defined]


def test_unregistered_roi_fails_in_one_step_with_one_line(tmp_path: Path) -> None:
    """A partition added in the UI without a geometry: only plan_tiles fails, with the sentence to fix it."""
    from dagster import materialize

    from plastics_dagster.definitions import ALL_ASSETS, default_resources
    from plastics_dagster.resources import StoreResource

    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("roi", ["ui_only"])
    result = materialize(
        ALL_ASSETS,
        selection=["descartes_run"],
        partition_key=partition_key("ui_only", "2021-01-01"),
        instance=instance,
        raise_on_error=False,
        resources=default_resources(store=StoreResource(location=str(tmp_path / "store"))),
    )
    failures = _step_failures(result)
    assert list(failures) == ["descartes_run.plan_tiles"]
    data: object = failures["descartes_run.plan_tiles"]
    desc = data.user_failure_data.description  # type: ignore[attr-defined]
    assert (
        desc.startswith("ROI 'ui_only' is not registered")
        and "plastics roi add ui_only" in desc
        and "\n" not in desc
    )
    assert data.error.cause is None  # type: ignore[attr-defined]  # no chained traceback


def test_missing_upstream_partition_is_one_sentence(tmp_path: Path) -> None:
    from dagster import materialize

    from plastics_dagster.definitions import ALL_ASSETS, default_resources
    from plastics_dagster.resources import StoreResource

    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("roi", ["test_patch"])
    result = materialize(
        ALL_ASSETS,
        selection=["candidates"],
        partition_key=partition_key("test_patch", "2021-01-01"),
        instance=instance,
        raise_on_error=False,
        resources=default_resources(store=StoreResource(location=str(tmp_path / "store"))),
    )
    (data,) = _step_failures(result).values()
    desc = data.user_failure_data.description  # type: ignore[attr-defined]
    assert desc.startswith("blobs is not materialized for partition test_patch|2021-01-01"), desc
    assert "materialize blobs first" in desc and "\n" not in desc


@pytest.mark.parametrize(
    "text", ["concurrency:\n  runs:\n    max_concurrent_runs: two\n", "concurrency: [\n"]
)
def test_invalid_instance_config_is_one_line(cli_env: Path, text: str) -> None:
    """An operator's broken dagster.yaml (a wrong value, or not YAML): one line naming the file, exit 2."""
    home = cli_env / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text(text)
    result = invoke("roi", "list")
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert result.exit_code == 2 and len(lines) == 1, result.output
    assert "dagster.yaml is not a valid Dagster instance configuration" in lines[0]
    assert (home / "dagster.yaml").read_text() == text  # never overwritten
