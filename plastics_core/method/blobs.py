"""Blob detection on a pixel-classifier heatmap (Determinant-of-Hessian, as GPW did).

The heatmap band (float32 waste probability in [0, 1], NaN = masked) is thresholded
(values below ``pred_threshold`` and NaN -> 0) and passed to
``skimage.feature.blob_doh(img, min_sigma, max_sigma, threshold=area_threshold)``.

Sparse processing: a thresholded heatmap is mostly zero and the DoH response
of a zero neighbourhood is exactly zero, so only regions around non-zero pixels are run.
The raster is split into ``_BLOCK`` x ``_BLOCK`` px blocks; occupied blocks are dilated by
``_halo_px`` (2 DoH filter reaches + peak footprint + the blob-pruning distance) and
labelled (8-connected), so distinct components are further apart than any filter, peak or
pruning interaction. Each component is run on one crop: the bounding box of its occupied
blocks grown by 2 filter reaches, which holds every pixel its DoH maxima depend on, so
values (and pruning) equal those of the whole raster. A blob is kept only by the component
that owns its block, so overlapping crops never report a blob twice. A crop larger than
``window`` px is processed in ``window``-sized tiles with ``overlap`` px of halo; a tile keeps
blobs in its core only. Blob pruning across tile seams of such huge (dense) crops is the only
place results may differ from one whole-raster call. Crops run in float64 (a whole-raster
float32 integral image loses precision on large rasters).
"""

from __future__ import annotations

import math

import geopandas as gpd
import numpy as np
from affine import Affine
from pyproj import Transformer
from scipy import ndimage
from skimage.feature import blob_doh

from plastics_core.errors import ParameterError
from plastics_core.geo.raster import Raster
from plastics_core.method.blob_params import PRESETS as PRESETS  # re-exported
from plastics_core.method.blob_params import BlobParams as BlobParams  # re-exported
from plastics_core.method.blob_params import preset as preset  # re-exported

BLOB_COLUMNS = ["name", "lon", "lat", "sigma", "score", "row", "col"]
_BLOCK = 16


def _reach(params: BlobParams) -> int:
    """Pixels a DoH filter at ``max_sigma`` reaches from its centre (measured: sigma + 1)."""
    return int(math.ceil(params.max_sigma)) + 2


def _halo_px(params: BlobParams) -> int:
    """Separation that makes crops independent: 2 filter reaches + peak footprint + prune distance."""
    return 2 * _reach(params) + 2 + int(math.ceil(2 * math.sqrt(2) * params.max_sigma))


def threshold_heatmap(values: np.ndarray, pred_threshold: float) -> np.ndarray:
    """(y, x) float -> float32 copy with NaN and values < ``pred_threshold`` set to 0."""
    img = np.asarray(values, dtype=np.float32)
    keep = img >= pred_threshold  # NaN compares False
    return np.where(keep, img, np.float32(0.0))


def _doh(img: np.ndarray, params: BlobParams) -> np.ndarray:
    """(n, 3) rows (row, col, sigma) of blob_doh on one crop (run in float64)."""
    if not img.any():
        return np.empty((0, 3))
    return np.asarray(
        blob_doh(
            img.astype(np.float64),
            min_sigma=params.min_sigma,
            max_sigma=params.max_sigma,
            threshold=params.area_threshold,
        )
    )


def _tiles(start: int, stop: int, core: int) -> list[tuple[int, int]]:
    """Core intervals of at most ``core`` px covering [start, stop)."""
    return [(a, min(a + core, stop)) for a in range(start, stop, core)]


