"""The preview's vector content as plain JSON for the page's data island: site rows, blobs,
candidate markers and contour layers.

Inputs are GeoDataFrames in any CRS (converted to EPSG:4326) or None. They may come from a store
someone else can write, so every value is treated as untrusted: numbers that do not parse become
NaN (shown as an en dash), text becomes plain JSON strings that the page shows with
``textContent``; nothing here is markup, script or template. Output holds no NaN (JSON ``null``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import geopandas as gpd
import matplotlib
import pandas as pd
from shapely.geometry import mapping

from plastics_core.method.site_registry import verdict_label
from plastics_core.report.preview_table import SiteRow


def _empty(gdf: gpd.GeoDataFrame | None) -> bool:
    return gdf is None or len(gdf) == 0


def _to_4326(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    return gdf if gdf.crs is None or gdf.crs.to_epsg() == 4326 else gdf.to_crs(4326)


def _missing(v: Any) -> bool:
    return v is None or v is pd.NaT or (isinstance(v, float) and math.isnan(v))


def _val(row: pd.Series, *names: str, default: Any = math.nan) -> Any:
    for n in names:
        if n in row.index and not _missing(row[n]):
            return row[n]
    return default


def _float(v: Any) -> float:
    """``v`` as a float; NaN when it is missing or not a number (text from a hostile store)."""
    try:
        return float(v)
    except (TypeError, ValueError, OverflowError):
        return math.nan


def _text(v: Any) -> str:
    """A property value as display text ("" when missing)."""
    return "" if _missing(v) else str(v)


def site_rows(
    candidates: gpd.GeoDataFrame | None,
    enriched: gpd.GeoDataFrame | None,
    contours: gpd.GeoDataFrame | None = None,
    verdicts: Mapping[str, str] | None = None,
) -> list[SiteRow]:
    """Table/marker rows: enriched sites if any (else candidates), highest score first.

    Columns read when present: ``site_id``, ``name``, ``lon``/``lat`` (else the geometry's
    representative point), ``score``, ``patch_mean``, ``area_km2`` (else the latest contour area
    for the same ``name``), ``address``. ``verdicts``: site id -> latest review verdict (as read
    from the site database); a site takes the verdict of its id or, failing that, of a neighbouring
    H3 cell (the registry's matching); without one it is ``unreviewed``.
    """
    src = enriched if not _empty(enriched) else candidates
    if src is None or _empty(src):
        return []
    src = _to_4326(src)
    latest_area: dict[str, float] = {}
    if (
        contours is not None
        and not _empty(contours)
        and {"name", "date", "area_km2"} <= set(contours.columns)
    ):
        named = contours.assign(name=contours["name"].map(_text), date=contours["date"].map(_text))
        last = named.sort_values(["name", "date"]).groupby("name").tail(1)
        latest_area = {n: _float(a) for n, a in zip(last["name"], last["area_km2"], strict=True)}
    rows = []
    for _, r in src.iterrows():
        geom = r.geometry
        pt = geom.representative_point() if geom is not None and not geom.is_empty else None
        lon = _float(_val(r, "lon", default=pt.x if pt is not None else math.nan))
        lat = _float(_val(r, "lat", default=pt.y if pt is not None else math.nan))
        name = _text(_val(r, "name", default=""))
        site_id = _text(_val(r, "site_id", "id", default=name))
        rows.append(
            SiteRow(
                site_id=site_id,
                name=name,
                lat=lat,
                lon=lon,
                verdict=verdict_label([site_id], verdicts, near=True),
                score=_float(_val(r, "score", "pixel_score")),
                patch_score=_float(_val(r, "patch_mean", "patch_score")),
                area_km2=_float(_val(r, "area_km2", default=latest_area.get(name, math.nan))),
                address=_text(_val(r, "address", "display_name", default="")),
            )
        )
    rows.sort(key=lambda s: (-(s.score if not math.isnan(s.score) else -1.0), s.site_id))
    return rows


def _fmt(v: float, spec: str) -> str:
    return "–" if v is None or not math.isfinite(v) else format(v, spec)


def _located(lat: float, lon: float) -> bool:
    return math.isfinite(lat) and math.isfinite(lon) and -90 <= lat <= 90 and -180 <= lon <= 180


def _site_item(s: SiteRow) -> dict[str, Any]:
    """A candidate marker: position, title (id) and popup lines (plain text)."""
    return {
        "lat": s.lat,
        "lon": s.lon,
        "title": s.site_id,
        "verdict": s.verdict,
        "lines": [
            f"name: {s.name}",
            f"verdict: {s.verdict}",
            f"pixel score: {_fmt(s.score, '.3f')}",
            f"patch score: {_fmt(s.patch_score, '.3f')}",
            f"area: {_fmt(s.area_km2, '.4f')} km²",
            s.address,
            f"{s.lat:.6f}, {s.lon:.6f}",
        ],
    }


def _finite_geometry(geom: Any) -> dict[str, Any] | None:
    """GeoJSON geometry of ``geom``, or None when it is missing, empty or has a non-finite coordinate."""
    if geom is None or geom.is_empty or not all(math.isfinite(v) for v in geom.bounds):
        return None
    return dict(mapping(geom))


def vector_data(
    blobs: gpd.GeoDataFrame | None, contours: gpd.GeoDataFrame | None, rows: list[SiteRow]
) -> dict[str, Any]:
    """The data island's vector layers (EPSG:4326 degrees):

    ``blobs``: {label, items: [{lat, lon, tip}]} or None; ``contours``: one entry per contour date,
    oldest first, {label, color (viridis hex by date), show (latest only), features: [{type,
    geometry, properties: {lines}}]}; ``sites``: {label, items: [{lat, lon, title, verdict, lines}]}
    (``verdict``: one of :data:`plastics_core.method.site_registry.VERDICT_STATES`).
    """
    data: dict[str, Any] = {"blobs": None, "contours": []}
    if not _empty(blobs):
        assert blobs is not None
        items = []
        for _, b in _to_4326(blobs).iterrows():
            if b.geometry is None or b.geometry.is_empty:
                continue
            p = b.geometry.representative_point()
            if _located(p.y, p.x):
                score = _float(_val(b, "score"))
                items.append(
                    {
                        "lat": p.y,
                        "lon": p.x,
                        "tip": f"blob {_text(_val(b, 'name', default=''))} score {_fmt(score, '.3f')}",
                    }
                )
        data["blobs"] = {"label": f"blobs ({len(blobs)})", "items": items}
    if not _empty(contours):
        assert contours is not None
        plain = _to_4326(contours)
        date = plain["date"].map(_text) if "date" in plain.columns else pd.Series("", index=plain.index)
        dates = sorted(date.unique())
        cmap = matplotlib.colormaps["viridis"]
        fields = [c for c in ("name", "date", "area_km2") if c in plain.columns]
        for i, d in enumerate(dates):
            sub = plain[date == d]
            features = []
            for _, f in sub.iterrows():
                geometry = _finite_geometry(f.geometry)
                if geometry is not None:
                    lines = [f"{c}: {_text(f[c])}" for c in fields] or ["contour"]
                    features.append({"type": "Feature", "geometry": geometry, "properties": {"lines": lines}})
            data["contours"].append(
                {
                    "label": f"contours {d or 'all'} ({len(sub)})",
                    "show": i == len(dates) - 1,
                    "color": matplotlib.colors.to_hex(cmap(i / max(1, len(dates) - 1))),
                    "features": features,
                }
            )
    data["sites"] = {
        "label": f"candidate sites ({len(rows)})",
        "items": [_site_item(s) for s in rows if _located(s.lat, s.lon)],
    }
    return data
