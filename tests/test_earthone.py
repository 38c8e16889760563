"""EarthOne adapter, offline: the real earthdaily-earthone client against a fake platform on
127.0.0.1 (tests/earthone_fake.py) serving the real Slovenia L1C fixture.

Exercised: credentials from env, Auth bearer header, catalog v2 product get + image search
(request body), band lookup, raster /npz blosc decoding onto the DLTile grid, harmonization,
solar-day mosaic, s2cloudless masking, compute function create + bundle upload + bulk jobs +
status polling + result blobs, retries on 503. Not exercised: the live service, real OAuth
token refresh, server-side filtering/ranking, remote execution of the uploaded bundle.
"""

from __future__ import annotations

import base64
import datetime as dt
import importlib.util
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from rasterio.warp import transform_bounds
from shapely.geometry import box, mapping

from plastics_core.errors import CredentialsError, ImageryError, ParameterError
from plastics_core.geo.periods import Period
from plastics_core.geo.tiles import Tile, plan_tiles
from plastics_core.imagery import ImagerySource
from plastics_core.imagery.earthone import (
    EARTHONE_L1C_BANDS,
    S2_L1C_PRODUCT,
    EarthOneConfig,
    EarthOneSource,
    EarthOneUrls,
    credentials_from_env,
    load_library,
)
from plastics_core.imagery.earthone_compute import ComputeConfig, EarthOneBackend
from plastics_core.imagery.sun import parse_datetime, solar_angles
from plastics_core.retry import RetryBudgetExceeded, RetryPolicy
from tests._grid import source_pixels_under
from tests._shadow_scene import cloud_and_shadow, min_nir
from tests.earthone_fake import FakeEarthOne, FakeImage

FAST = RetryPolicy(attempts=3, base_delay=0.0, max_delay=0.0, jitter=0.0)
SUMMER = Period(dt.date(2015, 7, 1), dt.date(2015, 10, 1))
SECRET = "s3cr3t-refresh-token"


def _jwt() -> str:
    claims = json.dumps({"aud": "client-id", "exp": time.time() + 3600, "sub": "test|user"}).encode()
    return "header." + base64.urlsafe_b64encode(claims).decode().rstrip("=") + ".signature"


ENV = {"EARTHONE_CLIENT_ID": "client-id", "EARTHONE_CLIENT_SECRET": SECRET, "EARTHONE_TOKEN": _jwt()}


@pytest.fixture(scope="module")
def slovenia(shared_dir: Path) -> dict[str, Any]:
    folder = shared_dir / "data" / "s2l1c_slovenia_2015"
    z = np.load(folder / "s2l1c_ref5_12band_uint16.npz")
    with rasterio.open(folder / "S2L1C_20150711_12band.tif") as src:
        transform, crs, bounds = src.transform, str(src.crs), src.bounds
    lonlat = box(*transform_bounds(crs, "EPSG:4326", *bounds))
    return {"z": z, "transform": transform, "crs": crs, "lonlat": lonlat}


@pytest.fixture(scope="module")
def tile(slovenia: dict[str, Any]) -> Tile:
    tiles = plan_tiles(slovenia["lonlat"], tilesize=128, pad=8)
    return max(tiles, key=lambda t: t.geometry_4326.intersection(slovenia["lonlat"]).area)


@pytest.fixture()
def fake(slovenia: dict[str, Any]) -> Iterator[FakeEarthOne]:
    """Images: 07-11 split in two halves (one solar day), 07-31 and 08-20 cloudy, 08-30 at
    processing baseline 04.00 (served with +1000 DN), 09-09."""
    z = slovenia["z"]
    with FakeEarthOne(S2_L1C_PRODUCT, [*EARTHONE_L1C_BANDS, "cirrus", "alpha"]) as srv:
        specs = [
            ("A_left", 0, slice(0, 50), None),
            ("A_right", 0, slice(50, 100), None),
            ("B", 1, slice(0, 100), None),
            ("C", 2, slice(0, 100), None),
            ("D", 3, slice(0, 100), "04.00"),
            ("E", 4, slice(0, 100), "02.01"),
        ]
        for name, i, cols, baseline in specs:
            layers = dict(zip(EARTHONE_L1C_BANDS, z["bands"][i], strict=True)) | {
                "cirrus": z["b10_cirrus"][i]
            }
            for key, arr in layers.items():
                cut = np.zeros_like(arr)
                cut[:, cols] = arr[:, cols]
                layers[key] = (
                    np.where(cut > 0, cut + 1000, 0).astype(np.uint16) if baseline == "04.00" else cut
                )
            extra = {"processing_baseline": baseline} if baseline else {}
            acquired = str(z["dates"][i]) + ("Z" if name != "A_right" else "")
            srv.images.append(
                FakeImage(
                    f"{S2_L1C_PRODUCT}:S2A_33TVM_{name}",
                    acquired,
                    0.9 if i in (1, 2) else 0.01,
                    mapping(slovenia["lonlat"]),
                    layers,
                    slovenia["crs"],
                    slovenia["transform"],
                    extra,
                )
            )
        yield srv


