"""The preview's vector content: site rows for the table and markers, and the vector layers.

Inputs are GeoDataFrames in any CRS (converted to EPSG:4326) or None; outside text (names,
addresses, properties) goes only into the plain-JSON data island, never into folium's JS.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable
from typing import Any

import folium
import geopandas as gpd
import matplotlib
import pandas as pd

from plastics_core.report.preview_table import SiteRow


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


def add_vectors(m: folium.Map, blobs: gpd.GeoDataFrame | None, contours: gpd.GeoDataFrame | None,
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


def rename_layers(data: dict[str, Any], rename: Callable[[str], str]) -> dict[str, Any]:
    """The data island of :func:`add_vectors` with its folium layer names passed through ``rename``
    (:func:`~plastics_core.report.leaflet_offline.stable_ids`); the outside text in it is untouched."""
    out = dict(data)
    for key in ("blobs_layer", "sites_layer"):
        if key in out:
            out[key] = rename(out[key])
    if "contours" in out:
        out["contours"] = [{**layer, "layer": rename(layer["layer"])} for layer in out["contours"]]
    return out
