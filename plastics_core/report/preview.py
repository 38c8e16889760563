"""The curator's preview: one self-contained HTML map (folium/Leaflet) per ROI × window.

Layers (all EPSG:4326 on a Web-Mercator Leaflet map):
ROI outline; the median heatmap (probability in [0, 1], NaN transparent) reprojected to
EPSG:3857 and drawn as a coloured PNG image overlay; blobs (circle markers); candidate sites
(div-icon markers, popup: id, name, pixel and patch scores, address); site contours, one layer per
contour date; optional online basemaps (off by default; they simply fail offline). Below the map a
sortable table of sites with links to web map services.

Leaflet JS/CSS are inlined (see :mod:`plastics_core.report.leaflet_offline`), so the page makes no
network request when opened. Pure: no I/O besides reading Leaflet's files.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Sequence
from typing import Any

import folium
import geopandas as gpd
import matplotlib
import numpy as np
import pandas as pd
from affine import Affine
from PIL import Image
from rasterio.warp import Resampling, calculate_default_transform, reproject, transform_bounds
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
from plastics_core.report.preview_table import SiteRow, table_html

MAX_OVERLAY_PX = 2048
HEATMAP_CMAP = "inferno"
_BASEMAPS = (
    ("OpenStreetMap (online)", "https://tile.openstreetmap.org/{z}/{x}/{y}.png", "© OpenStreetMap contributors"),
    ("Esri World Imagery (online)",
     "https://server.arcgisonline.com/ArcGIS/rest/services/World_Imagery/MapServer/tile/{z}/{y}/{x}",
     "Tiles © Esri"),
)


def _empty(gdf: gpd.GeoDataFrame | None) -> bool:
    return gdf is None or len(gdf) == 0


def _to_4326(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    return gdf if gdf.crs is None or gdf.crs.to_epsg() == 4326 else gdf.to_crs(4326)


def _plain(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """A copy whose attribute columns are JSON-safe (dates/objects as strings, NaN as None)."""
    out = _to_4326(gdf).copy()
    for col in out.columns:
        if col == out.geometry.name:
            continue
        if not (pd.api.types.is_numeric_dtype(out[col]) or pd.api.types.is_bool_dtype(out[col])):
            out[col] = out[col].map(lambda v: "" if v is None or v is pd.NaT else str(v))
    return out


def _val(row: pd.Series, *names: str, default: Any = math.nan) -> Any:
    for n in names:
        if n in row.index and row[n] is not None and not (isinstance(row[n], float) and math.isnan(row[n])):
            return row[n]
    return default


def _band(r: Raster, band: str) -> np.ndarray:
    idx = r.band_descriptions.index(band) if band in r.band_descriptions else r.data.shape[0] - 1
    return np.asarray(r.data[idx], dtype=np.float32)


def heatmap_overlay_png(heatmaps: Raster | Sequence[Raster], band: str = "median"
                        ) -> tuple[str, list[list[float]]] | None:
    """(PNG data URI, [[south, west], [north, east]]) of heatmap tiles warped to one EPSG:3857 grid.

    ``heatmaps``: one Raster or several tiles (any CRSs); their ``band`` (else last) band is used,
    overlaps keep the max. Colours: ``HEATMAP_CMAP`` over probability 0..1, opacity rising with
    probability; NaN (nodata) fully transparent. At most ``MAX_OVERLAY_PX`` pixels on a side.
    None when there is no finite value.
    """
    tiles = [heatmaps] if isinstance(heatmaps, Raster) else list(heatmaps)
    tiles = [t for t in tiles if np.isfinite(_band(t, band)).any()]
    if not tiles:
        return None
    boxes, res = [], []
    for t in tiles:
        rows, cols = t.shape
        xs, ys = zip(t.transform @ (0, 0), t.transform @ (cols, rows), strict=True)
        src_bounds = (min(xs), min(ys), max(xs), max(ys))
        boxes.append(transform_bounds(t.crs, "EPSG:3857", *src_bounds))
        tr, _, _ = calculate_default_transform(t.crs, "EPSG:3857", cols, rows, *src_bounds)
        res.append(abs(tr.a))
    west, south = min(b[0] for b in boxes), min(b[1] for b in boxes)
    east, north = max(b[2] for b in boxes), max(b[3] for b in boxes)
    pix = max(min(res), max(east - west, north - south) / MAX_OVERLAY_PX)
    w, h = max(1, math.ceil((east - west) / pix)), max(1, math.ceil((north - south) / pix))
    dst_t = Affine(pix, 0.0, west, 0.0, -pix, north)
    out = np.full((h, w), np.nan, dtype=np.float32)
    for t, (bw, bs, be, bn) in zip(tiles, boxes, strict=True):  # warp each tile into its own window only
        c0, r0 = max(0, int((bw - west) / pix)), max(0, int((north - bn) / pix))
        c1, r1 = min(w, math.ceil((be - west) / pix) + 1), min(h, math.ceil((north - bs) / pix) + 1)
        dst = np.full((r1 - r0, c1 - c0), np.nan, dtype=np.float32)
        reproject(_band(t, band), dst, src_transform=t.transform, src_crs=t.crs, src_nodata=np.nan,
                  dst_transform=dst_t @ Affine.translation(c0, r0), dst_crs="EPSG:3857", dst_nodata=np.nan,
                  resampling=Resampling.nearest)
        out[r0:r1, c0:c1] = np.fmax(out[r0:r1, c0:c1], dst)
    rgba = (matplotlib.colormaps[HEATMAP_CMAP](np.clip(np.nan_to_num(out), 0, 1)) * 255).astype(np.uint8)
    alpha = 25.0 + 215.0 * np.clip(np.nan_to_num(out), 0, 1)  # faint where unlikely, opaque where likely
    rgba[..., 3] = np.where(np.isfinite(out), alpha, 0).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buf, format="PNG", optimize=True)
    lon0, lat0, lon1, lat1 = transform_bounds("EPSG:3857", "EPSG:4326", west, north - h * pix, west + w * pix, north)
    uri = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
    return uri, [[lat0, lon0], [lat1, lon1]]


def site_rows(candidates: gpd.GeoDataFrame | None, enriched: gpd.GeoDataFrame | None,
              contours: gpd.GeoDataFrame | None = None) -> list[SiteRow]:
    """Table/marker rows: enriched sites if any (else candidates), highest score first.

    Columns read when present: ``site_id``, ``name``, ``lon``/``lat`` (else the geometry's
    representative point), ``score``, ``patch_mean``, ``area_km2`` (else the latest contour area
    for the same ``name``), ``address``.
    """
    src = enriched if not _empty(enriched) else candidates
    if src is None or _empty(src):
        return []
    src = _to_4326(src)
    latest_area: dict[str, float] = {}
    if contours is not None and not _empty(contours) and {"name", "date", "area_km2"} <= set(contours.columns):
        last = contours.sort_values(["name", "date"]).groupby("name").tail(1)
        latest_area = {str(n): float(a) for n, a in zip(last["name"], last["area_km2"], strict=True)}
    rows = []
    for _, r in src.iterrows():
        pt = r.geometry.representative_point() if r.geometry is not None else None
        lon = float(_val(r, "lon", default=pt.x if pt is not None else math.nan))
        lat = float(_val(r, "lat", default=pt.y if pt is not None else math.nan))
        name = str(_val(r, "name", default=""))
        rows.append(SiteRow(
            site_id=str(_val(r, "site_id", "id", default=name)), name=name, lat=lat, lon=lon,
            score=float(_val(r, "score", "pixel_score")), patch_score=float(_val(r, "patch_mean", "patch_score")),
            area_km2=float(_val(r, "area_km2", default=latest_area.get(name, math.nan))),
            address=str(_val(r, "address", "display_name", default="")),
        ))
    rows.sort(key=lambda s: (-(s.score if not math.isnan(s.score) else -1.0), s.site_id))
    return rows


def _fmt(v: float, spec: str) -> str:
    return "–" if v is None or math.isnan(v) else format(v, spec)


def _site_item(s: SiteRow) -> dict[str, Any]:
    """A candidate marker's data-island entry: position, title (id) and popup lines (plain text)."""
    return {"lat": s.lat, "lon": s.lon, "title": s.site_id, "lines": [
        f"name: {s.name}", f"pixel score: {_fmt(s.score, '.3f')}", f"patch score: {_fmt(s.patch_score, '.3f')}",
        f"area: {_fmt(s.area_km2, '.4f')} km²", s.address, f"{s.lat:.6f}, {s.lon:.6f}"]}


