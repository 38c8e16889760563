"""Per-tile fan-out: ``descartes_run`` is a graph (plan_tiles -> DynamicOut -> infer_tile -> collect;
submit_tiles feeds infer_tile the EarthOne jobs, a no-op on the default local backend).

A synthetic 4-tile partition (64 px tiles) is materialized in-process; each tile's outputs equal
:func:`plastics_core.execution.pipeline.run_tile` on that tile, and a second run with the same run hash
skips every tile (idempotent writes under the run-hash folder)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from dagster import AssetKey, AssetSelection, DagsterEventType, DagsterInstance, materialize

from tests import _fanout_util as fu

SELECTION = AssetSelection.assets("descartes_run", "heatmaps", "patch_geojson")


def _materialize(instance: DagsterInstance, store: Path) -> Any:
    from plastics_dagster.definitions import ALL_ASSETS

    return materialize(
        ALL_ASSETS,
        selection=SELECTION,
        partition_key=fu.partition(),
        instance=instance,
        resources=fu.resources(store),
    )


def _infer_metadata(result: Any) -> list[dict[str, Any]]:
    return [
        dict(e.event_specific_data.metadata)
        for e in result.all_events
        if e.event_type == DagsterEventType.STEP_OUTPUT and e.step_key.split("[")[0].endswith("infer_tile")
    ]


@pytest.fixture(scope="module")
def first(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    store = tmp_path_factory.mktemp("fanout_store")
    instance = DagsterInstance.ephemeral()
    fu.register(instance, store)
    result = _materialize(instance, store)
    assert result.success
    mtimes = {p.name: p.stat().st_mtime_ns for p in fu.run_dir(store).iterdir()}
    return {"store": store, "instance": instance, "result": result, "mtimes": mtimes}


def test_graph_shape_and_gpu_op() -> None:
    from plastics_dagster.fanout import descartes_run, infer_tile
    from plastics_dagster.tile_steps import INFER_TILE_TAGS, mapping_key

    graph: Any = descartes_run.node_def
    assert {n.name for n in graph.nodes} == {"plan_tiles", "submit_tiles", "infer_tile", "collect_tiles"}
    assert descartes_run.keys == {AssetKey("descartes_run")}
    assert infer_tile.pool == "gpu" and infer_tile.tags["dagster-celery/queue"] == "gpu"
    assert json.loads(infer_tile.tags["dagster-k8s/config"]) == INFER_TILE_TAGS["dagster-k8s/config"]
    keys = ["897:22:10.0:50:-20:-105", "897:22:10.0:50:20:-105", "897:22:10.0:50:-20:105"]
    mks = [mapping_key(k) for k in keys]
    assert len(set(mks)) == 3 and all(m.replace("_", "").isalnum() for m in mks)


def test_one_step_per_tile_and_manifest(first: dict[str, Any]) -> None:
    from plastics_core.geo.tiles import plan_tiles

    store, result = first["store"], first["result"]
    expected = [t.key for t in plan_tiles(fu.four_tile_roi(), fu.TILESIZE, fu.PAD)]
    meta = _infer_metadata(result)
    assert sorted(m["tile"].value for m in meta) == expected
    assert not any(m["skipped"].value for m in meta)
    from plastics_core.models.infer import inference_device

    assert {m["device"].value for m in meta} == {inference_device()}  # numpy:CPU without a GPU
    manifest = fu.manifest(store)
    assert (
        manifest["tiles"] == expected
        and manifest["backend"] == "local"
        and manifest["executor"] == "in-process"
    )
    assert manifest["run_hash"] == fu.run_hash() and manifest["imagery"]["scene_ids"]
    from plastics_core.execution.manifest import MANIFEST_KEYS

    assert sorted(manifest) == sorted(MANIFEST_KEYS)  # the one schema (the window step's manifests too)
    assert manifest["earthone"] == {"function_ids": [], "jobs": {}}
    assert len(fu.tile_markers(store)) == 4
    assert sorted(p.name for p in store.iterdir()) == [
        "composites",
        "descartes_run",
        "heatmaps",
        "patch_geojson",
        "rois",
    ]
    heatmaps = result.output_for_node("heatmaps")
    assert [r.name for r in heatmaps] == expected
    assert all(r.data.shape == (2, 108, 108) for r in heatmaps)


def test_tile_outputs_equal_run_tile(first: dict[str, Any], models_dir: Path) -> None:
    from plastics_core.execution import pipeline
    from plastics_core.geo.tiles import tile_from_key
    from plastics_core.models.store import ModelStore
    from plastics_core.storage.outputs import read_raster
    from plastics_dagster.assets.detection import to_detect_params
    from plastics_dagster.config import DetectionParams
    from plastics_dagster.resources import ImagerySourceResource

    key = fu.manifest(first["store"])["tiles"][0]
    params = DetectionParams(tilesize=fu.TILESIZE, pad=fu.PAD, pairs=1)
    ref = pipeline.run_tile(
        tile_from_key(key),
        ImagerySourceResource().get_source(),
        ModelStore(str(models_dir)),
        to_detect_params(params),
        dt.date.fromisoformat(fu.WINDOW),
    )
    got = read_raster(fu.run_dir(first["store"]) / f"{key.replace(':', '_')}.tif")
    np.testing.assert_array_equal(got.data, ref.heatmap.data)
    assert got.band_descriptions == ref.heatmap.band_descriptions


def test_rerun_skips_existing_tiles(first: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    from plastics_core import params as core

    store = first["store"]
    before = fu.comparable_manifest(store)
    expected, hashed = fu.run_hash(), []
    real = core.run_hash

    def counting(*args: Any) -> str:
        hashed.append(real(*args))
        return hashed[-1]

    monkeypatch.setattr(core, "run_hash", counting)
    result = _materialize(first["instance"], store)
    assert result.success
    # the run hash is computed once in the run (its resource instance) and read by every op,
    # asset and IO manager: 4 infer_tile steps, collect_tiles, heatmaps, patch_geojson, 3 outputs
    assert hashed == [expected]
    meta = _infer_metadata(result)
    assert len(meta) == 4 and all(m["skipped"].value for m in meta)
    tile_files = {p.name: p.stat().st_mtime_ns for p in fu.run_dir(store).iterdir()}
    assert tile_files == first["mtimes"]  # nothing rewritten
    assert fu.comparable_manifest(store) == before
    collect = [
        e for e in result.get_asset_materialization_events() if e.asset_key == AssetKey("descartes_run")
    ]
    assert collect[0].materialization.metadata["tiles_skipped"].value == 4


def test_progress_tiles_done_in_the_dagster_log(first: dict[str, Any]) -> None:
    """Every tile step logs ``tiles done k/n``; in-process the counts run 1..4 in order."""
    import re

    records = first["instance"].all_logs(first["result"].run_id)
    found = [re.search(r"tiles done (\d+)/(\d+)", r.user_message) for r in records]
    counts = [(int(m.group(1)), int(m.group(2))) for m in found if m]
    assert counts == [(1, 4), (2, 4), (3, 4), (4, 4)], counts


def test_each_tile_step_logs_its_phases(first: dict[str, Any]) -> None:
    """A line per phase inside each tile step: imagery read, composites, pixel model, patch model."""
    records = first["instance"].all_logs(first["result"].run_id)
    for phase in ("imagery read", "composites built", "pixel model done", "patch model done"):
        steps = {r.step_key for r in records if f": {phase}" in r.user_message}
        assert len(steps) == 4 and all(s and ".infer_tile[z" in s for s in steps), (phase, steps)
