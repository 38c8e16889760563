"""The detection flow, as plain functions the Dagster assets and the CLI wrap thinly.

tile -> :func:`run_tile` (load two periods, composite, pixel heatmap, patch scores) ->
:func:`find_blobs` (DoH on the median band of every tile heatmap) -> :func:`find_candidates`
(merge, keep blobs confirmed by a patch) -> :func:`trace_contours` (monthly ensemble frames in
a box around each candidate -> outlines) -> :func:`enrich` (site id, address, areas).
Every GeoDataFrame is EPSG:4326; empty inputs give valid empty outputs. Models: Global
Plastic Watch (Earthrise Media), CC BY-NC 4.0, loaded from a model store.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
from affine import Affine
from pyproj import Transformer

from plastics_core.blobs import PRESETS, BlobParams, detect_blobs, empty_blobs
from plastics_core.composite import composite
from plastics_core.contours import CONTOUR_COLUMNS, candidate_boxes, site_contours
from plastics_core.enrich import Geocoder, enrich_sites
from plastics_core.errors import ParameterError
from plastics_core.heatmap import pixel_heatmap
from plastics_core.imagery.base import ImagerySource
from plastics_core.models.infer import EnsembleClassifier, PatchClassifier, PixelClassifier
from plastics_core.models.store import ModelStore
from plastics_core.params import DetectParams as DetectParams
from plastics_core.patches import empty_patches, keep_patches, patch_scores
from plastics_core.periods import Period, add_months, monthly_periods, pair_periods, window_span
from plastics_core.raster import Raster
from plastics_core.sites import select_candidates
from plastics_core.spectrogram import pixel_pairs
from plastics_core.tiles import Tile

Progress = Callable[[int, int], None]
Window = dt.date | tuple[Period, Period]


@dataclass
class Models:
    """Loaded classifiers; ``ensemble`` only when contours are traced."""

    pixel: PixelClassifier
    patch: PatchClassifier
    ensemble: EnsembleClassifier | None = None


_MODEL_CACHE: dict[tuple[str, str], Any] = {}


def _cached(ref: Any, build: Callable[[Any], Any]) -> Any:
    key = (str(ref.path), str(ref.sha256))
    if key not in _MODEL_CACHE:
        _MODEL_CACHE[key] = build(ref)
    return _MODEL_CACHE[key]


def load_models(store: ModelStore, params: DetectParams, ensemble: bool = False) -> Models:
    """Resolve (sha256-verified) and load the run's models; loaded models are cached per file."""
    ens = None
    if ensemble:
        refs = store.resolve_ensemble(params.ensemble_model)
        ens = EnsembleClassifier([_cached(r, PixelClassifier.from_ref) for r in refs])
    return Models(_cached(store.resolve(params.model), PixelClassifier.from_ref),
                  _cached(store.resolve(params.patch_model), PatchClassifier.from_ref), ens)


def _models(models: Models | ModelStore, params: DetectParams, ensemble: bool = False) -> Models:
    if isinstance(models, Models) and (models.ensemble is not None or not ensemble):
        return models
    store = models if isinstance(models, ModelStore) else None
    if store is None:
        raise ParameterError("contours need the ensemble: pass a ModelStore or Models(ensemble=...)")
    return load_models(store, params, ensemble)


def _periods(window: Window, params: DetectParams) -> tuple[Period, Period]:
    if isinstance(window, dt.date):
        return pair_periods(window, params.mosaic_period, params.spectrogram_interval)
    return window


@dataclass
class TileResult:
    """One tile: heatmap (pair band + ``median``, NaN nodata, padded tile grid), kept patches
    (EPSG:4326), scene ids read, stage seconds, and why it is empty (None when not)."""

    key: str
    heatmap: Raster
    patches: gpd.GeoDataFrame
    scene_ids: tuple[str, ...] = ()
    timings: dict[str, float] = field(default_factory=dict)
    empty_reason: str | None = None


def empty_heatmap(tile: Tile, periods: tuple[Period, Period]) -> Raster:
    """All-NaN heatmap (pair band + median) on the tile grid."""
    data = np.full((2, *tile.shape), np.nan, np.float32)
    label = f"{periods[0].label}|{periods[1].label}"
    return Raster(data, tile.crs, tile.transform, (label, "median"), name=tile.key)


