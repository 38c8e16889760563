"""Helpers of the fan-out, resume and celery tests: a synthetic 4-tile ROI (small tiles), its
registration, the resources/run config pointing at a temp store, and output comparison."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from dagster import DagsterInstance, MultiPartitionKey
from pyproj import Transformer
from shapely.geometry import Point, box
from shapely.ops import transform as shp_transform

WINDOW = "2021-01-01"
TILESIZE, PAD = 64, 22  # 108 x 108 px padded tiles: 4 tiles in a few seconds
#: pairs per window in the browser tests' graph (tests/_ui_defs.py): the window's own quarter
#: through the fan-out, one more computed by its heatmaps step
UI_PAIRS = 2
ROI_NAME = "fanout4"
LON, LAT = 115.3530, -8.5620  # beside TPA Temesi (synthetic imagery plants it)


def four_tile_roi(tilesize: int = TILESIZE, pad: int = PAD) -> Any:
    """A ~60 m box (EPSG:4326) around a tile-grid corner: its 4 tiles' cores meet there."""
    from plastics_core.geo.tiles import plan_tiles

    tile = plan_tiles(Point(LON, LAT).buffer(1e-6), tilesize, pad)[0]
    x, y = tile.transform @ (pad, pad)  # top-left corner of the core, tile CRS metres
    corner = box(x - 30.0, y - 30.0, x + 30.0, y + 30.0)
    to4326 = Transformer.from_crs(tile.crs, "EPSG:4326", always_xy=True).transform
    roi = shp_transform(to4326, corner)
    assert len(plan_tiles(roi, tilesize, pad)) == 4
    return roi


def partition() -> MultiPartitionKey:
    return MultiPartitionKey({"roi": ROI_NAME, "window": WINDOW})


def register(instance: DagsterInstance, store: Path, name: str = ROI_NAME) -> Any:
    """Store the 4-tile ROI under ``store`` and add it as a ``roi`` partition of ``instance``."""
    from plastics_core.storage.store import store_path
    from plastics_dagster.registry import store_roi

    geom = four_tile_roi()
    store_roi(store_path(str(store)), name, geom)
    if not instance.has_dynamic_partition("roi", name):
        instance.add_dynamic_partitions("roi", [name])
    return geom


def resources(store: Path, **overrides: Any) -> dict[str, Any]:
    """The graph's resources on ``store`` with the small test tiles."""
    from plastics_dagster.config import DetectionParams
    from plastics_dagster.definitions import default_resources
    from plastics_dagster.resources import ImagerySourceResource, StoreResource

    return default_resources(
        params=DetectionParams(tilesize=TILESIZE, pad=PAD, pairs=1),
        imagery=ImagerySourceResource(),
        store=StoreResource(location=str(store)),
        **overrides,
    )


def run_config(store: Path, models_dir: Path) -> dict[str, Any]:
    """Run config for a launched (not in-process) run: the same resources, as config."""
    return {
        "resources": {
            "params": {"config": {"tilesize": TILESIZE, "pad": PAD, "pairs": 1}},
            "store": {"config": {"location": str(store)}},
            "models": {"config": {"location": str(models_dir)}},
            "imagery": {"config": {"kind": "synthetic"}},
        }
    }


def run_hash() -> str:
    from plastics_core.params import geometry_hash
    from plastics_dagster.config import DetectionParams
    from plastics_dagster.resources import ImagerySourceResource

    return DetectionParams(tilesize=TILESIZE, pad=PAD, pairs=1).run_hash(
        ImagerySourceResource().source_name(), geometry_hash(four_tile_roi())
    )


def run_dir(store: Path) -> Path:
    return store / "descartes_run" / ROI_NAME / WINDOW / run_hash()


def tile_markers(store: Path) -> list[Path]:
    return sorted(run_dir(store).glob("*.summary"))


def manifest(store: Path) -> dict[str, Any]:
    return json.loads((store / "descartes_run" / ROI_NAME / WINDOW / f"{run_hash()}.json").read_text())


def comparable_manifest(store: Path) -> dict[str, Any]:
    """The manifest without what legitimately differs between two runs (timings, backend, executor)."""
    doc = manifest(store)
    doc.pop("timings")
    doc.pop("backend")
    doc.pop("executor", None)
    return doc


def assert_same_outputs(a: Path, b: Path, assets: tuple[str, ...] = ("patch_geojson",)) -> None:
    """Same manifest (sans timings/backend), same tile heatmaps (bitwise incl. NaN), same
    patches and same GeoJSON of ``assets`` in two stores."""
    from plastics_core.storage.outputs import read_raster

    assert comparable_manifest(a) == comparable_manifest(b)
    tifs = sorted(p.name for p in run_dir(a).glob("*.tif"))  # per tile: pair heatmap + patch grid
    assert len(tifs) == 8 and tifs == sorted(p.name for p in run_dir(b).glob("*.tif"))
    for name in tifs:
        ra, rb = read_raster(run_dir(a) / name), read_raster(run_dir(b) / name)
        assert ra.band_descriptions == rb.band_descriptions and ra.transform == rb.transform
        np.testing.assert_array_equal(ra.data, rb.data)
    for asset in assets:
        rel = Path(asset) / ROI_NAME / WINDOW / f"{run_hash()}.geojson"
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), asset


def job_definitions(executor: str = "multiprocess") -> Any:
    """Definitions with ``fanout_job``: the fan-out descartes_run + heatmaps + patch_geojson on the
    ``multiprocess`` (or ``in_process``) executor."""
    from dagster import AssetSelection, Definitions, in_process_executor, multiprocess_executor

    from plastics_dagster.definitions import ALL_ASSETS, default_resources
    from plastics_dagster.jobs import make_detect_job

    selection = AssetSelection.assets("descartes_run", "heatmaps", "patch_geojson")
    ex = multiprocess_executor if executor == "multiprocess" else in_process_executor
    job = make_detect_job("fanout_job", executor_def=ex, selection=selection)
    return Definitions(assets=ALL_ASSETS, jobs=[job], resources=default_resources())


def fanout_job() -> Any:
    """Module-level (reconstructable) multiprocess fan-out job."""
    return job_definitions().resolve_job_def("fanout_job")


def child_run(store: str, models_dir: str) -> None:
    """Run the 4-tile partition of :func:`fanout_job` against $DAGSTER_HOME (the resume test's
    child process; the test SIGKILLs its process group mid-run)."""
    from dagster import execute_job, reconstructable

    from plastics_dagster.partitions import detect_partitions

    with DagsterInstance.get() as instance:
        config = run_config(Path(store), Path(models_dir))
        config["execution"] = {
            "config": {
                "max_concurrent": 1,
                "start_method": {
                    "forkserver": {
                        "preload_modules": [
                            "plastics_dagster.definitions",
                            "plastics_dagster.fanout",
                            "tests._fanout_util",
                        ]
                    }
                },
            }
        }
        tags = detect_partitions.get_tags_for_partition_key(partition())
        execute_job(reconstructable(fanout_job), instance, run_config=config, tags=tags, raise_on_error=False)
