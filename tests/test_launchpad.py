"""What a UI user launching ``detect_job`` from the Launchpad sees: values Dagster refuses before a
run, and the one sentence a run fails with for what Dagster cannot refuse (out-of-range numbers,
a window inside the imagery lag, no imagery source configured).

The runs are real ``detect_job`` runs of the code location's Definitions on an ephemeral
instance; each fails in its first step, before any tile is computed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from dagster import DagsterInstance, DagsterInvalidConfigError, validate_run_config

from plastics_dagster.definitions import defs
from plastics_dagster.partitions import ROI_PARTITIONS_NAME, partition_key, window_partitions

ROI = "test_patch"  # geometry from the shared default file: no registration needed
WINDOW = "2021-01-01"


def launch(
    tmp_path: Path, params: dict[str, Any], window: str = WINDOW, resources: dict[str, Any] | None = None
) -> Any:
    """A ``detect_job`` run of ``(ROI, window)`` with the Launchpad's run config; its result."""
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(ROI_PARTITIONS_NAME, [ROI])
    config = {
        "resources": {
            "params": {"config": params},
            "store": {"config": {"location": str(tmp_path / "store")}},
            **(resources or {}),
        }
    }
    validate_run_config(defs.resolve_job_def("detect_job"), config)  # what the Launchpad checks: accepted
    return defs.resolve_job_def("detect_job").execute_in_process(
        partition_key=partition_key(ROI, window), instance=instance, raise_on_error=False, run_config=config
    )


def failure_lines(result: Any) -> list[str]:
    """The messages of the run's failed steps (what the UI shows first for each)."""
    return [str(e.step_failure_data.error.message).strip() for e in result.all_events if e.is_step_failure]


def assert_one_sentence(result: Any, *needles: str) -> str:
    assert not result.success
    (line,) = failure_lines(result)  # one failed step: the first; every other step is skipped
    text = line.split(": ", 1)[1]  # after the error class Dagster prints
    assert "\n" not in text and all(n in text for n in needles), text
    everything = " ".join(str(e.message) for e in result.all_events) + line
    assert "pydantic" not in everything and "validation error" not in everything, everything
    assert "resource_fn" not in everything  # no resource-initialisation failure
    return text


def test_a_kind_outside_its_choices_is_refused_before_any_run() -> None:
    job = defs.resolve_job_def("detect_job")
    with pytest.raises(DagsterInvalidConfigError, match="preset") as info:
        validate_run_config(job, {"resources": {"params": {"config": {"preset": "extreme"}}}})
    assert "extreme" in str(info.value)


@pytest.mark.parametrize(
    ("key", "kind"), [("imagery", "sentinel"), ("imagery", "STAC"), ("geocoder", "google")]
)
def test_a_source_kind_outside_its_choices_is_refused_before_any_run(key: str, kind: str) -> None:
    """The imagery and geocoder kinds are ``Literal`` fields: the Launchpad's config check refuses
    an unknown kind, naming the value, before a run is created."""
    job = defs.resolve_job_def("detect_job")
    with pytest.raises(DagsterInvalidConfigError, match="kind") as info:
        validate_run_config(job, {"resources": {key: {"config": {"kind": kind}}}})
    assert kind in str(info.value)
    validate_run_config(job, {"resources": {"imagery": {"config": {"kind": "stac"}}}})  # a known kind


@pytest.mark.parametrize(
    ("params", "needles"),
    [
        ({"patch_threshold": -0.5}, ["patch_threshold=-0.5", "[0, 1]"]),
        ({"tilesize": 10}, ["tilesize=10", "[64, 4096]"]),
        ({"min_sigma": 30.0, "max_sigma": 25.0}, ["min_sigma", "exceeds max_sigma 25.0"]),
    ],
)
def test_an_out_of_range_value_fails_the_run_in_one_sentence(
    tmp_path: Path, params: dict[str, Any], needles: list[str]
) -> None:
    """Dagster's config schema has no numeric ranges: the Launchpad accepts the value (``launch``
    validates the config first) and the run's first step fails naming field, value and range."""
    assert_one_sentence(launch(tmp_path, params), "resources.params.config", *needles)
    assert not (tmp_path / "store" / "descartes_run").exists()  # nothing written


def test_a_window_not_complete_for_the_run_parameters_fails_in_one_sentence(tmp_path: Path) -> None:
    """The newest window of the dimension is complete for the default pair spacing; with a pair
    partner 24 months later its imagery does not exist yet: the imagery-lag check of the run says so."""
    newest = window_partitions.get_last_partition_key()
    assert newest is not None
    assert_one_sentence(
        launch(tmp_path, {"spectrogram_interval": 8}, window=newest), f"window {newest} is not complete until"
    )


def test_a_run_without_imagery_names_the_ui_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PLASTICS_IMAGERY", raising=False)
    text = assert_one_sentence(launch(tmp_path, {}), "PLASTICS_IMAGERY", "resources.imagery.config.kind")
    assert "--imagery" not in text  # the UI has no command-line flags
    from plastics_core.errors import ImageryError
    from plastics_dagster.runner import parse_imagery

    with pytest.raises(ImageryError, match="pass --imagery stac"):  # `plastics run` names its own flag
        parse_imagery(None)


def test_a_failed_run_keeps_the_partitions_materializations(tmp_path: Path) -> None:
    """What Dagster allows: every asset and check a failed run planned is shown as failed (its latest
    attempt) until a run succeeds; the partition's materializations (and the stored outputs) stay."""
    from dagster import AssetKey, AssetMaterialization, AssetPartitionStatus

    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(ROI_PARTITIONS_NAME, [ROI])
    key = str(partition_key(ROI, WINDOW))
    for asset in ("descartes_run", "heatmaps"):
        instance.report_runless_asset_event(AssetMaterialization(asset_key=asset, partition=key))
    before = instance.get_latest_materialization_event(AssetKey("heatmaps"))
    config = {
        "resources": {
            "params": {"config": {"patch_threshold": -0.5}},
            "store": {"config": {"location": str(tmp_path / "store")}},
        }
    }
    result = defs.resolve_job_def("detect_job").execute_in_process(
        partition_key=partition_key(ROI, WINDOW), instance=instance, raise_on_error=False, run_config=config
    )
    assert not result.success
    after = instance.get_latest_materialization_event(AssetKey("heatmaps"))
    assert before is not None and after is not None and after.timestamp == before.timestamp
    status = instance.get_status_by_partition(
        AssetKey("heatmaps"), [key], defs.resolve_assets_def("heatmaps").partitions_def
    )
    assert status == {key: AssetPartitionStatus.FAILED}
