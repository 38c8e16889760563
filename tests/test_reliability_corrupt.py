"""A corrupt store file is named in one line, moved aside and recomputed by the rerun; data errors
are not retried, network faults keep their retries.

The store is a copy of the session's shared run (``graph_run`` in tests/conftest.py: synthetic
imagery, the real models); a tile COG is truncated or the pair's manifest is overwritten with
broken JSON, as a damaged copy of a store would be.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from dagster import DagsterInstance

from plastics_core.errors import PlasticsError
from plastics_core.geo.periods import Period
from plastics_core.imagery.synthetic import SyntheticSource
from plastics_dagster.resources import ImagerySourceResource
from tests._graph_run import GRAPH_RUN_PARAMS, GRAPH_RUN_WINDOW, GraphRun

ROI = "test_patch"


@pytest.fixture
def store(graph_run: GraphRun, tmp_path: Path) -> Path:
    """A private copy of the session's shared run's store."""
    assert graph_run.summary.success and graph_run.summary.window == GRAPH_RUN_WINDOW
    copy = tmp_path / "store"
    shutil.copytree(graph_run.store, copy)
    return copy


def _pair_folder(store: Path) -> Path:
    folders = [p for p in (store / "descartes_run" / ROI / GRAPH_RUN_WINDOW).iterdir() if p.is_dir()]
    assert len(folders) == 1, folders
    return folders[0]


def _rerun(store: Path, instance: DagsterInstance) -> Any:
    from plastics_dagster.runner import materialize_partition

    return materialize_partition(
        ROI,
        GRAPH_RUN_WINDOW,
        overrides=dict(GRAPH_RUN_PARAMS),
        store=str(store),
        imagery="synthetic",
        instance=instance,
        registry=False,
    )


def _retries(instance: DagsterInstance) -> int:
    return sum(
        e.dagster_event is not None and e.dagster_event.event_type_value == "STEP_UP_FOR_RETRY"
        for run in instance.get_runs()
        for e in instance.all_logs(run.run_id)
    )


def _candidates(store: Path) -> bytes:
    (path,) = (store / "candidates" / ROI / GRAPH_RUN_WINDOW).glob("*.geojson")
    return path.read_bytes()


def test_truncated_tile_is_named_moved_aside_and_recomputed(store: Path, graph_run: GraphRun) -> None:
    folder = _pair_folder(store)
    tile = sorted(folder.glob("*.patchgrid.tif"))[0].name.replace(".patchgrid.tif", "")
    cog = folder / f"{tile}.tif"
    good = cog.read_bytes()
    cog.write_bytes(good[: len(good) // 2])  # a copy cut short
    with DagsterInstance.ephemeral() as instance:
        start = time.perf_counter()
        with pytest.raises(PlasticsError) as info:
            _rerun(store, instance)
        seconds = time.perf_counter() - start
        assert _retries(instance) == 0  # the same bytes would fail every retry
    msg = str(info.value)
    assert "\n" not in msg and f"{tile}.tif" in msg and "corrupt" in msg and "rerun" in msg, msg
    assert seconds < 120, seconds  # no step retries (their waits alone are 132-180 s)
    assert (folder / f"{tile}.tif.corrupt").read_bytes() == good[: len(good) // 2]  # kept for inspection
    # its summary and the pair's manifest were deleted with it, so the tile counts as not computed: a
    # sibling step of the same run that reads the pair may already have computed it again
    assert not cog.exists() or cog.read_bytes() == good
    with DagsterInstance.ephemeral() as instance:
        summary = _rerun(store, instance)
    assert summary.success
    assert cog.read_bytes() == good
    assert _candidates(store) == _candidates(graph_run.store)


def test_broken_manifest_is_named_moved_aside_and_recomputed(store: Path, graph_run: GraphRun) -> None:
    folder = _pair_folder(store)
    manifest = folder.with_name(folder.name + ".json")
    manifest.write_text('{"tiles": ["')  # truncated JSON
    with DagsterInstance.ephemeral() as instance, pytest.raises(PlasticsError) as info:
        _rerun(store, instance)
    msg = str(info.value)
    assert "\n" not in msg and manifest.name in msg and "JSON" in msg, msg
    assert manifest.with_name(manifest.name + ".corrupt").read_text() == '{"tiles": ["'
    assert not manifest.exists() or json.loads(manifest.read_text())["tiles"]  # or rebuilt by a sibling step
    with DagsterInstance.ephemeral() as instance:
        summary = _rerun(store, instance)
        assert _retries(instance) == 0
    assert summary.success and json.loads(manifest.read_text())["tiles"]
    assert _candidates(store) == _candidates(graph_run.store)


def test_corrupt_geojson_read_by_the_io_manager_fails_once(store: Path) -> None:
    from plastics_dagster.checks import ALL_CHECKS
    from plastics_dagster.config import DetectionParams
    from plastics_dagster.definitions import ALL_ASSETS, default_resources
    from plastics_dagster.partitions import partition_key
    from plastics_dagster.resources import StoreResource

    (blobs,) = (store / "blobs" / ROI / GRAPH_RUN_WINDOW).glob("*.geojson")
    blobs.write_bytes(blobs.read_bytes()[:40])
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("roi", [ROI])
    from dagster import materialize

    res = default_resources(
        params=DetectionParams(**GRAPH_RUN_PARAMS),
        imagery=ImagerySourceResource(kind="synthetic"),
        store=StoreResource(location=str(store)),
    )
    result = materialize(
        [*ALL_ASSETS, *ALL_CHECKS],
        selection=["candidates"],
        instance=instance,
        resources=res,
        partition_key=partition_key(ROI, GRAPH_RUN_WINDOW),
        raise_on_error=False,
    )
    assert not result.success
    assert not [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    from plastics_dagster.runner import raise_failure

    with pytest.raises(PlasticsError, match=rf"store file .*{blobs.name} is corrupt") as info:
        raise_failure(result)
    assert "\n" not in str(info.value)
    assert blobs.with_name(blobs.name + ".corrupt").exists() and not blobs.exists()


# ----------------------------------------------------------------------------- what is retried
class DataErrorImagery(ImagerySourceResource):
    """Synthetic source (no scenes: fast) whose ``load`` raises a data error (a malformed scene)."""

    def source_name(self) -> str:
        return "synthetic:malformed"

    def get_source(self) -> Any:
        inner = SyntheticSource(empty_periods=[Period(dt.date(2000, 1, 1), dt.date(2100, 1, 1))])

        class Malformed:
            name = "malformed"

            def search(self, geom: Any, period: Period) -> Any:
                return inner.search(geom, period)

            def load(self, tile: Any, period: Period) -> Any:
                raise ValueError("scene header says 13 bands, the data has 12")

        return Malformed()


@pytest.mark.usefixtures("short_step_retries")
def test_a_data_error_is_not_retried(tmp_path: Path) -> None:
    from tests.test_reliability_retries import run_graph

    result = run_graph(str(tmp_path / "store"), DataErrorImagery(), selection=["descartes_run"])
    assert not result.success
    assert not [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    from plastics_dagster.runner import raise_failure

    with pytest.raises(PlasticsError, match="13 bands, the data has 12"):
        raise_failure(result)


def test_deterministic_and_transient_errors_are_told_apart(tmp_path: Path) -> None:
    from plastics_core.method.enrich import FixtureGeocoder
    from plastics_dagster.reliability import is_deterministic

    answers = tmp_path / "answers.json"
    answers.write_text(json.dumps({"-8.56212,115.35024": ["not", "an", "address"]}))
    with pytest.raises((TypeError, ValueError)) as malformed:  # a malformed geocoder answer, as it raises
        FixtureGeocoder(answers).reverse(-8.56212, 115.35024)
    assert is_deterministic(malformed.value)
    with pytest.raises(ValueError) as broken_json:
        json.loads('{"tiles": [')
    assert is_deterministic(broken_json.value)
    assert is_deterministic(KeyError("lat"))
    assert not is_deterministic(ConnectionResetError("connection reset by peer"))
    assert not is_deterministic(TimeoutError("read timed out"))
    assert not is_deterministic(OSError("Read failed"))  # not a data error type: keeps the step budget
    try:  # a data error raised while handling a network fault is the network's
        try:
            raise ConnectionRefusedError("connection refused")
        except ConnectionRefusedError as exc:
            raise ValueError("no answer to parse") from exc
    except ValueError as chained:
        assert not is_deterministic(chained)
    from botocore.exceptions import EndpointConnectionError

    try:
        try:
            raise EndpointConnectionError(endpoint_url="http://127.0.0.1:9")
        except EndpointConnectionError as exc:
            raise TypeError("response body is None") from exc
    except TypeError as chained_s3:
        assert not is_deterministic(chained_s3)
