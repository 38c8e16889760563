"""One asset invoked with build_asset_context, and the IO manager's layout on disk and on S3."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pytest
from affine import Affine
from shapely.geometry import Point, box

from plastics_core.geo.raster import Raster
from plastics_core.storage.folders import DescartesRun, read_run, write_raster_folder, write_run
from plastics_core.storage.store import atomic_write, store_path
from tests._s3 import moto_bucket


def _raster(name: str, x0: float) -> Raster:
    data = np.full((3, 8, 8), 0.25, np.float32)
    data[:, 0, 0] = np.nan
    return Raster(data, "EPSG:32750", Affine(10, 0, x0, 0, -10, 9050000), ("a|b", "c|d", "median"), name=name)


def _patches() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {"mean": [0.5], "median": [0.5], "min": [0.1], "max": [0.9], "std": [0.1], "count": [4]},
        geometry=[box(115.34, -8.57, 115.345, -8.565)],
        crs="EPSG:4326",
    )


def _grid(name: str) -> Raster:
    data = np.full((1, 3, 4), 0.5, np.float32)
    data[0, 0, 0] = np.nan
    return Raster(
        data,
        "EPSG:32750",
        Affine(80, 0, 500000, 0, -80, 9050000),
        ("patch_score",),
        name=name,
        tags={"window": "45", "stride": "8"},
    )


def _roundtrip(store: str) -> None:
    base = store_path(store)
    manifest = base / "descartes_run" / "r" / "2021-01-01" / "abc123def456.json"
    run = DescartesRun(
        {"tiles": ["1:0:10.0:50:0:0", "1:0:10.0:50:0:1"], "run_hash": "abc123def456"},
        [_raster("1:0:10.0:50:0:0", 500000), _raster("1:0:10.0:50:0:1", 500080)],
        [_grid("1:0:10.0:50:0:0"), _grid("1:0:10.0:50:0:1")],
    )
    write_run(manifest, run)
    back = read_run(manifest)
    assert back.manifest == run.manifest
    assert [r.name for r in back.heatmaps] == run.manifest["tiles"]
    np.testing.assert_array_equal(back.heatmaps[0].data, run.heatmaps[0].data)
    assert back.heatmaps[0].band_descriptions == ("a|b", "c|d", "median")
    np.testing.assert_array_equal(back.patch_grids[1].data, run.patch_grids[1].data)
    assert back.patch_grids[1].tags["stride"] == "8"
    folder = base / "heatmaps" / "r" / "2021-01-01" / "abc123def456"
    assert write_raster_folder(folder, run.heatmaps)
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["1_0_10.0_50_0_0.tif", "1_0_10.0_50_0_1.tif", "mosaic.vrt", "tiles.json"]
    assert 'relativeToVRT="1"' in (folder / "mosaic.vrt").read_text()


def test_io_layout_local(tmp_path: Path) -> None:
    _roundtrip(str(tmp_path / "store"))
    leftovers = [p for p in (tmp_path / "store").rglob("*") if p.name.endswith(".tmp")]
    assert not leftovers


def test_atomic_write_keeps_previous_on_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = store_path(str(tmp_path)) / "x.json"
    atomic_write(target, b"old")

    def boom(_: int) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("plastics_core.storage.store.os.fsync", boom)  # the writer io_manager re-exports
    with pytest.raises(OSError):
        atomic_write(target, b"new")
    assert Path(target.path).read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


@pytest.fixture()
def s3_store(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    with moto_bucket(monkeypatch, "s3://plastics/store") as url:
        yield url


def test_io_layout_s3(s3_store: str) -> None:
    _roundtrip(s3_store)


def test_candidates_asset_with_build_asset_context(tmp_path: Path) -> None:
    from dagster import build_asset_context

    from plastics_dagster.assets.sites import candidates
    from plastics_dagster.config import DetectionParams
    from plastics_dagster.partitions import partition_key
    from plastics_dagster.resources import ImagerySourceResource, StoreResource

    blob_gdf = gpd.GeoDataFrame(
        {
            "name": ["0", "1"],
            "lon": [115.342, 115.355],
            "lat": [-8.567, -8.556],
            "sigma": [4.0, 4.0],
            "score": [0.9, 0.8],
            "row": [1, 2],
            "col": [1, 2],
        },
        geometry=[Point(115.342, -8.567), Point(115.355, -8.556)],
        crs="EPSG:4326",
    )
    resources = {
        "params": DetectionParams(preset="high"),
        "imagery": ImagerySourceResource(),
        "store": StoreResource(location=str(tmp_path)),
    }
    with build_asset_context(
        partition_key=partition_key("test_patch", "2021-01-01"), resources=resources
    ) as ctx:
        out: Any = candidates(ctx, blobs=blob_gdf, patch_geojson=_patches())
    gdf = out.value
    assert list(gdf["name"]) == ["0"]  # only the blob inside a patch scoring >= 0.3
    assert out.metadata["candidates"].value == 1
    assert "data:image/png;base64," in str(out.metadata["thumbnail"].value)


def test_new_run_hash_never_touches_other_runs(tmp_path: Path) -> None:
    from plastics_dagster.config import DetectionParams

    base = store_path(str(tmp_path))
    hashes = [
        DetectionParams().run_hash("synthetic", "r"),
        DetectionParams(patch_threshold=0.5).run_hash("synthetic", "r"),
    ]
    assert hashes[0] != hashes[1]
    folder = base / "heatmaps" / "r" / "2021-01-01"
    write_raster_folder(folder / hashes[0], [_raster("t", 500000)])
    first = {p: p.read_bytes() for p in (tmp_path / "heatmaps").rglob("*") if p.is_file()}
    write_raster_folder(folder / hashes[1], [_raster("t", 500000)])
    assert all(p.read_bytes() == b for p, b in first.items())
    assert sorted(p.name for p in Path(folder.path).iterdir()) == sorted(hashes)
