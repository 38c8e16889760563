"""A detection window over a span of spectrogram pairs: GPW's median over time, from stored pairs.

GPW's ``Detect(start_date, end_date)`` composited every period of its range, scored every pair
``(k, k + interval)`` and took the masked median over the pairs (``SpectrogramRun.__call__`` in
``detect/scripts/dl_utils.py``). Here each pair is computed once, in its own quarter (the
``descartes_run`` partition of the pair's first period), and stored per tile::

    <store>/descartes_run/<roi>/<quarter>/<run-hash>.json                 manifest (tiles, reasons)
    <store>/descartes_run/<roi>/<quarter>/<run-hash>/<tile>.tif           (1, y, x) float32 pixel scores
    <store>/descartes_run/<roi>/<quarter>/<run-hash>/<tile>.patchgrid.tif (1, rows, cols) patch scores

A window ``W`` aggregates the pairs whose first periods start at ``W - (pairs - 1)`` quarters ..
``W`` (:func:`plastics_core.geo.periods.window_pair_starts`): per tile, the pixel heatmap gets one
band per pair plus ``median`` (NaN-skipping median over the pairs = ``np.ma.median`` over the
masked pair images), and the patch scores get GPW's per-location statistics over the pairs
(:func:`plastics_core.method.patches.grid_stats`). Nothing here runs a model.
"""

from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import geopandas as gpd
import numpy as np
import pandas as pd
from affine import Affine
from upath import UPath

from plastics_core.errors import PlasticsError
from plastics_core.geo.raster import Raster
from plastics_core.method.patches import empty_patches, grid_stats, keep_patches
from plastics_core.storage.corrupt import load_json, load_raster
from plastics_core.storage.store import run_folder, tile_files


class MissingPairsError(PlasticsError):
    """A detection window needs pairs (quarters) that are not in the store yet."""


@dataclass
class WindowPairs:
    """The stored pairs of one window: ``starts`` (ISO dates of the pairs' first periods, oldest
    first), ``tiles`` (sorted tile keys), per tile the pair heatmaps and patch grids (one per
    start, in order), the empty reasons per start and tile, and the scene ids read."""

    starts: list[str]
    tiles: list[str]
    heatmaps: dict[str, list[Raster]] = field(default_factory=dict)
    grids: dict[str, list[Raster]] = field(default_factory=dict)
    empty_reasons: dict[str, dict[str, str]] = field(default_factory=dict)
    scene_ids: list[str] = field(default_factory=list)


def manifest_path(store: UPath, roi: str, start: str, run_hash: str) -> UPath:
    """``<store>/descartes_run/<roi>/<start>/<run-hash>.json``."""
    from plastics_core.storage.layout import JSON_EXT, asset_path

    return asset_path(store, "descartes_run", roi, start, run_hash, JSON_EXT)


def missing_starts(store: UPath, roi: str, starts: Sequence[dt.date | str], run_hash: str) -> list[str]:
    """The pair starts (ISO dates) with no ``descartes_run`` manifest in the store."""
    iso = [s.isoformat() if isinstance(s, dt.date) else str(s) for s in starts]
    return [s for s in iso if not manifest_path(store, roi, s, run_hash).exists()]


