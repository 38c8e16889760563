"""Preview HTML (offline, inlined Leaflet), its table, and the per-site PNG reports."""

from __future__ import annotations

import base64
import io
import json
import re

import numpy as np
import pytest
from affine import Affine
from PIL import Image

from plastics_core.geo.raster import Raster
from plastics_core.report import leaflet_offline
from plastics_core.report.preview import build_preview_html
from plastics_core.report.preview_layers import site_rows
from plastics_core.report.preview_overlay import heatmap_overlay_png
from plastics_core.report.preview_table import map_links
from plastics_core.report.site_reports import build_site_reports, rgb_image, site_report_png
from tests import _preview_data as d

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def page() -> str:
    return build_preview_html(
        d.roi(), d.heatmap(), d.blobs(), d.candidates(), d.contours(), d.enriched(), "demo <roi> · 2023-01-01"
    )


def test_leaflet_is_inlined_and_nothing_loads_over_the_network(page: str) -> None:
    assert leaflet_offline.external_resources(page) == []
    assert not re.search(r"<(script|link)[^>]+(src|href)=", page), "every script and stylesheet is inline"
    assert "L.map(" in page and "Leaflet" in page
    assert "cdn.jsdelivr" not in page and "code.jquery" not in page
    assert "{{" not in page.split('id="plastics-data"')[0], "no template syntax in the page's own text"
    assert "url(images/" not in page, "Leaflet CSS images are data URIs"


def island(page: str) -> dict:
    """The page's JSON data island, parsed."""
    found = re.search(r'<script type="application/json" id="plastics-data">(.*?)</script>', page, re.S)
    assert found, "no data island"
    return json.loads(found.group(1))  # type: ignore[no-any-return]


def test_layers_popups_and_title_are_present(page: str) -> None:
    data = island(page)
    assert data["heatmap"]["uri"].startswith("data:image/png;base64,") and "median heatmap" in page
    assert data["blobs"]["label"] == "blobs (2)" and data["sites"]["label"] == "candidate sites (2)"
    assert [c["label"] for c in data["contours"]] == [
        f"contours {day} (2)" for day in ("2023-01-01", "2023-02-01", "2023-03-01")
    ]
    assert [c["show"] for c in data["contours"]] == [False, False, True]  # the latest date is on
    assert [b[0] for b in data["basemaps"]] == ["OpenStreetMap (online)", "Esri World Imagery (online)"]
    assert data["title"] == "demo <roi> · 2023-01-01"
    popups = [line for s in data["sites"]["items"] for line in s["lines"]]
    assert "Jl. Contoh 1, Jakarta <Utara>" in popups and "Bekasi & Co" in popups
    assert "<Utara>" not in page and "<roi>" not in page, "outside text is escaped inside the island"
    assert "demo \\u003croi\\u003e" in page


def test_table_rows_sorted_by_score_with_map_links(page: str) -> None:
    rows = island(page)["table"]["rows"]
    assert [r["site_id"] for r in rows] == ["s-aaa", "s-bbb"]
    lon, lat = d.site_lonlats()[0]
    assert dict(rows[0]["links"]) == map_links(lat, lon)
    assert (
        rows[0]["cells"][4] == ["0.910", 0.91] and rows[0]["cells"][7][0] == "Jl. Contoh 1, Jakarta <Utara>"
    )
    assert "plastics-sites-table" in page and "sortBy" in page


def test_map_links() -> None:
    links = map_links(-6.5, 106.25)
    assert links["OSM"].startswith("https://www.openstreetmap.org/?mlat=-6.500000&mlon=106.250000")
    assert "query=-6.500000,106.250000" in links["Google"]
    assert "cp=-6.500000~106.250000" in links["Bing"]


def test_empty_inputs_give_a_valid_page() -> None:
    empty = d.candidates().iloc[0:0]
    nan = Raster(np.full((1, 5, 5), np.nan, np.float32), d.CRS, d.transform(), ("median",))
    html = build_preview_html(None, nan, None, empty, None, None, "empty")
    data = island(html)
    assert data["table"]["rows"] == [] and data["sites"] == {"label": "candidate sites (0)", "items": []}
    assert data["heatmap"] is None and data["roi"] is None and data["bounds"] is None
    assert leaflet_offline.external_resources(html) == []


def test_site_rows_fall_back_to_candidates_and_contour_area() -> None:
    rows = site_rows(d.candidates(), None, d.contours())
    assert [r.site_id for r in rows] == ["site_0", "site_1"]
    assert rows[0].area_km2 == pytest.approx(d.contours()["area_km2"].iloc[-2])