def _layer_label(text: str) -> str:
    """A layer-control label: Leaflet inserts labels as HTML, so outside text is escaped."""
    return html.escape(text)


def _add_vectors(m: folium.Map, blobs: gpd.GeoDataFrame | None, contours: gpd.GeoDataFrame | None,
                 rows: list[SiteRow]) -> dict[str, Any]:
    """Add the vector layers to ``m``; returns the data island (plain JSON) the page script draws
    markers, blob circles and contour tooltips from (no outside text enters folium's JS)."""
    data: dict[str, Any] = {"sites": [], "blobs": [], "contours": []}
    if not _empty(blobs):
        assert blobs is not None
        fg = folium.FeatureGroup(name=f"blobs ({len(blobs)})")
        for _, b in _to_4326(blobs).iterrows():
            p = b.geometry.representative_point()
            score = float(_val(b, "score", default=math.nan))
            data["blobs"].append({"lat": p.y, "lon": p.x,
                                  "tip": f"blob {_val(b, 'name', default='')} score {_fmt(score, '.3f')}"})
        fg.add_to(m)
        data["blobs_layer"] = fg.get_name()
    if not _empty(contours):
        assert contours is not None
        plain = _plain(contours)
        dates = sorted(plain["date"].unique()) if "date" in plain.columns else [""]
        cmap = matplotlib.colormaps["viridis"]
        for i, d in enumerate(dates):
            sub = plain[plain["date"] == d] if "date" in plain.columns else plain
            color = matplotlib.colors.to_hex(cmap(i / max(1, len(dates) - 1)))
            fields = [c for c in ("name", "date", "area_km2") if c in sub.columns]
            layer = folium.GeoJson(
                sub.__geo_interface__, name=_layer_label(f"contours {d or 'all'} ({len(sub)})"),
                show=(i == len(dates) - 1),
                style_function=lambda _f, c=color: {"color": c, "weight": 2, "fillOpacity": 0.15},
            )
            layer.add_to(m)
            data["contours"].append({"layer": layer.get_name(), "fields": fields})
    fg = folium.FeatureGroup(name=f"candidate sites ({len(rows)})")
    data["sites"] = [_site_item(s) for s in rows if not (math.isnan(s.lat) or math.isnan(s.lon))]
    fg.add_to(m)
    data["sites_layer"] = fg.get_name()
    return data


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


def _legend() -> str:
    ramp = ", ".join(matplotlib.colors.to_hex(matplotlib.colormaps[HEATMAP_CMAP](v)) for v in np.linspace(0, 1, 6))
    return (f'<div class="plastics-legend">waste probability (median)<div class="bar" '
            f'style="background: linear-gradient(to right, {ramp})"></div><div style="display: flex; '
            f'justify-content: space-between"><span>0</span><span>0.5</span><span>1</span></div></div>')


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
    data = _add_vectors(m, blobs, contours, rows)
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
                                               + _legend()))
    page = fig.render()
    page = page.replace("</body>", table_html(rows, m.get_name()) + _MOVE_JS + "</body>", 1)
    end = page.rindex("</html>")  # after folium's map script, which follows </body>
    page = page[:end] + json_island("plastics-data", data) + _DATA_JS + page[end:]
    page = with_csp(stable_ids(page))
    leaks = external_resources(page)
    if leaks:
        raise PlasticsError(f"preview HTML would load {leaks[0]!r} over the network; report this as a bug")
    return page
