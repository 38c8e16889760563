"""The curator's preview: one self-contained HTML map (folium/Leaflet) per ROI × window.

Layers (all EPSG:4326 on a Web-Mercator Leaflet map):
ROI outline; the median heatmap (probability in [0, 1], NaN transparent) reprojected to
EPSG:3857 and drawn as a coloured PNG image overlay; blobs (circle markers); candidate sites
(div-icon markers, popup: id, name, pixel and patch scores, address); site contours, one layer per
contour date; optional online basemaps (off by default; they simply fail offline). Below the map a
sortable table of sites with links to web map services.

Leaflet JS/CSS are inlined (see :mod:`plastics_core.report.leaflet_offline`), so the page makes no
network request when opened. Pure: no I/O besides reading Leaflet's files. The heatmap overlay is
drawn by :mod:`.preview_overlay`, the vector layers and site rows by :mod:`.preview_layers`, the
table by :mod:`.preview_table`; this module assembles the page.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import Any

import folium
import geopandas as gpd
from shapely.geometry import mapping
from shapely.geometry.base import BaseGeometry

from plastics_core.errors import PlasticsError
from plastics_core.geo.raster import Raster
from plastics_core.report.leaflet_offline import (
    external_resources,
    inline_tags,
    json_island,
    load_leaflet,
    stable_ids,
    with_csp,
)
from plastics_core.report.preview_layers import add_vectors, rename_layers, site_rows
from plastics_core.report.preview_overlay import heatmap_overlay_png, legend_html
from plastics_core.report.preview_table import table_html

_BASEMAPS = (
    ("OpenStreetMap (online)", "https://tile.openstreetmap.org/{z}/{x}/{y}.png", "© OpenStreetMap contributors"),
    ("Esri World Imagery (online)",
     "https://server.arcgisonline.com/ArcGIS/rest/services/World_Imagery/MapServer/tile/{z}/{y}/{x}",
     "Tiles © Esri"),
)


#: Draws the markers, blob circles and contour tooltips from the data island. Every outside string
#: is set with ``textContent`` (never parsed as HTML or JS). Static: its CSP hash never changes.
_DATA_JS = """<script>(function () {
  var island = document.getElementById("plastics-data");
  if (!island || !window.L) { return; }
  var data = JSON.parse(island.textContent);
  function block(title, lines) {
    var div = document.createElement("div");
    var b = document.createElement("b"); b.textContent = title; div.appendChild(b);
    lines.forEach(function (t) {
      div.appendChild(document.createElement("br")); div.appendChild(document.createTextNode(t));
    });
    return div;
  }
  function span(t) { var el = document.createElement("span"); el.textContent = t; return el; }
  var sites = window[data.sites_layer];
  if (sites) {
    data.sites.forEach(function (s) {
      var icon = L.divIcon({html: '<div class="plastics-pin"></div>', iconSize: [16, 16], iconAnchor: [8, 8],
                            className: "plastics-candidate"});
      L.marker([s.lat, s.lon], {icon: icon}).bindPopup(block(s.title, s.lines), {maxWidth: 320})
        .bindTooltip(span(s.title)).addTo(sites);
    });
  }
  var blobs = window[data.blobs_layer];
  if (blobs) {
    data.blobs.forEach(function (b) {
      L.circleMarker([b.lat, b.lon], {radius: 4, color: "#00bcd4", weight: 1, fill: true, fillOpacity: 0.6,
                                      className: "plastics-blob"}).bindTooltip(span(b.tip)).addTo(blobs);
    });
  }
  data.contours.forEach(function (c) {
    var layer = window[c.layer];
    if (!layer || !c.fields.length) { return; }
    layer.eachLayer(function (l) {
      var p = (l.feature && l.feature.properties) || {};
      var rows = c.fields.map(function (f) { return f + ": " + (p[f] === null || p[f] === undefined ? "" : String(p[f])); });
      l.bindTooltip(block(rows[0], rows.slice(1)), {sticky: true});
    });
  });
})();</script>
"""


# folium's Popup template builds its content with jQuery's ``$(`<html>`)[0]``; this shim does that
# one thing (and ``$(document).ready``) so jQuery need not be loaded from a CDN.
_JQUERY_SHIM = """<script>window.$ = window.$ || function (x) {
  if (typeof x !== "string") { return { ready: function (f) { document.addEventListener("DOMContentLoaded", f); } }; }
  var t = document.createElement("template"); t.innerHTML = x.trim(); return t.content.childNodes;
};</script>
"""

_PAGE_CSS = """<style>
.plastics-pin { width: 14px; height: 14px; border-radius: 50%; background: #e53935; border: 2px solid #fff;
  box-shadow: 0 0 3px #000; box-sizing: border-box; }
.plastics-title { position: absolute; z-index: 1000; top: 10px; left: 50px; background: rgba(255,255,255,.9);
  padding: 4px 10px; font: bold 14px system-ui, sans-serif; border-radius: 4px; }
.plastics-legend { position: absolute; z-index: 1000; bottom: 24px; right: 10px; background: rgba(255,255,255,.9);
  padding: 4px 8px; font: 12px system-ui, sans-serif; border-radius: 4px; }
.plastics-legend .bar { width: 160px; height: 10px; }
</style>"""


_MOVE_JS = """<script>(function () {
  var map = document.querySelector(".folium-map");
  document.querySelectorAll(".plastics-title, .plastics-legend").forEach(function (el) {
    if (map) { map.appendChild(el); }
  });
})();</script>
"""


def build_preview_html(roi_geom: BaseGeometry | None, heatmap_median: Raster | Sequence[Raster] | None,
                       blobs: gpd.GeoDataFrame | None, candidates: gpd.GeoDataFrame | None,
                       contours: gpd.GeoDataFrame | None, enriched: gpd.GeoDataFrame | None,
                       title: str) -> str:
    """A self-contained HTML page (UTF-8 text) previewing one ROI × window.

    ``roi_geom``: (Multi)Polygon in EPSG:4326. ``heatmap_median``: a heatmap Raster or a list of
    tile Rasters (their ``median`` band, else their last band, is drawn) in any CRS, or None. Vector inputs: GeoDataFrames
    (any CRS, converted to EPSG:4326) or None; empty inputs give empty layers, never an error.
    Raises LeafletMissingError when Leaflet's files are not installed.
    """
    leaflet = load_leaflet()
    rows = site_rows(candidates, enriched, contours)
    m = folium.Map(location=[0.0, 0.0], zoom_start=2, tiles=None, height="68%", control_scale=True,
                   prefer_canvas=False)
    m.default_js = []  # instance attributes: folium's CDN links are replaced by inlined Leaflet
    m.default_css = []
    for name, url, attribution in _BASEMAPS:
        folium.TileLayer(url, name=name, attr=attribution, overlay=True, show=False, max_zoom=19).add_to(m)
    bounds: tuple[float, float, float, float] | None = None
    if roi_geom is not None and not roi_geom.is_empty:
        folium.GeoJson(mapping(roi_geom), name="ROI",
                       style_function=lambda _f: {"color": "#ffeb3b", "weight": 2, "fill": False}).add_to(m)
        bounds = tuple(float(v) for v in roi_geom.bounds)  # type: ignore[assignment]
    if heatmap_median is not None:
        overlay = heatmap_overlay_png(heatmap_median)
        if overlay is not None:
            uri, img_bounds = overlay
            folium.raster_layers.ImageOverlay(uri, bounds=img_bounds, name="median heatmap", opacity=0.8,
                                              interactive=False, zindex=1).add_to(m)
            if bounds is None:
                (s, w), (n, e) = img_bounds
                bounds = (w, s, e, n)
    data = add_vectors(m, blobs, contours, rows)
    if bounds is None and rows:
        lons, lats = [r.lon for r in rows], [r.lat for r in rows]
        bounds = (min(lons), min(lats), max(lons), max(lats))
    if bounds is not None and all(math.isfinite(v) for v in bounds):
        m.fit_bounds([[bounds[1], bounds[0]], [bounds[3], bounds[2]]])
    folium.LayerControl(collapsed=False).add_to(m)
    fig: Any = m.get_root()
    fig.header.add_child(folium.Element(inline_tags(leaflet) + _JQUERY_SHIM + _PAGE_CSS), name="plastics_inline")
    fig.header.add_child(folium.Element(f"<title>{html.escape(title)}</title>"), name="plastics_title")
    fig.html.add_child(folium.Element(f'<div class="plastics-title">{html.escape(title)}</div>'
                                               + legend_html()))
    page, rename = stable_ids(fig.render())  # folium's output only: outside text is never renamed
    page = page.replace("</body>", table_html(rows, rename(m.get_name())) + _MOVE_JS + "</body>", 1)
    end = page.rindex("</html>")  # after folium's map script, which follows </body>
    page = with_csp(page[:end] + json_island("plastics-data", rename_layers(data, rename)) + _DATA_JS + page[end:])
    leaks = external_resources(page)
    if leaks:
        raise PlasticsError(f"preview HTML would load {leaks[0]!r} over the network; report this as a bug")
    return page
