"""The detection flow, as plain functions the Dagster assets and the CLI wrap thinly.

tile -> :func:`run_tile` (load two periods, composite, pixel heatmap, patch scores) ->
:func:`find_blobs` (DoH on the median band of every tile heatmap) -> :func:`find_candidates`
(merge, keep blobs confirmed by a patch) -> :func:`trace_contours` (monthly ensemble frames in
a box around each candidate -> outlines) -> :func:`enrich` (site id, address, areas).
Every GeoDataFrame is EPSG:4326; empty inputs give valid empty outputs. Models: Global
Plastic Watch (Earthrise Media), CC BY-NC 4.0, loaded from a model store
(:func:`plastics_core.execution.loaded.load_models`); a tile's result type and composite loaders
are in :mod:`plastics_core.method.tile_pair`.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Sequence
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from plastics_core.execution.loaded import Models, models_for
from plastics_core.geo.periods import Period, add_months, monthly_periods, pair_periods, window_span
from plastics_core.geo.raster import Raster
from plastics_core.geo.tiles import Tile, box_tile
from plastics_core.imagery.base import ImagerySource
from plastics_core.method.blobs import PRESETS, BlobParams, detect_blobs, empty_blobs
from plastics_core.method.candidates import select_candidates
from plastics_core.method.composite import composite
from plastics_core.method.contours import CONTOUR_COLUMNS, candidate_boxes, site_contours
from plastics_core.method.enrich import Geocoder, enrich_sites
from plastics_core.method.heatmap import pixel_heatmap
from plastics_core.method.patches import empty_patches, keep_patches, pair_grid
from plastics_core.method.recipes import contour_recipe, merge_method
from plastics_core.method.spectrogram import pixel_pairs
from plastics_core.method.tile_pair import (
    CompositeLoader,
    MemoryComposites,
    TileResult,
    empty_heatmap,
    empty_patch_grid,
    patch_grid_raster,
)
from plastics_core.models.ensemble import EnsembleClassifier
from plastics_core.models.store import ModelStore
from plastics_core.params import DetectParams as DetectParams

Progress = Callable[[int, int], None]
Window = dt.date | tuple[Period, Period]


def _periods(window: Window, params: DetectParams) -> tuple[Period, Period]:
    if isinstance(window, dt.date):
        return pair_periods(window, params.mosaic_period, params.spectrogram_interval)
    return window


def run_tile(
    tile: Tile,
    source: ImagerySource,
    models: Models | ModelStore,
    params: DetectParams,
    window: Window,
    progress: Progress | None = None,
    composites: CompositeLoader | None = None,
    log: Callable[[str], None] | None = None,
) -> TileResult:
    """The quarter's pair over one tile (a window start date or the pair's two periods): both
    composites (``composites(tile, period)`` when given, e.g. a store cache, else read and
    composited here), the pixel model on the pair, the patch model on the first composite.

    ``log``: called with one line after each phase (imagery + composites, pixel model, patch model)."""
    say = log or (lambda _line: None)
    periods = _periods(window, params)
    timings: dict[str, float] = {}
    window_px = 45
    grid_empty = empty_patch_grid(tile, params.stride, window_px)
    comps = []
    ids: list[str] = []
    made = 0
    for p in periods:
        t = time.perf_counter()
        if composites is not None:
            comp, scene_ids, fresh = composites(tile, p)
        else:
            stack = source.load(tile, p)
            scene_ids, fresh = tuple(stack.scene_ids), True
            timings["load_s"] = timings.get("load_s", 0.0) + time.perf_counter() - t
            t = time.perf_counter()
            comp = composite(stack, p, params.composite_method) if len(stack.dates) else None
            del stack
        timings["composite_s"] = timings.get("composite_s", 0.0) + time.perf_counter() - t
        made += int(fresh)
        ids.extend(scene_ids)
        if comp is None or comp.n_scenes == 0:
            return TileResult(
                tile.key,
                empty_heatmap(tile, periods),
                grid_empty,
                tuple(ids),
                timings,
                f"no scenes in {p.label}",
                made,
            )
        if comp.mask.all():
            return TileResult(
                tile.key,
                empty_heatmap(tile, periods),
                grid_empty,
                tuple(ids),
                timings,
                f"every pixel is cloud-masked in {p.label}",
                made,
            )
        comps.append(comp)
    say(f"{tile.key}: imagery read, {len(ids)} scenes ({timings.get('load_s', 0.0):.1f} s)")
    say(f"{tile.key}: composites built, {made} new ({timings['composite_s']:.1f} s)")
    m = models_for(models, params)
    t = time.perf_counter()
    hm = pixel_heatmap(comps, [(0, 1)], m.pixel, progress)
    heatmap = Raster(
        hm.data[:1], hm.crs, hm.transform, hm.band_descriptions[:1], hm.nodata, tile.key, dict(hm.tags)
    )
    timings["heatmap_s"] = time.perf_counter() - t
    say(f"{tile.key}: pixel model done ({timings['heatmap_s']:.1f} s)")
    t = time.perf_counter()
    grid = pair_grid(comps, (0, 1), m.patch, params.stride, params.max_masked)
    patch = patch_grid_raster(tile, grid, params.stride, int(m.patch.window))
    timings["patches_s"] = time.perf_counter() - t
    say(f"{tile.key}: patch model done ({timings['patches_s']:.1f} s)")
    reason = None if np.isfinite(heatmap.data[0]).any() else "no pixel valid in both composites"
    return TileResult(tile.key, heatmap, patch, tuple(ids), timings, reason, made)


def run_window(
    tiles: Sequence[Tile],
    source: ImagerySource,
    models: Models | ModelStore,
    params: DetectParams,
    window: dt.date,
) -> tuple[list[Raster], gpd.GeoDataFrame, dict[str, list[TileResult]]]:
    """A whole detection window without Dagster: per tile, the ``params.pairs`` pairs ending at
    ``window`` (:func:`run_tile`, composites shared in memory), then the median heatmap (pair bands +
    ``median``) and GPW's patch statistics over the pairs (kept where mean > the keep threshold).
    Returns (heatmaps, patches EPSG:4326, pair results per tile key)."""
    from plastics_core.geo.periods import window_pair_starts
    from plastics_core.method.window import median_heatmap, tile_patches

    starts = window_pair_starts(window, params.pairs, params.mosaic_period)
    m = models_for(models, params)
    keep = min(params.patch_keep_threshold, params.blob_params().patch_threshold)
    heatmaps, frames, results = [], [], {}
    for tile in tiles:
        loader = MemoryComposites(source, params.composite_method)
        pairs = [run_tile(tile, source, m, params, s, composites=loader) for s in starts]
        results[tile.key] = pairs
        heatmaps.append(median_heatmap([r.heatmap for r in pairs], tile.key))
        frames.append(keep_patches(tile_patches([r.patch_grid for r in pairs]), keep))
    frames = [f for f in frames if len(f)]
    patches = (
        gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), geometry="geometry", crs="EPSG:4326")
        if frames
        else empty_patches()
    )
    return heatmaps, patches, results


def find_blobs(
    heatmaps: Sequence[Raster], params: BlobParams | DetectParams | None = None, name_prefix: str = "blob"
) -> gpd.GeoDataFrame:
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


def find_candidates(
    blobs: gpd.GeoDataFrame,
    patches: gpd.GeoDataFrame,
    params: DetectParams | float | None = None,
    merge_radius: float = 0.005,
) -> gpd.GeoDataFrame:
    """Merged blobs inside a patch with mean > patch threshold (float, or from DetectParams)."""
    merge = "chain"
    if isinstance(params, DetectParams):
        threshold, merge_radius = params.blob_params().patch_threshold, params.merge_radius
        merge = merge_method(params.recipe)
    else:
        threshold = PRESETS["high"].patch_threshold if params is None else float(params)
    return select_candidates(blobs, patches, threshold, merge_radius, merge)


def contour_frames(
    stack: Any, span: Period, params: DetectParams, ensemble: EnsembleClassifier
) -> tuple[np.ndarray, list[dt.date]]:
    """Ensemble-median waste probability per monthly frame -> ((n_frames, y, x) float32, NaN
    masked; the frames' first days). Frame m pairs the composite of months m .. m + k - 1 with the
    one ``lag`` months later (k, lag and the composite method: :func:`recipes.contour_recipe`;
    the paper's default: 3-month min composites 6 months apart); frames run while the partner
    ends within ``span``."""
    recipe = contour_recipe(
        params.recipe, params.mosaic_period, params.spectrogram_interval, params.composite_method
    )
    cache: dict[Period, Any] = {}

    def made(start: dt.date) -> Any:
        period = Period(start, add_months(start, recipe.composite_months))
        if period not in cache:
            cache[period] = composite(stack, period, recipe.composite_method)
        return cache[period]

    frames, dates = [], []
    for m in monthly_periods(span):
        if add_months(m.start, recipe.lag_months + recipe.composite_months) > span.end:
            break
        c0, c1 = made(m.start), made(add_months(m.start, recipe.lag_months))
        cache.pop(Period(m.start, add_months(m.start, recipe.composite_months)))
        frame = np.full(c0.mask.shape, np.nan, np.float32)
        x, valid = pixel_pairs(c0, c1)
        if len(x):
            frame[valid] = ensemble.predict_median(x)
        frames.append(frame)
        dates.append(m.start)
    h, w = stack.shape
    return (np.stack(frames) if frames else np.zeros((0, h, w), np.float32)), dates


def trace_contours(
    candidates: gpd.GeoDataFrame,
    source: ImagerySource,
    models: Models | ModelStore,
    params: DetectParams,
    window: dt.date,
) -> gpd.GeoDataFrame:
    """Monthly outlines of each candidate ((Multi)Polygon, EPSG:4326; name, date, frame, area_km2).

    Per candidate: a ``rect_width`` box on a UTM grid, the scenes of the window's whole span (the
    first period of its oldest pair to the end of its own pair's partner: ``pairs`` quarters + the
    pair lag, enough months for the 8-frame rolling mask), the recipe's monthly frames
    (:func:`contour_frames`), then :func:`contours.site_contours` with the recipe's mask, blur and skip.
    """
    empty = gpd.GeoDataFrame({c: [] for c in CONTOUR_COLUMNS}, geometry=[], crs="EPSG:4326")
    if candidates is None or len(candidates) == 0:
        return empty
    ens = models_for(models, params, ensemble=True).ensemble
    assert ens is not None
    recipe = contour_recipe(
        params.recipe, params.mosaic_period, params.spectrogram_interval, params.composite_method
    )
    from plastics_core.geo.periods import window_pair_starts

    first = window_pair_starts(window, params.pairs, params.mosaic_period)[0]
    span = Period(first, window_span(window, params.mosaic_period, params.spectrogram_interval).end)
    out = []
    for _, row in candidate_boxes(candidates, params.rect_width).iterrows():
        tile = box_tile(float(row["lon"]), float(row["lat"]), params.rect_width, str(row["name"]))
        stack = source.load(tile, span)
        if not len(stack.dates):
            continue
        frames, dates = contour_frames(stack, span, params, ens)
        if len(frames):
            out.append(
                site_contours(
                    frames,
                    dates,
                    tile.crs,
                    tile.transform,
                    str(row["name"]),
                    blur_sigma=recipe.blur_sigma,
                    max_masked=recipe.max_masked,
                    mask_align=recipe.mask_align,
                )
            )
    out = [g for g in out if len(g)]
    if not out:
        return empty
    return gpd.GeoDataFrame(pd.concat(out, ignore_index=True), geometry="geometry", crs="EPSG:4326")


def enrich(
    candidates: gpd.GeoDataFrame, contours: gpd.GeoDataFrame | None, geocoder: Geocoder
) -> gpd.GeoDataFrame:
    """Candidates with site id, address and contour area stats (:func:`enrich.enrich_sites`)."""
    return enrich_sites(candidates, contours, geocoder)
