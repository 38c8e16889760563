"""Small PNG thumbnails for run metadata (matplotlib, Agg backend; no dagster here).

- :func:`heatmap_png`: one heatmap band (default ``median``; probability [0, 1], NaN = grey).
- :func:`points_png`: points (EPSG:4326 lon/lat) over an optional ROI outline.
- :func:`preview_map_png`: the map of one ROI x window for the ``preview`` asset's metadata
  (>= 600 px wide): median heatmap (``magma`` colormap, colour bar "pixel score"), ROI outline,
  candidate sites, and a legend; in the heatmap tiles' CRS (UTM metres).
- :func:`markdown_image`: a PNG as a markdown image with a base64 data URI.
"""

from __future__ import annotations

import base64
import io
from typing import Any

import numpy as np

from plastics_core.geo.raster import Raster


def _figure(size: float = 3.0) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(size, size), dpi=64)


def _png(fig: Any) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def heatmap_png(raster: Raster, band: str = "median", max_px: int = 256) -> bytes:
    """PNG of one band of ``raster`` (values clipped to [0, 1]), downsampled to <= ``max_px``."""
    idx = raster.band_descriptions.index(band) if band in raster.band_descriptions else raster.data.shape[0] - 1
    arr = np.asarray(raster.data[idx], dtype=np.float32)
    step = max(1, int(np.ceil(max(arr.shape) / max_px)))
    arr = arr[::step, ::step]
    fig, ax = _figure()
    cmap = __import__("matplotlib").colormaps["magma"].with_extremes(bad="#888888")
    ax.imshow(np.ma.masked_invalid(arr), cmap=cmap, vmin=0.0, vmax=1.0)
    ax.set_title(f"{raster.name or 'heatmap'} [{band}]", fontsize=7)
    ax.axis("off")
    return _png(fig)


def points_png(gdf: Any, outline: Any = None, title: str = "") -> bytes:
    """PNG of ``gdf`` geometries (EPSG:4326) with an optional shapely ``outline`` (ROI)."""
    fig, ax = _figure()
    if outline is not None and not outline.is_empty:
        geoms = getattr(outline, "geoms", [outline])
        for g in geoms:
            x, y = g.exterior.xy
            ax.plot(x, y, color="#1f77b4", linewidth=1)
    if gdf is not None and len(gdf):
        pts = gdf.geometry.representative_point()
        ax.scatter(pts.x, pts.y, s=18, color="#d62728")
    ax.set_title(title or f"{0 if gdf is None else len(gdf)} points", fontsize=7)
    ax.set_aspect("equal", adjustable="datalim")
    ax.tick_params(labelsize=5)
    return _png(fig)


def preview_map_png(roi: Any, heatmaps: list[Raster], candidates: Any, title: str, width_px: int = 800) -> bytes:
    """PNG (``width_px`` wide, >= 600) of the heatmaps' ``median`` band (probability [0, 1], magma;
    NaN transparent), the ROI (shapely, EPSG:4326) and the candidates (GeoDataFrame, any CRS), with a
    colour bar and legend. Drawn in the first heatmap's CRS (tiles in other UTM zones are left out)."""
    import geopandas as gpd
    import matplotlib
    from matplotlib.lines import Line2D

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dpi = 100
    fig, ax = plt.subplots(figsize=(max(width_px, 600) / dpi, 0.75 * max(width_px, 600) / dpi), dpi=dpi)
    crs = heatmaps[0].crs if heatmaps else "EPSG:4326"
    cmap = matplotlib.colormaps["magma"].with_extremes(bad=(0, 0, 0, 0))
    image = None
    for raster in (r for r in heatmaps if r.crs == crs):
        idx = raster.band_descriptions.index("median") if "median" in raster.band_descriptions else -1
        arr = np.asarray(raster.data[idx], dtype=np.float32)
        t = raster.transform
        extent = (t.c, t.c + t.a * arr.shape[1], t.f + t.e * arr.shape[0], t.f)
        image = ax.imshow(np.ma.masked_invalid(arr), cmap=cmap, vmin=0.0, vmax=1.0, extent=extent,
                          interpolation="nearest")
    handles = []
    if roi is not None and not roi.is_empty:
        gpd.GeoSeries([roi], crs="EPSG:4326").to_crs(crs).boundary.plot(ax=ax, color="#1f77b4", linewidth=1.5)
        handles.append(Line2D([], [], color="#1f77b4", linewidth=1.5, label="ROI"))
    n = 0 if candidates is None else len(candidates)
    if n:
        pts = candidates.to_crs(crs).geometry.representative_point()
        ax.scatter(pts.x, pts.y, s=90, facecolors="none", edgecolors="#00e5ff", linewidths=2, zorder=3)
    handles.append(Line2D([], [], marker="o", linestyle="", markerfacecolor="none", markeredgecolor="#00e5ff",
                          markeredgewidth=2, markersize=9, label=f"candidate sites ({n})"))
    ax.legend(handles=handles, loc="upper right", fontsize=9, framealpha=0.85)
    if image is not None:
        bar = fig.colorbar(image, ax=ax, fraction=0.04, pad=0.02)
        bar.set_label("pixel score (median of pairs)", fontsize=10)
    ax.set_title(title, fontsize=11)
    ax.set_xlabel(f"x (m, {crs})", fontsize=9)
    ax.set_ylabel("y (m)", fontsize=9)
    ax.tick_params(labelsize=8)
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_facecolor("#d9d9d9")  # grey where no heatmap pixel is valid
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)  # fixed size: exactly width_px wide
    plt.close(fig)
    return buf.getvalue()


def markdown_image(png: bytes, alt: str = "thumbnail") -> str:
    """``![alt](data:image/png;base64,...)``."""
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})"
