"""LocalGeoTIFFSource on the real Slovenia L1C scenes (EPSG:32633, pixels not on the 10 m grid)."""

from __future__ import annotations

import datetime as dt
import logging
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
from plastics_core.imagery.sun import parse_datetime, solar_angles
from tests._grid import largest_overlap_tile, source_pixels_under
from tests._shadow_scene import cloud_and_shadow, min_nir

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
    np.testing.assert_array_equal(
        stack.data[:, :, inside], slovenia["z"]["bands"][:, :, r[inside], c[inside]]
    )
    np.testing.assert_array_equal(stack.mask, np.broadcast_to(~inside, stack.mask.shape))  # nodata only


def test_period_and_search(slovenia: dict[str, Any], tile: Tile) -> None:
    src = LocalGeoTIFFSource(slovenia["folder"])
    july = Period(dt.date(2015, 7, 1), dt.date(2015, 8, 1))
    assert src.load(tile, july).dates == (dt.date(2015, 7, 11), dt.date(2015, 7, 31))
    assert [s.id for s in src.search(slovenia["lonlat"], july)] == [
        "S2L1C_20150711_12band.tif",
        "S2L1C_20150731_12band.tif",
    ]
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
    diff = np.abs(bil.data[0].astype(int) - stack.data[0].astype(int))[
        :, inside & np.all(bil.data[0] > 0, axis=0)
    ]
    assert 0 < np.median(diff) < 200  # interpolated, close to the nearest-neighbour DN
    with pytest.raises(ParameterError, match="resampling"):
        LocalGeoTIFFSource(tmp_path, resampling="cubic")


def test_thirteenth_band_feeds_s2cloudless(slovenia: dict[str, Any], tile: Tile, tmp_path: Path) -> None:
    z = slovenia["z"]
    prof = dict(slovenia["profile"], count=13)
    for i in (0, 2):  # clear 07-11, cloudy 08-20
        with rasterio.open(
            tmp_path / f"S2L1C_{str(z['dates'][i])[:10].replace('-', '')}_13band.tif", "w", **prof
        ) as dst:
            dst.write(np.concatenate([z["bands"][i], z["b10_cirrus"][i][None]]))
    stack = LocalGeoTIFFSource(tmp_path, cloud_mask=CloudMaskConfig()).load(tile, SUMMER)
    r, c, inside = _nearest(slovenia, tile)
    assert stack.mask[0][inside].mean() < 0.01 and stack.mask[1][inside].mean() > 0.99
    with pytest.raises(ImageryError, match="13th band"):
        LocalGeoTIFFSource(slovenia["folder"], cloud_mask=CloudMaskConfig()).load(tile, SUMMER)


@pytest.mark.parametrize(
    ("count", "dtype", "match"), [(4, "uint16", "has 4 bands"), (12, "float32", "is float32")]
)
def test_validation_errors(
    slovenia: dict[str, Any], tile: Tile, tmp_path: Path, count: int, dtype: str, match: str
) -> None:
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


def test_a_folder_without_dated_scenes_is_an_error(tmp_path: Path) -> None:
    """An empty folder, or GeoTIFFs whose names carry no date, would read as "no plastic here":
    the preflight's validation says so in one line instead."""
    with pytest.raises(ImageryError, match="no scene in") as err:
        LocalGeoTIFFSource(tmp_path).validate()
    (tmp_path / "2021-01-05.tif").write_bytes(b"")
    with pytest.raises(
        ImageryError, match="1 GeoTIFF.* without a YYYYMMDD date in the name, e.g. '2021-01-05.tif'"
    ):
        LocalGeoTIFFSource(tmp_path).validate()
    assert "\n" not in str(err.value)


# --- cloud shadows -------------------------------------------------------------------------------


def _write_scene(path: Path, profile: dict[str, Any], arr: np.ndarray, tags: dict[str, str]) -> None:
    with rasterio.open(path, "w", **dict(profile, count=arr.shape[0])) as dst:
        dst.write(arr)
        if tags:
            dst.update_tags(**tags)


