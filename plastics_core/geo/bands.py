"""Band order and per-model normalization: the one place that declares them.

Models take Sentinel-2 L1C top-of-atmosphere DN (reflectance x 10000) in this order
(no B10). Normalization is declared per model file here; callers never normalize.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

BAND_NAMES: tuple[str, ...] = (
    "B01",
    "B02",
    "B03",
    "B04",
    "B05",
    "B06",
    "B07",
    "B08",
    "B8A",
    "B09",
    "B11",
    "B12",
)

#: Earth Search / STAC asset keys in the same order (B10 ``cirrus`` is fetched only for masking).
STAC_ASSET_KEYS: tuple[str, ...] = (
    "coastal",
    "blue",
    "green",
    "red",
    "rededge1",
    "rededge2",
    "rededge3",
    "nir",
    "nir08",
    "nir09",
    "swir16",
    "swir22",
)

#: Per-band mean / std for the unit-norm ensemble models (MODELS.md), float32, shape (12,).
UNIT_NORM_MEAN = np.array(
    [
        1367.8407,
        1104.4116,
        1026.8099,
        856.1295,
        1072.1476,
        1880.3287,
        2288.875,
        2104.5999,
        2508.7764,
        305.3795,
        1686.0194,
        946.1319,
    ],
    dtype=np.float32,
)
UNIT_NORM_STD = np.array(
    [
        249.14418,
        317.69983,
        340.8048,
        467.8019,
        390.11594,
        529.972,
        699.90826,
        680.56006,
        798.34937,
        108.10846,
        651.8683,
        568.5347,
    ],
    dtype=np.float32,
)

Normalization = Literal["div3000", "unit_norm"]


def normalization_for(model_name: str) -> Normalization:
    """The normalization a model file expects, decided by its name.

    ``*unit_norm*`` files: per-band ``(x - mean) / std``; everything else: ``x / 3000``.
    """
    return "unit_norm" if "unit_norm" in model_name else "div3000"


def normalize(x: np.ndarray, how: Normalization, band_axis: int) -> np.ndarray:
    """Normalize DN ``x`` (float32 result). ``band_axis`` is the axis holding the 12 bands."""
    x = np.asarray(x, dtype=np.float32)
    if how == "div3000":
        return x / np.float32(3000.0)
    shape = [1] * x.ndim
    shape[band_axis] = len(BAND_NAMES)
    return (x - UNIT_NORM_MEAN.reshape(shape)) / UNIT_NORM_STD.reshape(shape)
