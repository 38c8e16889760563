"""The preview's sortable candidate table: data rows for the page's JSON data island, and the
page's own CSS and JS that build the table from them (plain DOM, no libraries).

Each row holds one site: id, name, lat/lon (EPSG:4326 degrees, 6 decimals), pixel score,
patch score, area (km²), address, review verdict (``confirmed``, ``rejected``, ``unsure`` or
``unreviewed``; rejected rows are grey with dashed rules), and links opening the spot in OpenStreetMap, Google Maps and
Bing Maps (plain ``<a>`` links: nothing is fetched until a curator clicks one). Clicking a row's
"zoom" link pans the Leaflet map (``window.plasticsMap``) to the site. Every cell is set with
``textContent``: outside text (names, addresses) is never parsed as markup.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


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
    verdict: str = "unreviewed"


def map_links(lat: float, lon: float, zoom: int = 17) -> dict[str, str]:
    """URLs opening (lat, lon) in common web map services."""
    return {
        "OSM": f"https://www.openstreetmap.org/?mlat={lat:.6f}&mlon={lon:.6f}#map={zoom}/{lat:.6f}/{lon:.6f}",
        "Google": f"https://www.google.com/maps/search/?api=1&query={lat:.6f},{lon:.6f}",
        "Bing": f"https://www.bing.com/maps?cp={lat:.6f}~{lon:.6f}&lvl={zoom}&style=h",
    }


def _num(v: float, fmt: str) -> list[str | float | None]:
    """[display text, sort key] of a number; NaN shows as an en dash and sorts last (key None)."""
    if v is None or not math.isfinite(v):
        return ["–", None]
    return [format(v, fmt), float(v)]


TABLE_CSS = """
#plastics-sites { font: 13px/1.35 system-ui, sans-serif; padding: 8px 12px; }
#plastics-sites table { border-collapse: collapse; width: 100%; }
#plastics-sites th, #plastics-sites td { border-bottom: 1px solid #ddd; padding: 3px 6px; text-align: left; }
#plastics-sites th { cursor: pointer; background: #f3f3f3; position: sticky; top: 0; user-select: none; }
#plastics-sites th.sorted-asc::after { content: " \\25B2"; }
#plastics-sites th.sorted-desc::after { content: " \\25BC"; }
#plastics-sites td.num { text-align: right; font-variant-numeric: tabular-nums; }
#plastics-sites a { margin-right: 6px; }
#plastics-sites tr[data-verdict="rejected"] td { color: #888; border-bottom: 1px dashed #aaa; }
#plastics-sites tr[data-verdict="confirmed"] td:nth-child(9) { color: #1b5e20; font-weight: bold; }
"""

#: (header, kind) of each column: kind "str" or "num" sorts on click, "" does not sort.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("site id", "str"),
    ("name", "str"),
    ("lat", "num"),
    ("lon", "num"),
    ("score", "num"),
    ("patch score", "num"),
    ("area km²", "num"),
    ("address", "str"),
    ("verdict", "str"),
    ("open in", ""),
)

#: Builds the table from the data island's ``table`` rows; sorts on a header click. Static text,
#: so its CSP hash never depends on the data.
TABLE_JS = """
(function () {
  var data = JSON.parse(document.getElementById("plastics-data").textContent);
  var box = document.getElementById("plastics-sites");
  function el(tag, text) { var e = document.createElement(tag); if (text !== undefined) { e.textContent = text; } return e; }
  box.appendChild(el("h3", "Candidate sites (" + data.table.rows.length + ")"));
  if (!data.table.rows.length) {
    var p = el("p", "No candidate sites in this partition."); p.className = "plastics-empty"; box.appendChild(p);
  }
  var table = el("table"); table.id = "plastics-sites-table"; table.setAttribute("data-map", "plasticsMap");
  var headRow = table.createTHead().insertRow();
  data.table.columns.forEach(function (c) {
    var th = el("th", c[0]); if (c[1]) { th.setAttribute("data-type", c[1]); } headRow.appendChild(th);
  });
  var body = table.createTBody();
  data.table.rows.forEach(function (r) {
    var tr = body.insertRow(); tr.className = "plastics-site-row"; tr.setAttribute("data-site-id", r.site_id);
    tr.setAttribute("data-verdict", r.verdict);
    r.cells.forEach(function (c, i) {
      var td = el("td", c[0]);
      if (data.table.columns[i][1] === "num") {
        td.className = "num"; td.setAttribute("data-sort", c[1] === null ? "" : String(c[1]));
      }
      tr.appendChild(td);
    });
    var links = el("td");
    if (r.lat !== null && r.lon !== null) {
      var zoom = el("a", "zoom"); zoom.href = "#"; zoom.className = "plastics-zoom";
      zoom.setAttribute("data-lat", String(r.lat)); zoom.setAttribute("data-lon", String(r.lon)); links.appendChild(zoom);
    }
    r.links.forEach(function (l) {
      if (!/^https:\\/\\//.test(l[1])) { return; }
      var a = el("a", l[0]); a.href = l[1]; a.target = "_blank"; a.rel = "noopener noreferrer"; links.appendChild(a);
    });
    tr.appendChild(links);
  });
  box.appendChild(table);
  var heads = headRow.cells;
  function key(cell, numeric) {
    if (!numeric) { return cell.textContent.toLowerCase(); }
    var v = cell.getAttribute("data-sort");
    return v === "" ? Infinity : parseFloat(v);
  }
  function sortBy(col) {
    var th = heads[col];
    var numeric = th.getAttribute("data-type") === "num";
    var asc = !th.classList.contains("sorted-asc");
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
    if (heads[i].getAttribute("data-type")) { heads[i].addEventListener("click", sortBy.bind(null, i)); }
  }
  table.addEventListener("click", function (ev) {
    var a = ev.target.closest("a.plastics-zoom");
    if (!a) { return; }
    ev.preventDefault();
    if (window.plasticsMap) {
      window.plasticsMap.setView([parseFloat(a.dataset.lat), parseFloat(a.dataset.lon)], 16); window.scrollTo(0, 0);
    }
  });
})();
"""


def table_data(rows: Sequence[SiteRow]) -> dict[str, Any]:
    """The data island's ``table`` entry: ``columns`` ([header, kind]) and one ``rows`` entry per site
    (``site_id``, ``verdict`` (a label of
    :data:`plastics_core.method.site_registry.VERDICT_STATES`), ``cells`` = [text, numeric sort key
    or None] per column but the last (text
    columns sort on their text), ``lat``/``lon`` or None,
    ``links`` = [label, https URL]). Plain JSON: no NaN (None instead)."""
    out = []
    for r in rows:
        cells: list[list[str | float | None]] = [[r.site_id, None], [r.name, None]]
        for v, fmt in (
            (r.lat, ".6f"),
            (r.lon, ".6f"),
            (r.score, ".3f"),
            (r.patch_score, ".3f"),
            (r.area_km2, ".4f"),
        ):
            cells.append(_num(v, fmt))
        cells.append([r.address, None])
        cells.append([r.verdict, None])
        located = math.isfinite(r.lat) and math.isfinite(r.lon)
        out.append(
            {
                "site_id": r.site_id,
                "verdict": r.verdict,
                "cells": cells,
                "lat": round(r.lat, 6) if located else None,
                "lon": round(r.lon, 6) if located else None,
                "links": [[label, url] for label, url in map_links(r.lat, r.lon).items()] if located else [],
            }
        )
    return {"columns": [list(c) for c in COLUMNS], "rows": out}
