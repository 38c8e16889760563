"""The whole graph on real formats: the real Slovenia L1C scenes written as ESA-like JPEG 2000
granules with STAC items, served over HTTP on 127.0.0.1, read by the ``stac`` imagery resource
through its granule cache, and materialized for one detection window.

The scenes show farmland, forest and villages with no waste site (a negative control): every
heatmap pixel stays below 0.5 and no candidate is found. Their catalog dates are moved from 2015
to 2021 (same days) so that they fall inside the window partitions, which begin 2017-07-01; the
pixels are the real ones. One-month composites paired month to month (July, August): each month
has one clear and one fully cloudy day.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from dagster import DagsterInstance
from rasterio.warp import transform_bounds
from shapely.geometry import box

from plastics_core.storage.outputs import read_raster
from tests._granules import slovenia_scenes, write_catalog
from tests._stac_server import serve

pytestmark = pytest.mark.slow
ROI, WINDOW = "ljubljana", "2021-07-01"
PARAMS = {"tilesize": 256, "pad": 16, "pairs": 1, "mosaic_period": 1, "spectrogram_interval": 1}


@pytest.fixture(scope="module")
def run(shared_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from plastics_core.storage.store import store_path
    from plastics_dagster.registry import store_roi
    from plastics_dagster.resources import ImagerySourceResource
    from plastics_dagster.runner import materialize_partition

    root = tmp_path_factory.mktemp("real_graph")
    scenes = [
        replace(s, datetime=s.datetime.replace(year=2021), id=s.id.replace("_2015", "_2021"))
        for s in slovenia_scenes(shared_dir / "data")
    ]
    template = json.loads(
        (shared_dir / "data" / "stac" / "earth_search_v1_sentinel-2-l1c_search_response.json").read_text()
    )["features"][0]
    write_catalog(scenes, root / "granules", template, block=64)
    rows, cols = scenes[0].bands.shape[1:]
    t = scenes[0].transform
    footprint = box(
        *transform_bounds(scenes[0].crs, "EPSG:4326", t.c, t.f + t.e * rows, t.c + t.a * cols, t.f)
    )
    store, cache = root / "store", root / "cache"
    store_roi(store_path(str(store)), ROI, footprint)
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("roi", [ROI])
    with serve(root / "granules") as (url, stats):
        imagery = ImagerySourceResource(kind="stac", path=url, granule_cache=str(cache), max_cloud_cover=100)
        summary = materialize_partition(
            ROI,
            WINDOW,
            overrides=dict(PARAMS),
            store=str(store),
            imagery=imagery,
            instance=instance,
            registry=False,
        )
        served = stats.bytes_served
    return {"summary": summary, "store": store, "cache": cache, "served": served}


def test_real_granules_through_the_graph(run: dict[str, Any]) -> None:
    summary = run["summary"]
    assert summary.success and not summary.checks_failed
    assert summary.tiles >= 1 and summary.pairs == 1 and summary.pairs_computed == summary.tiles
    assert run["served"] > 0, "the granules were read over HTTP"
    blocks = list(run["cache"].rglob("*.tif"))
    assert blocks, "the granule cache holds the decoded blocks"


def test_negative_control_no_site_and_low_heatmap(run: dict[str, Any]) -> None:
    summary = run["summary"]
    assert summary.blobs == 0 and summary.candidates == []
    candidates = json.loads(Path(summary.paths["candidates"]).read_text())
    assert candidates["type"] == "FeatureCollection" and candidates["features"] == []
    folder = run["store"] / "heatmaps" / ROI / WINDOW / summary.run_hash
    values = np.concatenate([read_raster(p).data[-1].ravel() for p in sorted(folder.glob("*.tif"))])
    clear = values[np.isfinite(values)]
    print(
        f"tiles {summary.tiles}, scored px {clear.size}, max {clear.max():.4f}, p99 {np.quantile(clear, 0.99):.4f}"
    )
    assert clear.size > 5000, "both months have a clear day: the pair is scored over the scenes' footprint"
    assert float(clear.max()) < 0.5, f"real farmland scored {clear.max():.3f}"
