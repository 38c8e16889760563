"""Granule cache keys that cannot collide, and asset hrefs only over the schemes a source allows.

Catalog answers are untrusted. The real Slovenia L1C scenes are written as ESA-like JPEG 2000
granules with STAC items and served over HTTP on 127.0.0.1; the items are then rewritten the way
a hostile or broken catalog would: five items sharing one id (each with its own files), ids that
used to share a folder (``..`` and ``_-5ec1f7e700f3``), a 300-character id, and hrefs over
``file://``, local paths and GDAL virtual paths.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from rasterio.warp import transform_bounds
from shapely.geometry import box

from plastics_core.errors import ImageryError
from plastics_core.geo.periods import Period
from plastics_core.imagery.granule_cache import Granule, GranuleCache
from plastics_core.imagery.stac import StacSource
from plastics_core.imagery.stac_config import StacConfig
from plastics_core.imagery.stac_read import href_scheme
from plastics_core.retry import RetryPolicy
from tests._granules import slovenia_scenes, write_catalog
from tests._grid import largest_overlap_tile
from tests._stac_server import serve

FAST = RetryPolicy(attempts=2, base_delay=0.0, max_delay=0.0, jitter=0.0)
SUMMER = Period(dt.date(2015, 7, 1), dt.date(2015, 10, 1))
SAME_ID = "S2A_33TVM_SAME_0_L1C"


@pytest.fixture(scope="module")
def catalog(shared_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    folder = tmp_path_factory.mktemp("granule_keys")
    template = json.loads(
        (shared_dir / "data" / "stac" / "earth_search_v1_sentinel-2-l1c_search_response.json").read_text()
    )["features"][0]
    return folder, write_catalog(slovenia_scenes(shared_dir / "data"), folder, template, block=64)


@pytest.fixture(scope="module")
def tile(shared_dir: Path) -> Any:
    scene = slovenia_scenes(shared_dir / "data")[0]
    bounds = rasterio.transform.array_bounds(101, 100, scene.transform)
    return largest_overlap_tile(box(*transform_bounds(scene.crs, "EPSG:4326", *bounds)))


@pytest.fixture()
def hostile(catalog: tuple[Path, list[dict[str, Any]]]) -> Iterator[Any]:
    """``serve(items)``: the catalog's files served with the given items instead of its own."""

    def start(items: list[dict[str, Any]]) -> Any:
        return serve(catalog[0], items)

    yield start


def _source(url: str, **kw: Any) -> StacSource:
    return StacSource(StacConfig(url=url, retry=FAST, requester_pays=False, max_cloud_cover=100.0), **kw)


