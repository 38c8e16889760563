"""Per-site PNG reports: RGB composite thumbnail, heatmap crop, contour-area timeline.

Rendered with matplotlib's Agg canvas on a private ``Figure`` (no pyplot state: thread-safe).
A report is 3 panels, ~1200 x 400 px:

1. RGB: bands B04, B03, B02 of a Sentinel-2 L1C composite (DN, 12 bands in
   :data:`plastics_core.geo.bands.BAND_NAMES` order, or 3 bands already R, G, B), a
   ``2 * half_px`` pixel crop centred on the site, 2-98 % stretch, masked/NaN pixels black;
2. the heatmap's ``median`` band (probability 0..1, NaN grey) over the same ground window;
3. contour area (km²) per contour date.
Missing inputs give a panel saying so, never an error.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import geopandas as gpd
import matplotlib
import numpy as np
from affine import Affine
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from pyproj import Transformer

from plastics_core.geo.bands import BAND_NAMES
from plastics_core.geo.raster import Raster

RGB_BANDS = ("B04", "B03", "B02")
DEFAULT_HALF_PX = 48  # 480 m either side at 10 m


class Georeferenced(Protocol):
    """Anything with (band, y, x) ``data``, a ``crs`` string and an affine ``transform``
    (a :class:`plastics_core.method.composite.Composite` or a :class:`plastics_core.geo.raster.Raster`)."""

    @property
    def data(self) -> np.ndarray: ...

    @property
    def crs(self) -> str: ...

    @property
    def transform(self) -> Affine: ...


def _crop(
    data: np.ndarray, crs: str, transform: Affine, lon: float, lat: float, half: int
) -> np.ndarray | None:
    """``data[..., r-half:r+half, c-half:c+half]`` around (lon, lat), NaN-padded at the edges."""
    x, y = Transformer.from_crs("EPSG:4326", crs, always_xy=True).transform(lon, lat)
    col, row = ~transform @ (x, y)
    r0, c0 = int(math.floor(row)) - half, int(math.floor(col)) - half
    rows, cols = data.shape[-2:]
    if r0 + 2 * half <= 0 or c0 + 2 * half <= 0 or r0 >= rows or c0 >= cols:
        return None
    out = np.full((*data.shape[:-2], 2 * half, 2 * half), np.nan, dtype=np.float32)
    rs, cs = max(r0, 0), max(c0, 0)
    re, ce = min(r0 + 2 * half, rows), min(c0 + 2 * half, cols)
    out[..., rs - r0 : re - r0, cs - c0 : ce - c0] = data[..., rs:re, cs:ce]
    return out


def rgb_image(
    composite: Georeferenced,
    lon: float,
    lat: float,
    half: int = DEFAULT_HALF_PX,
    mask: np.ndarray | None = None,
) -> np.ndarray | None:
    """(2*half, 2*half, 3) float RGB in 0..1 around (lon, lat), or None if the site is outside.

    ``mask``: optional (y, x) bool, True = masked (a Composite's ``mask`` is used if present).
    """
    data = np.asarray(composite.data, dtype=np.float32)
    if data.shape[0] == len(BAND_NAMES):
        data = data[[BAND_NAMES.index(b) for b in RGB_BANDS]]
    elif data.shape[0] != 3:
        raise ValueError(f"composite has {data.shape[0]} bands: need 12 ({', '.join(BAND_NAMES)}) or 3 (RGB)")
    m = mask if mask is not None else getattr(composite, "mask", None)
    if m is not None:
        data = np.where(np.asarray(m, dtype=bool)[None], np.nan, data)
    crop = _crop(data, composite.crs, composite.transform, lon, lat, half)
    if crop is None:
        return None
    finite = crop[np.isfinite(crop)]
    if finite.size == 0:
        return np.zeros((2 * half, 2 * half, 3), np.float32)
    lo, hi = np.percentile(finite, [2, 98])
    img = np.clip((crop - lo) / max(float(hi - lo), 1e-6), 0, 1)
    rgb: np.ndarray = np.nan_to_num(np.moveaxis(img, 0, -1), nan=0.0)
    return rgb


def heatmap_crop(
    heatmaps: Raster | Sequence[Raster], lon: float, lat: float, half: int = DEFAULT_HALF_PX
) -> np.ndarray | None:
    """(2*half, 2*half) median-band probabilities around (lon, lat) from the first tile holding it."""
    for t in [heatmaps] if isinstance(heatmaps, Raster) else heatmaps:
        idx = t.band_descriptions.index("median") if "median" in t.band_descriptions else t.data.shape[0] - 1
        crop = _crop(t.data[idx], t.crs, t.transform, lon, lat, half)
        if crop is not None and np.isfinite(crop).any():
            return crop
    return None


def _note(ax: Any, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.4")
    ax.set_xticks([])
    ax.set_yticks([])


def site_report_png(
    title: str,
    rgb: np.ndarray | None,
    heat: np.ndarray | None,
    areas_km2: Mapping[str, float],
    dpi: int = 100,
) -> bytes:
    """The 3-panel PNG (bytes). ``rgb``: (h, w, 3) in 0..1; ``heat``: (h, w) probabilities;
    ``areas_km2``: ISO date -> km²."""
    fig = Figure(figsize=(12, 4), dpi=dpi)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 3, gridspec_kw={"width_ratios": [1, 1.2, 1.6]})
    fig.suptitle(title.replace("$", r"\$"), fontsize=11)  # outside text: no mathtext parsing
    if rgb is None:
        _note(axes[0], "no composite")
    else:
        axes[0].imshow(rgb, interpolation="nearest")
        axes[0].set_axis_off()
    axes[0].set_title("RGB composite (B04, B03, B02)", fontsize=9)
    if heat is None:
        _note(axes[1], "no heatmap")
    else:
        cmap = matplotlib.colormaps["inferno"].with_extremes(bad="0.7")
        im = axes[1].imshow(np.ma.masked_invalid(heat), vmin=0, vmax=1, cmap=cmap, interpolation="nearest")
        axes[1].set_axis_off()
        fig.colorbar(im, ax=axes[1], fraction=0.046, pad=0.04, label="waste probability")
    axes[1].set_title("heatmap (median)", fontsize=9)
    days = sorted(d for d, v in areas_km2.items() if v is not None and math.isfinite(float(v)))
    if days:
        axes[2].plot(range(len(days)), [float(areas_km2[d]) for d in days], marker="o", color="#c62828")
        step = max(1, len(days) // 8)
        axes[2].set_xticks(range(0, len(days), step), [d[:7] for d in days[::step]], rotation=45, fontsize=7)
        axes[2].set_ylabel("area (km²)")
        axes[2].set_ylim(0, max(float(areas_km2[d]) for d in days) * 1.15 or 1.0)
        axes[2].grid(alpha=0.3)
    else:
        _note(axes[2], "no contours")
    axes[2].set_title("contour area over time", fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def _areas_for(row: Any, contours: gpd.GeoDataFrame | None) -> dict[str, float]:
    if "areas_km2" in row.index and isinstance(row["areas_km2"], str) and row["areas_km2"]:
        return {str(k): float(v) for k, v in json.loads(row["areas_km2"]).items() if v is not None}
    if contours is None or len(contours) == 0 or "name" not in contours.columns:
        return {}
    sub = contours[contours["name"] == row.get("name")]
    return {str(d)[:10]: float(a) for d, a in sub.groupby("date")["area_km2"].sum().items()}


def holding_tile(rasters: Sequence[Raster], lon: float, lat: float) -> Raster | None:
    """The first raster whose grid holds the EPSG:4326 point (lon, lat), or None."""
    for r in rasters:
        x, y = Transformer.from_crs("EPSG:4326", r.crs, always_xy=True).transform(lon, lat)
        col, row = ~r.transform @ (x, y)
        if 0 <= row < r.shape[0] and 0 <= col < r.shape[1]:
            return r
    return None


def build_site_reports(
    sites: gpd.GeoDataFrame,
    composite: Georeferenced | Callable[[float, float], Georeferenced | None] | None,
    heatmaps: Raster | Sequence[Raster] | None,
    contours: gpd.GeoDataFrame | None = None,
    top_n: int = 10,
    half_px: int = DEFAULT_HALF_PX,
) -> dict[str, bytes]:
    """PNG reports of the ``top_n`` sites by ``score`` (or ``score_latest``): {site id: PNG bytes}.

    ``sites``: enriched sites or a site registry (EPSG:4326, ``lon``/``lat`` columns or Point
    geometry). Areas come from the registry's ``areas_km2`` JSON or else ``contours`` by ``name``.
    ``composite``: the RGB source, or a callable (lon, lat) -> the composite holding that site
    (e.g. loaded per tile on demand); None = no RGB panel.
    """
    if sites is None or len(sites) == 0 or top_n <= 0:
        return {}
    key = "score" if "score" in sites.columns else "score_latest"
    order = sites.assign(_s=sites[key].astype(float).fillna(-1.0) if key in sites.columns else -1.0)
    ranked = order.sort_values(
        ["_s", "site_id" if "site_id" in sites.columns else "name"], ascending=[False, True]
    ).head(top_n)
    out: dict[str, bytes] = {}
    for _, r in ranked.iterrows():
        pt = r.geometry.representative_point()
        lon = float(r["lon"]) if "lon" in r.index else pt.x
        lat = float(r["lat"]) if "lat" in r.index else pt.y
        sid = str(r["site_id"] if "site_id" in r.index else r["name"])
        comp = composite(lon, lat) if callable(composite) else composite
        rgb = rgb_image(comp, lon, lat, half_px) if comp is not None else None
        heat = heatmap_crop(heatmaps, lon, lat, half_px) if heatmaps is not None else None
        score = float(r["_s"])
        title = f"{sid}  {r.get('name', '')}  score {score:.3f}  ({lat:.5f}, {lon:.5f})"
        out[sid] = site_report_png(title, rgb, heat, _areas_for(r, contours))
    return out
