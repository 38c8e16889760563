"""Small PNG thumbnails for run metadata (matplotlib, Agg backend; no dagster here).

- :func:`heatmap_png`: one heatmap band (default ``median``; probability [0, 1], NaN = grey).
- :func:`points_png`: points (EPSG:4326 lon/lat) over an optional ROI outline.
- :func:`markdown_image`: a PNG as a markdown image with a base64 data URI.
"""

from __future__ import annotations

import base64
import io
from typing import Any

import numpy as np

from plastics_core.raster import Raster


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


def markdown_image(png: bytes, alt: str = "thumbnail") -> str:
    """``![alt](data:image/png;base64,...)``."""
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})"