def _urls(srv: FakeEarthOne) -> EarthOneUrls:
    return EarthOneUrls(
        catalog=f"{srv.base}/catalog/v2", raster=f"{srv.base}/raster/v2", compute=f"{srv.base}/compute/v1"
    )


def _source(srv: FakeEarthOne, **kw: Any) -> EarthOneSource:
    return EarthOneSource(EarthOneConfig(urls=_urls(srv), retry=FAST, **kw), environ=ENV)


def test_credentials_from_env() -> None:
    with pytest.raises(CredentialsError) as err:
        credentials_from_env({"EARTHONE_CLIENT_ID": "x", "DESCARTESLABS_CLIENT_ID": "", "HOME": "/root"})
    msg = str(err.value)
    assert "\n" not in msg
    for var in (
        "EARTHONE_CLIENT_ID",
        "EARTHONE_CLIENT_SECRET",
        "DESCARTESLABS_CLIENT_ID",
        "DESCARTESLABS_CLIENT_SECRET",
        "DESCARTESLABS_REFRESH_TOKEN",
    ):
        assert var in msg
    eo = credentials_from_env({"EARTHONE_CLIENT_ID": "id", "EARTHONE_REFRESH_TOKEN": SECRET})
    assert (eo.client_id, eo.client_secret, eo.source) == ("id", SECRET, "EARTHONE_*")
    dl = credentials_from_env({"DESCARTESLABS_CLIENT_ID": "id", "DESCARTESLABS_REFRESH_TOKEN": SECRET})
    assert dl.source == "DESCARTESLABS_*" and dl.client_secret == SECRET
    assert credentials_from_env({"EARTHONE_TOKEN": "jwt"}).jwt_token == "jwt"
    assert SECRET not in repr(eo) and SECRET not in str(dl)
    with pytest.raises(CredentialsError):
        EarthOneSource(environ={})
    assert load_library().root == "earthdaily.earthone"


def test_library_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "earthdaily.earthone.auth", None)  # earthone "not installed"
    if importlib.util.find_spec("descarteslabs") is None:
        with pytest.raises(ImageryError, match="pip install earthdaily-earthone"):
            load_library()
    else:  # descarteslabs 4.0.0 present: it is used instead
        assert load_library().root == "descarteslabs"


def test_search_builds_catalog_request(fake: FakeEarthOne, slovenia: dict[str, Any]) -> None:
    src = _source(fake, max_cloud_fraction=1.0)
    assert isinstance(src, ImagerySource)
    scenes = src.search(slovenia["lonlat"], Period(dt.date(2015, 8, 1), dt.date(2015, 9, 1)))
    assert [(s.date, s.cloud_cover) for s in scenes] == [
        (dt.date(2015, 8, 20), 90.0),
        (dt.date(2015, 8, 30), 1.0),
    ]
    method, path, headers, body = next(r for r in fake.requests if r[1].startswith("/catalog/v2/images"))
    assert method == "PUT" and headers["Authorization"] == f"Bearer {ENV['EARTHONE_TOKEN']}"
    req = json.loads(body)
    filters = json.loads(req["filter"])
    names = {f.get("name") for f in filters}
    assert {"product_id", "acquired", "cloud_fraction"} <= names, filters
    assert req["sort"] == "acquired" and json.loads(req["intersects"])["type"] == "Polygon"
    assert all(SECRET not in (r[1] + str(r[3])) for r in fake.requests if not r[1].endswith("/credentials"))


