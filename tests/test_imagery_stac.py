"""StacSource against a STAC API served on 127.0.0.1 inside the test (no internet).

Items are derived from the real Earth Search v1 ``sentinel-2-l1c`` search response in
../shared/data/stac; their asset hrefs point at single-band GeoTIFFs written from the
real Slovenia L1C fixture (EPSG:32633, ~10 m pixels NOT aligned to the UTM 10 m grid).
"""

from __future__ import annotations

import copy
import datetime as dt
import json
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.warp import transform_bounds
from shapely.geometry import box, mapping

from plastics_core.errors import ImageryError
from plastics_core.geo.bands import STAC_ASSET_KEYS
from plastics_core.geo.periods import Period
from plastics_core.geo.tiles import Tile
from plastics_core.imagery.cloudmask import CloudMaskConfig
from plastics_core.imagery.harmonize import harmonize_dn, needs_offset_removal, parse_baseline, solar_day
from plastics_core.imagery.stac import StacSource
from plastics_core.imagery.stac_config import StacConfig, planetary_computer_l2a
from plastics_core.imagery.stac_read import gdal_env
from plastics_core.redact import redact
from plastics_core.retry import RetryBudgetExceeded, RetryPolicy, is_transient, retry_call
from tests._grid import largest_overlap_tile, source_pixels_under
from tests._stac_server import JsonHandler, landing_page, running

FAST = RetryPolicy(attempts=3, base_delay=0.0, max_delay=0.0, jitter=0.0)
SUMMER = Period(dt.date(2015, 7, 1), dt.date(2015, 10, 1))


def _real_response(shared_dir: Path) -> dict[str, Any]:
    """The real Earth Search v1 ``sentinel-2-l1c`` search response (a GeoJSON FeatureCollection
    of STAC items), parsed afresh on each call so callers may edit it."""
    path = shared_dir / "data" / "stac" / "earth_search_v1_sentinel-2-l1c_search_response.json"
    result: dict[str, Any] = json.loads(path.read_text())
    return result


class _Stac(ThreadingHTTPServer):
    base: str
    features: list[dict[str, Any]]
    template: dict[str, Any]
    fail_next: int = 0
    always_fail: bool = False
    searches: list[dict[str, Any]]


class _Handler(JsonHandler):
    server: _Stac

    def do_GET(self) -> None:  # noqa: N802 - http.server API
        self.send_json(200, landing_page(self.server.base, "local-earth-search", "test"))

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        self.server.searches.append(body)
        if self.server.always_fail or self.server.fail_next > 0:
            self.server.fail_next -= 1
            self.send_json(500, {"code": "InternalServerError", "description": "injected fault"})
            return
        resp = copy.deepcopy(self.server.template)
        resp["features"] = self.server.features
        resp["links"] = [{"rel": "root", "href": self.server.base}]
        resp["numberMatched"] = resp["numberReturned"] = len(self.server.features)
        resp["context"] = {
            "limit": 100,
            "matched": len(self.server.features),
            "returned": len(self.server.features),
        }
        self.send_json(200, resp, "application/geo+json")


def _write(path: Path, arr: np.ndarray, crs: str, transform: Affine) -> str:
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=arr.shape[1],
        height=arr.shape[0],
        count=1,
        dtype="uint16",
        crs=crs,
        transform=transform,
        nodata=0,
    ) as dst:
        dst.write(arr.astype(np.uint16), 1)
    return str(path)


@pytest.fixture(scope="module")
def fixture(shared_dir: Path) -> dict[str, Any]:
    z = np.load(shared_dir / "data" / "s2l1c_slovenia_2015" / "s2l1c_ref5_12band_uint16.npz")
    with rasterio.open(shared_dir / "data" / "s2l1c_slovenia_2015" / "S2L1C_20150711_12band.tif") as src:
        transform, crs, bounds = src.transform, str(src.crs), src.bounds
    lonlat = box(*transform_bounds(crs, "EPSG:4326", *bounds))
    return {
        "bands": z["bands"],
        "cirrus": z["b10_cirrus"],
        "transform": transform,
        "crs": crs,
        "lonlat": lonlat,
    }


