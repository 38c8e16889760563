"""plastics_core.method.spectrogram: per-pixel pairs of composites."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from affine import Affine

from plastics_core.errors import ParameterError, PlasticsError
from plastics_core.geo.periods import Period
from plastics_core.method.composite import Composite
from plastics_core.method.spectrogram import pair_indices, pixel_pairs

P0 = Period(dt.date(2021, 1, 1), dt.date(2021, 4, 1))
P1 = Period(dt.date(2021, 7, 1), dt.date(2021, 10, 1))
T = Affine(10, 0, 300000, 0, -10, 9000000)


def _comp(
    seed: int, period: Period, crs: str = "EPSG:32750", transform: Affine = T, shape=(7, 9)
) -> Composite:
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 5000, (12, *shape)).astype(np.float32)
    mask = rng.random(shape) < 0.3
    data[:, mask] = 0
    return Composite(data, mask, period, crs, transform, 3)


def test_pixel_pairs() -> None:
    c0, c1 = _comp(0, P0), _comp(1, P1)
    x, valid = pixel_pairs(c0, c1)
    np.testing.assert_array_equal(valid, ~c0.mask & ~c1.mask)
    assert x.shape == (valid.sum(), 12, 2) and x.dtype == np.float32
    rows, cols = np.nonzero(valid)  # row-major order
    for i, (r, c) in enumerate(zip(rows, cols, strict=True)):
        np.testing.assert_array_equal(x[i, :, 0], c0.data[:, r, c])
        np.testing.assert_array_equal(x[i, :, 1], c1.data[:, r, c])


def test_all_masked_gives_empty() -> None:
    c0 = _comp(0, P0)
    c1 = Composite(np.zeros_like(c0.data), np.ones(c0.mask.shape, bool), P1, c0.crs, c0.transform, 0)
    x, valid = pixel_pairs(c0, c1)
    assert x.shape == (0, 12, 2) and not valid.any()


@pytest.mark.parametrize(
    "other",
    [
        {"crs": "EPSG:32650"},
        {"transform": Affine(10, 0, 300010, 0, -10, 9000000)},
        {"shape": (7, 8)},
    ],
)
def test_grid_mismatch(other: dict) -> None:
    with pytest.raises(PlasticsError, match="different grids"):
        pixel_pairs(_comp(0, P0), _comp(1, P1, **other))


def test_pair_indices() -> None:
    assert pair_indices(5, 2) == [(0, 2), (1, 3), (2, 4)]
    assert pair_indices(2, 2) == []
    assert pair_indices(0, 1) == []
    with pytest.raises(ParameterError):
        pair_indices(5, 0)