def _name(z: Any, i: int) -> str:
    return f"S2L1C_{str(z['dates'][i])[:10].replace('-', '')}_13band.tif"


def test_shadow_of_a_real_cloud_is_masked_with_the_sun_from_datetime(
    slovenia: dict[str, Any], tile: Tile, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Three real dates; on 08-30 a real cloud (pasted from 08-20) casts a shadow (darkened pixels
    where the sun of the scene's DATETIME projects a 1 km high cloud). With the DATETIME tag the
    source masks the shadow, and only away from the sun; without any sun angle it keeps the cloud
    mask only and says so. A min composite picks the shadow without the mask, the ground with it."""
    z = slovenia["z"]
    centre = tile.geometry_4326.centroid
    when = parse_datetime(str(z["dates"][3]))
    assert when is not None
    az, zen = solar_angles(when, centre.x, centre.y)
    scene = cloud_and_shadow(z, az, zen)
    dates = (0, 3, 4)
    for folder, tagged in ((tmp_path / "tagged", True), (tmp_path / "bare", False)):
        folder.mkdir()
        for i in dates:
            arr = scene.bands13 if i == 3 else np.concatenate([z["bands"][i], z["b10_cirrus"][i][None]])
            _write_scene(
                folder / _name(z, i),
                slovenia["profile"],
                arr,
                {"DATETIME": str(z["dates"][i])} if tagged else {},
            )
    masked = LocalGeoTIFFSource(tmp_path / "tagged", cloud_mask=CloudMaskConfig()).load(tile, SUMMER)
    with caplog.at_level(logging.WARNING, logger="plastics_core.imagery.local"):
        bare = LocalGeoTIFFSource(tmp_path / "bare", cloud_mask=CloudMaskConfig()).load(tile, SUMMER)
    assert "cloud shadows not masked on S2L1C_20150830_13band.tif: no sun angles" in caplog.text
    assert "20150711" not in caplog.text  # clear dates need no sun

    r, c, inside = _nearest(slovenia, tile)
    rr, cc = r.clip(0, 100), c.clip(0, 99)
    cloud, shadow = scene.cloud[rr, cc] & inside, scene.shadow[rr, cc] & inside
    assert shadow.sum() > 300 and masked.mask[1][cloud].all() and bare.mask[1][cloud].all()
    assert masked.mask[1][shadow].mean() > 0.95 and bare.mask[1][shadow].mean() < 0.05
    np.testing.assert_array_equal(masked.mask[[0, 2]], bare.mask[[0, 2]])  # clear dates: nothing added
    mask_prof = dict(slovenia["profile"], count=1, dtype="uint8", nodata=None)  # clouds from a mask file
    with rasterio.open(tmp_path / "tagged" / "S2L1C_20150830_13band_mask.tif", "w", **mask_prof) as dst:
        dst.write(scene.cloud[None].astype(np.uint8))
    from_file = LocalGeoTIFFSource(tmp_path / "tagged").load(tile, SUMMER)
    assert from_file.mask[1][cloud].all() and from_file.mask[1][shadow].mean() > 0.95
    added = masked.mask[1] & ~bare.mask[1]
    (ar, ac), (cr, cc_) = np.argwhere(added).mean(axis=0), np.argwhere(cloud).mean(axis=0)
    bearing = np.degrees(np.arctan2(ac - cc_, cr - ar)) % 360  # of the added mask, seen from the cloud
    assert abs((bearing - (az + 180.0) + 180.0) % 360.0 - 180.0) < 15.0, (bearing, az)

    stack_dates = masked.dates
    truth = np.minimum(masked.data[0, 7], masked.data[2, 7]).astype(np.float32)
    without = min_nir(bare.data, bare.mask, stack_dates, SUMMER)
    with_shadows = min_nir(masked.data, masked.mask, stack_dates, SUMMER)
    assert (without[shadow] < 0.5 * truth[shadow]).mean() > 0.9  # the shadow wins the minimum
    assert (with_shadows[shadow] == truth[shadow]).mean() > 0.95  # masked: the ground wins


@pytest.mark.slow
def test_no_shadow_on_the_real_scenes(slovenia: dict[str, Any], tile: Tile, tmp_path: Path) -> None:
    """The five real dates with their DATETIME tags: shadow masking adds nothing (clear dates have
    no cloud, cloudy ones are cloud), and the masks match the reference cloud masks."""
    z = slovenia["z"]
    for i in range(5):
        _write_scene(
            tmp_path / _name(z, i),
            slovenia["profile"],
            np.concatenate([z["bands"][i], z["b10_cirrus"][i][None]]),
            {"DATETIME": str(z["dates"][i])},
        )
    with_shadow = LocalGeoTIFFSource(tmp_path, cloud_mask=CloudMaskConfig()).load(tile, SUMMER)
    without = LocalGeoTIFFSource(tmp_path, cloud_mask=CloudMaskConfig(), shadow=None).load(tile, SUMMER)
    np.testing.assert_array_equal(with_shadow.mask, without.mask)
    r, c, inside = _nearest(slovenia, tile)
    for t in range(5):
        ref = z["clm"][t][r[inside], c[inside]].astype(bool)
        assert (with_shadow.mask[t][inside] == ref).mean() > 0.99


def _mtd_tl(path: Path, zenith: str, azimuth: str) -> None:
    path.write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<n1:Level-1C_Tile_ID xmlns:n1="https://psd-14.sentinel2.eo.esa.int/PSD/S2_PDI_Level-1C_Tile_Metadata.xsd">'
        "<n1:Geometric_Info><Tile_Angles><Mean_Sun_Angle>"
        f'<ZENITH_ANGLE unit="deg">{zenith}</ZENITH_ANGLE><AZIMUTH_ANGLE unit="deg">{azimuth}</AZIMUTH_ANGLE>'
        "</Mean_Sun_Angle></Tile_Angles></n1:Geometric_Info></n1:Level-1C_Tile_ID>"
    )


def test_sun_angle_sources_and_their_errors(
    slovenia: dict[str, Any], tile: Tile, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    z = slovenia["z"]
    _write_scene(
        tmp_path / "a_20150711.tif",
        slovenia["profile"],
        z["bands"][0],
        {"DATETIME": str(z["dates"][0]), "SUN_AZIMUTH": "144.0", "SUN_ELEVATION": "62.5"},
    )
    _write_scene(
        tmp_path / "b_20150731.tif", slovenia["profile"], z["bands"][1], {"DATETIME": str(z["dates"][1])}
    )
    _write_scene(
        tmp_path / "c_20150820.tif", slovenia["profile"], z["bands"][2], {"DATETIME": "2015-09-20T10:00:00"}
    )
    src = LocalGeoTIFFSource(tmp_path)
    a, b, c = src.scenes()
    assert src.sun_angles([a], tile) == (144.0, 27.5)  # SUN_* tags win over DATETIME
    az, zen = src.sun_angles([b], tile)  # DATETIME: computed; the sun in the south-east, mid-morning
    assert 130 < az < 160 and 25 < zen < 40
    _mtd_tl(b.metadata_path, "30.5", "147.25")
    assert src.sun_angles([b], tile) == (147.25, 30.5)  # the granule metadata wins over tags
    with caplog.at_level(logging.WARNING, logger="plastics_core.imagery.local"):
        assert np.isnan(src.sun_angles([c], tile)).all()  # DATETIME a month off the file's date: ignored
        src.sun_angles([c], tile)
    assert caplog.text.count("no sun angles") == 1  # said once per scene
    _mtd_tl(b.metadata_path, "95", "147")
    with pytest.raises(ImageryError, match="not a daytime sun position"):
        src.sun_angles([b], tile)
    b.metadata_path.write_text("<Level-1C_Tile_ID><Mean_Sun_Angle>")
    with pytest.raises(ImageryError, match="cannot read sun angles from b_20150731_MTD_TL.xml") as err:
        src.sun_angles([b], tile)
    assert "\n" not in str(err.value)
    b.metadata_path.write_text("<Level-1C_Tile_ID/>")
    with pytest.raises(ImageryError, match="no Tile_Angles/Mean_Sun_Angle"):
        src.sun_angles([b], tile)
