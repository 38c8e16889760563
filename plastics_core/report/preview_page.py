"""The preview page itself: a static HTML shell written by this project, Leaflet inlined, one JSON
data island, and the project's own scripts that draw the map and the table from that island.

No template engine is involved. The page is ``shell + island + scripts``: the shell, the scripts
and the Content-Security-Policy are fixed strings (plus Leaflet's files) computed before any data
exists, so the policy allows exactly the project's scripts, and a string in the data can never
become markup, script or a template expression. The scripts read the island with
``JSON.parse(textContent)`` and put every outside string into the page with ``textContent`` (the
Leaflet layer-control labels, which Leaflet inserts as HTML, are escaped first).
"""

from __future__ import annotations

from typing import Any

from plastics_core.report.leaflet_offline import (
    LeafletAssets,
    content_security_policy,
    json_island,
    script_text,
)
from plastics_core.report.preview_overlay import legend_html
from plastics_core.report.preview_table import TABLE_CSS, TABLE_JS

ISLAND_ID = "plastics-data"

#: Optional online basemaps (off by default; they simply fail offline): label, URL, attribution.
BASEMAPS = (
    (
        "OpenStreetMap (online)",
        "https://tile.openstreetmap.org/{z}/{x}/{y}.png",
        "© OpenStreetMap contributors",
    ),
    (
        "Esri World Imagery (online)",
        "https://server.arcgisonline.com/ArcGIS/rest/services/World_Imagery/MapServer/tile/{z}/{y}/{x}",
        "Tiles © Esri",
    ),
)

_PAGE_CSS = """
html, body { margin: 0; padding: 0; }
#plastics-map { position: relative; height: 68vh; min-height: 320px; }
.plastics-pin { width: 14px; height: 14px; border-radius: 50%; background: #e53935; border: 2px solid #fff;
  box-shadow: 0 0 3px #000; box-sizing: border-box; }
.plastics-pin-confirmed { background: #2e7d32; }
.plastics-pin-rejected { background: #bdbdbd; border: 2px dashed #424242; box-shadow: none; opacity: .8; }
.plastics-title { position: absolute; z-index: 1000; top: 10px; left: 50px; background: rgba(255,255,255,.9);
  padding: 4px 10px; font: bold 14px system-ui, sans-serif; border-radius: 4px; }
.plastics-legend { position: absolute; z-index: 1000; bottom: 24px; right: 10px; background: rgba(255,255,255,.9);
  padding: 4px 8px; font: 12px system-ui, sans-serif; border-radius: 4px; }
.plastics-legend .bar { width: 160px; height: 10px; }
/* a long list of contour dates scrolls inside the layer control instead of covering the legend */
#plastics-map .leaflet-control-layers { max-height: calc(max(68vh, 320px) - 110px); overflow-y: auto; }
"""

