"""Per-pixel temporal composites of a SceneStack over one Period.

A :class:`Composite` is one cloud-free mosaic of a tile: ``data`` (12, y, x) float32
Sentinel-2 L1C DN in model band order (see :mod:`plastics_core.geo.bands`), ``mask`` (y, x)
bool (True = no unmasked scene saw the pixel; ``data`` is 0 there), on the stack's grid
(``crs``, ``transform`` passed through unchanged).

Methods (only scenes whose date lies in the period; masked pixels never contribute):

- ``min`` (default): per band, the minimum DN over the pixel's unmasked scenes. Equal to
  ``np.ma.min`` over time.
- ``median``: per band, the median over the pixel's unmasked scenes (mean of the two middle
  values for an even count). Equal to ``np.ma.median`` over time, cast to float32.
- ``min_masked``: the *spectrally consistent* minimum: per pixel, the single unmasked scene
  with the lowest visible brightness ``B02 + B03 + B04`` is chosen (ties: the earliest scene)
  and all 12 bands are taken from it. Unlike ``min``, bands are never mixed across dates, so
  a dark cloud-shadow value in one band cannot pair with another date's other bands.

Implementation (exact, no np.ma): pixels are processed in chunks of the flattened grid,
band by band, on a small thread pool (numpy releases the GIL). ``min`` replaces masked
values by the dtype's largest value (uint16: one OR with 0xFFFF) and reduces over time.
``median`` replaces half of a pixel's masked values by the lowest and half by the highest
value, so the valid values' median sits on fixed middle ranks of the time-sorted column; a
Batcher odd-even merge sorting network over time (vectorised min/max over pixels), pruned
to those two ranks, finds them without a per-pixel sort.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import numpy as np
from affine import Affine

from plastics_core.errors import ParameterError
from plastics_core.geo.bands import BAND_NAMES
from plastics_core.geo.periods import Period
from plastics_core.geo.scenes import SceneStack
from plastics_core.threads import map_threads, usable_threads

Method = Literal["min", "median", "min_masked"]
METHODS: tuple[str, ...] = ("min", "median", "min_masked")
#: Pixels per work unit (flattened grid); small enough to stay in cache.
CHUNK_PIXELS = 65536
_BRIGHTNESS_BANDS = tuple(BAND_NAMES.index(b) for b in ("B02", "B03", "B04"))


@dataclass(frozen=True)
class Composite:
    """A composite of one tile over one period.

    - ``data``: (band, y, x) float32 DN, 12 bands in model order; 0 where masked.
    - ``mask``: (y, x) bool, True where no unmasked in-period scene covered the pixel.
    - ``period``: the half-open period composited.
    - ``crs`` / ``transform``: the grid (same as the input SceneStack).
    - ``n_scenes``: number of in-period scenes (including fully masked ones).
    """

    data: np.ndarray
    mask: np.ndarray
    period: Period
    crs: str
    transform: Affine
    n_scenes: int

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width) in pixels."""
        return int(self.data.shape[1]), int(self.data.shape[2])


def _threads() -> int:
    """Worker threads: the CPUs this process may use (``$PLASTICS_THREADS`` overrides), at most 4."""
    return usable_threads(cap=4)


@lru_cache(maxsize=64)
def _network(n: int, needed: tuple[int, ...]) -> tuple[tuple[int, int, bool, bool], ...]:
    """Batcher odd-even merge sort comparators for ``n`` inputs, pruned to ``needed`` outputs.

    Returns ``(lo, hi, need_min, need_max)``: after the comparator position ``lo`` holds the
    min and ``hi`` the max; only the flagged outputs are computed.
    """
    p2 = 1
    while p2 < n:
        p2 *= 2
    comps: list[tuple[int, int]] = []
    p = 1
    while p < p2:
        k = p
        while k >= 1:
            for j in range(k % p, p2 - k, 2 * k):
                for i in range(min(k, p2 - j - k)):
                    if (i + j) // (2 * p) == (i + j + k) // (2 * p) and i + j + k < n:
                        comps.append((i + j, i + j + k))  # indices >= n would be +inf: no-op
            k //= 2
        p *= 2
    need = set(needed)
    pruned: list[tuple[int, int, bool, bool]] = []
    for a, b in reversed(comps):
        na, nb = a in need, b in need
        if na or nb:
            pruned.append((a, b, na, nb))
            need.update((a, b))
    return tuple(reversed(pruned))


def _limits(dtype: np.dtype) -> tuple[np.generic, np.generic]:
    """(lowest, highest) value of ``dtype``: the sentinels for masked entries."""
    if np.issubdtype(dtype, np.floating):
        return dtype.type(-np.inf), dtype.type(np.inf)
    info = np.iinfo(dtype)
    return dtype.type(info.min), dtype.type(info.max)


