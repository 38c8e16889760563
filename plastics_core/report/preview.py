"""The curator's preview: one self-contained HTML map (Leaflet) per ROI × window.

Layers (all EPSG:4326 on a Web-Mercator Leaflet map):
ROI outline; the median heatmap (probability in [0, 1], NaN transparent) reprojected to
EPSG:3857 and drawn as a coloured PNG image overlay; blobs (circle markers); candidate sites
(div-icon markers, popup: id, name, review verdict, pixel and patch scores, address; rejected
sites grey and dashed); site contours, one layer per
contour date; optional online basemaps (off by default; they simply fail offline). Below the map a
sortable table of sites with links to web map services.

Leaflet JS/CSS are inlined (see :mod:`plastics_core.report.leaflet_offline`), so the page makes no
network request when opened. Every value from the inputs goes into one JSON data island and
nowhere else; no template engine ever sees it (:mod:`.preview_page`). Pure: no I/O besides reading
Leaflet's files. The heatmap overlay is drawn by :mod:`.preview_overlay`, the vector layers and
site rows by :mod:`.preview_layers`, the table by :mod:`.preview_table`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import geopandas as gpd
from shapely.geometry import mapping
from shapely.geometry.base import BaseGeometry

from plastics_core.errors import PlasticsError
from plastics_core.geo.raster import Raster
from plastics_core.report.leaflet_offline import external_resources, load_leaflet
from plastics_core.report.preview_layers import site_rows, vector_data
from plastics_core.report.preview_overlay import heatmap_overlay_png
from plastics_core.report.preview_page import render_page
from plastics_core.report.preview_table import table_data


def _finite(bounds: Sequence[float]) -> bool:
    return all(math.isfinite(v) for v in bounds)


def preview_data(
    roi_geom: BaseGeometry | None,
    heatmap_median: Raster | Sequence[Raster] | None,
    blobs: gpd.GeoDataFrame | None,
    candidates: gpd.GeoDataFrame | None,
    contours: gpd.GeoDataFrame | None,
    enriched: gpd.GeoDataFrame | None,
    title: str,
    verdicts: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Everything the page shows, as plain JSON (no NaN): ``title``; ``bounds`` [[south, west],
    [north, east]] degrees or None; ``roi`` (GeoJSON geometry or None); ``heatmap`` ({uri: PNG data
    URI, bounds} or None); the vector layers of
    :func:`~plastics_core.report.preview_layers.vector_data`; ``table``
    (:func:`~plastics_core.report.preview_table.table_data`). ``verdicts``: site id -> latest
    review verdict (:func:`~plastics_core.report.preview_layers.site_rows`)."""
    rows = site_rows(candidates, enriched, contours, verdicts)
    data: dict[str, Any] = {"title": str(title), "roi": None, "heatmap": None, "bounds": None}
    bounds: tuple[float, ...] | None = None
    if roi_geom is not None and not roi_geom.is_empty and _finite(roi_geom.bounds):
        data["roi"] = dict(mapping(roi_geom))
        bounds = tuple(float(v) for v in roi_geom.bounds)
    if heatmap_median is not None:
        overlay = heatmap_overlay_png(heatmap_median)
        if overlay is not None:
            uri, img_bounds = overlay
            data["heatmap"] = {"uri": uri, "bounds": img_bounds}
            if bounds is None:
                (s, w), (n, e) = img_bounds
                bounds = (w, s, e, n)
    data.update(vector_data(blobs, contours, rows))
    located = [(r.lon, r.lat) for r in rows if math.isfinite(r.lon) and math.isfinite(r.lat)]
    if bounds is None and located:
        lons, lats = [p[0] for p in located], [p[1] for p in located]
        bounds = (min(lons), min(lats), max(lons), max(lats))
    if bounds is not None and _finite(bounds):
        data["bounds"] = [[bounds[1], bounds[0]], [bounds[3], bounds[2]]]
    data["table"] = table_data(rows)
    return data


def build_preview_html(
    roi_geom: BaseGeometry | None,
    heatmap_median: Raster | Sequence[Raster] | None,
    blobs: gpd.GeoDataFrame | None,
    candidates: gpd.GeoDataFrame | None,
    contours: gpd.GeoDataFrame | None,
    enriched: gpd.GeoDataFrame | None,
    title: str,
    verdicts: Mapping[str, str] | None = None,
) -> str:
    """A self-contained HTML page (UTF-8 text) previewing one ROI × window.

    ``roi_geom``: (Multi)Polygon in EPSG:4326. ``heatmap_median``: a heatmap Raster or a list of
    tile Rasters (their ``median`` band, else their last band, is drawn) in any CRS, or None.
    Vector inputs: GeoDataFrames (any CRS, converted to EPSG:4326) or None; empty inputs give
    empty layers, never an error. ``title`` and every value of the inputs are shown as text only.
    ``verdicts``: site id -> latest review verdict (``confirm`` | ``reject`` | ``unsure``), shown in
    the table and popups; rejected sites are drawn grey and dashed. None or empty: all ``unreviewed``.
    The same inputs give a byte-identical page. Raises LeafletMissingError when Leaflet's files
    are not installed.
    """
    leaflet = load_leaflet()
    page = render_page(
        leaflet,
        preview_data(roi_geom, heatmap_median, blobs, candidates, contours, enriched, title, verdicts),
    )
    leaks = external_resources(page)
    if leaks:
        raise PlasticsError(f"preview HTML would load {leaks[0]!r} over the network; report this as a bug")
    return page
