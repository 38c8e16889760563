"""The synthetic scenes' clear background and the seeded random streams.

Background: the real clear Sentinel-2 L1C scenes near Ljubljana (``s2l1c_slovenia_2015``,
read from ``<shared>/data``; never copied into the repo), mirrored and tiled over the grid
with a seeded offset; without them, smooth plausible land-cover spectra. Values are L1C DN
(float32) in :data:`~plastics_core.geo.bands.BAND_NAMES` order.
"""

from __future__ import annotations

import os
import zlib
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy import ndimage

SLOVENIA_NPZ = Path("data") / "s2l1c_slovenia_2015" / "s2l1c_ref5_12band_uint16.npz"
CLEAR_DATES = (0, 3, 4)  # the cloud-free acquisitions of the Slovenia stack
#: plausible TOA DN of vegetation / bare soil / built-up / water (fallback background)
LAND_COVER = np.array(
    [
        [1100, 800, 700, 450, 800, 2100, 2600, 2700, 2900, 800, 1500, 700],
        [1250, 1050, 1050, 1150, 1350, 1650, 1850, 1950, 2100, 700, 2600, 2000],
        [1350, 1250, 1250, 1300, 1450, 1600, 1700, 1750, 1850, 650, 2100, 1800],
        [1150, 900, 750, 500, 450, 380, 360, 320, 300, 120, 150, 100],
    ],
    np.float32,
)


#: the environment variable naming the shared data folder (GPW models and data), and its default:
#: a setting, relative to the working directory, never derived from where the package is installed
SHARED_ENV = "PLASTICS_SHARED"
DEFAULT_SHARED = "../shared"


def default_shared_dir() -> Path:
    """``$PLASTICS_SHARED`` (read now) or ``../shared`` (relative to the working directory)."""
    return Path(os.environ.get(SHARED_ENV) or DEFAULT_SHARED)


@lru_cache(maxsize=4)
def _slovenia(shared_dir: str) -> np.ndarray | None:
    """(3, 12, 101, 100) float32 DN of the clear Slovenia scenes, or None when absent."""
    path = Path(shared_dir) / SLOVENIA_NPZ
    if not path.is_file():
        return None
    with np.load(path) as z:
        bands: np.ndarray = z["bands"][list(CLEAR_DATES)].astype(np.float32)
        clm = z["clm"][list(CLEAR_DATES)].astype(bool)
    if clm.any():  # fill the rare flagged pixels from the same pixel's min over clear dates
        fill = np.where(clm[:, None], np.inf, bands).min(axis=0)
        bands = np.where(clm[:, None], fill[None], bands)
    return bands


def seeded_rng(*key: object) -> np.random.Generator:
    """A generator seeded from ``key`` (deterministic across runs and processes)."""
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def smooth_field(rng: np.random.Generator, shape: tuple[int, int], scale: float) -> np.ndarray:
    """Smooth noise in [0, 1] with features ~``scale`` px: (y, x) float32."""
    ny, nx = max(2, int(shape[0] / scale) + 2), max(2, int(shape[1] / scale) + 2)
    low = ndimage.gaussian_filter(rng.random((ny, nx)).astype(np.float32), 0.8)
    up: np.ndarray = ndimage.zoom(low, (shape[0] / (ny - 1), shape[1] / (nx - 1)), order=1)[
        : shape[0], : shape[1]
    ]
    up = (up - up.min()) / max(float(up.max() - up.min()), 1e-6)
    return up.astype(np.float32)


def background(
    shape: tuple[int, int], seed: int, shared_dir: Path | None = None, origin: tuple[int, int] = (0, 0)
) -> np.ndarray:
    """Background reflectance for each clear base date: (3, 12, y, x) float32 DN.

    Real Slovenia L1C texture, mirrored and tiled from a seeded offset plus ``origin`` (the
    grid's global (row, col) pixel index, so neighbouring tiles of one UTM grid join up);
    the fallback is a smooth mixture of :data:`LAND_COVER` spectra (3 varied copies).
    """
    h, w = shape
    rng = seeded_rng("background", seed)
    src = _slovenia(str(shared_dir or default_shared_dir()))
    if src is None:
        weights = np.stack([smooth_field(rng, shape, 40) ** 2 for _ in LAND_COVER])
        weights /= weights.sum(axis=0, keepdims=True)
        base = np.einsum("kb,kyx->byx", LAND_COVER, weights)
        return np.stack([base * rng.uniform(0.95, 1.05) for _ in CLEAR_DATES]).astype(np.float32)
    sh, sw = src.shape[2:]
    oy, ox = int(rng.integers(0, 2 * sh)) + origin[0], int(rng.integers(0, 2 * sw)) + origin[1]
    rows = np.abs((np.arange(h) + oy) % (2 * sh - 2) - (sh - 1))  # mirrored index, period 2(n-1)
    cols = np.abs((np.arange(w) + ox) % (2 * sw - 2) - (sw - 1))
    return src[:, :, rows[:, None], cols[None, :]]
