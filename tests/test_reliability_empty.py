"""Empty is not an error: a partition with no scenes, only cloudy scenes, no
blobs or no candidates materializes the WHOLE graph (every asset + its checks) with valid empty
outputs -- all-NaN heatmaps, empty FeatureCollections -- and metadata saying why.

Runs the real graph (real models where inference happens) on the synthetic source, with
small tiles (256 px) so each partition takes seconds.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from dagster import DagsterInstance, materialize

from plastics_core.geo.periods import Period
from plastics_core.imagery.synthetic import SyntheticSource
from plastics_core.storage.outputs import read_raster
from plastics_dagster.config import DetectionParams
from plastics_dagster.resources import ImagerySourceResource, StoreResource

WINDOW = "2021-01-01"
GEOJSON_ASSETS = ("patch_geojson", "blobs", "candidates", "contours", "enriched_sites")
ALL = ("descartes_run", "heatmaps", *GEOJSON_ASSETS)
SMALL: dict[str, Any] = {"tilesize": 256, "pad": 16, "pairs": 1}  # one pair per window: fast


class ScenarioImagery(ImagerySourceResource):
    """The synthetic source with every acquisition missing (``empty``) or 100 % cloud (``cloudy``)."""

    scenario: str = "empty"

    def source_name(self) -> str:
        return f"synthetic:{self.scenario}"

    def get_source(self) -> Any:
        always = [Period(dt.date(2000, 1, 1), dt.date(2100, 1, 1))]
        if self.scenario == "empty":
            return SyntheticSource(empty_periods=always)
        return SyntheticSource(cloudy_periods=always, scenes_per_month=2)


def run_partition(tmp: Path, imagery: ImagerySourceResource, **params: Any) -> tuple[Any, Path]:
    from plastics_dagster.checks import ALL_CHECKS
    from plastics_dagster.definitions import ALL_ASSETS, default_resources
    from plastics_dagster.jobs import DETECT_SELECTION
    from plastics_dagster.partitions import partition_key

    store = tmp / "store"
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("roi", ["test_patch"])
    res = default_resources(
        params=DetectionParams(**SMALL, **params), imagery=imagery, store=StoreResource(location=str(store))
    )
    result = materialize(
        [*ALL_ASSETS, *ALL_CHECKS],
        selection=DETECT_SELECTION,
        instance=instance,
        resources=res,
        partition_key=partition_key("test_patch", WINDOW),
        raise_on_error=False,
    )
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    return result, store


def metadata(result: Any, asset: str) -> dict[str, Any]:
    (mat,) = result.asset_materializations_for_node(asset)
    return {k: v.value for k, v in mat.metadata.items()}


def check_empty_graph(result: Any, store: Path, empty: tuple[str, ...]) -> dict[str, str]:
    """Every asset materialized; ``empty`` ones hold valid empty outputs and an ``empty_reason``."""
    materialized = {m.asset_key.path[-1] for m in result.get_asset_materialization_events()}
    assert set(ALL) | {"preview"} <= materialized
    assert all(e.passed for e in result.get_asset_check_evaluations()), [
        e.check_name for e in result.get_asset_check_evaluations() if not e.passed
    ]
    reasons = {}
    for asset in empty:
        meta = metadata(result, asset)
        reason = meta.get("empty_reason")
        if asset == "descartes_run":
            tiles = meta["empty_tiles"]
            assert tiles and all(isinstance(r, str) and r for r in tiles.values()), tiles
            reason = "; ".join(sorted(set(tiles.values())))
        assert isinstance(reason, str) and reason, (asset, meta)
        reasons[asset] = reason
        if asset in GEOJSON_ASSETS:
            (path,) = (store / asset / "test_patch" / WINDOW).glob("*.geojson")
            doc = json.loads(path.read_text())
            assert doc == {"type": "FeatureCollection", "features": []}, (asset, doc)
    return reasons


def check_all_nan_heatmaps(store: Path) -> None:
    (folder,) = [p for p in (store / "heatmaps" / "test_patch" / WINDOW).iterdir() if p.is_dir()]
    tifs = sorted(folder.glob("*.tif"))
    assert tifs and (folder / "mosaic.vrt").is_file()
    for tif in tifs:
        raster = read_raster(tif)
        assert raster.band_descriptions[-1] == "median" and np.isnan(raster.nodata)
        assert np.isnan(raster.data).all(), tif


@pytest.mark.slow  # a whole-graph run of its own (its imagery differs from the shared run's)
def test_no_scenes_in_window(tmp_path: Path) -> None:
    result, store = run_partition(tmp_path, ScenarioImagery(scenario="empty"))
    reasons = check_empty_graph(result, store, ALL)
    for asset in ("descartes_run", "heatmaps", "patch_geojson"):
        assert "no scenes in 2021-01-01_2021-04-01" in reasons[asset], reasons
    assert metadata(result, "descartes_run")["scenes"] == 0
    check_all_nan_heatmaps(store)
    manifest = json.loads(next((store / "descartes_run" / "test_patch" / WINDOW).glob("*.json")).read_text())
    assert manifest["imagery"]["scene_ids"] == [] and manifest["empty_reasons"]


@pytest.mark.slow  # a whole-graph run of its own (its imagery differs from the shared run's)
def test_all_scenes_cloudy(tmp_path: Path) -> None:
    result, store = run_partition(tmp_path, ScenarioImagery(scenario="cloudy"))
    reasons = check_empty_graph(result, store, ALL)
    for asset in ("descartes_run", "heatmaps", "patch_geojson"):
        assert "cloud" in reasons[asset], reasons
    assert metadata(result, "descartes_run")["scenes"] > 0  # scenes exist, every pixel masked
    check_all_nan_heatmaps(store)


@pytest.mark.slow  # a whole-graph run of its own (its imagery differs from the shared run's)
def test_no_blobs(tmp_path: Path) -> None:
    """Real inference on a world without waste sites and a strict threshold: nothing crosses it."""
    result, store = run_partition(tmp_path, ImagerySourceResource(plant_tpa=False), pred_threshold=1.0)
    reasons = check_empty_graph(result, store, ("blobs", "candidates", "contours", "enriched_sites"))
    assert "pred_threshold" in reasons["blobs"], reasons
    heat = metadata(result, "heatmaps")
    assert heat["tiles"] >= 1 and "empty_reason" not in heat  # the heatmaps themselves are not empty


@pytest.mark.slow  # a whole-graph run of its own (its imagery differs from the shared run's)
def test_blobs_but_no_candidates(tmp_path: Path) -> None:
    """TPA Temesi gives blobs, but no patch can score above 1.0: candidates onwards are empty."""
    result, store = run_partition(tmp_path, ImagerySourceResource(), patch_threshold=1.0)
    assert metadata(result, "blobs")["blobs"] >= 1
    reasons = check_empty_graph(result, store, ("candidates", "contours", "enriched_sites"))
    assert "patch" in reasons["candidates"], reasons
    assert "candidate" in reasons["contours"] and "candidate" in reasons["enriched_sites"], reasons


@pytest.mark.parametrize("scenario", ["empty", "cloudy"])
def test_core_run_tile_empty_reason(scenario: str) -> None:
    """plastics_core.execution.pipeline.run_tile short-circuits (no model needed) and says why."""
    from shapely.geometry import box

    from plastics_core.execution import pipeline
    from plastics_core.execution.loaded import Models
    from plastics_core.geo.tiles import plan_tiles

    tile = plan_tiles(box(115.34, -8.57, 115.345, -8.565), tilesize=64, pad=0)[0]
    source = ScenarioImagery(scenario=scenario).get_source()

    class NoModels(Models):
        def __init__(self) -> None:  # any use of a model would fail the test
            pass

    out = pipeline.run_tile(tile, source, NoModels(), pipeline.DetectParams(), dt.date(2021, 1, 1))
    assert out.empty_reason and (
        "no scenes" in out.empty_reason if scenario == "empty" else "cloud" in out.empty_reason
    )
    assert np.isnan(out.heatmap.data).all() and np.isnan(out.patch_grid.data).all()
