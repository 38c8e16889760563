"""One tile and one spectrogram pair: the result type, its empty rasters, composite loaders.

A :class:`TileResult` holds the pair's heatmap (one float32 band on the padded tile grid, NaN
nodata) and its patch-score grid (one float32 band, stride-scaled tile grid); a
:data:`CompositeLoader` gives a tile's composite of one period (from memory or a store cache).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from affine import Affine

from plastics_core.geo.periods import Period
from plastics_core.geo.raster import Raster
from plastics_core.geo.tiles import Tile
from plastics_core.imagery.base import ImagerySource
from plastics_core.method.composite import composite


@dataclass
class TileResult:
    """One tile and one spectrogram pair (the quarter's pair): ``heatmap`` (one float32 band,
    described ``"<first>|<partner>"`` by period labels, NaN nodata, padded tile grid),
    ``patch_grid`` (one float32 band of patch-classifier scores of the pair's first composite,
    NaN = not scored; pixel (r, c) is the window starting at tile pixel (r * stride, c * stride);
    transform = tile transform x stride; tags ``window`` and ``stride`` in pixels), scene ids
    read, stage seconds, and why it is empty (None when not)."""

    key: str
    heatmap: Raster
    patch_grid: Raster
    scene_ids: tuple[str, ...] = ()
    timings: dict[str, float] = field(default_factory=dict)
    empty_reason: str | None = None
    composites_computed: int = 0


def pair_label(periods: tuple[Period, Period]) -> str:
    """The band description of one pair: ``"<first.label>|<partner.label>"``."""
    return f"{periods[0].label}|{periods[1].label}"


def empty_heatmap(tile: Tile, periods: tuple[Period, Period]) -> Raster:
    """All-NaN one-pair heatmap on the tile grid."""
    data = np.full((1, *tile.shape), np.nan, np.float32)
    return Raster(data, tile.crs, tile.transform, (pair_label(periods),), name=tile.key)


def patch_grid_raster(tile: Tile, grid: np.ndarray, stride: int, window: int) -> Raster:
    """A (rows, cols) patch-score grid as a one-band Raster on the tile's grid scaled by ``stride``."""
    return Raster(
        np.asarray(grid, np.float32)[None],
        tile.crs,
        tile.transform @ Affine.scale(stride),
        ("patch_score",),
        name=tile.key,
        tags={"window": str(window), "stride": str(stride)},
    )


def empty_patch_grid(tile: Tile, stride: int, window: int = 45) -> Raster:
    rows = max(0, (tile.shape[0] - window) // stride + 1)
    cols = max(0, (tile.shape[1] - window) // stride + 1)
    return patch_grid_raster(tile, np.full((max(rows, 1), max(cols, 1)), np.nan, np.float32), stride, window)


#: ``(tile, period) -> (Composite or None when no scene, scene ids, computed now (False: from a cache))``
CompositeLoader = Callable[[Tile, Period], tuple[Any, tuple[str, ...], bool]]


class MemoryComposites:
    """A :data:`CompositeLoader` keeping each (tile, period) composite in memory: the pairs of one
    window share composites, as with the store's cache (:mod:`plastics_core.execution.composite_cache`)."""

    def __init__(self, source: ImagerySource, method: str) -> None:
        self.source, self.method = source, method
        self.cache: dict[tuple[str, Period], tuple[Any, tuple[str, ...]]] = {}
        self.computed = 0

    def __call__(self, tile: Tile, period: Period) -> tuple[Any, tuple[str, ...], bool]:
        key = (tile.key, period)
        if key in self.cache:
            return (*self.cache[key], False)
        stack = self.source.load(tile, period)
        comp = composite(stack, period, self.method) if len(stack.dates) else None
        self.cache[key] = (comp, tuple(stack.scene_ids))
        self.computed += 1
        return (*self.cache[key], True)
