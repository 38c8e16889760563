"""Site contours: per monthly frame, the outline of a candidate site from ensemble predictions.

Method (the paper's site footprint monitoring; GPW's ``generate_contours`` in
``detect/workflows/detect_luigi.py``): ensemble-median waste probability per monthly frame
(the frames' composites: :func:`plastics_core.method.recipes.contour_recipe`); values < 0.5 -> 0;
a rolling median over 8 frames, thresholded at 0.1, masks each frame (suppresses one-off
flickers). The window is ``following`` (the paper: frame i uses frames i..i+7, the last frames
see a back padding of the mean of the last 7 frames) or ``trailing`` (GPW's code: frames i-7..i,
front padding of the mean of the first 7 frames, GPW's ``pad_preds``); frames at least 10 %
masked are skipped (``max_masked``; ``None`` never skips, as GPW's code in effect); the masked
frame is upsampled x4 (cubic spline, where GPW used PIL's bicubic resize), Gaussian-blurred with
GPW's 33 px kernel and sigma 4 upsampled px (``cv2.GaussianBlur(img, (33, 33), 4)``, reflect-101
borders), thresholded at 0.2 and traced into polygons with holes (``rasterio.features.shapes``);
polygons of 160 upsampled px² or less (GPW's ``40 * SCALE``) are dropped; then reprojected to
EPSG:4326. Areas are computed in the equal-area EPSG:6933 CRS (GPW's EPSG:3395 overstates area
by the Mercator scale factor: ~2 % at 8 deg S, 2x at 46 deg N). This module never imports
TensorFlow: callers pass the probability frames (``plastics_core.models.ensemble.EnsembleClassifier``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Literal

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio.features
import shapely
from affine import Affine
from scipy import ndimage
from shapely.geometry import box, shape

from plastics_core.errors import ParameterError

CONTOUR_COLUMNS = ["name", "date", "frame", "area_km2"]
EQUAL_AREA_CRS = "EPSG:6933"


def candidate_boxes(candidates: gpd.GeoDataFrame, rect_width: float = 0.008) -> gpd.GeoDataFrame:
    """Square ``rect_width``-degree boxes (Polygon, EPSG:4326) centred on each candidate point.

    Keeps the candidates' columns (``name`` ...) and sets ``lon``/``lat`` to the box centre.
    0.008 deg is ~890 m N-S: room for a large landfill plus context.
    """
    if rect_width <= 0:
        raise ParameterError(f"rect_width={rect_width} deg must be > 0")
    if candidates is None or len(candidates) == 0:
        return gpd.GeoDataFrame({"name": [], "lon": [], "lat": []}, geometry=[], crs="EPSG:4326")
    pts = candidates.geometry if candidates.crs is None else candidates.geometry.to_crs(4326)
    h = rect_width / 2
    geoms = [box(p.x - h, p.y - h, p.x + h, p.y + h) for p in pts]
    out = pd.DataFrame(candidates.drop(columns=candidates.geometry.name)).reset_index(drop=True)
    out["lon"] = [p.x for p in pts]
    out["lat"] = [p.y for p in pts]
    return gpd.GeoDataFrame(out, geometry=geoms, crs="EPSG:4326")


#: GPW's blur sigma, upsampled px: ``cv2.GaussianBlur(img, (33, 33), cv2.BORDER_DEFAULT)`` passes
#: ``BORDER_DEFAULT`` (= 4) as sigmaX, so the 33 px kernel has sigma 4 (not the 5.3 that sigma 0
#: would derive from the kernel size).
GPW_BLUR_SIGMA = 4.0
#: GPW's blur kernel radius at x4 upsampling, upsampled px (a 33 px kernel).
GPW_BLUR_RADIUS = 16
MaskAlign = Literal["following", "trailing"]
#: GPW's minimum contour area: 40 * SCALE upsampled px² (SCALE = 4).
GPW_MIN_AREA_PX = 160.0


def rolling_masks(
    f: np.ndarray, mask_window: int = 8, mask_threshold: float = 0.1, align: MaskAlign = "following"
) -> np.ndarray:
    """(n, y, x) floored probabilities (NaN = masked) -> (n, y, x) bool: the median of a window
    of w = min(mask_window, n) frames exceeds ``mask_threshold``. NaN counts as 0 (no evidence).

    ``trailing`` (GPW's code): frames i - w + 1 .. i, front-padded with the mean of the first
    w - 1 frames (GPW's ``pad_preds``). ``following`` (the paper): frames i .. i + w - 1,
    back-padded with the mean of the last w - 1 frames: the trailing window reversed in time.
    """
    if align == "following":
        return rolling_masks(f[::-1], mask_window, mask_threshold, "trailing")[::-1]
    if align != "trailing":
        raise ParameterError(f"mask align {align!r} is unknown: use following or trailing")
    n = f.shape[0]
    w = min(mask_window, n)
    g = np.nan_to_num(f, nan=0.0)
    pad = np.repeat(g[: w - 1].mean(axis=0, keepdims=True), w - 1, axis=0) if w > 1 else g[:0]
    padded = np.concatenate([pad, g])
    return (
        np.stack([np.median(padded[i : i + w], axis=0) > mask_threshold for i in range(n)])
        if n
        else g.astype(bool)
    )


def contour_masks(
    frames: np.ndarray,
    pred_floor: float = 0.5,
    mask_window: int = 8,
    mask_threshold: float = 0.1,
    upsample: int = 4,
    blur_sigma: float = GPW_BLUR_SIGMA,
    contour_threshold: float = 0.2,
    max_masked: float | None = 0.1,
    mask_align: MaskAlign = "following",
) -> np.ndarray:
    """(n_frames, y, x) float probabilities (NaN = masked) -> (n_frames, y*up, x*up) bool site masks.

    ``blur_sigma`` is in upsampled pixels (kernel radius ``GPW_BLUR_RADIUS * upsample / 4``);
    frames with a masked (NaN) fraction of ``max_masked`` or more give an empty mask (``None``:
    no frame is skipped); ``mask_align``: see :func:`rolling_masks`.
    """
    if frames.ndim != 3:
        raise ParameterError(f"frames must be (n_frames, y, x), got shape {frames.shape}")
    if upsample < 1 or mask_window < 1:
        raise ParameterError(f"upsample={upsample}, mask_window={mask_window} must be >= 1")
    f = np.asarray(frames, dtype=np.float32).copy()
    f[f < pred_floor] = 0.0  # NaN stays NaN (masked: no evidence)
    out = np.zeros((f.shape[0], f.shape[1] * upsample, f.shape[2] * upsample), dtype=bool)
    keep = rolling_masks(f, mask_window, mask_threshold, mask_align)
    for i in range(f.shape[0]):
        if max_masked is not None and np.isnan(f[i]).mean() >= max_masked:
            continue
        masked = np.where(keep[i], np.nan_to_num(f[i], nan=0.0), 0.0)
        if not masked.any():
            continue
        up = np.clip(ndimage.zoom(masked, upsample, order=3, mode="nearest", grid_mode=True), 0.0, 1.0)
        out[i] = gpw_blur(up, blur_sigma, GPW_BLUR_RADIUS * upsample // 4) > contour_threshold
    return out


def gpw_blur(img: np.ndarray, sigma: float = GPW_BLUR_SIGMA, radius: int = GPW_BLUR_RADIUS) -> np.ndarray:
    """(y, x) float image -> the same blurred with a normalized (2 * radius + 1)-tap Gaussian of
    ``sigma`` px along each axis, borders reflected without repeating the edge pixel (OpenCV's
    ``BORDER_REFLECT_101``): GPW's ``cv2.GaussianBlur(img, (33, 33), 4)`` at the defaults."""
    if sigma <= 0:
        return np.asarray(img, dtype=np.float64)
    values = np.asarray(img, dtype=np.float64)
    out: np.ndarray = ndimage.gaussian_filter(values, sigma, mode="mirror", radius=radius)
    return out


def trace_mask(mask: np.ndarray, transform: Affine, min_area_px: float = 0.0) -> shapely.Geometry:
    """(y, x) bool mask + its pixel->CRS transform -> valid (Multi)Polygon with holes (or empty);
    parts of ``min_area_px`` pixels or less are dropped."""
    px_area = abs(transform.a * transform.e - transform.b * transform.d)
    polys = [
        shape(geom)
        for geom, value in rasterio.features.shapes(mask.astype(np.uint8), mask=mask, transform=transform)
        if value == 1
    ]
    polys = [p for p in polys if p.area > min_area_px * px_area]
    if not polys:
        return shapely.Polygon()
    merged = shapely.union_all(polys)
    return merged if merged.is_valid else shapely.make_valid(merged)


def _iso(d: date | str) -> str:
    return d.isoformat() if isinstance(d, date) else str(d)


def site_contours(
    frames: np.ndarray,
    dates: Sequence[date | str],
    crs: str,
    transform: Affine,
    name: str,
    upsample: int = 4,
    blur_sigma: float = GPW_BLUR_SIGMA,
    pred_floor: float = 0.5,
    mask_window: int = 8,
    mask_threshold: float = 0.1,
    contour_threshold: float = 0.2,
    max_masked: float | None = 0.1,
    mask_align: MaskAlign = "following",
) -> gpd.GeoDataFrame:
    """Contours of one site over time -> (Multi)Polygon GeoDataFrame, EPSG:4326.

    - ``frames``: (n_frames, y, x) float ensemble-median waste probability, one frame per
      monthly pair, NaN where masked; ``dates[i]`` labels frame i (e.g. the pair's first month).
    - ``crs`` / ``transform``: the frames' grid (projected CRS, e.g. the tile's UTM).
    One row per frame WITH a contour (frames with no site are left out, so every geometry is
    a non-empty valid polygon); columns ``name``, ``date`` (ISO), ``frame`` (index), ``area_km2``.
    """
    if frames.ndim != 3 or len(dates) != frames.shape[0]:
        raise ParameterError(
            f"frames shape {frames.shape} and {len(dates)} dates disagree; pass one date per frame"
        )
    masks = contour_masks(
        frames,
        pred_floor,
        mask_window,
        mask_threshold,
        upsample,
        blur_sigma,
        contour_threshold,
        max_masked,
        mask_align,
    )
    up_transform = transform @ Affine.scale(1.0 / upsample)
    rows: list[dict[str, object]] = []
    geoms: list[shapely.Geometry] = []
    for i, mask in enumerate(masks):
        if not mask.any():
            continue
        geom = trace_mask(mask, up_transform, GPW_MIN_AREA_PX * (upsample / 4) ** 2)
        if geom.is_empty:
            continue
        rows.append({"name": name, "date": _iso(dates[i]), "frame": i})
        geoms.append(geom)
    if not rows:
        return gpd.GeoDataFrame({c: [] for c in CONTOUR_COLUMNS}, geometry=[], crs="EPSG:4326")
    native = gpd.GeoSeries(geoms, crs=crs)
    df = pd.DataFrame(rows)
    df["area_km2"] = native.to_crs(EQUAL_AREA_CRS).area.to_numpy() / 1e6
    geo4326 = native.to_crs("EPSG:4326").make_valid()
    return gpd.GeoDataFrame(df, geometry=geo4326.to_numpy(), crs="EPSG:4326")


#: Former name of :func:`site_contours`, kept for existing callers.
trace_site_contours = site_contours