def test_load_onto_dltile_grid(fake: FakeEarthOne, slovenia: dict[str, Any], tile: Tile) -> None:
    stack = _source(fake, max_cloud_fraction=1.0).load(tile, SUMMER)
    assert stack.crs == tile.crs and stack.transform == tile.transform and stack.shape == tile.shape
    assert [d.isoformat() for d in stack.dates] == [str(d)[:10] for d in slovenia["z"]["dates"]]
    assert stack.scene_ids[0].endswith("A_left+esa:sentinel-2:l1c:v1:S2A_33TVM_A_right")
    rows, cols = np.mgrid[0 : tile.shape[0], 0 : tile.shape[1]]
    t, s = tile.transform, ~slovenia["transform"]
    c = np.floor(s.a * (t.a * (cols + 0.5) + t.c) + s.c).astype(int)
    r = np.floor(s.e * (t.e * (rows + 0.5) + t.f) + s.f).astype(int)
    inside = (c >= 0) & (c < 100) & (r >= 0) & (r < 101)
    assert inside.sum() > 5000
    np.testing.assert_array_equal(
        stack.data[:, :, inside], slovenia["z"]["bands"][:, :, r[inside], c[inside]]
    )
    frac = [m[inside].mean() for m in stack.mask]
    assert frac[1] > 0.95 and frac[2] > 0.95 and max(frac[0], frac[3], frac[4]) < 0.01
    assert stack.mask[:, ~inside].all()
    npz = [json.loads(b) for m, p, h, b in fake.requests if p == "/raster/v2/npz"]
    assert len(npz) == 6 and all(
        q["ot"] == "UInt16" and q["srs"] == tile.crs and q["resolution"] == 10.0 for q in npz
    )
    assert npz[0]["bands"] == [*EARTHONE_L1C_BANDS, "cirrus"]
    np.testing.assert_allclose(npz[0]["outputBounds"], tile.bounds)


def test_cloud_fraction_filter_is_sent(fake: FakeEarthOne, tile: Tile) -> None:
    _source(fake, max_cloud_fraction=0.3).images(box(14.5, 45.8, 14.6, 45.9), SUMMER)
    body = json.loads(next(b for m, p, h, b in fake.requests if p.startswith("/catalog/v2/images")))
    filters = json.loads(body["filter"])
    assert {"name": "cloud_fraction", "op": "lte", "val": 0.3} in filters, filters
    acquired = sorted((f["op"], f["val"]) for f in filters if f.get("name") == "acquired")
    assert acquired == [("gte", "2015-06-30"), ("lt", "2015-10-02")], filters


def test_catalog_faults_are_retried(fake: FakeEarthOne, slovenia: dict[str, Any]) -> None:
    fake.fail_next["/catalog/v2/images"] = 2
    assert len(_source(fake, max_cloud_fraction=1.0).search(slovenia["lonlat"], SUMMER)) == 6
    fake.fail_next["/catalog/v2/images"] = 99
    with pytest.raises(RetryBudgetExceeded, match="after 3 attempts"):
        _source(fake).search(slovenia["lonlat"], SUMMER)


def _tile_job(key: str, scale: float = 1.0) -> dict[str, Any]:
    """A self-contained compute function (no module globals, as EarthOne requires)."""
    if key.endswith(":bad"):
        raise ValueError("no imagery for this tile")
    return {"key": key, "pixels": int(key.split(":")[0]) * scale}


def test_backend_one_job_per_tile(fake: FakeEarthOne) -> None:
    fake.runner = _tile_job
    cfg = ComputeConfig(urls=_urls(fake), retry=FAST, poll_interval_s=0.01, include_modules=())
    result = EarthOneBackend(_tile_job, cfg, environ=ENV).run(
        ["128:8:10.0:33:-27:3968", "64:0:10.0:33:1:bad"], scale=2.0
    )
    assert result.results == {"128:8:10.0:33:-27:3968": {"key": "128:8:10.0:33:-27:3968", "pixels": 256.0}}
    assert (
        list(result.failures) == ["64:0:10.0:33:1:bad"]
        and "no imagery" in result.failures["64:0:10.0:33:1:bad"]
    )
    assert not result.ok and len(result.job_ids) == 2 and result.function_id in fake.functions
    bulk = json.loads(next(b for m, p, h, b in fake.requests if p == "/compute/v1/jobs/bulk"))
    assert bulk["bulk_args"] == [["128:8:10.0:33:-27:3968"], ["64:0:10.0:33:1:bad"]]
    assert bulk["bulk_kwargs"] == [{"scale": 2.0}, {"scale": 2.0}]
    fn = fake.functions[result.function_id]
    assert fn["name"] == "plastics-descartes-run" and fn["memory"] == 4096
    assert fake.bundles[result.function_id][:2] == b"PK"  # the zipped code bundle was uploaded
    assert EarthOneBackend(_tile_job, cfg, environ=ENV).run([]).results == {}
    with pytest.raises(ParameterError):
        ComputeConfig(batch_size=0)


