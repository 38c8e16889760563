"""plastics_core.storage.outputs: deterministic, atomic GeoJSON / COG / VRT / JSON files."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from affine import Affine
from shapely.geometry import Point, Polygon, box

from plastics_core.errors import ParameterError
from plastics_core.geo.raster import Raster
from plastics_core.storage.atomic import atomic_writer
from plastics_core.storage.outputs import (
    cog_bytes,
    geojson_bytes,
    read_geojson,
    read_raster,
    vrt_xml,
    write_cog,
    write_geojson,
    write_json,
    write_vrt,
)

T = Affine(10, 0, 311410, 0, -10, 9058370)


def _raster(seed: int = 0, transform: Affine = T, size: int = 300, name: str = "tile") -> Raster:
    data = np.random.default_rng(seed).random((3, size, size)).astype(np.float32)
    data[:, :4, :4] = np.nan
    return Raster(
        data,
        "EPSG:32750",
        transform,
        ("2021-01-01_2021-04-01|2021-07-01_2021-10-01", "b", "median"),
        name=name,
        tags={"model": "v0.0.11"},
    )


def _no_temps(folder: Path) -> bool:
    return not [p for p in folder.iterdir() if p.name.endswith(".tmp")]


def test_geojson_format_and_determinism() -> None:
    gdf = gpd.GeoDataFrame(
        {"name": ["b", "a"], "score": [np.float32(0.123456789), 1 / 3], "n": [np.int64(3), 4]},
        geometry=[Point(115.123456789, -8.5), Polygon([(0, 0), (0, 1), (1, 1), (0, 0)])],  # clockwise ring
        crs="EPSG:4326",
    )
    out = geojson_bytes(gdf)
    assert out.endswith(b"}\n") and out == geojson_bytes(gdf.iloc[::-1])  # order-independent
    doc = json.loads(out)
    assert "crs" not in doc
    assert [f["properties"]["name"] for f in doc["features"]] == ["a", "b"]
    b = doc["features"][1]
    assert b["geometry"]["coordinates"] == [115.1234568, -8.5]
    assert b["properties"]["score"] == 0.1234568 and b["properties"]["n"] == 3
    ring = doc["features"][0]["geometry"]["coordinates"][0]
    signed = sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in zip(ring, ring[1:], strict=False))
    assert signed > 0  # RFC 7946: exterior counter-clockwise


def test_geojson_reprojects_and_needs_crs() -> None:
    utm = gpd.GeoDataFrame({"name": ["x"]}, geometry=[Point(500000, 9000000)], crs="EPSG:32750")
    lon, lat = json.loads(geojson_bytes(utm))["features"][0]["geometry"]["coordinates"]
    assert lon == pytest.approx(117.0) and lat == pytest.approx(-9.04, abs=0.01)
    with pytest.raises(ParameterError, match="CRS"):
        geojson_bytes(gpd.GeoDataFrame({"a": [1]}, geometry=[Point(0, 0)]))


def test_geojson_nan_and_empty(tmp_path: Path) -> None:
    gdf = gpd.GeoDataFrame({"v": [np.nan]}, geometry=[Point(1, 2)], crs="EPSG:4326")
    assert json.loads(geojson_bytes(gdf))["features"][0]["properties"]["v"] is None
    empty = gpd.GeoDataFrame({"name": []}, geometry=[], crs="EPSG:4326")
    write_geojson(empty, tmp_path / "e.geojson")
    back = read_geojson(tmp_path / "e.geojson")
    assert len(back) == 0 and back.crs == "EPSG:4326"
    assert json.loads((tmp_path / "e.geojson").read_bytes()) == {"type": "FeatureCollection", "features": []}


def test_gpw_files_roundtrip(gpw_dir: Path, tmp_path: Path) -> None:
    folder = gpw_dir / "east_timor"
    for src in sorted(folder.glob("*.geojson")):
        gdf = read_geojson(src)
        assert gdf.crs == "EPSG:4326" and len(gdf) > 0
        write_geojson(gdf, tmp_path / src.name)
        again = read_geojson(tmp_path / src.name)
        assert geojson_bytes(again) == (tmp_path / src.name).read_bytes()
        assert len(again) == len(gdf)
        assert np.allclose(np.sort(again.geometry.bounds.minx), np.sort(gdf.geometry.bounds.minx), atol=1e-6)
    patches = read_geojson(folder / "patch_classifier_v1.2_stride8.geojson")
    assert len(patches) == 806 and {"mean", "median", "min", "max", "std", "count"} <= set(patches.columns)
    assert len(read_geojson((folder / "published_candidates_patch_threshold_0.4.geojson").read_bytes())) == 5


def test_cog_roundtrip_and_determinism(tmp_path: Path) -> None:
    r = _raster()
    data = cog_bytes(r)
    assert data == cog_bytes(r)
    back = read_raster(data)
    np.testing.assert_array_equal(back.data, r.data)
    assert back.crs == "EPSG:32750" and back.transform == T and back.band_descriptions == r.band_descriptions
    assert np.isnan(back.nodata) and back.name == "tile" and back.tags == {"model": "v0.0.11"}
    write_cog(r, tmp_path / "h.tif")
    with rasterio.open(tmp_path / "h.tif") as ds:
        assert ds.profile["tiled"] and ds.profile["compress"] == "deflate" and ds.overviews(1)
        assert ds.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
    assert read_raster(tmp_path / "h.tif").band_descriptions == r.band_descriptions


def test_vrt_mosaic(tmp_path: Path) -> None:
    a = _raster(1, T, 60)
    b = _raster(2, Affine(10, 0, T.c + 10 * 50, 0, -10, T.f), 60)  # overlaps a by 10 px (pad 5)
    write_cog(a, tmp_path / "a.tif")
    write_cog(b, tmp_path / "sub" / "b.tif")
    write_vrt([tmp_path / "a.tif", tmp_path / "sub" / "b.tif"], tmp_path / "m.vrt", crop=5)
    assert 'relativeToVRT="1">sub/b.tif' in (tmp_path / "m.vrt").read_text()
    m = read_raster(tmp_path / "m.vrt")
    assert m.data.shape == (3, 50, 100) and m.band_descriptions == a.band_descriptions
    assert m.transform == Affine(10, 0, T.c + 50, 0, -10, T.f - 50)
    np.testing.assert_array_equal(m.data[:, :, :50], a.data[:, 5:-5, 5:-5])
    np.testing.assert_array_equal(m.data[:, :, 50:], b.data[:, 5:-5, 5:-5])
    write_cog(_raster(3, Affine(10, 0, T.c + 3, 0, -10, T.f), 60), tmp_path / "c.tif")
    with pytest.raises(ParameterError, match="aligned"):
        vrt_xml([tmp_path / "a.tif", tmp_path / "c.tif"])


def test_write_json(tmp_path: Path) -> None:
    write_json({"b": np.float32(0.5), "a": [np.int64(1), float("nan")], "d": Path("/x")}, tmp_path / "m.json")
    text = (tmp_path / "m.json").read_text()
    assert text == '{\n  "a": [\n    1,\n    null\n  ],\n  "b": 0.5,\n  "d": "/x"\n}\n'


def test_failed_writes_keep_old_file(tmp_path: Path) -> None:
    target = tmp_path / "out.geojson"
    gdf = gpd.GeoDataFrame({"name": ["a"]}, geometry=[box(0, 0, 1, 1)], crs="EPSG:4326")
    write_geojson(gdf, target)
    before = target.read_bytes()
    with pytest.raises(RuntimeError), atomic_writer(target) as fh:  # dies mid-way
        fh.write(b'{"type": "FeatureColl')
        raise RuntimeError("disk on fire")
    assert target.read_bytes() == before and _no_temps(tmp_path)
    with pytest.raises(TypeError):
        write_json({"x": object()}, target)
    with pytest.raises(ParameterError):
        write_geojson(gpd.GeoDataFrame({"a": [1]}, geometry=[Point(0, 0)]), target)
    assert target.read_bytes() == before and _no_temps(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.geojson"]