#: Draws the map from the data island. Static text: its CSP hash never depends on the data.
MAP_JS = """
(function () {
  var data = JSON.parse(document.getElementById("plastics-data").textContent);
  function el(tag, text) { var e = document.createElement(tag); e.textContent = text; return e; }
  function esc(text) { return el("span", text).innerHTML; }  // for labels Leaflet inserts as HTML
  function block(lines) {
    var div = document.createElement("div");
    lines.forEach(function (t, i) {
      if (i === 0) { div.appendChild(el("b", t)); return; }
      div.appendChild(document.createElement("br")); div.appendChild(document.createTextNode(t));
    });
    return div;
  }
  document.title = data.title;
  document.getElementById("plastics-title").textContent = data.title;
  var map = L.map("plastics-map", {zoomControl: true});
  window.plasticsMap = map;
  if (data.bounds) { map.fitBounds(data.bounds); } else { map.setView([0, 0], 2); }
  L.control.scale().addTo(map);
  var control = L.control.layers(null, null, {collapsed: false});
  data.basemaps.forEach(function (b) {
    control.addOverlay(L.tileLayer(b[1], {attribution: esc(b[2]), maxZoom: 19}), esc(b[0]));
  });
  if (data.roi) {
    control.addOverlay(L.geoJSON(data.roi, {style: {color: "#ffeb3b", weight: 2, fill: false}, interactive: false})
      .addTo(map), "ROI");
  }
  if (data.heatmap) {
    control.addOverlay(L.imageOverlay(data.heatmap.uri, data.heatmap.bounds, {opacity: 0.8, interactive: false,
      zIndex: 1}).addTo(map), "median heatmap");
  }
  if (data.blobs) {
    var blobs = L.featureGroup();
    data.blobs.items.forEach(function (b) {
      L.circleMarker([b.lat, b.lon], {radius: 4, color: "#00bcd4", weight: 1, fill: true, fillOpacity: 0.6,
                                      className: "plastics-blob"}).bindTooltip(el("span", b.tip)).addTo(blobs);
    });
    control.addOverlay(blobs.addTo(map), esc(data.blobs.label));
  }
  data.contours.forEach(function (c) {
    var layer = L.geoJSON({type: "FeatureCollection", features: c.features}, {
      style: {color: c.color, weight: 2, fillOpacity: 0.15},
      onEachFeature: function (f, l) { l.bindTooltip(block(f.properties.lines), {sticky: true}); }
    });
    if (c.show) { layer.addTo(map); }
    control.addOverlay(layer, esc(c.label));
  });
  var sites = L.featureGroup();
  // fixed markup per verdict: the verdict only picks one of these, it is never inserted
  var PINS = {confirmed: '<div class="plastics-pin plastics-pin-confirmed"></div>',
              rejected: '<div class="plastics-pin plastics-pin-rejected"></div>',
              unsure: '<div class="plastics-pin"></div>', unreviewed: '<div class="plastics-pin"></div>'};
  data.sites.items.forEach(function (s) {
    var state = Object.prototype.hasOwnProperty.call(PINS, s.verdict) ? s.verdict : "unreviewed";
    var icon = L.divIcon({html: PINS[state], iconSize: [16, 16], iconAnchor: [8, 8],
                          className: "plastics-candidate plastics-verdict-" + state});
    L.marker([s.lat, s.lon], {icon: icon}).bindPopup(block([s.title].concat(s.lines)), {maxWidth: 320})
      .bindTooltip(el("span", s.title)).addTo(sites);
  });
  control.addOverlay(sites.addTo(map), esc(data.sites.label));
  control.addTo(map);
  ["plastics-title", "plastics-legend"].forEach(function (id) {
    var box = document.getElementById(id);
    L.DomEvent.disableClickPropagation(box); L.DomEvent.disableScrollPropagation(box);
  });
})();
"""


def _scripts(leaflet: LeafletAssets) -> tuple[str, ...]:
    """The text of every inline script of the page, in page order: Leaflet, the map, the table."""
    return (script_text(leaflet), MAP_JS, TABLE_JS)


def render_page(leaflet: LeafletAssets, data: dict[str, Any]) -> str:
    """The finished page (UTF-8 text): the static shell with its CSP, then ``data`` as the JSON
    island, then the project's scripts. ``data`` is never interpreted here: it is serialized by
    :func:`~plastics_core.report.leaflet_offline.json_island` and concatenated."""
    leaflet_js, map_js, table_js = _scripts(leaflet)
    csp = content_security_policy(_scripts(leaflet))  # from the project's scripts only, before data
    head = (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n'
        f'<meta http-equiv="Content-Security-Policy" content="{csp}">\n'
        '<meta charset="utf-8">\n<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        "<title>plastics preview</title>\n"
        f"<style>{leaflet.css}</style>\n<style>{_PAGE_CSS}{TABLE_CSS}</style>\n"
        f"<script>{leaflet_js}</script>\n"
        "</head>\n<body>\n"
        '<div id="plastics-map"><div id="plastics-title" class="plastics-title"></div>'
        f'<div id="plastics-legend">{legend_html()}</div></div>\n'
        '<div id="plastics-sites"></div>\n'
    )
    tail = f"<script>{map_js}</script>\n<script>{table_js}</script>\n</body>\n</html>\n"
    return head + json_island(ISLAND_ID, {**data, "basemaps": [list(b) for b in BASEMAPS]}) + tail


def page_policy(leaflet: LeafletAssets) -> str:
    """The Content-Security-Policy every preview page carries (it does not depend on the data)."""
    return content_security_policy(_scripts(leaflet))