def _same_id(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = copy.deepcopy(items)
    for item in out:
        item["id"] = SAME_ID
    return out


@pytest.mark.parametrize("cached", [False, True])
def test_five_items_sharing_an_id_are_five_scenes(
    catalog: tuple[Path, list[dict[str, Any]]], hostile: Any, tile: Any, tmp_path: Path, cached: bool
) -> None:
    """Five items with one id but their own files (five acquisition days) read as the five real
    scenes, with and without the granule cache: the pixels the same five items give under
    their own ids, never five copies of the first."""
    _, items = catalog
    cache = (lambda name: GranuleCache(str(tmp_path / name), min_block=32)) if cached else (lambda name: None)
    with hostile(items) as (url, _):
        distinct = _source(url, granule_cache=cache("distinct")).load(tile, SUMMER)
    with hostile(_same_id(items)) as (url, _):
        source = _source(url, granule_cache=cache("same"))
        assert [s.id for s in source.search(tile.geometry_4326, SUMMER)] == [SAME_ID] * 5
        same = source.load(tile, SUMMER)
    assert len(same.dates) == len(distinct.dates) == 5 and same.dates == distinct.dates
    np.testing.assert_array_equal(same.mask, distinct.mask)
    for t in range(5):
        clear = ~same.mask[t]
        np.testing.assert_array_equal(same.data[t][:, clear], distinct.data[t][:, clear])
    firsts = [same.data[t][:, ~same.mask[t]] for t in range(5) if (~same.mask[t]).any()]
    assert len(firsts) >= 2 and not all(np.array_equal(firsts[0][:, :50], f[:, :50]) for f in firsts[1:])
    if cached:
        folders = {Path(n).parent.parent.name for n, _, _ in GranuleCache(str(tmp_path / "same")).entries()}
        per_file = {f for f in folders if f.startswith(SAME_ID + "-")}  # one folder per item and file
        assert len(per_file) >= 2 * len(firsts)


def test_granule_folders_never_collide_and_stay_bounded(
    catalog: tuple[Path, list[dict[str, Any]]], tmp_path: Path
) -> None:
    """``..`` and ``_-5ec1f7e700f3`` (which once shared a folder), a 300-character id and a
    1000-character non-ASCII id each get their own folder under the root, named by a readable
    prefix and a hash, under 255 bytes; a read with the long id works; the same id under another
    catalog, collection or href is another folder."""
    folder, items = catalog
    href = str(folder / items[0]["assets"]["blue"]["href"])
    cache = GranuleCache(str(tmp_path / "cache"), min_block=32)
    root = (tmp_path / "cache").resolve()
    ids = ["..", "_-5ec1f7e700f3", ".", "", "../../etc", "a/b", "x" * 300, "é" * 1000, items[0]["id"]]
    granules = [
        Granule(item_id=i, href=href, catalog="http://127.0.0.1/", collection="sentinel-2-l1c") for i in ids
    ]
    dirs = [Path(str(cache.band_dir(g, "blue"))).resolve() for g in granules]
    assert all(d.parent.parent == root for d in dirs) and len({d.parent for d in dirs}) == len(ids)
    assert all(len(d.parent.name.encode()) < 255 for d in dirs)
    assert dirs[-1].parent.name.startswith(items[0]["id"] + "-")  # readable
    with rasterio.open(href) as src:
        grid = (str(src.crs), src.transform, (src.height, src.width))
        plain = src.read(1)
    np.testing.assert_array_equal(cache.read(granules[6], "blue", lambda: rasterio.open(href), grid), plain)
    base = granules[-1]
    others = [
        Granule(base.item_id, base.href, "http://other/", base.collection),
        Granule(base.item_id, base.href, base.catalog, "sentinel-2-l2a"),
        Granule(base.item_id, href + "?v=2", base.catalog, base.collection),
    ]
    assert len({g.folder() for g in [base, *others]}) == 4


def test_ids_of_any_length_read_through_the_cache(
    catalog: tuple[Path, list[dict[str, Any]]], hostile: Any, tile: Any, tmp_path: Path
) -> None:
    """Items whose ids are 300 ASCII and 200 non-ASCII characters (over a file name's 255 bytes)
    read through the granule cache, the same pixels as without it."""
    _, items = catalog
    served = copy.deepcopy(items)
    served[0]["id"], served[2]["id"] = "S2A_" + "x" * 296, "é" * 200
    cache = GranuleCache(str(tmp_path / "c"), min_block=32)
    with hostile(served) as (url, _):
        plain = _source(url).load(tile, SUMMER)
        cached = _source(url, granule_cache=cache).load(tile, SUMMER)
    assert cache.stats["decodes"] > 0
    assert len(cached.dates) == 5 and cached.scene_ids == plain.scene_ids
    np.testing.assert_array_equal(cached.mask, plain.mask)
    for t in range(5):
        np.testing.assert_array_equal(cached.data[t][:, ~cached.mask[t]], plain.data[t][:, ~plain.mask[t]])


@pytest.mark.parametrize(
    "bad",
    ["file:///etc/passwd", "{local}", "file://{local}", "/vsicurl/file://{local}", "FILE:///etc/passwd"],
)
def test_remote_catalog_hrefs_only_over_its_schemes(
    catalog: tuple[Path, list[dict[str, Any]]], hostile: Any, tile: Any, bad: str
) -> None:
    """An http catalog handing out a local file (a readable granule band, or ``/etc/passwd``) is
    refused in one line naming the item, before any pixel is read; configured to allow local
    files, the same items read."""
    folder, items = catalog
    local = str(folder / items[0]["assets"]["blue"]["href"])
    served = copy.deepcopy(items)
    served[0]["assets"]["blue"]["href"] = bad.format(local=local)
    with hostile(served) as (url, stats):
        with pytest.raises(ImageryError) as info:
            _source(url).load(tile, SUMMER)
        assert stats.file_requests == 0  # refused before any read
    message = str(info.value)
    assert "\n" not in message and items[0]["id"] in message and "blue" in message, message
    if "{local}" in bad and not bad.startswith("/vsi"):
        with hostile(served) as (url, _):
            allowed = _source(url, asset_schemes=("http", "file")).load(tile, SUMMER)
        assert len(allowed.dates) == 5


def test_href_schemes() -> None:
    assert [
        href_scheme(h)
        for h in (
            "https://a/b.jp2",
            "S3://b/k",
            "/data/x.tif",
            "x.tif",
            "file:///x",
            "/vsis3/b/k",
            "C:\\data\\x.tif",
        )
    ] == ["https", "s3", "file", "file", "file", "gdal", "c"]
    assert StacConfig(url="https://earth-search.aws.element84.com/v1").allowed_schemes() == {
        "https",
        "http",
        "s3",
    }
    assert "file" in StacConfig(url="/data/catalog.json").allowed_schemes()