@pytest.fixture(scope="module")
def items(
    fixture: dict[str, Any], shared_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> list[dict[str, Any]]:
    """Six items: 07-11 split in two halves (same solar day), two cloudy days, 08-30 at
    baseline 04.00 (files carry +1000 DN), 09-09 acquired 23:30 UTC on 09-08 (solar 09-09)."""
    real = _real_response(shared_dir)["features"][0]
    tmp = tmp_path_factory.mktemp("stac_assets")
    bands, cirrus = fixture["bands"], fixture["cirrus"]
    specs = [  # (id, scene index, datetime, cloud cover, baseline, column slice)
        ("A_left", 0, "2015-07-11T10:00:08Z", 0.0, "02.01", slice(0, 50)),
        ("A_right", 0, "2015-07-11T10:00:12Z", 0.0, "02.01", slice(50, 100)),
        ("B", 1, "2015-07-31T10:00:09Z", 99.85, "02.01", slice(0, 100)),
        ("C", 2, "2015-08-20T10:07:28Z", 100.0, "02.01", slice(0, 100)),
        ("D", 3, "2015-08-30T10:05:47Z", 0.0, "04.00", slice(0, 100)),
        ("E", 4, "2015-09-08T23:30:00Z", 3.0, "02.01", slice(0, 100)),
    ]
    out = []
    for name, i, when, cc, baseline, cols in specs:
        item = copy.deepcopy(real)
        item["id"] = f"S2A_33TVM_{name}_L1C"
        item["geometry"], item["bbox"] = mapping(fixture["lonlat"]), list(fixture["lonlat"].bounds)
        item["properties"].update(
            {"datetime": when, "eo:cloud_cover": cc, "s2:processing_baseline": baseline, "proj:epsg": 32633}
        )
        layers = dict(zip(STAC_ASSET_KEYS, bands[i], strict=True)) | {"cirrus": cirrus[i]}
        for key, arr in layers.items():
            cut = np.zeros_like(arr)
            cut[:, cols] = arr[:, cols]
            if baseline >= "04.00":
                cut = np.where(cut > 0, cut.astype(np.int32) + 1000, 0)
            item["assets"][key]["href"] = _write(
                tmp / f"{name}_{key}.tif", cut, fixture["crs"], fixture["transform"]
            )
        out.append(item)
    return out


@pytest.fixture()
def server(items: list[dict[str, Any]], shared_dir: Path) -> Iterator[_Stac]:
    template = _real_response(shared_dir)
    srv = _Stac(("127.0.0.1", 0), _Handler)
    srv.base = f"http://127.0.0.1:{srv.server_address[1]}"
    srv.features, srv.template, srv.searches = items, template, []
    with running(srv):
        yield srv


@pytest.fixture(scope="module")
def tile(fixture: dict[str, Any]) -> Tile:
    """The 128+2x8 px DLTile holding most of the fixture footprint."""
    return largest_overlap_tile(fixture["lonlat"])


def _expected(fixture: dict[str, Any], tile: Tile) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fixture (row, col) under each tile pixel centre (nearest neighbour), and inside-footprint flags."""
    return source_pixels_under(tile, fixture["transform"], (101, 100))


def _source(server: _Stac, **kw: Any) -> StacSource:
    return StacSource(
        StacConfig(url=server.base, retry=FAST, requester_pays=False, asset_schemes=("file",)), **kw
    )


def test_load_values_on_tile_grid(server: _Stac, fixture: dict[str, Any], tile: Tile) -> None:
    stack = _source(server, max_cloud_cover=100.0).load(tile, SUMMER)
    assert stack.crs == tile.crs and stack.transform == tile.transform and stack.shape == tile.shape
    assert stack.dates == (
        dt.date(2015, 7, 11),
        dt.date(2015, 7, 31),
        dt.date(2015, 8, 20),
        dt.date(2015, 8, 30),
        dt.date(2015, 9, 9),
    )
    assert stack.scene_ids[0] == "S2A_33TVM_A_left_L1C+S2A_33TVM_A_right_L1C"
    assert stack.data.dtype == np.uint16
    r, c, inside = _expected(fixture, tile)
    assert inside.sum() > 5000
    for t in (0, 3, 4):  # clear days, incl. the two-item mosaic and the baseline-04.00 item
        np.testing.assert_array_equal(stack.data[t][:, inside], fixture["bands"][t][:, r[inside], c[inside]])
        assert stack.mask[t][inside].mean() < 0.01
    for t in range(5):
        assert stack.mask[t][~inside].all(), "outside the footprint must be masked"
    for t in (1, 2):  # fully cloudy days: masked by s2cloudless (computed at 60 m)
        assert stack.mask[t][inside].mean() > 0.95
        clear = inside & ~stack.mask[t]
        np.testing.assert_array_equal(stack.data[t][:, clear], fixture["bands"][t][:, r[clear], c[clear]])
    full = _source(server, max_cloud_cover=100.0, cloud_mask_resolution=None).load(tile, SUMMER)
    for t in (1, 2):  # masking at 10 m decodes every band and masks the same days
        np.testing.assert_array_equal(full.data[t][:, inside], fixture["bands"][t][:, r[inside], c[inside]])
        assert full.mask[t][inside].mean() > 0.95
    agree = (full.mask == stack.mask)[:, inside].mean()
    assert agree > 0.99, f"60 m and 10 m cloud masks agree on {agree:.3f} of the pixels"


def test_cloud_cover_filter_and_query(server: _Stac, tile: Tile) -> None:
    src = _source(server, max_cloud_cover=50.0, cloud_mask=CloudMaskConfig(method="none"))
    stack = src.load(tile, SUMMER)
    assert dt.date(2015, 7, 31) not in stack.dates and dt.date(2015, 8, 20) not in stack.dates
    assert len(stack.dates) == 3
    body = server.searches[-1]
    assert body["collections"] == ["sentinel-2-l1c"]
    assert body["query"] == {"eo:cloud_cover": {"lte": 50.0}}
    assert "intersects" in body and body["datetime"].startswith("2015-06-30")


def test_search_solar_day(server: _Stac, fixture: dict[str, Any]) -> None:
    src = _source(server, max_cloud_cover=100.0)
    scenes = src.search(fixture["lonlat"], Period(dt.date(2015, 9, 1), dt.date(2015, 10, 1)))
    assert [(s.id, s.date, s.cloud_cover) for s in scenes] == [("S2A_33TVM_E_L1C", dt.date(2015, 9, 9), 3.0)]
    # UTC date 09-08 but solar day 09-09: outside a period ending 09-09
    assert src.search(fixture["lonlat"], Period(dt.date(2015, 9, 1), dt.date(2015, 9, 9))) == []


def test_retry_then_success(server: _Stac, fixture: dict[str, Any]) -> None:
    server.fail_next = 2
    scenes = _source(server, max_cloud_cover=100.0).search(fixture["lonlat"], SUMMER)
    assert len(scenes) == 6 and len(server.searches) == 3


def test_retry_budget_exhausted(server: _Stac, fixture: dict[str, Any]) -> None:
    server.always_fail = True
    with pytest.raises(RetryBudgetExceeded, match=r"failed after 3 attempts .*500"):
        _source(server).search(fixture["lonlat"], SUMMER)
    assert len(server.searches) == 3
    assert issubclass(RetryBudgetExceeded, ImageryError)


def test_empty_period_is_not_an_error(server: _Stac, tile: Tile) -> None:
    stack = _source(server).load(tile, Period(dt.date(2016, 1, 1), dt.date(2016, 2, 1)))
    assert stack.data.shape == (0, 12, *tile.shape) and stack.mask.shape == (0, *tile.shape)


def test_missing_asset_is_one_line_error(server: _Stac, tile: Tile) -> None:
    src = _source(server, asset_keys=(*STAC_ASSET_KEYS[:-1], "B12"))  # "B12" instead of "swir22"
    with pytest.raises(ImageryError, match="has no asset 'B12'"):
        src.load(tile, SUMMER)


def test_harmonization_rules() -> None:
    assert parse_baseline("05.10") == pytest.approx(5.1) and parse_baseline("N0400") == 4.0
    assert parse_baseline(
        "S2B_MSIL1C_20240206T131259_N0510_R081_T27VWK_20240206T133903.SAFE"
    ) == pytest.approx(5.1)
    assert needs_offset_removal("04.00") and not needs_offset_removal("03.01", dt.date(2023, 1, 1))
    assert needs_offset_removal(None, dt.date(2022, 1, 25)) and not needs_offset_removal(
        None, dt.date(2021, 1, 1)
    )
    dn = np.array([0, 1000, 1001, 2500], np.uint16)
    np.testing.assert_array_equal(harmonize_dn(dn, True), [0, 1, 1, 1500])
    np.testing.assert_array_equal(harmonize_dn(dn, False), dn)
    assert solar_day(dt.datetime(2024, 1, 1, 23, 0, tzinfo=dt.UTC), 170.0) == dt.date(2024, 1, 2)
    assert solar_day(dt.datetime(2024, 1, 1, 1, 0), -120.0) == dt.date(2023, 12, 31)


def test_retry_policy_units() -> None:
    calls: list[int] = []
    sleeps: list[float] = []

    class Http503(Exception):
        status_code = 503

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise Http503("unavailable")
        return "ok"

    policy = RetryPolicy(attempts=4, base_delay=1.0, max_delay=1.5, jitter=0.0)
    assert retry_call(flaky, what="x", policy=policy, sleep=sleeps.append) == "ok"
    assert sleeps == [1.0, 1.5]  # exponential, capped
    empty: dict[str, int] = {}
    with pytest.raises(KeyError):  # not transient: no retry
        retry_call(lambda: empty["k"], what="x", policy=policy, sleep=sleeps.append)
    assert len(sleeps) == 2
    assert is_transient(OSError("CURL error: HTTP response code: 503")) and not is_transient(
        OSError("404 Not Found")
    )
    assert not is_transient(ImageryError("bad band"))
    assert redact("GET https://u:p@host/x.tif?sig=abc failed") == "GET https://***@host/x.tif?sig=*** failed"


def test_presets() -> None:
    default = StacSource()
    assert default.config.url == "https://earth-search.aws.element84.com/v1"
    assert default.config.collection == "sentinel-2-l1c" and default.config.cirrus_key == "cirrus"
    assert default.config.requester_pays and gdal_env(default.config)["AWS_REQUEST_PAYER"] == "requester"
    pc = planetary_computer_l2a()
    assert pc.collection == "sentinel-2-l2a" and pc.scl_asset == "SCL" and pc.cirrus_key is None


def test_collection_choice_from_resource_config() -> None:
    from plastics_core.errors import ParameterError
    from plastics_core.imagery.stac import stac_source
    from plastics_core.imagery.stac_config import PLANETARY_COMPUTER
    from plastics_dagster.resources import ImagerySourceResource

    l1c = ImagerySourceResource(kind="stac").get_source()
    assert l1c.config.collection == "sentinel-2-l1c" and l1c.config.requester_pays
    pc = ImagerySourceResource(kind="stac", collection="sentinel-2-l2a").get_source()
    assert pc.config.url == PLANETARY_COMPUTER and pc.config.scl_asset == "SCL"
    es = stac_source("https://earth-search.aws.element84.com/v1", "sentinel-2-l2a")
    assert (
        es.config.collection == "sentinel-2-l2a"
        and es.config.scl_asset == "scl"
        and not es.config.requester_pays
    )
    assert (
        ImagerySourceResource(kind="stac", collection="sentinel-2-l2a")
        .source_name()
        .endswith("#sentinel-2-l2a")
    )
    assert ImagerySourceResource(kind="stac").source_name() == "stac"  # the L1C default keeps old run hashes
    with pytest.raises(ParameterError, match="unknown STAC collection"):
        stac_source(None, "landsat-c2-l2")


def test_footprint_coverage_of_a_real_swath_edge(shared_dir: Path) -> None:
    """The real Earth Search item's footprint is a swath-edge triangle: the share of each tile it
    covers agrees with counting a 60 x 60 lattice of points inside it."""
    from shapely import contains_xy
    from shapely.geometry import shape
    from shapely.ops import transform as reproject

    from plastics_core.geo.tiles import plan_tiles
    from plastics_core.imagery.stac_catalog import footprint_coverage

    item = _real_response(shared_dir)["features"][0]
    lonlat = shape(item["geometry"])
    tiles = [t for t in plan_tiles(lonlat) if str(t.crs) == "EPSG:32627"]
    assert len(tiles) > 10
    from pyproj import Transformer

    utm = reproject(Transformer.from_crs("EPSG:4326", "EPSG:32627", always_xy=True).transform, lonlat)
    shares = []
    for t in tiles:
        left, bottom, right, top = t.bounds
        step = (right - left) / 60
        xs, ys = np.meshgrid(np.arange(left + step / 2, right, step), np.arange(bottom + step / 2, top, step))
        counted = contains_xy(utm, xs, ys).mean()
        share = footprint_coverage([item], "EPSG:32627", t.bounds)
        assert abs(share - counted) < 0.03, (t.key, share, counted)
        shares.append(share)
    assert max(shares) > 0.95 and 0 < min(shares) < 0.5  # almost inside, and cut by the edge
    assert footprint_coverage([], "EPSG:32627", tiles[0].bounds) == 0.0
    left, bottom, right, top = tiles[0].bounds  # a self-intersecting "bow tie" over the tile: two quarters
    to_ll = Transformer.from_crs("EPSG:32627", "EPSG:4326", always_xy=True).transform
    bowtie = [
        list(to_ll(x, y))
        for x, y in ((left, bottom), (right, top), (right, bottom), (left, top), (left, bottom))
    ]
    crossed = {**item, "geometry": {"type": "Polygon", "coordinates": [bowtie]}}
    assert footprint_coverage([crossed], "EPSG:32627", tiles[0].bounds) == pytest.approx(0.5, abs=0.01)
    assert (
        footprint_coverage(
            [{k: v for k, v in item.items() if k != "geometry"}], "EPSG:32627", tiles[0].bounds
        )
        == 1.0
    )  # no footprint: nothing can be ruled out


def test_min_coverage_drops_days_before_reading(
    server: _Stac, items: list[dict[str, Any]], fixture: dict[str, Any], tile: Tile
) -> None:
    """A day whose footprints (the union of its items') cover less than ``min_coverage`` of the tile
    is dropped before any of its pixels is read (its hrefs lead nowhere); a day split over two
    items counts their union."""
    from plastics_core.imagery.stac_catalog import footprint_coverage

    west, south, east, north = fixture["lonlat"].bounds
    mid = (west + east) / 2
    parts = {
        "S2A_33TVM_A_left_L1C": box(west, south, mid, north),
        "S2A_33TVM_A_right_L1C": box(mid, south, east, north),
        "S2A_33TVM_D_L1C": box(west, south, (3 * west + east) / 4, north),
    }
    edited = copy.deepcopy(items)
    for item in edited:
        if item["id"] in parts:
            item["geometry"], item["bbox"] = mapping(parts[item["id"]]), list(parts[item["id"]].bounds)
        if item["id"] == "S2A_33TVM_D_L1C":
            for asset in item["assets"].values():
                asset["href"] = "/nonexistent/never-read.tif"
    server.features = edited
    whole = footprint_coverage([edited[0], edited[1]], str(tile.crs), tile.bounds)
    quarter = footprint_coverage([edited[4]], str(tile.crs), tile.bounds)
    assert 0 < quarter < whole / 2, (quarter, whole)
    threshold = (quarter + whole) / 2
    stack = _source(server, max_cloud_cover=100.0, min_coverage=threshold).load(tile, SUMMER)
    assert dt.date(2015, 8, 30) not in stack.dates  # dropped, never read
    assert stack.dates[0] == dt.date(2015, 7, 11) and len(stack.dates) == 4  # the split day is kept whole
    with pytest.raises(ImageryError, match="never-read"):  # without the rule the day is read (its hrefs fail)
        _source(server, max_cloud_cover=100.0, retry=RetryPolicy(attempts=1)).load(tile, SUMMER)


def test_scene_selection_from_resource_config() -> None:
    from dagster import DagsterInvalidConfigError

    from plastics_core.errors import ParameterError
    from plastics_dagster.resources import ImagerySourceResource

    fields = ImagerySourceResource.model_fields
    assert fields["max_cloud_cover"].default == StacConfig().max_cloud_cover
    assert fields["min_coverage"].default == StacConfig().min_coverage
    gpw2022 = ImagerySourceResource(kind="stac", max_cloud_cover=30, min_coverage=0.9)
    cfg = gpw2022.get_source().config
    assert (cfg.max_cloud_cover, cfg.min_coverage) == (30.0, 0.9)
    assert gpw2022.source_name() == "stac;max_cloud_cover=30;min_coverage=0.9"  # enters the run hash
    assert ImagerySourceResource(kind="stac").source_name() == "stac"
    with pytest.raises(ImageryError, match="apply to imagery kind stac only, not 'synthetic'"):
        ImagerySourceResource(kind="synthetic", min_coverage=0.5).source_name()
    for bad in ({"min_coverage": 1.5}, {"max_cloud_cover": -1}, {"granule_cache_max_gb": float("inf")}):
        with pytest.raises((DagsterInvalidConfigError, ValueError)):
            ImagerySourceResource(kind="stac", **bad)
    with pytest.raises(ParameterError, match="min_coverage 2 is outside"):
        StacConfig(min_coverage=2)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"id": None}, "non-empty string id"),
        ({"id": ""}, "non-empty string id"),
        ({"properties": None}, "no properties object"),
        ({"properties": []}, "no properties object"),
        ({"properties.eo:cloud_cover": "abc"}, "eo:cloud_cover 'abc'"),
        ({"properties.eo:cloud_cover": [1]}, "eo:cloud_cover"),
        ({"properties.eo:cloud_cover": float("nan")}, "eo:cloud_cover nan"),
        ({"properties.eo:cloud_cover": 150.0}, "eo:cloud_cover 150"),
        ({"properties.eo:cloud_cover": True}, "eo:cloud_cover True"),
        ({"properties.datetime": "yesterday"}, "not an ISO 8601 time"),
        ({"properties.datetime": 12345}, "not an ISO 8601 time"),
        ({"geometry": {"type": "Polygon", "coordinates": "x"}}, "malformed geometry"),
    ],
)
def test_malformed_catalog_items_are_one_line_errors(
    items: list[dict[str, Any]], fixture: dict[str, Any], change: dict[str, Any], match: str
) -> None:
    """Catalog answers are untrusted: a malformed item is one ImageryError line naming the field,
    never a traceback from deep inside (nor a NaN cloud cover slipping through the filter)."""
    from plastics_core.imagery.stac_catalog import filter_items

    item = copy.deepcopy(items[3])
    for key, value in change.items():
        if key.startswith("properties."):
            item["properties"][key.split(".", 1)[1]] = value
        else:
            item[key] = value
    with pytest.raises(ImageryError, match=match) as info:
        filter_items([item], StacConfig(max_cloud_cover=100.0), fixture["lonlat"], SUMMER)
    assert "\n" not in str(info.value)


def test_malformed_baseline_and_sun_angles() -> None:
    from plastics_core.imagery.cloudmask import sun_angles

    for bad in (float("nan"), float("inf"), True):
        with pytest.raises(ImageryError, match="is not a number"):
            needs_offset_removal(bad, dt.date(2023, 1, 1))  # never a silent "no offset"
    az, zen = sun_angles({"view:sun_azimuth": 120.0, "view:sun_elevation": "abc"})
    assert np.isnan(zen)  # unknown sun: the scene keeps its cloud mask only


def test_one_source_name_however_it_is_spelled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The run hash names the data, not its spelling: a relative and an absolute local folder, the
    default catalog's URL and no URL, a trailing slash; a path is never part of an earthone name;
    a field only other kinds read is refused in one line instead of being ignored."""
    from plastics_core.imagery.stac_config import EARTH_SEARCH_V1
    from plastics_dagster.resources import ImagerySourceResource

    (tmp_path / "tifs").mkdir()
    monkeypatch.chdir(tmp_path)
    names = {
        ImagerySourceResource(kind="local", path=p).source_name()
        for p in ("tifs", "./tifs", str(tmp_path / "tifs"))
    }
    assert names == {f"local:{tmp_path / 'tifs'}"}
    assert ImagerySourceResource(kind="stac", path=EARTH_SEARCH_V1 + "/").source_name() == "stac"
    assert (
        ImagerySourceResource(kind="stac", path="http://127.0.0.1:1/stac/").source_name()
        == "stac:http://127.0.0.1:1/stac"
    )
    monkeypatch.setenv("PLASTICS_IMAGERY_PATH", "/data/tifs")  # exported for another kind: not earthone's
    assert ImagerySourceResource(kind="earthone").source_name() == "earthone"
    for kind, extra in (
        ("local", {"granule_cache": "/cache"}),
        ("local", {"collection": "sentinel-2-l2a"}),
        ("stac", {"seed": 7}),
        ("stac", {"plant_tpa": False}),
        ("synthetic", {"path": "/x"}),
        ("earthone", {"path": "/x"}),
    ):
        with pytest.raises(ImageryError, match=f"apply to imagery kind .* only, not '{kind}'") as info:
            ImagerySourceResource(kind=kind, **extra).source_name()
        assert "\n" not in str(info.value)
