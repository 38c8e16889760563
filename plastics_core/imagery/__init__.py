"""Imagery sources: the ImagerySource protocol and its implementations.

Implementations import their optional libraries (rasterio, pystac-client, earthone) lazily, so
``from plastics_core.imagery import StacSource`` loads only the STAC module.
"""

from __future__ import annotations

import importlib
from typing import Any

from plastics_core.imagery.base import ImagerySource, SceneInfo

_LAZY = {
    "SyntheticSource": "plastics_core.imagery.synthetic",
    "LocalGeoTIFFSource": "plastics_core.imagery.local",
    "StacSource": "plastics_core.imagery.stac",
    "StacConfig": "plastics_core.imagery.stac_config",
    "EarthOneSource": "plastics_core.imagery.earthone",
    "EarthOneConfig": "plastics_core.imagery.earthone",
    "EarthOneBackend": "plastics_core.imagery.earthone_compute",
    "CloudMaskConfig": "plastics_core.imagery.cloudmask",
}

__all__ = ["ImagerySource", "SceneInfo", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
