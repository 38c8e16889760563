"""Raster: a georeferenced (band, y, x) float32 array, e.g. a heatmap."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from affine import Affine

#: Heatmap nodata: NaN. Masked pixels are never predicted; they hold NaN in every band.
HEATMAP_NODATA = float("nan")


@dataclass(frozen=True)
class Raster:
    """A georeferenced raster.

    - ``data``: (band, y, x) float32.
    - ``crs``: CRS string (``EPSG:32750``).
    - ``transform``: affine pixel -> CRS transform.
    - ``band_descriptions``: one label per band (heatmaps: the pair's period labels, then ``median``).
    - ``nodata``: the nodata value (NaN for heatmaps).
    - ``name``: an identifier (heatmaps: the tile key).
    """

    data: np.ndarray
    crs: str
    transform: Affine
    band_descriptions: tuple[str, ...]
    nodata: float = HEATMAP_NODATA
    name: str = ""
    tags: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.data.ndim != 3:
            raise ValueError(f"raster data must be (band, y, x), got shape {self.data.shape}")
        if len(self.band_descriptions) != self.data.shape[0]:
            raise ValueError(
                f"{self.data.shape[0]} bands but {len(self.band_descriptions)} band descriptions"
            )

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.data.shape[1]), int(self.data.shape[2])
