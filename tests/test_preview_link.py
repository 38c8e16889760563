"""The map in the UI: the preview's inline PNG (>= 600 px, colormap, legend) and a link a browser
opens (presigned URL on S3 -- a real S3 API server -- ; `plastics preview` on a local store)."""

from __future__ import annotations

import base64
import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner
from dagster import build_asset_context
from PIL import Image

from plastics_core.report.thumbnails import preview_map_png
from plastics_dagster.cli import cli
from plastics_dagster.partitions import partition_key
from tests import _preview_data as d
from tests._s3 import moto_bucket

ROI = "jakarta"
WINDOW = "2021-01-01"


def _png(md: str) -> Image.Image:
    found = re.search(r"data:image/png;base64,([A-Za-z0-9+/=]+)", md)
    assert found, md[:200]
    return Image.open(io.BytesIO(base64.b64decode(found.group(1)))).convert("RGB")


def test_map_png_is_wide_coloured_and_has_a_colour_bar() -> None:
    img = Image.open(io.BytesIO(preview_map_png(d.roi(), [d.heatmap()], d.candidates(), "t"))).convert("RGB")
    assert img.width >= 600 and img.height >= 400
    colours = img.getcolors(img.width * img.height)
    assert colours is not None and len(colours) > 200  # a real colormap, not a few grey levels
    # the colour bar: a column right of the map running from magma's dark purple (bottom) to pale yellow (top)
    arr = list(img.getdata())
    bright = [(r, g, b) for r, g, b in arr if r > 240 and g > 220 and b < 200]
    dark = [(r, g, b) for r, g, b in arr if r < 40 and g < 20 and b < 60]
    assert bright and dark


def _blue_extent(png: bytes) -> tuple[float, float]:
    """(width, height) of the box holding the ROI outline's pixels (#1f77b4), as fractions of the image."""
    import numpy as np

    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    blue = (abs(rgb[..., 0] - 31) < 12) & (abs(rgb[..., 1] - 119) < 12) & (abs(rgb[..., 2] - 180) < 12)
    rows, cols = np.nonzero(blue)
    return (cols.max() - cols.min()) / rgb.shape[1], (rows.max() - rows.min()) / rgb.shape[0]


def test_map_png_is_framed_on_the_roi_not_the_tile() -> None:
    """A small ROI in a large heatmap tile fills the map; the tile's far corners are left out."""
    from shapely.geometry import box

    lon, lat = d.site_lonlats()[0]
    small = box(lon - 0.002, lat - 0.002, lon + 0.002, lat + 0.002)  # about 440 m, in a 2 km tile
    framed = preview_map_png(small, [d.heatmap()], d.candidates().iloc[[0]], "t")
    width, height = _blue_extent(framed)
    assert max(width, height) > 0.5, (width, height)
    whole = preview_map_png(small, [d.heatmap()], None, "t", width_px=800)
    assert max(_blue_extent(whole)) > 0.5  # framed on the ROI even without sites
    img = Image.open(io.BytesIO(framed))
    assert img.width >= 600


def test_thumbnails_are_at_least_600_px() -> None:
    from plastics_core.report.thumbnails import MIN_PX, heatmap_png, points_png

    assert MIN_PX >= 600
    for png in (
        heatmap_png(d.heatmap()),
        points_png(d.candidates(), d.roi(), "2 candidates"),
        preview_map_png(d.roi(), [d.heatmap()], d.candidates(), "t", width_px=300),
    ):
        assert max(Image.open(io.BytesIO(png)).size) >= 600


def _materialize_preview(store: str) -> Any:
    from plastics_dagster.assets.preview import PreviewConfig, preview
    from plastics_dagster.config import DetectionParams
    from plastics_dagster.registry import store_roi
    from plastics_dagster.resources import ImagerySourceResource, StoreResource
    from plastics_dagster.sitedb_resource import SiteDatabase

    store_res = StoreResource(location=store)
    store_roi(store_res.path(), ROI, d.roi())
    resources = {
        "params": DetectionParams(),
        "imagery": ImagerySourceResource(),
        "store": store_res,
        "database": SiteDatabase(),  # no database yet: every site unreviewed, none created
    }
    with build_asset_context(partition_key=partition_key(ROI, WINDOW), resources=resources) as ctx:
        return preview(
            ctx,
            config=PreviewConfig(report_top_n=0),
            heatmaps=[d.heatmap()],
            blobs=d.blobs(),
            candidates=d.candidates(),
            contours=d.contours(),
            enriched_sites=d.enriched(),
        )


def test_local_store_map_inline_and_cli_opens_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    result = _materialize_preview(str(tmp_path / "store"))
    meta = result.metadata
    assert _png(str(meta["map"].value)).width >= 600
    assert meta["preview_url"].value == Path(str(meta["preview"].value)).as_uri()  # a clickable file:// link
    assert meta["open_with"].value == f"plastics preview --roi {ROI} --window {WINDOW} --open"
    out = CliRunner().invoke(
        cli, ["preview", "--roi", ROI, "--window", WINDOW, "--store", str(tmp_path / "store")]
    )
    assert out.exit_code == 0, out.output
    page = Path(out.output.strip())
    assert page.is_file() and page.suffix == ".html" and str(page) == str(meta["preview"].value)
    missing = CliRunner().invoke(
        cli, ["preview", "--roi", ROI, "--window", "2020-01-01", "--store", str(tmp_path / "store")]
    )
    assert missing.exit_code == 2 and "no preview of ROI jakarta window 2020-01-01" in missing.output


def test_local_store_links_to_the_running_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With ``PLASTICS_PREVIEW_URL`` naming a running ``plastics serve``, the link is the page there."""
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PLASTICS_PREVIEW_URL", "http://127.0.0.1:8000/")
    meta = _materialize_preview(str(tmp_path / "store")).metadata
    page = Path(str(meta["preview"].value))
    assert meta["preview_url"].value == f"http://127.0.0.1:8000/preview/{ROI}/{WINDOW}/{page.name}"
    assert page.parent == tmp_path / "store" / "preview" / ROI / WINDOW


@pytest.fixture()
def s3_store(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    with moto_bucket(monkeypatch, "s3://plastics/store") as url:
        yield url


def test_s3_store_gets_a_presigned_url_a_browser_opens(s3_store: str) -> None:
    result = _materialize_preview(s3_store)
    url = str(result.metadata["preview_url"].value)
    assert url.startswith(("https://", "http://127.0.0.1:"))  # https on AWS; the test server speaks http
    assert "Signature=" in url and "Expires=" in url
    page = requests.get(url, timeout=30)  # no credentials: the signature is the credential
    assert page.status_code == 200 and "L.map(" in page.text
