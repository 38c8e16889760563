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
from plastics_core.imagery.granule_blocks import BandMeta
from plastics_core.imagery.granule_cache import GranuleCache
from plastics_core.imagery.local import read_on_grid
from plastics_core.imagery.stac import StacSource
from plastics_core.imagery.stac_config import StacConfig
from plastics_core.imagery.stac_read import overview_level
from plastics_core.method.composite import composite
from plastics_core.retry import RetryPolicy
from tests._granules import NATIVE_RES, slovenia_scenes, write_catalog, write_jp2
from tests._grid import largest_overlap_tile, source_pixels_under
from tests._s3 import moto_bucket
from tests._stac_server import serve

FAST = RetryPolicy(attempts=2, base_delay=0.0, max_delay=0.0, jitter=0.0)
SUMMER = Period(dt.date(2015, 7, 1), dt.date(2015, 10, 1))


@pytest.fixture(scope="module")
def catalog(shared_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    folder = tmp_path_factory.mktemp("granules")
    template = json.loads(
        (shared_dir / "data" / "stac" / "earth_search_v1_sentinel-2-l1c_search_response.json").read_text()
    )["features"][0]
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
            assert (
                src.driver == "JP2OpenJPEG" and src.dtypes[0] == "uint16" and src.nodata is None
            )  # 0 by convention
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
    assert (
        part.status_code == 206
        and part.content == (catalog[0] / scenes[0].id / "B02.jp2").read_bytes()[10:20]
    )
    assert part.headers["Content-Range"] == f"bytes 10-19/{size}"
    assert requests.get(f"{base}/../../etc/passwd", timeout=10).status_code == 404
    assert stats.file_requests == 1


def test_native_resolution_read_through_stac(server: tuple[str, Any], scenes: list[Any]) -> None:
    """One tile-quarter through the real STAC path: 10 m bands are the real pixels, 20 m and
    60 m bands the native pixel under each tile pixel (decoded at native size, replicated)."""
    base, stats = server
    scene = scenes[0]
    lonlat = box(
        *transform_bounds(scene.crs, "EPSG:4326", *rasterio.transform.array_bounds(101, 100, scene.transform))
    )
    tile = largest_overlap_tile(lonlat)
    stack = _source(base).load(tile, SUMMER)
    assert stats.searches == 1 and stats.file_requests > 0
    assert [d.isoformat() for d in stack.dates] == [
        "2015-07-11",
        "2015-07-31",
        "2015-08-20",
        "2015-08-30",
        "2015-09-09",
    ]
    for band in ("B02", "B05", "B01"):
        res = NATIVE_RES[band]
        f = res // 10
        r, c, inside = source_pixels_under(
            tile, scene.transform @ rasterio.Affine.scale(f), (-(-101 // f), -(-100 // f))
        )
        k = BAND_NAMES.index(band)
        native = scene.bands[k][::f, ::f]
        ok = inside & ~stack.mask[0]
        assert ok.sum() > 4000
        np.testing.assert_array_equal(stack.data[0, k][ok], native[r[ok], c[ok]])
    assert stack.mask[1][~np.all(stack.data[1] == 0, axis=0)].mean() > 0.95  # cloudy day masked


def _two_tiles(scene: Any) -> list[Any]:
    lonlat = box(
        *transform_bounds(scene.crs, "EPSG:4326", *rasterio.transform.array_bounds(101, 100, scene.transform))
    )
    tiles = sorted(
        plan_tiles(lonlat, tilesize=64, pad=4), key=lambda t: -t.geometry_4326.intersection(lonlat).area
    )
    return tiles[:2]


def _same_pixels(a: Any, b: Any) -> None:
    """Equal dates, masks and unmasked data (cloud pixels the cache did not decode read 0)."""
    assert a.dates == b.dates and a.scene_ids == b.scene_ids
    np.testing.assert_array_equal(a.mask, b.mask)
    np.testing.assert_array_equal(np.where(a.mask[:, None], 0, a.data), np.where(b.mask[:, None], 0, b.data))


def test_cache_composites_identical_and_one_decode_per_block(
    server: tuple[str, Any], scenes: list[Any], tmp_path: Path
) -> None:
    base, _ = server
    cache = GranuleCache(str(tmp_path / "cache"), max_bytes=10**9, min_block=32)  # 64 px code tiles
    plain, cached = _source(base), _source(base, granule_cache=cache)
    tiles = _two_tiles(scenes[0])
    for tile in tiles:
        a, b = plain.load(tile, SUMMER), cached.load(tile, SUMMER)
        _same_pixels(a, b)
        for method in ("min", "median"):
            ca, cb = composite(a, SUMMER, method), composite(b, SUMMER, method)
            np.testing.assert_array_equal(ca.data, cb.data)
            np.testing.assert_array_equal(ca.mask, cb.mask)
    entries = cache.entries()
    # every (scene, band, block) read was decoded exactly once, whatever the number of tiles
    assert cache.stats["decodes"] == len(entries) and cache.stats["hits"] > 0  # tile 2: hits
    assert cache.stats["skipped"] > 0  # blocks in which every pixel of a tile is cloud at 60 m: not decoded
    # a granule's folder: the item id, "-", the hash of (catalog, collection, id, href)
    decoded = {Path(name).parent.parent.name.rsplit("-", 1)[0] for name, _, _ in entries}
    assert {scenes[k].id for k in (0, 3, 4)} <= decoded  # clear days: decoded once into the cache
    cloudy = {
        Path(name).parent.name
        for name, _, _ in entries
        if Path(name).parent.parent.name.rsplit("-", 1)[0] == scenes[2].id
    }
    # 08-20 is cloud on every tile pixel at 60 m: only the cloud mask's bands were read (here at full
    # resolution: these small files expose no resolution level), none of the others
    assert cloudy and not cloudy & {"green", "rededge2", "rededge3"}
    with rasterio.open(entries[0][0]) as block:
        structure = block.tags(ns="IMAGE_STRUCTURE")
        assert structure["COMPRESSION"] == "ZSTD" and structure["PREDICTOR"] == "2" and block.crs is not None
    # a fill's block decodes, encodes and writes are timed apart
    assert {"granule_decode", "cache_encode", "cache_write"} <= set(cache.timer.totals)


def test_only_the_blocks_wanted_pixels_sample_are_decoded(
    catalog: tuple[Path, list[dict[str, Any]]], scenes: list[Any], tmp_path: Path
) -> None:
    """A read decodes the blocks (GDAL's blocks of the 101 x 100 px JPEG 2000: whole 64 px code
    tile rows) under its wanted pixels, reads them exactly as the source, decodes a block once."""
    folder, _ = catalog
    scene = scenes[0]
    href = str(folder / scene.id / "B02.jp2")
    grid = (
        scene.crs,
        scene.transform @ rasterio.Affine.translation(-10, -10),
        (121, 120),
    )  # the band + 10 px
    with rasterio.open(href) as src:
        plain = read_on_grid(src, *grid, indexes=[1])[0]
        bh, bw = BandMeta.of(src, 32).block
    every = {(i, j) for i in range(-(-101 // bh)) for j in range(-(-100 // bw))}
    assert len(every) >= 2
    r, c = np.mgrid[-10:111, -10:110]  # the band's pixel under each grid pixel
    inside = (r >= 0) & (r < 101) & (c >= 0) & (c < 100)
    cache = GranuleCache(str(tmp_path / "c"), min_block=32)
    need = inside & ((r >= bh + 3) | (c >= bw + 3))  # no wanted pixel within 2 px of block (0, 0)
    got = cache.read(scene.id, "blue", lambda: rasterio.open(href), grid, need=need)
    np.testing.assert_array_equal(got[need], plain[need])
    assert (got[inside & (r < bh) & (c < bw)] == 0).all()  # the skipped block reads as nodata
    assert sorted(Path(n).stem for n, _, _ in cache.entries()) == sorted(
        f"r{i}_c{j}" for i, j in every - {(0, 0)}
    )
    assert cache.stats["decodes"] == len(every) - 1 and cache.stats["skipped"] == 1
    one = inside & (r >= 20) & (r < 23) & (c >= 20) & (c < 23)  # a few pixels of block (0, 0)
    small = GranuleCache(str(tmp_path / "c2"), min_block=32)
    np.testing.assert_array_equal(
        small.read(scene.id, "blue", lambda: rasterio.open(href), grid, need=one)[one], plain[one]
    )
    assert [Path(n).stem for n, _, _ in small.entries()] == ["r0_c0"]  # a small ROI decodes its block only

    def never() -> Any:
        pytest.fail("a cached block or meta was decoded again")

    np.testing.assert_array_equal(cache.read(scene.id, "blue", never, grid, need=need), got)  # all hits
    full = cache.read(scene.id, "blue", lambda: rasterio.open(href), grid)
    np.testing.assert_array_equal(full, plain)
    assert cache.stats["decodes"] == len(every) and cache.stats["hits"] == 2 * (len(every) - 1)


def test_coarse_reads_are_cached_as_blocks_of_the_resolution_level(scenes: list[Any], tmp_path: Path) -> None:
    """The 60 m cloud-mask reads come from a JPEG 2000 resolution level; through the cache they
    are that level's blocks, decoded once: the pixels of a direct read of the level, for two
    tiles, and nothing decoded again."""
    scene = scenes[0]
    band = np.tile(scene.bands[BAND_NAMES.index("B02")], (6, 6))  # 606 x 600 px of real DN
    href = write_jp2(tmp_path / "B02.jp2", band, scene.crs, scene.transform, block=256)
    with rasterio.open(href) as src:
        level = overview_level(src, 60.0)
    assert level is not None  # the resolution levels are GDAL overviews

    def opener(**kw: Any) -> Any:
        return rasterio.open(href, **kw)

    def never(**kw: Any) -> Any:
        pytest.fail("a cached level block or meta was decoded again")

    cache = GranuleCache(str(tmp_path / "c"), min_block=32)
    grids = [
        (scene.crs, scene.transform @ rasterio.Affine.translation(k, k) @ rasterio.Affine.scale(6), (40, 40))
        for k in (0, 120)
    ]  # two tiles' 60 m grids
    for grid in grids:
        with rasterio.open(href, overview_level=level) as ovr:
            direct = read_on_grid(ovr, *grid, indexes=[1])[0]
        assert (direct != 0).mean() > 0.5
        np.testing.assert_array_equal(cache.read_coarse(scene.id, "blue", opener, grid), direct)
        np.testing.assert_array_equal(cache.read_coarse(scene.id, "blue", never, grid), direct)  # hits
    assert {Path(n).parent.name for n, _, _ in cache.entries()} == {
        f"blue.L{level}"
    }  # no full-resolution block
    assert cache.stats["decodes"] == len(cache.entries())


@pytest.mark.parametrize("resampling", ["nearest", "bilinear"])
def test_blocks_warp_like_the_source_onto_another_crs(
    catalog: tuple[Path, list[dict[str, Any]]], scenes: list[Any], tmp_path: Path, resampling: str
) -> None:
    """A grid in the neighbouring UTM zone (EPSG:32634) gets the same values from the blocks as
    from the JPEG 2000 itself, for the 10 m and the 20 m band."""
    from rasterio.enums import Resampling

    folder, _ = catalog
    scene = scenes[0]
    left, bottom, right, top = transform_bounds(
        scene.crs, "EPSG:32634", *rasterio.transform.array_bounds(101, 100, scene.transform)
    )
    grid = (
        "EPSG:32634",
        rasterio.Affine(7.0, 0, left - 30, 0, -7.0, top + 30),
        (int((top - bottom) / 7) + 9, int((right - left) / 7) + 9),
    )
    cache = GranuleCache(str(tmp_path / "c"), min_block=32)
    how = Resampling[resampling]
    for band, key in (("B02", "blue"), ("B05", "rededge1")):
        href = str(folder / scene.id / f"{band}.jp2")
        with rasterio.open(href) as src:
            plain = read_on_grid(src, *grid, how, indexes=[1])[0]
        got = cache.read(scene.id, key, lambda h=href: rasterio.open(h), grid, how)
        assert (plain != 0).mean() > 0.5
        np.testing.assert_array_equal(got, plain)
    assert cache.stats["decodes"] == len(cache.entries()) >= 2


def test_catalog_ids_stay_inside_the_cache_root(tmp_path: Path) -> None:
    """Scene ids come from the catalog (untrusted): none climbs out of the cache root or shares
    another id's folder; a real Sentinel-2 id is kept as it is."""
    from plastics_core.imagery.granule_cache import path_part

    cache = GranuleCache(str(tmp_path / "cache"))
    root = (tmp_path / "cache").resolve()
    ids = [
        "..",
        ".",
        "",
        "../../etc",
        "a/b",
        "a_b",
        "a b",
        "a.",
        "/abs",
        "S2A_MSIL1C_20210711T100031_N0301_R122_T33TVM",
    ]
    folders = [Path(str(cache.band_dir(i, "blue"))).resolve() for i in ids]
    assert all(f.parent.parent == root for f in folders), folders
    assert len({f.parent for f in folders}) == len(ids)
    assert folders[-1].parent.name.startswith(ids[-1] + "-") and path_part("blue.L2") == "blue.L2"


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


def test_drop_before_decode(
    server: tuple[str, Any], scenes: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Catalog cloud cover and the footprint drop scenes before any pixel is read; a day the
    60 m cloud mask masks everywhere is never read at 10 m."""
    base, _ = server
    reads: list[tuple[str, str, bool]] = []
    original = StacSource._read

    def spy(
        self: StacSource,
        item: dict[str, Any],
        key: str,
        grid: Any,
        nodata: Any = 0,
        coarse: bool = False,
        need: Any = None,
    ) -> Any:
        reads.append((str(item["id"]), key, coarse))
        return original(self, item, key, grid, nodata, coarse, need)

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
    with moto_bucket(monkeypatch, "s3://plastics/granules") as url:
        yield url


@pytest.mark.slow
def test_cache_on_s3_from_the_resource(server: tuple[str, Any], scenes: list[Any], s3_bucket: str) -> None:
    """The Dagster imagery resource's ``granule_cache`` on S3: same pixels, one decode per block,
    blocks read back from S3; eviction with the ``.used`` access markers."""
    from plastics_dagster.resources import ImagerySourceResource

    base, _ = server
    resource = ImagerySourceResource(
        kind="stac", path=base, granule_cache=s3_bucket, granule_cache_max_gb=1.0
    )
    assert resource.spec()["granule_cache"] == s3_bucket and resource.source_name() == f"stac:{base}"
    source = resource.get_source()
    cache = source.config.granule_cache
    source.config = replace(source.config, retry=FAST, requester_pays=False, max_cloud_cover=100.0)
    plain = _source(base)
    tile = _two_tiles(scenes[0])[0]
    for _ in range(2):
        _same_pixels(plain.load(tile, SUMMER), source.load(tile, SUMMER))
    entries = cache.entries()
    assert entries and all(name.startswith("plastics/granules/") for name, _, _ in entries)
    assert cache.stats["decodes"] == len(entries) and cache.stats["hits"] >= len(entries)
    small = GranuleCache(s3_bucket, max_bytes=cache.size() // 2)
    assert small.evict() > 0 and small.size() <= cache.size()
