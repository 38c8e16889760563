"""Reference sites and recall within 500 m (the ten known Bali landfills), precision from verdicts,
and ``plastics roi add --reference``."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner
from upath import UPath

from plastics_core.errors import RoiError
from plastics_core.evaluation import (
    ReferenceSite,
    load_reference_sites,
    parse_reference_sites,
    read_reference_sites,
    reference_path,
    reference_recall,
    verdict_precision,
)
from plastics_dagster.cli import cli


def _polygon_centres(gpw_dir: Path) -> dict[str, tuple[float, float]]:
    import shapely
    from shapely.geometry import shape

    doc = json.loads((gpw_dir / "tpa_polygons.geojson").read_text())
    out = {}
    for f in doc["features"]:
        centre = shapely.centroid(shape(f["geometry"]))
        out[str(f["properties"]["Name"])] = (centre.x, centre.y)
    return out


def test_the_ten_bali_landfills_are_read_with_their_names(gpw_dir: Path) -> None:
    refs = read_reference_sites(gpw_dir / "tpa_points.geojson")
    assert len(refs) == 10
    assert any("Temesi" in r.name for r in refs)
    assert all(114.4 < r.lon < 115.8 and -8.9 < r.lat < -8.0 for r in refs)


def test_recall_of_the_landfills_by_their_hand_drawn_outlines(gpw_dir: Path) -> None:
    refs = read_reference_sites(gpw_dir / "tpa_points.geojson")
    centres = _polygon_centres(gpw_dir)
    full = reference_recall(refs, centres.values())
    assert (full.found, full.total, full.recall) == (10, 10, 1.0), full.nearest_m
    keep = sorted(centres)[3:]  # three landfills not published
    part = reference_recall(refs, [centres[n] for n in keep])
    assert (part.found, part.total) == (7, 10) and part.recall == pytest.approx(0.7)
    assert sorted(part.missed) == sorted(sorted(centres)[:3])
    assert reference_recall(refs, []).found == 0 and math.isinf(reference_recall(refs, []).nearest_m[0])
    assert math.isnan(reference_recall([], centres.values()).recall)


def test_500_m_is_geodesic() -> None:
    # one degree of latitude at the equator is 110,574 m on WGS84: 0.0045 deg = 497.6 m, 0.0046 deg = 508.6 m
    ref = [ReferenceSite("r", 10.0, 0.0)]
    assert reference_recall(ref, [(10.0, 0.0045)]).found == 1
    assert reference_recall(ref, [(10.0, 0.0046)]).found == 0
    assert reference_recall(ref, [(10.0, 0.0046)]).nearest_m[0] == pytest.approx(508.6, abs=1.0)
    # at 60 deg N a degree of longitude is half as long: 0.009 deg east is ~502 m
    north = [ReferenceSite("n", 10.0, 60.0)]
    assert reference_recall(north, [(10.0089, 60.0)]).found == 1
    assert reference_recall(north, [(10.0091, 60.0)]).found == 0


@pytest.mark.parametrize(
    ("doc", "match"),
    [
        (
            {
                "type": "FeatureCollection",
                "features": [
                    {
                        "type": "Feature",
                        "properties": {},
                        "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]},
                    }
                ],
            },
            "Point or MultiPoint",
        ),
        ({"type": "Point", "coordinates": [200.0, 10.0]}, "not lon/lat"),
        ({"type": "Point", "coordinates": ["x", 1]}, "numeric"),
        (
            {
                "type": "FeatureCollection",
                "crs": {"type": "name", "properties": {"name": "EPSG:3857"}},
                "features": [],
            },
            "reproject",
        ),
        ({"type": "Topology"}, "type 'Topology'"),
        ([1, 2], "not a GeoJSON object"),
    ],
)
def test_bad_reference_files_are_one_line_errors(doc: object, match: str) -> None:
    with pytest.raises(RoiError, match=match) as err:
        parse_reference_sites(doc)
    assert "\n" not in str(err.value)


def test_labels_are_plain_text_and_other_properties_are_dropped() -> None:
    doc = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {"name": "<script>alert(1)</script>\n x", "secret": "s"},
                "geometry": {"type": "MultiPoint", "coordinates": [[115.0, -8.0], [115.1, -8.1]]},
            }
        ],
    }
    sites = parse_reference_sites(doc)
    assert [s.name for s in sites] == ["<script>alert(1)</script> x #1", "<script>alert(1)</script> x #2"]
    assert parse_reference_sites({"type": "FeatureCollection", "features": []}) == []


def test_precision_counts_confirm_over_confirm_and_reject() -> None:
    p = verdict_precision(["confirm", "reject", "confirm", "unsure", "confirm"])
    assert (p.confirmed, p.reviewed, p.unsure) == (3, 4, 1) and p.precision == pytest.approx(0.75)
    assert math.isnan(verdict_precision([]).precision)


def test_roi_add_stores_the_reference_sites_inside_the_roi(cli_env: Path, gpw_dir: Path) -> None:
    runner = CliRunner()
    bali = runner.invoke(
        cli,
        [
            "roi",
            "add",
            "bali",
            str(gpw_dir / "bali.geojson"),
            "--reference",
            str(gpw_dir / "tpa_points.geojson"),
        ],
        catch_exceptions=False,
    )
    assert bali.exit_code == 0, bali.output
    assert "reference sites: 10 stored" in bali.output
    store = UPath(str(cli_env / "store"))
    assert len(load_reference_sites(store, "bali") or []) == 10
    patch = runner.invoke(
        cli,
        [
            "roi",
            "add",
            "temesi",
            str(gpw_dir / "test_patch.geojson"),
            "--reference",
            str(gpw_dir / "tpa_points.geojson"),
        ],
        catch_exceptions=False,
    )
    assert patch.exit_code == 0, patch.output
    kept = load_reference_sites(store, "temesi") or []
    assert [("Temesi" in s.name) for s in kept] == [True] and "9 outside the ROI left out" in patch.output
    assert load_reference_sites(store, "nothing") is None


def test_roi_add_with_a_bad_reference_registers_nothing(cli_env: Path, gpw_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.geojson"
    bad.write_text(json.dumps({"type": "Point", "coordinates": [0.0, 0.0]}))  # far from Bali
    result = CliRunner().invoke(
        cli,
        ["roi", "add", "bali", str(gpw_dir / "bali.geojson"), "--reference", str(bad)],
        catch_exceptions=False,
    )
    assert result.exit_code == 2 and "none of its 1 reference sites lies in the ROI" in result.output
    store = UPath(str(cli_env / "store"))
    assert not (store / "rois" / "bali.geojson").exists() and not reference_path(store, "bali").exists()