def load_window_pairs(store: UPath, roi: str, starts: Sequence[dt.date | str], run_hash: str) -> WindowPairs:
    """Read the stored pairs of ``starts``; raises :class:`MissingPairsError` naming the missing ones."""
    iso = [s.isoformat() if isinstance(s, dt.date) else str(s) for s in starts]
    missing = missing_starts(store, roi, iso, run_hash)
    if missing:
        raise MissingPairsError(
            f"window needs the pairs starting {', '.join(missing)} (descartes_run partitions {roi}|<date>) for run "
            f"hash {run_hash}: materialize them first (plastics run --roi {roi} --window ... does)"
        )
    manifests = [
        load_json(manifest_path(store, roi, s, run_hash)) for s in iso
    ]  # corrupt: moved aside, one line
    tiles = sorted({str(k) for m in manifests for k in m.get("tiles", [])})
    out = WindowPairs(iso, tiles)
    for s, m in zip(iso, manifests, strict=True):
        folder = run_folder(store, roi, s, run_hash)
        out.empty_reasons[s] = {str(k): str(v) for k, v in (m.get("empty_reasons") or {}).items()}
        out.scene_ids.extend(str(i) for i in (m.get("imagery") or {}).get("scene_ids", []))
        for key in tiles:
            files = tile_files(folder, key)
            if key not in m.get("tiles", []):
                continue
            markers = (files["summary"], manifest_path(store, roi, s, run_hash))  # recomputed by the rerun
            out.heatmaps.setdefault(key, []).append(load_raster(files["heatmap"], markers))
            out.grids.setdefault(key, []).append(load_raster(files["patch_grid"], markers))
    out.scene_ids = sorted(set(out.scene_ids))
    return out


def median_heatmap(pairs: Sequence[Raster], name: str = "") -> Raster:
    """One tile's pair heatmaps (each (1, y, x) float32, NaN = masked, one grid) -> Raster
    (n_pairs + 1, y, x): the pair bands (their descriptions kept) then ``median``, the median
    over the pairs that are valid at each pixel (NaN where none is)."""
    if not pairs:
        raise ValueError("median_heatmap needs at least one pair heatmap")
    first = pairs[0]
    stack = np.concatenate([np.asarray(p.data[:1], np.float32) for p in pairs])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN pixels stay NaN
        med = np.nanmedian(stack, axis=0).astype(np.float32)
    data = np.concatenate([stack, med[None]])
    labels = tuple(
        p.band_descriptions[0] if p.band_descriptions else f"pair_{i}" for i, p in enumerate(pairs)
    )
    tags = {**first.tags, "pairs": str(len(pairs))}
    return Raster(data, first.crs, first.transform, (*labels, "median"), np.nan, name or first.name, tags)


def window_heatmaps(wp: WindowPairs) -> list[Raster]:
    """:func:`median_heatmap` of every tile, in tile order."""
    return [median_heatmap(wp.heatmaps[k], k) for k in wp.tiles if wp.heatmaps.get(k)]


def tile_patches(grids: Sequence[Raster]) -> gpd.GeoDataFrame:
    """GPW's patch statistics over one tile's pair grids (:func:`plastics_core.method.patches.grid_stats`).
    The grids' transform is the tile grid scaled by ``stride`` (tags ``stride``, ``window``)."""
    if not grids:
        return empty_patches()
    g0 = grids[0]
    stride = int(g0.tags.get("stride", "8"))
    window = int(g0.tags.get("window", "45"))
    tile_transform = g0.transform @ Affine.scale(1.0 / stride)
    return grid_stats([np.asarray(g.data[0]) for g in grids], tile_transform, g0.crs, stride, window)


def window_patches(wp: WindowPairs, keep_threshold: float = 0.3) -> gpd.GeoDataFrame:
    """Every tile's patch statistics over the window's pairs, rows with ``mean > keep_threshold``
    (GPW kept mean > 0.3), EPSG:4326."""
    frames = [keep_patches(tile_patches(wp.grids[k]), keep_threshold) for k in wp.tiles if wp.grids.get(k)]
    frames = [f for f in frames if len(f)]
    if not frames:
        return empty_patches()
    return gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), geometry="geometry", crs="EPSG:4326")


def window_empty_reasons(wp: WindowPairs) -> dict[str, str]:
    """Tiles with no valid pixel in any pair -> the reasons of their pairs (joined)."""
    out: dict[str, str] = {}
    for key in wp.tiles:
        reasons = [wp.empty_reasons[s][key] for s in wp.starts if key in wp.empty_reasons.get(s, {})]
        if len(reasons) == len(wp.starts):
            out[key] = "; ".join(sorted(set(reasons)))
    return out
