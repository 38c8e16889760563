"""SceneStack: the imagery of one tile over one date range.

Arrays follow the models' band order (see :mod:`plastics_core.geo.bands`): Sentinel-2 L1C
top-of-atmosphere DN (reflectance x 10000), bands
``B01 B02 B03 B04 B05 B06 B07 B08 B8A B09 B11 B12`` (no B10).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
from affine import Affine

from plastics_core.errors import ImageryError
from plastics_core.geo.bands import BAND_NAMES


@dataclass(frozen=True)
class SceneStack:
    """Scenes of one tile.

    - ``data``: (time, band, y, x) DN, uint16 or float32 (12 bands, model order).
    - ``mask``: (time, y, x) bool, True where the pixel is cloud, shadow or nodata
      (masked pixels never contribute to composites).
    - ``crs``: the grid CRS as a string (``EPSG:32750``); UTM for tiles.
    - ``transform``: affine pixel->CRS transform of the grid (10 m pixels for tiles).
    - ``dates``: acquisition date of each time step, ascending.
    - ``scene_ids``: source identifier of each time step (for manifests / lineage).
    - ``band_names``: names of the band axis, default :data:`BAND_NAMES`.
    """

    data: np.ndarray
    mask: np.ndarray
    crs: str
    transform: Affine
    dates: tuple[dt.date, ...]
    scene_ids: tuple[str, ...] = ()
    band_names: tuple[str, ...] = BAND_NAMES

    def __post_init__(self) -> None:
        if self.data.ndim != 4:
            raise ImageryError(
                f"scene data must be 4-D (time, band, y, x), got shape {self.data.shape}: stack scenes along a new first axis"
            )
        t, b, h, w = self.data.shape
        if b != len(self.band_names):
            raise ImageryError(
                f"imagery has {b} bands but {len(self.band_names)} band names ({','.join(self.band_names)}): supply the 12 L1C bands in model order"
            )
        if self.data.dtype not in (np.uint16, np.float32, np.int16, np.float64):
            raise ImageryError(f"imagery dtype {self.data.dtype} is not supported: use uint16 DN or float32")
        if self.mask.shape != (t, h, w) or self.mask.dtype != bool:
            raise ImageryError(
                f"mask must be bool with shape {(t, h, w)}, got {self.mask.dtype} {self.mask.shape}"
            )
        if len(self.dates) != t:
            raise ImageryError(f"{t} scenes but {len(self.dates)} dates")
        if self.scene_ids and len(self.scene_ids) != t:
            raise ImageryError(f"{t} scenes but {len(self.scene_ids)} scene ids")

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width) in pixels."""
        return int(self.data.shape[2]), int(self.data.shape[3])

    def select(self, keep: np.ndarray) -> SceneStack:
        """The scenes where boolean ``keep`` (time,) is True."""
        idx = np.flatnonzero(keep)
        return SceneStack(
            data=self.data[idx],
            mask=self.mask[idx],
            crs=self.crs,
            transform=self.transform,
            dates=tuple(self.dates[i] for i in idx),
            scene_ids=tuple(self.scene_ids[i] for i in idx) if self.scene_ids else (),
            band_names=self.band_names,
        )