def test_heatmap_overlay_covers_the_sites_and_is_transparent_where_nan() -> None:
    overlay = heatmap_overlay_png(d.heatmap())
    assert overlay is not None
    uri, ((south, west), (north, east)) = overlay
    for lon, lat in d.site_lonlats():
        assert west < lon < east and south < lat < north
    img = np.asarray(Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))))
    assert img.shape[2] == 4
    assert img[2, 2, 3] == 0, "the masked (NaN) corner is transparent"
    assert img[..., 3].max() > 200


def test_heatmap_overlay_merges_tiles_in_different_crs() -> None:
    a = d.heatmap()
    other = Raster(
        np.full((1, 10, 10), 0.5, np.float32),
        "EPSG:4326",
        Affine(0.001, 0, 106.9, 0, -0.001, -6.1),
        ("median",),
    )
    overlay = heatmap_overlay_png([a, other])
    assert overlay is not None
    (_, west), (_, east) = overlay[1]
    assert west < d.site_lonlats()[0][0] and east >= 106.91 - 1e-6


def test_missing_leaflet_names_the_fix(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setattr(leaflet_offline, "candidate_dirs", lambda: [tmp_path / "nowhere"])
    with pytest.raises(leaflet_offline.LeafletMissingError, match="pip install django-js-lib-leaflet"):
        leaflet_offline.find_leaflet_dir()


def test_leaflet_dir_from_env(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    (tmp_path / "leaflet.js").write_text("/* js */")
    (tmp_path / "leaflet.css").write_text(".x{background:url(images/a.png)}")
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "a.png").write_bytes(PNG_MAGIC)
    monkeypatch.setenv(leaflet_offline.ENV_VAR, str(tmp_path))
    assets = leaflet_offline.load_leaflet()
    assert assets.source == tmp_path and "data:image/png;base64," in assets.css


# ---------------------------------------------------------------------------------------- reports
def _composite(bands: int = 12) -> Raster:
    rng = np.random.default_rng(1)
    data = rng.uniform(500, 3000, (bands, d.SIZE, d.SIZE)).astype(np.float32)
    return Raster(data, d.CRS, d.transform(), tuple(f"b{i}" for i in range(bands)))


def test_site_reports_top_n_are_pngs() -> None:
    reports = build_site_reports(d.enriched(), _composite(), [d.heatmap()], d.contours(), top_n=1)
    assert list(reports) == ["s-aaa"]
    png = reports["s-aaa"]
    assert png.startswith(PNG_MAGIC)
    assert Image.open(io.BytesIO(png)).size == (1200, 400)


def test_rgb_image_crop_and_outside() -> None:
    lon, lat = d.site_lonlats()[0]
    rgb = rgb_image(_composite(3), lon, lat, half=10)
    assert rgb is not None and rgb.shape == (20, 20, 3) and 0 <= rgb.min() and rgb.max() <= 1
    assert rgb_image(_composite(), 0.0, 0.0) is None
    with pytest.raises(ValueError, match="need 12"):
        rgb_image(_composite(4), lon, lat)


def test_report_without_inputs_still_renders() -> None:
    png = site_report_png("nothing", None, None, {})
    assert png.startswith(PNG_MAGIC)
    assert build_site_reports(d.enriched().iloc[0:0], None, None) == {}


def test_heatmap_overlay_of_adjacent_tiles_has_no_gap() -> None:
    tiles = d.tile_heatmaps(tilesize=128)
    assert len(tiles) >= 2
    overlay = heatmap_overlay_png(tiles)
    assert overlay is not None
    img = np.asarray(Image.open(io.BytesIO(base64.b64decode(overlay[0].split(",", 1)[1]))))
    alpha = img[..., 3]
    assert (alpha[2:-2, 2:-2] > 0).mean() > 0.9, "tiles leave holes in the merged overlay"
    assert (alpha > 200).sum() >= 2 * 20, "both planted sites are hot"


def test_same_inputs_give_a_byte_identical_page() -> None:
    pages = [
        build_preview_html(
            d.roi(), d.heatmap(), d.blobs(), d.candidates(), d.contours(), d.enriched(), "same"
        )
        for _ in range(2)
    ]
    assert pages[0] == pages[1]


def test_non_numeric_store_values_show_as_dashes() -> None:
    """Scores, coordinates and areas that are text (a hand-edited or hostile store) do not fail the
    page: the value shows as an en dash, the site stays in the table, and no NaN reaches the JSON."""
    sites = d.enriched().astype({"score": object, "lat": object})
    sites["score"] = ["high", 0.5]
    sites["lat"] = ["north", sites["lat"].iloc[1]]
    page = build_preview_html(d.roi(), None, None, None, None, sites, "text numbers")
    data = island(page)
    assert [r["site_id"] for r in data["table"]["rows"]] == ["s-bbb", "s-aaa"]
    assert data["table"]["rows"][1]["cells"][4] == ["–", None] and data["table"]["rows"][1]["links"] == []
    assert len(data["sites"]["items"]) == 1