def find_blobs(
    img: np.ndarray, params: BlobParams, window: int = 2048, overlap: int | None = None
) -> np.ndarray:
    """Sparse, windowed DoH on a thresholded (y, x) image -> (n, 3) float (row, col, sigma), sorted."""
    if window < 16:
        raise ParameterError(f"window={window} px is too small; pass window >= 16")
    halo = (
        int(overlap) if overlap is not None else max(int(math.ceil(3 * params.max_sigma)), _reach(params) + 2)
    )
    if halo < _reach(params) + 2:
        raise ParameterError(
            f"overlap={halo} px is below the DoH reach; pass overlap >= {_reach(params) + 2}"
        )
    if 2 * halo >= window:
        raise ParameterError(f"window={window} must exceed 2 * overlap={2 * halo}; pass a larger window")
    ny, nx = img.shape
    nby, nbx = -(-ny // _BLOCK), -(-nx // _BLOCK)
    occ = np.zeros((nby * _BLOCK, nbx * _BLOCK), dtype=bool)
    occ[:ny, :nx] = img > 0
    blocks: np.ndarray = np.asarray(occ.reshape(nby, _BLOCK, nbx, _BLOCK).any(axis=(1, 3)))
    d = -(-_halo_px(params) // _BLOCK)
    grown = ndimage.binary_dilation(blocks, structure=np.ones((2 * d + 1, 2 * d + 1), dtype=bool))
    labels, _ = ndimage.label(grown, structure=np.ones((3, 3), dtype=int))
    found: list[np.ndarray] = []
    core = window - 2 * halo
    margin = 2 * _reach(params) + 2
    for lab, sl in enumerate(ndimage.find_objects(labels), start=1):
        if sl is None:
            continue
        br, bc = np.nonzero(blocks[sl] & (labels[sl] == lab))
        r0 = max((sl[0].start + int(br.min())) * _BLOCK - margin, 0)
        r1 = min((sl[0].start + int(br.max()) + 1) * _BLOCK + margin, ny)
        c0 = max((sl[1].start + int(bc.min())) * _BLOCK - margin, 0)
        c1 = min((sl[1].start + int(bc.max()) + 1) * _BLOCK + margin, nx)
        if r1 - r0 <= window and c1 - c0 <= window:
            cores = [((r0, r1), (c0, c1))]
        else:
            cores = [(rc, cc) for rc in _tiles(r0, r1, core) for cc in _tiles(c0, c1, core)]
        for (a0, a1), (b0, b1) in cores:
            w0, w1 = max(a0 - halo, r0), min(a1 + halo, r1)
            v0, v1 = max(b0 - halo, c0), min(b1 + halo, c1)
            res = _doh(img[w0:w1, v0:v1], params)
            if not len(res):
                continue
            res[:, 0] += w0
            res[:, 1] += v0
            rr, cc = res[:, 0].astype(int), res[:, 1].astype(int)
            own = labels[rr // _BLOCK, cc // _BLOCK] == lab
            own &= (rr >= a0) & (rr < a1) & (cc >= b0) & (cc < b1)
            found.append(res[own])
    if not found:
        return np.empty((0, 3))
    out = np.concatenate(found)
    return out[np.lexsort((out[:, 1], out[:, 0]))]


def _band_index(heatmap: Raster, band: str | int) -> int:
    if isinstance(band, int):
        if not 0 <= band < heatmap.data.shape[0]:
            raise ParameterError(f"band index {band} out of range for {heatmap.data.shape[0]} bands")
        return band
    if band not in heatmap.band_descriptions:
        if band == "median" and heatmap.data.shape[0] == 1:  # a plain single-band heatmap: its one band
            return 0
        raise ParameterError(f"heatmap has no band {band!r}; bands are {list(heatmap.band_descriptions)}")
    return heatmap.band_descriptions.index(band)


def empty_blobs() -> gpd.GeoDataFrame:
    """An empty blob table with the documented columns, EPSG:4326."""
    return gpd.GeoDataFrame(
        {c: [] for c in BLOB_COLUMNS}, geometry=gpd.points_from_xy([], []), crs="EPSG:4326"
    )


def detect_blobs(
    heatmap: Raster,
    params: BlobParams | None = None,
    band: str | int = "median",
    window: int = 2048,
    overlap: int | None = None,
    name_prefix: str = "blob",
) -> gpd.GeoDataFrame:
    """Blobs of one heatmap band -> Point GeoDataFrame, EPSG:4326.

    Columns: ``name`` (``<name_prefix>_<k>``, k = 1.. in (row, col) order), ``lon``/``lat``
    (pixel centre, degrees; the pixel's corner on the ``wgs84`` grid), ``sigma`` (px), ``score``
    (heatmap value at the pixel), ``row``/``col`` (pixel indices in the heatmap, or in its
    EPSG:4326 reprojection on the ``wgs84`` grid). ``overlap`` defaults to ceil(3 * max_sigma).
    """
    params = params or BlobParams()
    values, t, crs, at = heatmap.data[_band_index(heatmap, band)], heatmap.transform, heatmap.crs, 0.5
    if params.grid == "wgs84":
        (values, t), crs, at = wgs84_band(heatmap, _band_index(heatmap, band)), "EPSG:4326", 0.0
    img = threshold_heatmap(values, params.pred_threshold)
    found = find_blobs(img, params, window=window, overlap=overlap)
    if not len(found):
        return empty_blobs()
    rows, cols = found[:, 0].astype(int), found[:, 1].astype(int)
    xs = t.a * (cols + at) + t.b * (rows + at) + t.c
    ys = t.d * (cols + at) + t.e * (rows + at) + t.f
    to4326 = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    lon, lat = to4326.transform(np.asarray(xs, dtype=float), np.asarray(ys, dtype=float))
    data = {
        "name": [f"{name_prefix}_{k}" for k in range(1, len(found) + 1)],
        "lon": np.asarray(lon, dtype=float),
        "lat": np.asarray(lat, dtype=float),
        "sigma": found[:, 2].astype(float),
        "score": values[rows, cols].astype(float),
        "row": rows,
        "col": cols,
    }
    return gpd.GeoDataFrame(data, geometry=gpd.points_from_xy(data["lon"], data["lat"]), crs="EPSG:4326")


def wgs84_band(heatmap: Raster, index: int) -> tuple[np.ndarray, Affine]:
    """Band ``index`` of ``heatmap`` reprojected to EPSG:4326 -> ((y, x) float32, NaN outside or
    masked; its transform), nearest neighbour on the grid rasterio's ``calculate_default_transform``
    picks (about the source resolution): GPW's ``dl.Raster().raster(..., srs='WGS84')``."""
    from rasterio.transform import array_bounds
    from rasterio.warp import Resampling, calculate_default_transform, reproject

    src = np.asarray(heatmap.data[index], dtype=np.float32)
    h, w = src.shape
    west, south, east, north = array_bounds(h, w, heatmap.transform)
    dst_transform, dw, dh = calculate_default_transform(
        heatmap.crs, "EPSG:4326", w, h, west, south, east, north
    )
    dst = np.full((int(dh), int(dw)), np.nan, dtype=np.float32)
    reproject(
        src,
        dst,
        src_transform=heatmap.transform,
        src_crs=heatmap.crs,
        dst_transform=dst_transform,
        dst_crs="EPSG:4326",
        resampling=Resampling.nearest,
        src_nodata=np.nan,
        dst_nodata=np.nan,
    )
    return dst, dst_transform
