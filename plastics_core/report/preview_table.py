"""The preview's sortable candidate table: plain HTML + a few lines of inline JS, no libraries.

Each row holds one site: id, name, lat/lon (EPSG:4326 degrees, 6 decimals), pixel score,
patch score, area (km²), address, and links opening the spot in OpenStreetMap, Google Maps and
Bing Maps (plain ``<a>`` links: nothing is fetched until a curator clicks one). Clicking a row's
"zoom" link pans the Leaflet map (a global ``var`` named by folium) to the site.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class SiteRow:
    """One table row. Scores in [0, 1] or NaN; ``area_km2`` NaN when no contour was traced."""

    site_id: str
    name: str
    lat: float
    lon: float
    score: float
    patch_score: float
    area_km2: float
    address: str


def map_links(lat: float, lon: float, zoom: int = 17) -> dict[str, str]:
    """URLs opening (lat, lon) in common web map services."""
    return {
        "OSM": f"https://www.openstreetmap.org/?mlat={lat:.6f}&mlon={lon:.6f}#map={zoom}/{lat:.6f}/{lon:.6f}",
        "Google": f"https://www.google.com/maps/search/?api=1&query={lat:.6f},{lon:.6f}",
        "Bing": f"https://www.bing.com/maps?cp={lat:.6f}~{lon:.6f}&lvl={zoom}&style=h",
    }


def _num(v: float, fmt: str) -> tuple[str, str]:
    """(display text, sort key) for a number; NaN sorts last and shows as an en dash."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–", ""
    return format(v, fmt), repr(float(v))


_CSS = """
#plastics-sites { font: 13px/1.35 system-ui, sans-serif; padding: 8px 12px; }
#plastics-sites table { border-collapse: collapse; width: 100%; }
#plastics-sites th, #plastics-sites td { border-bottom: 1px solid #ddd; padding: 3px 6px; text-align: left; }
#plastics-sites th { cursor: pointer; background: #f3f3f3; position: sticky; top: 0; user-select: none; }
#plastics-sites th.sorted-asc::after { content: " \\25B2"; }
#plastics-sites th.sorted-desc::after { content: " \\25BC"; }
#plastics-sites td.num { text-align: right; font-variant-numeric: tabular-nums; }
#plastics-sites a { margin-right: 6px; }
"""

_JS = """
(function () {
  var table = document.getElementById("plastics-sites-table");
  if (!table) { return; }
  var heads = table.tHead.rows[0].cells;
  function key(cell, numeric) {
    var v = cell.getAttribute("data-sort");
    if (numeric) { return v === "" ? Infinity : parseFloat(v); }
    return (v === null ? cell.textContent : v).toLowerCase();
  }
  function sortBy(col) {
    var th = heads[col];
    var numeric = th.getAttribute("data-type") === "num";
    var asc = !th.classList.contains("sorted-asc");
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = key(a.cells[col], numeric), y = key(b.cells[col], numeric);
      if (numeric && x === Infinity && y !== Infinity) { return 1; }
      if (numeric && y === Infinity && x !== Infinity) { return -1; }
      var c = x < y ? -1 : (x > y ? 1 : 0);
      return asc ? c : -c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
    for (var i = 0; i < heads.length; i++) { heads[i].classList.remove("sorted-asc", "sorted-desc"); }
    th.classList.add(asc ? "sorted-asc" : "sorted-desc");
  }
  for (var i = 0; i < heads.length; i++) {
    if (heads[i].getAttribute("data-type")) {
      heads[i].addEventListener("click", sortBy.bind(null, i));
    }
  }
  table.addEventListener("click", function (ev) {
    var a = ev.target.closest("a.plastics-zoom");
    if (!a) { return; }
    ev.preventDefault();
    var m = window[table.getAttribute("data-map")];
    if (m) { m.setView([parseFloat(a.dataset.lat), parseFloat(a.dataset.lon)], 16); window.scrollTo(0, 0); }
  });
})();
"""

_COLUMNS: tuple[tuple[str, str], ...] = (
    ("site id", "str"), ("name", "str"), ("lat", "num"), ("lon", "num"), ("score", "num"),
    ("patch score", "num"), ("area km²", "num"), ("address", "str"), ("open in", ""),
)


def table_html(rows: Sequence[SiteRow], map_var: str) -> str:
    """The table block (CSS, ``<table>``, JS). ``map_var``: the folium map's JS variable name."""
    e = html.escape
    head = "".join(
        f'<th data-type="{t}">{e(name)}</th>' if t else f"<th>{e(name)}</th>" for name, t in _COLUMNS
    )
    body: list[str] = []
    for r in rows:
        cells = [f'<td data-sort="{e(r.site_id)}">{e(r.site_id)}</td>', f"<td>{e(r.name)}</td>"]
        for v, fmt in ((r.lat, ".6f"), (r.lon, ".6f"), (r.score, ".3f"), (r.patch_score, ".3f"),
                       (r.area_km2, ".4f")):
            text, key = _num(v, fmt)
            cells.append(f'<td class="num" data-sort="{e(key)}">{e(text)}</td>')
        cells.append(f"<td>{e(r.address)}</td>")
        links = "".join(
            f'<a href="{e(url)}" target="_blank" rel="noopener noreferrer">{e(label)}</a>'
            for label, url in map_links(r.lat, r.lon).items()
        )
        zoom = (f'<a href="#" class="plastics-zoom" data-lat="{r.lat:.6f}" '
                f'data-lon="{r.lon:.6f}">zoom</a>')
        cells.append(f"<td>{zoom}{links}</td>")
        body.append(f'<tr class="plastics-site-row" data-site-id="{e(r.site_id)}">{"".join(cells)}</tr>')
    empty = "" if rows else '<p class="plastics-empty">No candidate sites in this partition.</p>'
    return (
        f"<style>{_CSS}</style>\n"
        f'<div id="plastics-sites"><h3>Candidate sites ({len(rows)})</h3>{empty}'
        f'<table id="plastics-sites-table" data-map={json.dumps(map_var)}>'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>\n"
        f"<script>{_JS}</script>\n"
    )
