"""Composites cached in the store, so a period's mosaic is made once per tile and run hash.

A spectrogram pair ``(k, k + interval)`` shares its composites with the pairs of other quarters
(the partner of quarter ``k`` is the first composite of quarter ``k + interval``), so each
composite is stored when made and read back by every later pair::

    <store>/composites/<roi>/<run-hash>/<tile>/<period label>.npz

The run hash covers the imagery source and every parameter (a changed source or method gives
another folder). Each ``.npz`` holds ``data`` (12, y, x) (uint16 when every value is a whole DN,
as for the ``min`` method, else float32), ``mask`` (y, x) bool, ``n_scenes`` and ``scene_ids``;
the grid is the tile's. Writes are atomic (:func:`plastics_core.storage.store.atomic_write`).
"""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
from upath import UPath

from plastics_core.geo.periods import Period
from plastics_core.geo.tiles import Tile
from plastics_core.method.composite import Composite, composite
from plastics_core.storage.store import atomic_write, read_bytes, safe_name


def cache_folder(store: UPath, roi: str, run_hash: str, tile_key: str) -> UPath:
    """``<store>/composites/<roi>/<run-hash>/<tile>``."""
    return store / "composites" / roi / run_hash / safe_name(tile_key)


def composite_bytes(comp: Composite, scene_ids: tuple[str, ...]) -> bytes:
    """One composite as ``.npz`` bytes (uint16 data when lossless)."""
    data = comp.data
    if data.size and np.array_equal(data, np.round(data)) and data.min() >= 0 and data.max() <= 65535:
        data = data.astype(np.uint16)
    buf = io.BytesIO()
    np.savez(
        buf,
        data=data,
        mask=comp.mask,
        n_scenes=np.int64(comp.n_scenes),
        scene_ids=np.array(json.dumps(list(scene_ids))),
    )
    return buf.getvalue()


def read_composite(raw: bytes, tile: Tile, period: Period) -> tuple[Composite, tuple[str, ...]]:
    """``.npz`` bytes -> (Composite on ``tile``'s grid, scene ids)."""
    with np.load(io.BytesIO(raw)) as z:
        comp = Composite(
            z["data"].astype(np.float32),
            z["mask"].astype(bool),
            period,
            tile.crs,
            tile.transform,
            int(z["n_scenes"]),
        )
        ids = tuple(str(i) for i in json.loads(str(z["scene_ids"])))
    return comp, ids


class CompositeCache:
    """A :data:`plastics_core.method.tile_pair.CompositeLoader` over one tile's cache folder: reads the
    stored composite of a period, or loads the scenes, composites (``method``) and stores it.
    ``computed`` counts the composites this object made."""

    def __init__(self, folder: UPath, source: Any, method: str) -> None:
        self.folder = folder
        self.source = source
        self.method = method
        self.computed = 0

    def __call__(self, tile: Tile, period: Period) -> tuple[Composite | None, tuple[str, ...], bool]:
        path = self.folder / f"{period.label}.npz"
        if path.exists():
            comp, ids = read_composite(read_bytes(path), tile, period)
            return (comp if comp.n_scenes else None), ids, False
        stack = self.source.load(tile, period)
        ids = tuple(str(i) for i in stack.scene_ids)
        comp = composite(stack, period, self.method)
        del stack
        atomic_write(path, composite_bytes(comp, ids))
        self.computed += 1
        return (comp if comp.n_scenes else None), ids, True