def run_tile(tile: Tile, source: ImagerySource, models: Models | ModelStore, params: DetectParams,
             window: Window, progress: Progress | None = None,
             log: Callable[[str], None] | None = None) -> TileResult:
    """Models over one tile and window (a window start date or the two periods).

    ``log``: called with one line after each phase (imagery read, composites, pixel model, patch model)."""
    say = log or (lambda _line: None)
    periods = _periods(window, params)
    timings: dict[str, float] = {}
    t = time.perf_counter()
    stacks = [source.load(tile, p) for p in periods]
    timings["load_s"] = time.perf_counter() - t
    say(f"{tile.key}: imagery read, {' + '.join(str(len(s.dates)) for s in stacks)} scenes "
        f"({timings['load_s']:.1f} s)")
    ids = tuple(i for s in stacks for i in s.scene_ids)
    for p, s in zip(periods, stacks, strict=True):
        if not len(s.dates):
            return TileResult(tile.key, empty_heatmap(tile, periods), empty_patches(), ids, timings,
                              f"no scenes in {p.label}")
    t = time.perf_counter()
    comps = [composite(s, p, params.composite_method) for s, p in zip(stacks, periods, strict=True)]
    del stacks
    timings["composite_s"] = time.perf_counter() - t
    say(f"{tile.key}: composites built ({timings['composite_s']:.1f} s)")
    for p, c in zip(periods, comps, strict=True):
        if c.mask.all():
            return TileResult(tile.key, empty_heatmap(tile, periods), empty_patches(), ids, timings,
                              f"every pixel is cloud-masked in {p.label}")
    m = _models(models, params)
    t = time.perf_counter()
    hm = pixel_heatmap(comps, [(0, 1)], m.pixel, progress)
    heatmap = Raster(hm.data, hm.crs, hm.transform, hm.band_descriptions, hm.nodata, tile.key, dict(hm.tags))
    timings["heatmap_s"] = time.perf_counter() - t
    say(f"{tile.key}: pixel model done ({timings['heatmap_s']:.1f} s)")
    t = time.perf_counter()
    patches = patch_scores(comps, [(0, 1)], m.patch, params.stride, params.max_masked)
    keep = min(params.patch_keep_threshold, params.blob_params().patch_threshold)  # never drop a candidate's patch
    patches = keep_patches(patches, keep).reset_index(drop=True)
    timings["patches_s"] = time.perf_counter() - t
    say(f"{tile.key}: patch model done, {len(patches)} patches kept ({timings['patches_s']:.1f} s)")
    reason = None if np.isfinite(heatmap.data[-1]).any() else "no pixel valid in both composites"
    return TileResult(tile.key, heatmap, patches, ids, timings, reason)


def find_blobs(heatmaps: Sequence[Raster], params: BlobParams | DetectParams | None = None,
               name_prefix: str = "blob") -> gpd.GeoDataFrame:
    """DoH blobs on the ``median`` band of every heatmap -> Point GeoDataFrame, EPSG:4326.

    Names ``<name_prefix>_<k>`` are numbered after sorting by (lat descending, lon), so they
    do not depend on tile order.
    """
    bp = params.blob_params() if isinstance(params, DetectParams) else (params or PRESETS["high"])
    frames = [g for g in (detect_blobs(h, bp) for h in heatmaps) if len(g)]
    if not frames:
        return empty_blobs()
    gdf = pd.concat(frames, ignore_index=True).sort_values(["lat", "lon"], ascending=[False, True])
    gdf["name"] = [f"{name_prefix}_{k}" for k in range(1, len(gdf) + 1)]
    return gpd.GeoDataFrame(gdf.reset_index(drop=True), geometry="geometry", crs="EPSG:4326")


def find_candidates(blobs: gpd.GeoDataFrame, patches: gpd.GeoDataFrame,
                    params: DetectParams | float | None = None, merge_radius: float = 0.005) -> gpd.GeoDataFrame:
    """Merged blobs inside a patch with mean > patch threshold (float, or from DetectParams)."""
    if isinstance(params, DetectParams):
        threshold, merge_radius = params.blob_params().patch_threshold, params.merge_radius
    else:
        threshold = PRESETS["high"].patch_threshold if params is None else float(params)
    return select_candidates(blobs, patches, threshold, merge_radius)


