"""Patch-classifier scores: slide the model's window over composites, stats per location.

Inputs as :mod:`plastics_core.method.heatmap` (composites ``data`` (12, y, x) float32 L1C DN, ``mask``
(y, x) bool True = masked, one grid; ``pairs`` of indices). The window size (45 px for the
available ``v1.1.0_4-23-21_patch_classifier_45px_patch.h5``) and channel count come from the
loaded model. What each pair scores (our decision, following the original's use of the model):

- 12-channel model (one composite): each pair scores its FIRST composite (the window's own
  period), so a pair is one score per location and ``count`` = number of pairs scored. The
  masked fraction is that composite's.
- 24-channel model: the pair's two composites concatenated on the channel axis (first, then
  second); the masked fraction uses the union of both masks.

Windows start every ``stride`` px at (row, col) = (r * stride, c * stride) and are scored only
when their masked fraction is < ``max_masked`` (masked pixels hold DN 0, as in Composite).
Per location the statistics over scored pairs are kept: ``mean, median, min, max, std``
(population std) and ``count``; locations no pair scored are dropped. Geometry: the window
footprint (4 corners through ``transform`` in ``crs``) reprojected to EPSG:4326.
Models: Global Plastic Watch (Earthrise Media), CC BY-NC 4.0.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import geopandas as gpd
import numpy as np
import shapely
from pyproj import Transformer

from plastics_core.errors import ParameterError
from plastics_core.method.heatmap import check_pairs

COLUMNS: tuple[str, ...] = ("mean", "median", "min", "max", "std", "count")


def empty_patches() -> gpd.GeoDataFrame:
    """An empty result with the documented columns, crs EPSG:4326."""
    cols: dict[str, Any] = {c: np.array([], dtype=np.int64 if c == "count" else np.float64) for c in COLUMNS}
    return gpd.GeoDataFrame(cols, geometry=gpd.GeoSeries([], crs="EPSG:4326"), crs="EPSG:4326")


def masked_fraction(mask: np.ndarray, window: int, stride: int, rows: int, cols: int) -> np.ndarray:
    """(rows, cols) fraction of masked pixels in each window (summed-area table)."""
    sat = np.zeros((mask.shape[0] + 1, mask.shape[1] + 1), np.int64)
    sat[1:, 1:] = np.cumsum(np.cumsum(mask, axis=0, dtype=np.int64), axis=1)
    r0 = np.arange(rows) * stride
    c0 = np.arange(cols) * stride
    r1, c1 = r0 + window, c0 + window
    total = sat[np.ix_(r1, c1)] - sat[np.ix_(r0, c1)] - sat[np.ix_(r1, c0)] + sat[np.ix_(r0, c0)]
    return total / float(window * window)


def _pair_image(composites: Sequence[Any], a: int, b: int, channels: int) -> tuple[np.ndarray, np.ndarray]:
    """(h, w, channels) float32 image (masked pixels set to DN 0) and its (h, w) mask."""
    ca, cb = composites[a], composites[b]
    if channels == ca.data.shape[0]:
        img, mask = np.moveaxis(ca.data, 0, -1), ca.mask
    elif channels == ca.data.shape[0] + cb.data.shape[0]:
        img, mask = np.moveaxis(np.concatenate([ca.data, cb.data], axis=0), 0, -1), ca.mask | cb.mask
    else:
        raise ParameterError(
            f"patch model takes {channels} channels but composites have {ca.data.shape[0]} bands: "
            "use a patch model made for 12-band L1C composites"
        )
    img = np.array(img, dtype=np.float32, order="C")
    img[mask] = 0.0
    return img, mask


def _footprints(
    transform: Any, crs: str, rows: np.ndarray, cols: np.ndarray, stride: int, window: int
) -> np.ndarray:
    """Polygons (EPSG:4326) of windows at grid indices ``rows``/``cols`` (1-D arrays)."""
    r0 = (rows * stride).astype(np.float64)[:, None]
    c0 = (cols * stride).astype(np.float64)[:, None]
    dr = np.array([0, 0, window, window, 0], np.float64)[None, :]
    dc = np.array([0, window, window, 0, 0], np.float64)[None, :]
    px, py = c0 + dc, r0 + dr
    a, b, c, d, e, f = transform.a, transform.b, transform.c, transform.d, transform.e, transform.f
    x, y = a * px + b * py + c, d * px + e * py + f
    if str(crs).upper() not in ("EPSG:4326", "OGC:CRS84"):
        x, y = Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform(x, y)
    polygons: np.ndarray = shapely.polygons(np.stack([np.asarray(x), np.asarray(y)], axis=-1))
    return polygons


def pair_grid(
    composites: Sequence[Any], pair: tuple[int, int], model: Any, stride: int = 8, max_masked: float = 0.1
) -> np.ndarray:
    """One pair's patch scores: (rows, cols) float32, NaN where the window's masked fraction is
    >= ``max_masked`` (not scored). Window (r, c) starts at pixel (r * stride, c * stride)."""
    if stride < 1:
        raise ParameterError(f"patch stride must be >= 1 px, got {stride}")
    if not 0.0 < max_masked <= 1.0:
        raise ParameterError(f"max_masked must be in (0, 1], got {max_masked}")
    check_pairs(composites, [pair])
    window = int(model.window)
    h, w = composites[0].mask.shape
    rows, cols = max(0, (h - window) // stride + 1), max(0, (w - window) // stride + 1)
    out = np.full((rows, cols), np.nan, np.float32)
    if rows == 0 or cols == 0:
        return out
    img, mask = _pair_image(composites, pair[0], pair[1], int(model.channels))
    ok = masked_fraction(mask, window, stride, rows, cols) < max_masked
    if ok.any():
        out[ok] = model.predict_grid(img, stride=stride)[ok]
    return out


def grid_stats(
    grids: Sequence[np.ndarray], transform: Any, crs: str, stride: int, window: int
) -> gpd.GeoDataFrame:
    """GPW's per-location statistics over pairs: ``grids`` (one (rows, cols) float32 per pair,
    NaN = not scored, all the same shape) -> polygons (EPSG:4326; mean, median, min, max, std
    (population), count = pairs scored), row-major; locations no pair scored are dropped.
    ``transform``/``crs``: the tile grid (pixel units); window (r, c) covers pixels
    ``r * stride .. r * stride + window`` (rows) and likewise columns."""
    if not grids or grids[0].size == 0:
        return empty_patches()
    scores = np.stack([np.asarray(g, np.float32) for g in grids])
    count = np.isfinite(scores).sum(axis=0)
    keep = count > 0
    if not keep.any():
        return empty_patches()
    vals = scores[:, keep].astype(np.float64)  # (pairs, n)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        stats = {
            "mean": np.nanmean(vals, axis=0),
            "median": np.nanmedian(vals, axis=0),
            "min": np.nanmin(vals, axis=0),
            "max": np.nanmax(vals, axis=0),
            "std": np.nanstd(vals, axis=0),
        }
    rr, cc = np.nonzero(keep)
    geoms = _footprints(transform, crs, rr, cc, stride, window)
    data: dict[str, Any] = {**stats, "count": count[keep].astype(np.int64)}
    return gpd.GeoDataFrame(data, geometry=gpd.GeoSeries(geoms, crs="EPSG:4326"), crs="EPSG:4326")


def patch_scores(
    composites: Sequence[Any],
    pairs: Sequence[tuple[int, int]],
    model: Any,
    stride: int = 8,
    max_masked: float = 0.1,
) -> gpd.GeoDataFrame:
    """GeoDataFrame (Polygon, EPSG:4326; columns mean, median, min, max, std, count), row-major order:
    :func:`pair_grid` per pair, then :func:`grid_stats`.

    ``model`` is a :class:`plastics_core.models.patch_classifier.PatchClassifier` (``window``, ``channels``,
    ``predict_grid(image (h, w, c), stride) -> (rows, cols)``).
    """
    if stride < 1:
        raise ParameterError(f"patch stride must be >= 1 px, got {stride}")
    if not 0.0 < max_masked <= 1.0:
        raise ParameterError(f"max_masked must be in (0, 1], got {max_masked}")
    check_pairs(composites, pairs)
    if not composites or not pairs:
        return empty_patches()
    grids = [pair_grid(composites, p, model, stride, max_masked) for p in pairs]
    return grid_stats(grids, composites[0].transform, composites[0].crs, stride, int(model.window))


def keep_patches(gdf: gpd.GeoDataFrame, threshold: float = 0.3) -> gpd.GeoDataFrame:
    """Rows with ``mean > threshold`` (the seed kept mean > 0.3), index reset."""
    if not 0.0 <= threshold <= 1.0:
        raise ParameterError(f"patch threshold must be in [0, 1], got {threshold}")
    if len(gdf) == 0:
        return empty_patches()
    return gdf[gdf["mean"] > threshold].reset_index(drop=True)