def test_cloud_shadows_use_the_catalog_sun_angles(
    slovenia: dict[str, Any], tile: Tile, caplog: pytest.LogCaptureFixture
) -> None:
    """Three real dates; on 08-30 a real cloud (pasted from 08-20) casts a shadow where the sun
    projects a 1 km high cloud. When the catalog's images carry ``solar_azimuth_angle`` /
    ``solar_elevation_angle`` the source masks the shadow; without them it keeps the cloud mask
    only and warns once. A min composite picks the shadow without the mask, the ground with it."""
    z = slovenia["z"]
    centre = tile.geometry_4326.centroid
    sun = {}
    for i in (0, 3, 4):
        when = parse_datetime(str(z["dates"][i]))
        assert when is not None
        sun[i] = solar_angles(when, centre.x, centre.y)  # what the platform reports: the sun at acquisition
    scene = cloud_and_shadow(z, *sun[3])

    def load(with_sun: bool) -> Any:
        with FakeEarthOne(S2_L1C_PRODUCT, [*EARTHONE_L1C_BANDS, "cirrus"]) as srv:
            for i in (0, 3, 4):
                bands13 = (
                    scene.bands13 if i == 3 else np.concatenate([z["bands"][i], z["b10_cirrus"][i][None]])
                )
                attrs = (
                    {"solar_azimuth_angle": sun[i][0], "solar_elevation_angle": 90.0 - sun[i][1]}
                    if with_sun
                    else {}
                )
                srv.images.append(
                    FakeImage(
                        f"{S2_L1C_PRODUCT}:S2A_33TVM_{i}",
                        str(z["dates"][i]) + "Z",
                        0.01,
                        mapping(slovenia["lonlat"]),
                        dict(zip([*EARTHONE_L1C_BANDS, "cirrus"], bands13, strict=True)),
                        slovenia["crs"],
                        slovenia["transform"],
                        attributes=attrs,
                    )
                )
            return _source(srv, max_cloud_fraction=1.0).load(tile, SUMMER)

    masked = load(True)
    with caplog.at_level(logging.WARNING, logger="plastics_core.imagery.earthone"):
        bare = load(False)
    assert caplog.text.count("cloud shadows not masked on esa:sentinel-2:l1c:v1:S2A_33TVM_3") == 1
    assert "S2A_33TVM_0" not in caplog.text  # clear days need no sun

    r, c, inside = source_pixels_under(tile, slovenia["transform"], (101, 100))
    rr, cc = r.clip(0, 100), c.clip(0, 99)
    cloud, shadow = scene.cloud[rr, cc] & inside, scene.shadow[rr, cc] & inside
    assert shadow.sum() > 300 and masked.mask[1][cloud].all() and bare.mask[1][cloud].all()
    assert masked.mask[1][shadow].mean() > 0.95 and bare.mask[1][shadow].mean() < 0.05
    np.testing.assert_array_equal(masked.mask[[0, 2]], bare.mask[[0, 2]])
    truth = np.minimum(masked.data[0, 7], masked.data[2, 7]).astype(np.float32)
    assert (min_nir(bare.data, bare.mask, bare.dates, SUMMER)[shadow] < 0.5 * truth[shadow]).mean() > 0.9
    assert (min_nir(masked.data, masked.mask, masked.dates, SUMMER)[shadow] == truth[shadow]).mean() > 0.95


def test_catalog_sun_angles_are_read_as_azimuth_and_zenith() -> None:
    from types import SimpleNamespace

    from plastics_core.imagery.earthone import _sun_angles

    lacking = SimpleNamespace(id="a", solar_azimuth_angle=None, solar_elevation_angle=None)
    image = SimpleNamespace(id="b", solar_azimuth_angle=157.25, solar_elevation_angle=51.5)
    assert _sun_angles([lacking, image], set()) == (157.25, 38.5)  # zenith = 90 - elevation
    assert np.isnan(_sun_angles([lacking], set())).all()
    with pytest.raises(ImageryError, match="EarthOne image b"):
        _sun_angles([SimpleNamespace(id="b", solar_azimuth_angle=157.0, solar_elevation_angle=-3.0)], set())
