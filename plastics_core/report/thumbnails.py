"""Small PNG thumbnails for run metadata (matplotlib, Agg backend; no dagster here).

Every PNG is at least 600 px on its long side (:data:`MIN_PX`), readable in the Dagster UI.

- :func:`heatmap_png`: one heatmap band (default ``median``; probability [0, 1], NaN = grey),
  with a colour bar.
- :func:`points_png`: points (EPSG:4326 lon/lat) over an optional ROI outline.
- :func:`preview_map_png`: the map of one ROI x window for the ``preview`` asset's metadata
  (>= 600 px wide): framed on the ROI (not the whole tile), the median heatmap (``magma``,
  faint where unlikely, colour bar "pixel score"), the ROI outline, the candidate sites circled
  and numbered by score, and a legend; in the heatmap tiles' CRS (UTM metres).
- :func:`markdown_image`: a PNG as a markdown image with a base64 data URI.
"""

from __future__ import annotations

import base64
import io
from typing import Any

import numpy as np

from plastics_core.geo.raster import Raster

#: Smallest long side of every thumbnail (pixels).
MIN_PX = 600
_DPI = 100


def _figure(size_px: int = 640) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    side = max(size_px, MIN_PX) / _DPI
    return plt.subplots(figsize=(side, side), dpi=_DPI)


