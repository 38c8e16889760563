"""The real-format path: the real Slovenia L1C scenes written as ESA-like JPEG 2000 granules
(one file per band at native 10/20/60 m) with STAC items, served over HTTP on 127.0.0.1 with
Range requests, read by StacSource, with and without the granule decode cache."""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import requests
from rasterio.warp import transform_bounds
from shapely.geometry import box

from plastics_core.geo.bands import BAND_NAMES
from plastics_core.geo.periods import Period
from plastics_core.geo.tiles import plan_tiles
from plastics_core.imagery.granule_cache import GranuleCache
from plastics_core.imagery.granules import NATIVE_RES, slovenia_scenes, write_catalog
from plastics_core.imagery.retry import RetryPolicy
from plastics_core.imagery.stac import StacSource
from plastics_core.imagery.stac_config import StacConfig
from plastics_core.imagery.stac_server import serve
from plastics_core.method.composite import composite
from tests._grid import largest_overlap_tile, source_pixels_under
from tests._s3 import moto_bucket

FAST = RetryPolicy(attempts=2, base_delay=0.0, max_delay=0.0, jitter=0.0)
SUMMER = Period(dt.date(2015, 7, 1), dt.date(2015, 10, 1))


@pytest.fixture(scope="module")
def catalog(shared_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    folder = tmp_path_factory.mktemp("granules")
    template = json.loads((shared_dir / "data" / "stac" / "earth_search_v1_sentinel-2-l1c_search_response.json")
                          .read_text())["features"][0]
    return folder, write_catalog(slovenia_scenes(shared_dir / "data"), folder, template, block=64)


@pytest.fixture()
def server(catalog: tuple[Path, list[dict[str, Any]]]) -> Iterator[tuple[str, Any]]:
    with serve(catalog[0]) as served:
        yield served


@pytest.fixture(scope="module")
def scenes(shared_dir: Path) -> list[Any]:
    return slovenia_scenes(shared_dir / "data")


def _source(url: str, **kw: Any) -> StacSource:
    return StacSource(StacConfig(url=url, retry=FAST, requester_pays=False, max_cloud_cover=100.0), **kw)


def test_granules_are_esa_like(catalog: tuple[Path, list[dict[str, Any]]], scenes: list[Any]) -> None:
    folder, items = catalog
    assert len(items) == 5 and items[1]["properties"]["eo:cloud_cover"] == 100.0  # 07-31 is cloudy in `clm`
    assert items[0]["properties"]["eo:cloud_cover"] < 5.0
    scene = scenes[0]
    for band, res in NATIVE_RES.items():
        with rasterio.open(folder / scene.id / f"{band}.jp2") as src:
            assert src.driver == "JP2OpenJPEG" and src.dtypes[0] == "uint16" and src.nodata is None  # 0 by convention
            assert abs(src.transform.a - scene.transform.a * res / 10) < 1e-6
            layer = scene.cirrus if band == "B10" else scene.bands[BAND_NAMES.index(band)]
            f = res // 10
            np.testing.assert_array_equal(src.read(1), layer[::f, ::f])  # lossless, native grid
    asset = items[0]["assets"]["rededge1"]
    assert asset["href"].endswith("/B05.jp2") and asset["proj:shape"] == [51, 50]


def test_http_range_requests(server: tuple[str, Any], scenes: list[Any], catalog: tuple[Path, Any]) -> None:
    base, stats = server
    url = f"{base}/{scenes[0].id}/B02.jp2"
    size = (catalog[0] / scenes[0].id / "B02.jp2").stat().st_size
    part = requests.get(url, headers={"Range": "bytes=10-19"}, timeout=10)
    assert part.status_code == 206 and part.content == (catalog[0] / scenes[0].id / "B02.jp2").read_bytes()[10:20]
    assert part.headers["Content-Range"] == f"bytes 10-19/{size}"
    assert requests.get(f"{base}/../../etc/passwd", timeout=10).status_code == 404
    assert stats.file_requests == 1


def test_native_resolution_read_through_stac(server: tuple[str, Any], scenes: list[Any]) -> None:
    """One tile-quarter through the real STAC path: 10 m bands are the real pixels, 20 m and
    60 m bands the native pixel under each tile pixel (decoded at native size, replicated)."""
    base, stats = server
    scene = scenes[0]
    lonlat = box(*transform_bounds(scene.crs, "EPSG:4326", *rasterio.transform.array_bounds(101, 100, scene.transform)))
    tile = largest_overlap_tile(lonlat)
    stack = _source(base).load(tile, SUMMER)
    assert stats.searches == 1 and stats.file_requests > 0
    assert [d.isoformat() for d in stack.dates] == ["2015-07-11", "2015-07-31", "2015-08-20", "2015-08-30",
                                                    "2015-09-09"]
    for band in ("B02", "B05", "B01"):
        res = NATIVE_RES[band]
        f = res // 10
        r, c, inside = source_pixels_under(tile, scene.transform @ rasterio.Affine.scale(f),
                                           (-(-101 // f), -(-100 // f)))
        k = BAND_NAMES.index(band)
        native = scene.bands[k][::f, ::f]
        ok = inside & ~stack.mask[0]
        assert ok.sum() > 4000
        np.testing.assert_array_equal(stack.data[0, k][ok], native[r[ok], c[ok]])
    assert stack.mask[1][~np.all(stack.data[1] == 0, axis=0)].mean() > 0.95  # cloudy day masked


def _two_tiles(scene: Any) -> list[Any]:
    lonlat = box(*transform_bounds(scene.crs, "EPSG:4326", *rasterio.transform.array_bounds(101, 100, scene.transform)))
    tiles = sorted(plan_tiles(lonlat, tilesize=64, pad=4), key=lambda t: -t.geometry_4326.intersection(lonlat).area)
    return tiles[:2]


def test_cache_composites_identical_and_one_decode_per_granule_band(
    server: tuple[str, Any], scenes: list[Any], tmp_path: Path
) -> None:
    base, _ = server
    cache = GranuleCache(str(tmp_path / "cache"), max_bytes=10**9)
    plain, cached = _source(base), _source(base, granule_cache=cache)
    tiles = _two_tiles(scenes[0])
    for tile in tiles:
        a, b = plain.load(tile, SUMMER), cached.load(tile, SUMMER)
        assert a.dates == b.dates and a.scene_ids == b.scene_ids
        np.testing.assert_array_equal(a.data, b.data)
        np.testing.assert_array_equal(a.mask, b.mask)
        for method in ("min", "median"):
            ca, cb = composite(a, SUMMER, method), composite(b, SUMMER, method)
            np.testing.assert_array_equal(ca.data, cb.data)
            np.testing.assert_array_equal(ca.mask, cb.mask)
    entries = cache.entries()
    # every (scene, band) read was decoded exactly once, whatever the number of tiles
    assert cache.stats["decodes"] == len(entries) and cache.stats["hits"] >= cache.stats["decodes"]  # tile 2: hits
    decoded = {Path(name).parent.name for name, _, _ in entries}
    assert {scenes[k].id for k in (0, 3, 4)} <= decoded  # clear days: decoded once into the cache
    assert scenes[2].id not in decoded  # 08-20 is cloud on every tile pixel at 60 m: never decoded
    with rasterio.open(entries[0][0]) as cog:
        structure = cog.tags(ns="IMAGE_STRUCTURE")
        assert structure["LAYOUT"] == "COG" and structure["COMPRESSION"] == "ZSTD" and structure["PREDICTOR"] == "2"
    # a fill's whole-band decode, COG encode and write are timed apart
    assert {"granule_decode", "cog_encode", "cache_write"} <= set(cache.timer.totals)


def test_cache_lru_eviction(server: tuple[str, Any], scenes: list[Any], tmp_path: Path) -> None:
    base, _ = server
    cache = GranuleCache(str(tmp_path / "c"), max_bytes=10**9)
    tile = _two_tiles(scenes[0])[0]
    _source(base, granule_cache=cache, cloud_mask_resolution=None).load(tile, SUMMER)
    entries = sorted(cache.entries(), key=lambda e: e[2])
    total = sum(s for _, s, _ in entries)
    newest = entries[-1][0]
    old = time.time() - 3600
    for name, _, _ in entries[:-1]:
        os.utime(name, (old, old))
    os.utime(entries[0][0], (old - 60, old - 60))  # the least recently used
    small = GranuleCache(str(tmp_path / "c"), max_bytes=total - 1)
    assert small.evict() == 1
    left = {name for name, _, _ in small.entries()}
    assert entries[0][0] not in left and newest in left and small.size() <= total - 1


def test_drop_before_decode(server: tuple[str, Any], scenes: list[Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """Catalog cloud cover and the footprint drop scenes before any pixel is read; a day the
    60 m cloud mask masks everywhere is never read at 10 m."""
    base, _ = server
    reads: list[tuple[str, str, bool]] = []
    original = StacSource._read

    def spy(self: StacSource, item: dict[str, Any], key: str, grid: Any, nodata: Any = 0, coarse: bool = False) -> Any:
        reads.append((str(item["id"]), key, coarse))
        return original(self, item, key, grid, nodata, coarse)

    monkeypatch.setattr(StacSource, "_read", spy)
    tile = _two_tiles(scenes[0])[0]
    _source(base, max_cloud_cover=50.0).load(tile, SUMMER)
    assert {i for i, _, _ in reads} == {scenes[k].id for k in (0, 3, 4)}  # 07-31 and 08-20 never read
    far = plan_tiles(box(14.0, 40.0, 14.01, 40.01), tilesize=64, pad=4)[0]  # outside every footprint
    reads.clear()
    assert _source(base).load(far, SUMMER).data.shape[0] == 0 and reads == []
    from plastics_core.imagery.cloudmask import CloudMaskConfig

    reads.clear()
    stack = _source(base, cloud_mask=CloudMaskConfig(threshold=0.05, dilation_size=6)).load(tile, SUMMER)
    cloudy = {scenes[k].id for k in (1, 2)}
    assert {i for i, _, c in reads if not c} & cloudy == set()  # no 10 m decode of the cloudy days
    assert {i for i, _, c in reads if c} >= cloudy and len(stack.dates) == 5


@pytest.fixture()
def s3_bucket(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    with moto_bucket(monkeypatch, 's3://plastics/granules') as url:
        yield url


@pytest.mark.slow
def test_cache_on_s3_from_the_resource(server: tuple[str, Any], scenes: list[Any], s3_bucket: str) -> None:
    """The Dagster imagery resource's ``granule_cache`` on S3: same pixels, one decode per band,
    COGs read in place; eviction with the ``.used`` access markers."""
    from plastics_dagster.resources import ImagerySourceResource

    base, _ = server
    resource = ImagerySourceResource(kind="stac", path=base, granule_cache=s3_bucket, granule_cache_max_gb=1.0)
    assert resource.spec()["granule_cache"] == s3_bucket and resource.source_name() == f"stac:{base}"
    source = resource.get_source()
    cache = source.config.granule_cache
    source.config = replace(source.config, retry=FAST, requester_pays=False, max_cloud_cover=100.0)
    plain = _source(base)
    tile = _two_tiles(scenes[0])[0]
    for _ in range(2):
        a, b = plain.load(tile, SUMMER), source.load(tile, SUMMER)
        np.testing.assert_array_equal(a.data, b.data)
        np.testing.assert_array_equal(a.mask, b.mask)
    entries = cache.entries()
    assert entries and all(name.startswith("plastics/granules/") for name, _, _ in entries)
    assert cache.stats["decodes"] == len(entries) and cache.stats["hits"] >= len(entries)
    small = GranuleCache(s3_bucket, max_bytes=cache.size() // 2)
    assert small.evict() > 0 and small.size() <= cache.size()
