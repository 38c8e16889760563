"""LocalGeoTIFFSource on the real Slovenia L1C scenes (EPSG:32633, pixels not on the 10 m grid)."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from rasterio.warp import transform_bounds
from shapely.geometry import box

from plastics_core.errors import ImageryError, ParameterError
from plastics_core.geo.periods import Period
from plastics_core.geo.tiles import Tile
from plastics_core.imagery import ImagerySource
from plastics_core.imagery.cloudmask import CloudMaskConfig
from plastics_core.imagery.local import LocalGeoTIFFSource, scene_date
from tests._grid import largest_overlap_tile, source_pixels_under

SUMMER = Period(dt.date(2015, 7, 1), dt.date(2015, 10, 1))


@pytest.fixture(scope="module")
def slovenia(shared_dir: Path) -> dict[str, Any]:
    folder = shared_dir / "data" / "s2l1c_slovenia_2015"
    z = np.load(folder / "s2l1c_ref5_12band_uint16.npz")
    with rasterio.open(folder / "S2L1C_20150711_12band.tif") as src:
        profile, transform, bounds = src.profile, src.transform, src.bounds
    lonlat = box(*transform_bounds("EPSG:32633", "EPSG:4326", *bounds))
    return {"folder": folder, "z": z, "profile": profile, "transform": transform, "lonlat": lonlat}


@pytest.fixture(scope="module")
def tile(slovenia: dict[str, Any]) -> Tile:
    return largest_overlap_tile(slovenia["lonlat"])


def _nearest(slovenia: dict[str, Any], tile: Tile) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return source_pixels_under(tile, slovenia["transform"], (101, 100))


def test_naming_rule() -> None:
    assert scene_date("S2L1C_20150711_12band.tif") == dt.date(2015, 7, 11)
    assert scene_date("20200131.tif") == dt.date(2020, 1, 31)
    assert scene_date("bali_T50LKR_20190101.tiff") == dt.date(2019, 1, 1)
    assert scene_date("S2L1C_20151399_x.tif") is None and scene_date("scene2015071.tif") is None


def test_load_real_scenes_onto_tile_grid(slovenia: dict[str, Any], tile: Tile) -> None:
    src = LocalGeoTIFFSource(slovenia["folder"])
    assert isinstance(src, ImagerySource)
    stack = src.load(tile, SUMMER)
    assert stack.crs == tile.crs == "EPSG:32633" and stack.transform == tile.transform
    assert stack.data.shape == (5, 12, *tile.shape) and stack.data.dtype == np.uint16
    assert [d.isoformat() for d in stack.dates] == [str(d)[:10] for d in slovenia["z"]["dates"]]
    r, c, inside = _nearest(slovenia, tile)
    assert inside.sum() > 5000
    np.testing.assert_array_equal(stack.data[:, :, inside], slovenia["z"]["bands"][:, :, r[inside], c[inside]])
    np.testing.assert_array_equal(stack.mask, np.broadcast_to(~inside, stack.mask.shape))  # nodata only


def test_period_and_search(slovenia: dict[str, Any], tile: Tile) -> None:
    src = LocalGeoTIFFSource(slovenia["folder"])
    july = Period(dt.date(2015, 7, 1), dt.date(2015, 8, 1))
    assert src.load(tile, july).dates == (dt.date(2015, 7, 11), dt.date(2015, 7, 31))
    assert [s.id for s in src.search(slovenia["lonlat"], july)] == ["S2L1C_20150711_12band.tif",
                                                                     "S2L1C_20150731_12band.tif"]
    assert src.search(box(100, 0, 101, 1), july) == []
    empty = src.load(tile, Period(dt.date(2016, 1, 1), dt.date(2016, 2, 1)))
    assert empty.data.shape == (0, 12, *tile.shape)


def test_mask_files_and_bilinear(slovenia: dict[str, Any], tile: Tile, tmp_path: Path) -> None:
    shutil.copy(slovenia["folder"] / "S2L1C_20150731_12band.tif", tmp_path)
    prof = dict(slovenia["profile"], count=1, dtype="uint8", nodata=None)
    with rasterio.open(tmp_path / "S2L1C_20150731_12band_mask.tif", "w", **prof) as dst:
        dst.write(slovenia["z"]["clm"][1][None])
    src = LocalGeoTIFFSource(tmp_path)
    stack = src.load(tile, SUMMER)
    r, c, inside = _nearest(slovenia, tile)
    assert stack.mask[0][inside].mean() > 0.99
    bil = LocalGeoTIFFSource(tmp_path, resampling="bilinear").load(tile, SUMMER)
    diff = np.abs(bil.data[0].astype(int) - stack.data[0].astype(int))[:, inside & np.all(bil.data[0] > 0, axis=0)]
    assert 0 < np.median(diff) < 200  # interpolated, close to the nearest-neighbour DN
    with pytest.raises(ParameterError, match="resampling"):
        LocalGeoTIFFSource(tmp_path, resampling="cubic")


def test_thirteenth_band_feeds_s2cloudless(slovenia: dict[str, Any], tile: Tile, tmp_path: Path) -> None:
    z = slovenia["z"]
    prof = dict(slovenia["profile"], count=13)
    for i in (0, 2):  # clear 07-11, cloudy 08-20
        with rasterio.open(tmp_path / f"S2L1C_{str(z['dates'][i])[:10].replace('-', '')}_13band.tif", "w",
                           **prof) as dst:
            dst.write(np.concatenate([z["bands"][i], z["b10_cirrus"][i][None]]))
    stack = LocalGeoTIFFSource(tmp_path, cloud_mask=CloudMaskConfig()).load(tile, SUMMER)
    r, c, inside = _nearest(slovenia, tile)
    assert stack.mask[0][inside].mean() < 0.01 and stack.mask[1][inside].mean() > 0.99
    with pytest.raises(ImageryError, match="13th band"):
        LocalGeoTIFFSource(slovenia["folder"], cloud_mask=CloudMaskConfig()).load(tile, SUMMER)


@pytest.mark.parametrize(("count", "dtype", "match"), [(4, "uint16", "has 4 bands"), (12, "float32", "is float32")])
def test_validation_errors(slovenia: dict[str, Any], tile: Tile, tmp_path: Path, count: int, dtype: str,
                           match: str) -> None:
    prof = dict(slovenia["profile"], count=count, dtype=dtype)
    with rasterio.open(tmp_path / "x_20150711.tif", "w", **prof) as dst:
        dst.write(np.ones((count, 101, 100), dtype=dtype))
    with pytest.raises(ImageryError, match=match) as err:
        LocalGeoTIFFSource(tmp_path).load(tile, SUMMER)
    assert "\n" not in str(err.value)


def test_wrong_band_order_and_missing_folder(slovenia: dict[str, Any], tile: Tile, tmp_path: Path) -> None:
    with rasterio.open(tmp_path / "x_20150711.tif", "w", **slovenia["profile"]) as dst:
        dst.write(slovenia["z"]["bands"][0])
        dst.descriptions = ("B02", "B01", *[f"B{i}" for i in range(10)])
    with pytest.raises(ImageryError, match="not the model order"):
        LocalGeoTIFFSource(tmp_path).load(tile, SUMMER)
    with pytest.raises(ImageryError, match="does not exist"):
        LocalGeoTIFFSource(tmp_path / "nope")