class _ChunkFill:
    """Masked-entry replacement for one pixel chunk, shared by all bands.

    ``min``: every masked entry becomes the dtype's highest value. ``median``: of a pixel's
    ``mc`` masked entries the first ``mc // 2`` (in time order) become the lowest value and
    the rest the highest, so the valid values sit in the middle of the sorted column and the
    median lands on fixed ranks (see :func:`_median_rows`).
    """

    def __init__(self, mask: np.ndarray, dtype: np.dtype, balanced: bool) -> None:
        self.dtype = dtype
        self.low_value, self.high_value = _limits(dtype)
        if balanced:
            n_masked = mask.sum(axis=0)
            self.low = mask & (np.cumsum(mask, axis=0) <= n_masked // 2)
            self.high = mask & ~self.low
            self.masked_odd = (n_masked % 2).astype(bool)
        else:
            self.low = np.zeros_like(mask)
            self.high = mask
            self.masked_odd = np.zeros(mask.shape[1], dtype=bool)
        self.uint16 = dtype == np.uint16
        if self.uint16:  # bit tricks: (v & keep) | high, two fast ops
            self.keep_bits = (~self.low).astype(np.uint16) * np.uint16(0xFFFF)
            self.high_bits = self.high.astype(np.uint16) * np.uint16(0xFFFF)

    def __call__(self, values: np.ndarray) -> np.ndarray:
        """A filled copy of ``values`` (t, n)."""
        if self.uint16:
            filled: np.ndarray = np.bitwise_and(values, self.keep_bits)
            filled |= self.high_bits
            return filled
        out = values.copy()
        np.copyto(out, self.low_value, where=self.low)
        np.copyto(out, self.high_value, where=self.high)
        return out


def _median_rows(rows: list[np.ndarray], masked_odd: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Median of each pixel's valid values from balanced-filled ``rows`` (t arrays of n).

    With ``L = mc // 2`` low and ``mc - L`` high sentinels, the valid values occupy ranks
    ``L .. L + c - 1`` and their median ranks are: t even -> (q, t//2), or (q, q) when ``mc``
    is odd; t odd -> (q, q), or (q - 1, q) when ``mc`` is odd; with ``q = (t - 1) // 2``.
    """
    t = len(rows)
    q = (t - 1) // 2
    needed = (q, t // 2) if t % 2 == 0 else (max(q - 1, 0), q)
    buf = np.empty_like(rows[0])
    for a, b, na, nb in _network(t, needed):
        if na and nb:
            np.minimum(rows[a], rows[b], out=buf)
            np.maximum(rows[a], rows[b], out=rows[b])
            rows[a], buf = buf, rows[a]
        elif na:
            np.minimum(rows[a], rows[b], out=rows[a])
        else:
            np.maximum(rows[a], rows[b], out=rows[b])
    if t % 2 == 0:
        lo, hi = rows[q], np.where(masked_odd, rows[q], rows[t // 2])
    else:
        lo, hi = (np.where(masked_odd, rows[q - 1], rows[q]) if q > 0 else rows[q]), rows[q]
    calc = dtype if np.issubdtype(dtype, np.floating) else np.dtype(np.float32)
    # np.ma.median sums the two middle values in the input dtype (floats) then halves.
    with np.errstate(invalid="ignore"):  # all-masked float pixels: -inf + inf, zeroed later
        return ((lo.astype(calc) + hi.astype(calc)) / calc.type(2)).astype(np.float32, copy=False)


def _composite_chunk(
    values: np.ndarray, mask: np.ndarray, idx: np.ndarray | slice, method: str, out: np.ndarray, sl: slice
) -> None:
    """Composite pixels ``sl`` of the flattened grid (scenes ``idx``) into ``out`` (band, n_pixels).

    ``values`` is (time, band, n_pixels), ``mask`` (time, n_pixels).
    """
    m = mask[idx, sl]
    nb = values.shape[1]
    empty = m.all(axis=0)
    if method == "min_masked":
        bright = np.zeros(m.shape, dtype=np.float64)
        for b in _BRIGHTNESS_BANDS:
            bright += values[idx, b, sl]
        bright[m] = np.inf
        pick = np.argmin(bright, axis=0)[None, :]
        for b in range(nb):
            out[b, sl] = np.take_along_axis(values[idx, b, sl], pick, axis=0)[0]
    else:
        fill = _ChunkFill(m, values.dtype, balanced=method == "median")
        for b in range(nb):
            filled = fill(values[idx, b, sl])
            if method == "min":
                out[b, sl] = np.minimum.reduce(filled, axis=0)
            else:
                out[b, sl] = _median_rows(list(filled), fill.masked_odd, values.dtype)
    out[:, sl][:, empty] = 0.0


def composite(stack: SceneStack, period: Period, method: Method | str = "min") -> Composite:
    """Composite the scenes of ``stack`` dated within ``period`` (see the module docstring).

    Returns a :class:`Composite` on the stack's grid; zero in-period scenes give an
    all-masked composite (data 0, mask True).
    """
    if method not in METHODS:
        raise ParameterError(f"unknown composite method {method!r}: use one of {', '.join(METHODS)}")
    idx = np.flatnonzero([period.contains(d) for d in stack.dates])
    t = len(idx)
    nb = stack.data.shape[1]
    h, w = stack.shape
    out = np.zeros((nb, h * w), dtype=np.float32)
    if t == 0:
        return Composite(
            out.reshape(nb, h, w), np.ones((h, w), dtype=bool), period, stack.crs, stack.transform, 0
        )
    # in-period scenes are consecutive when dates ascend: a slice avoids copying
    sel: np.ndarray | slice = slice(int(idx[0]), int(idx[-1]) + 1) if np.all(np.diff(idx) == 1) else idx
    values = stack.data.reshape(stack.data.shape[0], nb, h * w)
    mask = stack.mask.reshape(stack.data.shape[0], h * w)
    slices = [slice(s, min(s + CHUNK_PIXELS, h * w)) for s in range(0, h * w, CHUNK_PIXELS)]
    nthreads = min(_threads(), len(slices))
    if nthreads > 1:
        map_threads(lambda sl: _composite_chunk(values, mask, sel, method, out, sl), slices, nthreads)
    else:
        for sl in slices:
            _composite_chunk(values, mask, sel, method, out, sl)
    all_masked = mask[sel].all(axis=0).reshape(h, w)
    return Composite(out.reshape(nb, h, w), all_masked, period, stack.crs, stack.transform, t)


def composites_for(
    stack: SceneStack, periods: Sequence[Period], method: Method | str = "min"
) -> list[Composite]:
    """One composite per period, in the given order."""
    return [composite(stack, p, method) for p in periods]
