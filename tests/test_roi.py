"""plastics_core.geo.roi: reading, validating and naming ROIs (real GPW ROIs + every RoiError case)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from shapely.geometry import MultiPolygon, Polygon

from plastics_core.errors import PlasticsError, RoiError
from plastics_core.geo.roi import read_roi, roi_area_km2, roi_name_ok, slugify_roi_name, validate_roi_name

if TYPE_CHECKING:
    from click.testing import Result
    from dagster import DagsterInstance

SQUARE = [[[115.0, -8.0], [115.1, -8.0], [115.1, -8.1], [115.0, -8.1], [115.0, -8.0]]]


def _write(tmp_path: Path, doc: object, name: str = "roi.geojson") -> Path:
    p = tmp_path / name
    p.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return p


def _fc(*geoms: dict) -> dict:
    return {
        "type": "FeatureCollection",
        "features": [{"type": "Feature", "properties": {}, "geometry": g} for g in geoms],
    }


def test_real_rois(gpw_dir: Path) -> None:
    patch = read_roi(gpw_dir / "test_patch.geojson")
    assert isinstance(patch, Polygon)
    assert 3.0 < roi_area_km2(patch) < 4.5  # ~2 x 2 km
    bali = read_roi(gpw_dir / "bali.geojson")  # has a CRS84 crs member
    assert isinstance(bali, MultiPolygon)
    assert 5_400 < roi_area_km2(bali) < 5_800  # ~5,600 km^2


def test_accepts_feature_and_bare_geometry_and_unions(tmp_path: Path) -> None:
    poly = {"type": "Polygon", "coordinates": SQUARE}
    a = read_roi(_write(tmp_path, poly, "a.json"))
    b = read_roi(_write(tmp_path, {"type": "Feature", "properties": {}, "geometry": poly}, "b.json"))
    assert a.equals(b)
    other = {"type": "Polygon", "coordinates": [[[116.0, -8.0], [116.1, -8.0], [116.1, -8.1], [116.0, -8.0]]]}
    both = read_roi(_write(tmp_path, _fc(poly, other), "c.json"))
    assert isinstance(both, MultiPolygon) and len(both.geoms) == 2


def test_area_equal_area() -> None:
    # 1 x 1 degree at the equator is ~12,364 km^2
    sq = Polygon([(0, 0), (1, 0), (1, 1), (0, 1)])
    assert roi_area_km2(sq) == pytest.approx(12_364, rel=0.01)


def test_bowtie_is_repaired(tmp_path: Path) -> None:
    bowtie = {
        "type": "Polygon",
        "coordinates": [[[115.0, -8.0], [115.1, -8.1], [115.1, -8.0], [115.0, -8.1], [115.0, -8.0]]],
    }
    geom = read_roi(_write(tmp_path, _fc(bowtie)))
    assert geom.is_valid and geom.area > 0


@pytest.mark.parametrize(
    ("doc", "match"),
    [
        ("not json {", "not valid JSON"),
        ([1, 2, 3], "not GeoJSON"),
        ({"type": "FeatureCollection", "features": []}, "no features"),
        ({"type": "Feature", "properties": {}, "geometry": None}, "no features"),
        (_fc({"type": "Point", "coordinates": [115.0, -8.0]}), "Point, not a polygon"),
        (_fc({"type": "LineString", "coordinates": [[115.0, -8.0], [115.1, -8.1]]}), "LineString"),
        (_fc({"type": "Polygon", "coordinates": [[[115.0, -8.0], [115.1]]]}), "malformed geometry"),
        (
            _fc(
                {
                    "type": "Polygon",
                    "coordinates": [[[115.0, -8.0], [115.1, -8.0], [115.2, -8.0], [115.0, -8.0]]],
                }
            ),
            "no polygon area",
        ),
        (
            _fc({"type": "Polygon", "coordinates": [[[179.0, 0], [181.0, 0], [181.0, 1], [179.0, 0]]]}),
            "antimeridian",
        ),
        (
            _fc(
                {
                    "type": "Polygon",
                    "coordinates": [[[115.0, -8.5], [115.1, -8.5], [float("nan"), -8.4], [115.0, -8.5]]],
                }
            ),
            "not a finite number",
        ),
        (
            _fc(
                {
                    "type": "Polygon",
                    "coordinates": [[[115.0, -8.5], [float("inf"), -8.5], [115.1, -8.4], [115.0, -8.5]]],
                }
            ),
            "not a finite number",
        ),
        (
            _fc(
                {
                    "type": "MultiPolygon",
                    "coordinates": [
                        [[[-179.9, 0], [-179.0, 0], [-179.0, 1], [-179.9, 0]]],
                        [[[179.0, 0], [179.9, 0], [179.9, 1], [179.0, 0]]],
                    ],
                }
            ),
            "antimeridian",
        ),
        (
            _fc(
                {
                    "type": "Polygon",
                    "coordinates": [
                        [[500000, 9000000], [501000, 9000000], [501000, 9001000], [500000, 9000000]]
                    ],
                }
            ),
            "outside lon/lat",
        ),
        (
            {
                "type": "FeatureCollection",
                "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::32750"}},
                "features": _fc({"type": "Polygon", "coordinates": SQUARE})["features"],
            },
            "EPSG:4326",
        ),
    ],
)
def test_bad_roi_files(tmp_path: Path, doc: object, match: str) -> None:
    with pytest.raises(RoiError, match=match) as info:
        read_roi(_write(tmp_path, doc))
    assert "\n" not in str(info.value) and ":" in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(RoiError, match="not found"):
        read_roi(tmp_path / "nope.geojson")


def test_area_limit_and_force(tmp_path: Path, gpw_dir: Path) -> None:
    big = _write(
        tmp_path, _fc({"type": "Polygon", "coordinates": [[[10, 0], [20, 0], [20, 10], [10, 10], [10, 0]]]})
    )
    with pytest.raises(RoiError, match="force"):
        read_roi(big)
    assert roi_area_km2(read_roi(big, force=True)) > 1_000_000
    with pytest.raises(RoiError, match="limit"):
        read_roi(gpw_dir / "bali.geojson", max_area_km2=1_000)


@pytest.mark.parametrize("name", ["bali", "test_patch", "east-timor", "a", "0" * 64, "x1_y-2"])
def test_good_names(name: str) -> None:
    assert validate_roi_name(name) == name and roi_name_ok(name)


@pytest.mark.parametrize(
    "name",
    [
        "../x",
        "a/b",
        "a b",
        "Bali",
        "bäli",
        "a|b",
        "a,b",
        "",
        "-x",
        "_x",
        "x" * 65,
        "a\nb",
        "a.b",
        "..",
        "a\\b",
        "s3://x",
    ],
)
def test_bad_names(name: str) -> None:
    assert not roi_name_ok(name)
    with pytest.raises(RoiError) as info:
        validate_roi_name(name)
    suggestion = slugify_roi_name(name)
    assert roi_name_ok(suggestion) and repr(suggestion) in str(info.value)
    assert isinstance(info.value, PlasticsError) and "\n" not in str(info.value)


def test_slugify() -> None:
    assert slugify_roi_name("Bali Nord/Süd") == "bali-nord-sud"
    assert slugify_roi_name("../x") == "x"
    assert slugify_roi_name("日本") == "roi"
    assert len(slugify_roi_name("a" * 100)) == 64


# --- roi partitions added outside the project's tools (UI "Add partition", the GraphQL API) -----------


def _cli(*args: str) -> Result:
    from click.testing import CliRunner

    from plastics_dagster.cli import cli

    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def _instance(cli_env: Path) -> DagsterInstance:
    from dagster import DagsterInstance

    from plastics_dagster.cli._instance import ensure_instance_config

    return DagsterInstance.from_config(str(ensure_instance_config(cli_env / "home")))


def test_an_unusable_partition_key_is_named_by_every_command_and_removable(
    cli_env: Path, gpw_dir: Path
) -> None:
    assert _cli("roi", "add", "temesi", str(gpw_dir / "test_patch.geojson")).exit_code == 0
    _instance(cli_env).add_dynamic_partitions("roi", ["bad|name"])  # what the UI's "Add partition" accepted
    listed = _cli("roi", "list")
    assert listed.exit_code == 0, listed.output
    warnings = [line for line in listed.output.splitlines() if line.startswith("Warning:")]
    assert (
        len(warnings) == 1 and "'bad|name'" in warnings[0] and "plastics roi remove 'bad|name'" in warnings[0]
    )
    assert any(line.startswith("temesi\t") for line in listed.output.splitlines())
    assert any("'bad|name'" in line and "UNUSABLE NAME" in line for line in listed.output.splitlines())
    other = _cli(
        "roi", "add", "other", str(gpw_dir / "test_patch.geojson")
    )  # any command that opens the instance
    assert (
        other.exit_code == 0 and sum(line.startswith("Warning:") for line in other.output.splitlines()) == 1
    )
    removed = _cli("roi", "remove", "bad|name")
    assert removed.exit_code == 0 and "removed the roi partition 'bad|name'" in removed.output, removed.output
    assert sorted(_instance(cli_env).get_dynamic_partitions("roi")) == ["other", "temesi"]
    clean = _cli("roi", "list")
    assert "Warning" not in clean.output and "bad|name" not in clean.output
    again = _cli("roi", "remove", "bad|name")
    assert again.exit_code == 2 and "is not registered" in again.output


def test_roi_list_says_which_rois_have_no_geometry(
    cli_env: Path, gpw_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PLASTICS_ROI_DIR", str(cli_env / "watched"))
    (cli_env / "watched").mkdir()
    (cli_env / "watched" / "dropped.geojson").write_bytes((gpw_dir / "test_patch.geojson").read_bytes())
    assert _cli("roi", "add", "temesi", str(gpw_dir / "test_patch.geojson")).exit_code == 0
    _instance(cli_env).add_dynamic_partitions(
        "roi", ["clicked", "dropped", "test_patch"]
    )  # UI / sensor added
    lines = dict(line.split("\t", 1) for line in _cli("roi", "list").output.splitlines() if "\t" in line)
    assert lines["temesi"] == str(cli_env / "store" / "rois" / "temesi.geojson")
    assert (
        lines["clicked"].startswith("NO GEOMETRY: its runs fail")
        and "plastics roi add clicked" in lines["clicked"]
    )
    assert lines["dropped"].endswith("(watched folder, not in the store)")
    assert lines["test_patch"].endswith("test_patch.geojson (shared default, not in the store)")
    assert not any("(shared default)" == v for v in lines.values())
