"""Spectrogram inputs: pairs of composites stacked per pixel for the pixel classifier.

The pixel model sees, for each pixel, its 12 band values (DN, model band order) in two
composites ``interval`` periods apart: an array (n, 12, 2) float32, ``[..., 0]`` from the
earlier composite and ``[..., 1]`` from the later one.
"""

from __future__ import annotations

import numpy as np

from plastics_core.errors import ParameterError, PlasticsError
from plastics_core.method.composite import Composite


class GridMismatchError(PlasticsError):
    """Two composites are on different grids (CRS, transform or shape)."""


def pixel_pairs(c0: Composite, c1: Composite) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel (12, 2) spectra of the pixels valid in both composites.

    Returns ``x`` (n, 12, 2) float32 DN in row-major pixel order and ``valid`` (y, x) bool
    (True where both composites are unmasked; ``n == valid.sum()``). Raises
    GridMismatchError when the grids differ.
    """
    if c0.crs != c1.crs or c0.transform != c1.transform or c0.data.shape != c1.data.shape:
        raise GridMismatchError(
            f"composites are on different grids ({c0.crs} {c0.data.shape} vs {c1.crs} {c1.data.shape}, "
            "or transforms differ): composite both periods on the same tile"
        )
    valid = ~(c0.mask | c1.mask)
    n_bands = c0.data.shape[0]
    x = np.empty((int(valid.sum()), n_bands, 2), dtype=np.float32)
    x[:, :, 0] = c0.data[:, valid].T
    x[:, :, 1] = c1.data[:, valid].T
    return x, valid


def pair_indices(n_composites: int, interval: int) -> list[tuple[int, int]]:
    """Index pairs ``(k, k + interval)`` for ``k = 0 .. n_composites - interval - 1``."""
    if interval < 1:
        raise ParameterError(f"spectrogram interval must be >= 1 period, got {interval}")
    if n_composites < 0:
        raise ParameterError(f"number of composites must be >= 0, got {n_composites}")
    return [(k, k + interval) for k in range(max(0, n_composites - interval))]