def box_tile(lon: float, lat: float, width_deg: float, name: str, resolution: float = 10.0) -> Tile:
    """A square UTM grid (``resolution`` m, snapped) covering a ``width_deg`` box at (lon, lat)."""
    from shapely.geometry import box

    zone = int((lon + 180) // 6) + 1
    crs = f"EPSG:{(32600 if lat >= 0 else 32700) + zone}"
    x, y = Transformer.from_crs("EPSG:4326", crs, always_xy=True).transform(lon, lat)
    half = width_deg / 2 * 111_320.0  # metres per degree of latitude (and longitude at the equator)
    n = int(math.ceil(2 * half / resolution))
    left = math.floor((x - half) / resolution) * resolution
    top = math.ceil((y + half) / resolution) * resolution
    transform = Affine(resolution, 0.0, left, 0.0, -resolution, top)
    to4326 = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    (x0, x1), (y0, y1) = to4326.transform([left, left + n * resolution], [top - n * resolution, top])
    return Tile(f"box:{name}", crs, transform, n, 0, resolution, box(x0, y0, x1, y1))


def contour_frames(stack: Any, span: Period, params: DetectParams,
                   ensemble: EnsembleClassifier) -> tuple[np.ndarray, list[dt.date]]:
    """Ensemble-median waste probability per monthly pair (m, m + mosaic * interval months)
    -> ((n_frames, y, x) float32, NaN masked; first-month dates)."""
    lag = params.mosaic_period * params.spectrogram_interval
    months = monthly_periods(span)
    frames, dates = [], []
    for m in months:
        partner = Period(add_months(m.start, lag), add_months(m.start, lag + 1))
        if partner.end > span.end:
            break
        c0, c1 = composite(stack, m, params.composite_method), composite(stack, partner, params.composite_method)
        frame = np.full(c0.mask.shape, np.nan, np.float32)
        x, valid = pixel_pairs(c0, c1)
        if len(x):
            frame[valid] = ensemble.predict_median(x)
        frames.append(frame)
        dates.append(m.start)
    h, w = stack.shape
    return (np.stack(frames) if frames else np.zeros((0, h, w), np.float32)), dates


def trace_contours(candidates: gpd.GeoDataFrame, source: ImagerySource, models: Models | ModelStore,
                   params: DetectParams, window: dt.date) -> gpd.GeoDataFrame:
    """Monthly outlines of each candidate ((Multi)Polygon, EPSG:4326; name, date, frame, area_km2).

    Per candidate: a ``rect_width`` box on a UTM grid, the window span's scenes, monthly
    composites, ensemble median per monthly pair, then :func:`contours.site_contours`.
    """
    empty = gpd.GeoDataFrame({c: [] for c in CONTOUR_COLUMNS}, geometry=[], crs="EPSG:4326")
    if candidates is None or len(candidates) == 0:
        return empty
    ens = _models(models, params, ensemble=True).ensemble
    assert ens is not None
    span = window_span(window, params.mosaic_period, params.spectrogram_interval)
    out = []
    for _, row in candidate_boxes(candidates, params.rect_width).iterrows():
        tile = box_tile(float(row["lon"]), float(row["lat"]), params.rect_width, str(row["name"]))
        stack = source.load(tile, span)
        if not len(stack.dates):
            continue
        frames, dates = contour_frames(stack, span, params, ens)
        if len(frames):
            out.append(site_contours(frames, dates, tile.crs, tile.transform, str(row["name"])))
    out = [g for g in out if len(g)]
    if not out:
        return empty
    return gpd.GeoDataFrame(pd.concat(out, ignore_index=True), geometry="geometry", crs="EPSG:4326")


def enrich(candidates: gpd.GeoDataFrame, contours: gpd.GeoDataFrame | None,
           geocoder: Geocoder) -> gpd.GeoDataFrame:
    """Candidates with site id, address and contour area stats (:func:`enrich.enrich_sites`)."""
    return enrich_sites(candidates, contours, geocoder)
