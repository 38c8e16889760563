"""STAC source settings: :class:`StacConfig`, the catalogs it knows, and the L2A preset.

Defaults: Element 84 Earth Search v1, collection ``sentinel-2-l1c``, the 12 model bands as
asset keys in :data:`~plastics_core.geo.bands.BAND_NAMES` order plus ``cirrus`` (B10) for
s2cloudless. Validated when built (:class:`~plastics_core.errors.ParameterError`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from plastics_core.errors import ParameterError
from plastics_core.geo.bands import BAND_NAMES, STAC_ASSET_KEYS
from plastics_core.imagery.cloudmask import CloudMaskConfig
from plastics_core.imagery.granule_cache import GranuleCache
from plastics_core.imagery.local import resampling_for
from plastics_core.retry import RetryPolicy

EARTH_SEARCH_V1 = "https://earth-search.aws.element84.com/v1"
PLANETARY_COMPUTER = "https://planetarycomputer.microsoft.com/api/stac/v1"
#: L2A Scene Classification classes treated as masked: no data, saturated, shadow, cloud, cirrus.
SCL_MASKED = (0, 1, 3, 8, 9, 10)


@dataclass(frozen=True)
class StacConfig:
    """Where and how to read Sentinel-2. Defaults: Earth Search v1, ``sentinel-2-l1c``.

    ``mask_asset``: optional ESA L1C mask asset (``MSK_CLASSI``-style, non-zero = cloud);
    ``scl_asset``: optional L2A scene-classification asset (classes :data:`SCL_MASKED`).
    ``href_modifier``: maps an asset href before reading (e.g. Planetary Computer signing).
    Scene selection, before any pixel is read: ``max_cloud_cover`` drops items the catalog rates
    more cloudy (``eo:cloud_cover``, percent of the granule); ``min_coverage`` drops a solar day
    whose items' footprints cover less than this fraction of a tile (0: any overlap). GPW's
    detection workflow of late 2021 read every scene (100 / 0); its 2022 download used 30 / 0.9.
    ``granule_cache``: decode each block of a granule band once, when a tile first needs it
    (None: read windows of the source files per tile). ``cloud_mask_resolution``: metres of the s2cloudless grid
    (None: the tile's resolution). ``asset_schemes``: the href schemes assets may be read over
    (catalog answers are untrusted); None: ``https``, ``http`` and ``s3`` for a catalog at an
    ``http(s)`` URL, plus ``file`` (local paths and ``file://``) for a local catalog. Anything
    else (a ``file://`` href from a remote catalog, a GDAL ``/vsi...`` path) is refused in one line.
    """

    url: str = EARTH_SEARCH_V1
    collection: str = "sentinel-2-l1c"
    asset_keys: tuple[str, ...] = STAC_ASSET_KEYS
    cirrus_key: str | None = "cirrus"
    mask_asset: str | None = None
    scl_asset: str | None = None
    max_cloud_cover: float = 80.0
    min_coverage: float = 0.0
    harmonize: bool = True
    cloud_mask: CloudMaskConfig = field(default_factory=CloudMaskConfig)
    resampling: str = "nearest"
    requester_pays: bool = True
    aws_region: str | None = "eu-central-1"
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    timeout_s: float = 60.0
    max_items: int = 1000
    href_modifier: Callable[[str], str] | None = None
    granule_cache: GranuleCache | None = None
    cloud_mask_resolution: float | None = 60.0
    asset_schemes: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if len(self.asset_keys) != len(BAND_NAMES):
            raise ParameterError(f"asset_keys must name the 12 model bands {','.join(BAND_NAMES)} in order")
        if not 0.0 <= self.max_cloud_cover <= 100.0:
            raise ParameterError(f"max_cloud_cover {self.max_cloud_cover} is outside [0, 100] percent")
        if not 0.0 <= self.min_coverage <= 1.0:
            raise ParameterError(
                f"min_coverage {self.min_coverage} is outside [0, 1] (a fraction of the tile)"
            )
        resampling_for(self.resampling)
        if self.cloud_mask_resolution is not None and self.cloud_mask_resolution <= 0:
            raise ParameterError(
                f"cloud_mask_resolution {self.cloud_mask_resolution} must be > 0 m (or None)"
            )
        if self.asset_schemes is not None and not all(s and s == s.lower() for s in self.asset_schemes):
            raise ParameterError(
                f"asset_schemes {self.asset_schemes!r}: give lower-case schemes such as https, s3, file"
            )

    def allowed_schemes(self) -> frozenset[str]:
        """The href schemes assets may be read over (see ``asset_schemes``)."""
        if self.asset_schemes is not None:
            return frozenset(self.asset_schemes)
        remote = self.url.split("://", 1)[0].lower() in ("http", "https") if "://" in self.url else False
        return frozenset(("https", "http", "s3") if remote else ("https", "http", "s3", "file"))


def planetary_computer_l2a(**overrides: Any) -> StacConfig:
    """Microsoft Planetary Computer ``sentinel-2-l2a``: surface reflectance, a DISTRIBUTION
    SHIFT for the L1C-trained models (use for experiments only). No B10, so masking uses
    the SCL asset. Hrefs need signing: pass ``href_modifier=planetary_computer.sign``."""
    base = StacConfig(
        url=PLANETARY_COMPUTER,
        collection="sentinel-2-l2a",
        asset_keys=("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12"),
        cirrus_key=None,
        scl_asset="SCL",
        cloud_mask=CloudMaskConfig(method="none"),
        requester_pays=False,
        aws_region=None,
    )
    return replace(base, **overrides)