def _png(fig: Any) -> bytes:
    """The figure at its own size (never cropped below :data:`MIN_PX`)."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI)
    plt.close(fig)
    return buf.getvalue()


def heatmap_png(raster: Raster, band: str = "median", max_px: int = 640) -> bytes:
    """PNG of one band of ``raster`` (values clipped to [0, 1]), downsampled to <= ``max_px``."""
    idx = (
        raster.band_descriptions.index(band) if band in raster.band_descriptions else raster.data.shape[0] - 1
    )
    arr = np.asarray(raster.data[idx], dtype=np.float32)
    step = max(1, int(np.ceil(max(arr.shape) / max_px)))
    arr = arr[::step, ::step]
    fig, ax = _figure()
    cmap = __import__("matplotlib").colormaps["magma"].with_extremes(bad="#888888")
    image = ax.imshow(np.ma.masked_invalid(arr), cmap=cmap, vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.03, label="pixel score")
    ax.set_title(f"{raster.name or 'heatmap'} [{band}]".replace("$", r"\$"), fontsize=11)
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
    ax.set_title((title or f"{0 if gdf is None else len(gdf)} points").replace("$", r"\$"), fontsize=11)
    ax.set_aspect("equal", adjustable="datalim")
    ax.tick_params(labelsize=8)
    return _png(fig)


def map_frame(
    roi: Any, heatmaps: list[Raster], points: Any, crs: Any, margin: float = 0.08
) -> tuple[float, float, float, float] | None:
    """(xmin, xmax, ymin, ymax) in ``crs`` units framing the ROI (shapely, EPSG:4326) and the
    ``points`` (GeoSeries in ``crs``) with ``margin`` of the larger side around them; the heatmaps'
    extent only when there is neither. None when there is nothing to frame."""
    import geopandas as gpd

    boxes = []
    if roi is not None and not roi.is_empty:
        boxes.append(tuple(gpd.GeoSeries([roi], crs="EPSG:4326").to_crs(crs).total_bounds))
    if points is not None and len(points):
        boxes.append(tuple(points.total_bounds))
    if not boxes:
        for r in (r for r in heatmaps if r.crs == crs):
            rows, cols = r.shape
            xs, ys = zip(r.transform @ (0, 0), r.transform @ (cols, rows), strict=True)
            boxes.append((min(xs), min(ys), max(xs), max(ys)))
    finite = [b for b in boxes if np.all(np.isfinite(b))]
    if not finite:
        return None
    x0, y0 = min(b[0] for b in finite), min(b[1] for b in finite)
    x1, y1 = max(b[2] for b in finite), max(b[3] for b in finite)
    pad = margin * max(x1 - x0, y1 - y0, 1.0)
    return x0 - pad, x1 + pad, y0 - pad, y1 + pad


def preview_map_png(
    roi: Any, heatmaps: list[Raster], candidates: Any, title: str, width_px: int = 800
) -> bytes:
    """PNG (``width_px`` wide, >= 600) framed on the ROI (shapely, EPSG:4326) and the candidates
    (GeoDataFrame, any CRS; circled and numbered 1..n by ``score``), over the heatmaps' ``median``
    band (probability [0, 1], magma, more transparent where lower; NaN transparent), with a colour
    bar and legend. Drawn in the first heatmap's CRS (tiles in other UTM zones are left out)."""
    import matplotlib
    from matplotlib.lines import Line2D

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    side = max(width_px, MIN_PX) / _DPI
    fig, ax = plt.subplots(figsize=(side, 0.75 * side), dpi=_DPI)
    crs = heatmaps[0].crs if heatmaps else "EPSG:4326"
    cmap = matplotlib.colormaps["magma"]
    norm = matplotlib.colors.Normalize(0.0, 1.0)
    n = 0 if candidates is None else len(candidates)
    pts = None
    if n:
        ranked = (
            candidates.sort_values("score", ascending=False) if "score" in candidates.columns else candidates
        )
        pts = ranked.to_crs(crs).geometry.representative_point()
    frame = map_frame(roi, heatmaps, pts, crs)
    drawn = False
    for raster in (r for r in heatmaps if r.crs == crs):
        idx = raster.band_descriptions.index("median") if "median" in raster.band_descriptions else -1
        arr = np.asarray(raster.data[idx], dtype=np.float32)
        t = raster.transform
        extent = (t.c, t.c + t.a * arr.shape[1], t.f + t.e * arr.shape[0], t.f)
        p = np.clip(np.nan_to_num(arr), 0.0, 1.0)
        rgba = cmap(norm(p))
        rgba[..., 3] = np.where(
            np.isfinite(arr), 0.3 + 0.7 * p, 0.0
        )  # faint where unlikely, opaque where likely
        ax.imshow(rgba, extent=extent, interpolation="nearest")
        drawn = True
    handles = []
    if roi is not None and not roi.is_empty:
        import geopandas as gpd

        gpd.GeoSeries([roi], crs="EPSG:4326").to_crs(crs).boundary.plot(ax=ax, color="#1f77b4", linewidth=2)
        handles.append(Line2D([], [], color="#1f77b4", linewidth=2, label="ROI"))
    if pts is not None:
        ax.scatter(pts.x, pts.y, s=160, facecolors="none", edgecolors="#00e5ff", linewidths=2.5, zorder=3)
        for rank, (x, y) in enumerate(zip(pts.x, pts.y, strict=True), start=1):
            ax.annotate(
                str(rank),
                (x, y),
                xytext=(9, 9),
                textcoords="offset points",
                fontsize=10,
                zorder=4,
                color="black",
                fontweight="bold",
                bbox={"boxstyle": "round,pad=0.15", "fc": "#00e5ff", "ec": "none", "alpha": 0.9},
            )
    handles.append(
        Line2D(
            [],
            [],
            marker="o",
            linestyle="",
            markerfacecolor="none",
            markeredgecolor="#00e5ff",
            markeredgewidth=2.5,
            markersize=11,
            label=f"candidate sites ({n}), by score",
        )
    )
    ax.legend(handles=handles, loc="upper right", fontsize=9, framealpha=0.85)
    if drawn:
        bar = fig.colorbar(matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, fraction=0.04, pad=0.02)
        bar.set_label("pixel score (median of pairs)", fontsize=10)
    if frame is not None:
        ax.set_xlim(frame[0], frame[1])
        ax.set_ylim(frame[2], frame[3])
    ax.set_title(title.replace("$", r"\$"), fontsize=11)
    ax.set_xlabel(f"x (m, {crs})", fontsize=9)
    ax.set_ylabel("y (m)", fontsize=9)
    ax.tick_params(labelsize=8)
    ax.set_aspect("equal", adjustable="box")
    ax.set_facecolor("#eeeeee")  # light grey where no heatmap pixel is valid
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI)  # fixed size: exactly width_px wide
    plt.close(fig)
    return buf.getvalue()


def markdown_image(png: bytes, alt: str = "thumbnail") -> str:
    """``![alt](data:image/png;base64,...)``."""
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})"
