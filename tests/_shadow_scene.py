"""A real Slovenia L1C scene given a real cloud and the shadow it casts, for the shadow tests of
the imagery sources: a block of the fully cloudy 2015-08-20 scene (all 12 bands and B10) is
pasted into the clear 2015-08-30 scene, and the pixels that block shades from ``HEIGHT_M``
above ground (for the given sun) are darkened to ``DARKEN`` of their DN in every band."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from plastics_core.geo.periods import Period

CLEAR, CLOUDY, SHADED = 3, 2, 3  # npz indices: 08-30 clear, 08-20 cloudy; the shaded scene is 08-30
CLOUD_ROWS, CLOUD_COLS = slice(75, 95), slice(55, 80)
HEIGHT_M = 1000.0
DARKEN = 0.3


@dataclass(frozen=True)
class ShadowScene:
    """bands13: (13, 101, 100) uint16 DN (12 model bands + B10); cloud / shadow: (101, 100) bool
    on the fixture's grid."""

    bands13: np.ndarray
    cloud: np.ndarray
    shadow: np.ndarray


def cloud_and_shadow(
    z: Any, sun_azimuth_deg: float, sun_zenith_deg: float, pixel_m: float = 10.0
) -> ShadowScene:
    """The 2015-08-30 scene of the fixture ``z`` (the npz) with a pasted cloud and its shadow."""
    bands = np.concatenate([z["bands"][SHADED], z["b10_cirrus"][SHADED][None]]).copy()
    cloudy = np.concatenate([z["bands"][CLOUDY], z["b10_cirrus"][CLOUDY][None]])
    cloud = np.zeros(bands.shape[1:], bool)
    cloud[CLOUD_ROWS, CLOUD_COLS] = True
    bands[:, cloud] = cloudy[:, cloud]
    d = HEIGHT_M * np.tan(np.radians(sun_zenith_deg)) / pixel_m  # px away from the sun
    away = np.radians(sun_azimuth_deg + 180.0)
    dr, dc = int(round(-d * np.cos(away))), int(round(d * np.sin(away)))  # north up: rows grow southward
    rows, cols = np.nonzero(cloud)
    rows, cols = rows + dr, cols + dc
    keep = (rows >= 0) & (rows < cloud.shape[0]) & (cols >= 0) & (cols < cloud.shape[1])
    shadow = np.zeros_like(cloud)
    shadow[rows[keep], cols[keep]] = True
    shadow &= ~cloud
    bands[:12, shadow] = (bands[:12, shadow] * DARKEN).astype(np.uint16)
    return ShadowScene(bands, cloud, shadow)


def min_nir(data: np.ndarray, mask: np.ndarray, dates: tuple[Any, ...], period: Period) -> np.ndarray:
    """B08 of the min composite of (t, 12, y, x) ``data`` under (t, y, x) ``mask``."""
    from affine import Affine

    from plastics_core.geo.scenes import SceneStack
    from plastics_core.method.composite import composite

    stack = SceneStack(
        data, mask, "EPSG:32633", Affine(10, 0, 0, 0, -10, 0), dates, tuple(str(i) for i in range(len(dates)))
    )
    return composite(stack, period, "min").data[7]
