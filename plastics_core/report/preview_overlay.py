"""The preview's heatmap overlay: heatmap tiles warped onto one EPSG:3857 grid as a PNG.

Colours: :data:`HEATMAP_CMAP` over probability 0..1 with opacity rising with probability, NaN
(nodata) fully transparent; :func:`legend_html` draws the same ramp.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Sequence

import matplotlib
import numpy as np
from affine import Affine
from PIL import Image
from rasterio.warp import Resampling, calculate_default_transform, reproject, transform_bounds

from plastics_core.geo.raster import Raster

MAX_OVERLAY_PX = 2048
HEATMAP_CMAP = "inferno"


def _band(r: Raster, band: str) -> np.ndarray:
    idx = r.band_descriptions.index(band) if band in r.band_descriptions else r.data.shape[0] - 1
    return np.asarray(r.data[idx], dtype=np.float32)


def heatmap_overlay_png(
    heatmaps: Raster | Sequence[Raster], band: str = "median"
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
        reproject(
            _band(t, band),
            dst,
            src_transform=t.transform,
            src_crs=t.crs,
            src_nodata=np.nan,
            dst_transform=dst_t @ Affine.translation(c0, r0),
            dst_crs="EPSG:3857",
            dst_nodata=np.nan,
            resampling=Resampling.nearest,
        )
        out[r0:r1, c0:c1] = np.fmax(out[r0:r1, c0:c1], dst)
    rgba = (matplotlib.colormaps[HEATMAP_CMAP](np.clip(np.nan_to_num(out), 0, 1)) * 255).astype(np.uint8)
    alpha = 25.0 + 215.0 * np.clip(np.nan_to_num(out), 0, 1)  # faint where unlikely, opaque where likely
    rgba[..., 3] = np.where(np.isfinite(out), alpha, 0).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buf, format="PNG", optimize=True)
    lon0, lat0, lon1, lat1 = transform_bounds(
        "EPSG:3857", "EPSG:4326", west, north - h * pix, west + w * pix, north
    )
    uri = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
    return uri, [[lat0, lon0], [lat1, lon1]]


def legend_html() -> str:
    """The colour ramp of the overlay as an HTML legend box (class ``plastics-legend``)."""
    ramp = ", ".join(
        matplotlib.colors.to_hex(matplotlib.colormaps[HEATMAP_CMAP](v)) for v in np.linspace(0, 1, 6)
    )
    return (
        f'<div class="plastics-legend">waste probability (median)<div class="bar" '
        f'style="background: linear-gradient(to right, {ramp})"></div><div style="display: flex; '
        f'justify-content: space-between"><span>0</span><span>0.5</span><span>1</span></div></div>'
    )
