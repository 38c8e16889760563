"""Cloud masks for Sentinel-2 L1C: s2cloudless and ESA's L1C classification mask.

L1C scenes carry no per-pixel mask in most catalogs, so one is computed:

- **s2cloudless** (Sentinel Hub's LightGBM pixel classifier; its model ships inside the
  wheel). It needs TOA reflectance (DN / 10000, *after* baseline harmonization) of
  B01 B02 B04 B05 B08 B8A B09 **B10** B11 B12. B10 (cirrus) is not one of the 12 model
  bands: sources fetch it as a 13th band only for masking. Defaults follow s2cloudless'
  10 m recommendation: threshold 0.4, ``average_over`` 4 px, ``dilation_size`` 2 px.
- **ESA L1C mask** (``MSK_CLASSI_B00``, baseline >= 04.00: band 1 opaque clouds, band 2
  cirrus, band 3 snow; or a single-band 0/1 mask): any non-zero cloud band is cloud.
- **Cloud shadows** (:func:`shadow_mask`, :class:`ShadowConfig`): the cloud mask projected away
  from the sun over a range of cloud heights, kept where the near infrared is dark. A min
  composite picks the darkest value of a pixel, so an unmasked shadow would win it.

Masks are ``bool`` arrays, True = cloud (masked), shape ``(t, y, x)`` or ``(y, x)``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from scipy import ndimage

from plastics_core.errors import ImageryError, ParameterError
from plastics_core.geo.bands import BAND_NAMES

CloudMethod = Literal["s2cloudless", "none"]

#: s2cloudless input order; "B10" comes from the separate cirrus array.
S2CLOUDLESS_BANDS: tuple[str, ...] = (
    "B01",
    "B02",
    "B04",
    "B05",
    "B08",
    "B8A",
    "B09",
    "B10",
    "B11",
    "B12",
)


@dataclass(frozen=True)
class CloudMaskConfig:
    """How sources mask clouds. ``method="none"`` keeps only nodata / provided masks."""

    method: CloudMethod = "s2cloudless"
    threshold: float = 0.4
    average_over: int = 4
    dilation_size: int = 2

    def __post_init__(self) -> None:
        if self.method not in ("s2cloudless", "none"):
            raise ParameterError(f"cloud mask method {self.method!r} is unknown: use 's2cloudless' or 'none'")
        if not 0.0 < self.threshold < 1.0:
            raise ParameterError(f"cloud threshold {self.threshold} is outside (0, 1): use e.g. 0.4")
        if self.average_over < 0 or self.dilation_size < 0:
            raise ParameterError("cloud average_over / dilation_size must be >= 0 pixels")


@functools.lru_cache(maxsize=8)
def _detector(threshold: float, average_over: int, dilation_size: int) -> Any:
    from s2cloudless import S2PixelCloudDetector

    return S2PixelCloudDetector(
        threshold=threshold,
        all_bands=False,
        average_over=average_over or None,
        dilation_size=dilation_size or None,
    )


def s2cloudless_input(bands: np.ndarray, cirrus: np.ndarray) -> np.ndarray:
    """(t, 12, y, x) DN in model order + (t, y, x) B10 DN -> (t, y, x, 10) float32 reflectance."""
    if bands.ndim != 4 or bands.shape[1] != len(BAND_NAMES):
        raise ImageryError(f"cloud masking needs (t, 12, y, x) DN in model order, got shape {bands.shape}")
    if cirrus.shape != (bands.shape[0], *bands.shape[2:]):
        raise ImageryError(
            f"B10 cirrus shape {cirrus.shape} does not match the bands {bands.shape}: fetch B10 on the same grid"
        )
    index = {name: i for i, name in enumerate(BAND_NAMES)}
    layers = [cirrus if name == "B10" else bands[:, index[name]] for name in S2CLOUDLESS_BANDS]
    return np.stack(layers, axis=-1).astype(np.float32) / np.float32(10000.0)


def cloud_probability(
    bands: np.ndarray, cirrus: np.ndarray, config: CloudMaskConfig | None = None
) -> np.ndarray:
    """s2cloudless cloud probability, (t, y, x) float32 in [0, 1]; nodata pixels (all-zero) -> NaN."""
    cfg = config or CloudMaskConfig()
    x = s2cloudless_input(bands, cirrus)
    if x.shape[0] == 0:
        return np.zeros(x.shape[:3], dtype=np.float32)
    prob = _detector(cfg.threshold, cfg.average_over, cfg.dilation_size).get_cloud_probability_maps(x)
    prob = np.asarray(prob, dtype=np.float32)
    prob[~np.any(bands > 0, axis=1)] = np.nan
    return prob


def cloud_mask(
    bands: np.ndarray,
    cirrus: np.ndarray,
    config: CloudMaskConfig | None = None,
) -> np.ndarray:
    """(t, y, x) bool cloud mask (True = cloud) from s2cloudless, thresholded, averaged and
    dilated per ``config``. ``method="none"`` returns all False."""
    cfg = config or CloudMaskConfig()
    shape = (bands.shape[0], *bands.shape[2:])
    if cfg.method == "none" or bands.shape[0] == 0:
        return np.zeros(shape, dtype=bool)
    return mask_from_probability(cloud_probability(bands, cirrus, cfg), cfg)


def mask_from_probability(prob: np.ndarray, config: CloudMaskConfig | None = None) -> np.ndarray:
    """(t, y, x) s2cloudless probability (NaN = nodata) -> bool cloud mask: thresholded, averaged
    and dilated per ``config`` in pixels of ``prob``'s grid (a probability computed on a coarser
    grid and repeated onto the tile grid is post-processed at the tile's resolution)."""
    cfg = config or CloudMaskConfig()
    prob = np.nan_to_num(prob, nan=0.0)
    if cfg.average_over == 0:  # s2cloudless' own post-processing fails on this path (int8 + cv2)
        return dilate(prob > cfg.threshold, cfg.dilation_size)
    det = _detector(cfg.threshold, cfg.average_over, cfg.dilation_size)
    return np.asarray(det.get_mask_from_prob(prob), dtype=bool)


def esa_l1c_mask(msk: np.ndarray, include_cirrus: bool = True, dilation_size: int = 0) -> np.ndarray:
    """ESA L1C mask -> bool (y, x) cloud mask.

    ``msk``: (y, x) 0/1 mask, or (bands, y, x) ``MSK_CLASSI_B00`` (band 1 opaque clouds,
    band 2 cirrus, band 3 snow - snow is never counted as cloud). Non-zero = flagged.
    """
    arr = np.asarray(msk)
    if arr.ndim == 2:
        out = arr != 0
    elif arr.ndim == 3 and arr.shape[0] >= 1:
        out = arr[0] != 0
        if include_cirrus and arr.shape[0] >= 2:
            out |= arr[1] != 0
    else:
        raise ImageryError(f"ESA L1C mask must be (y, x) or (bands, y, x), got shape {arr.shape}")
    return dilate(out, dilation_size)


def dilate(mask: np.ndarray, size: int) -> np.ndarray:
    """Binary dilation of a (y, x) or (t, y, x) bool mask by a disk of radius ``size`` px."""
    if size <= 0:
        return np.asarray(mask, dtype=bool)
    r = int(size)
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    disk = (yy * yy + xx * xx) <= r * r
    if mask.ndim == 3:
        return np.stack([ndimage.binary_dilation(m, structure=disk) for m in mask])
    return np.asarray(ndimage.binary_dilation(mask, structure=disk), dtype=bool)


@dataclass(frozen=True)
class ShadowConfig:
    """Cloud-shadow masking by projection (the recipe of the public s2cloudless / Earth Engine
    cloud-and-shadow tutorial, with the projection distance derived from cloud heights):

    - every cloud pixel is projected away from the sun (shadow azimuth = sun azimuth + 180 deg)
      by ``h * tan(sun zenith)`` for each cloud height ``h`` from ``min_height_m`` to
      ``max_height_m`` in ``height_step_m`` steps; the union is the potential shadow;
    - a potential-shadow pixel is shadow when it is dark in the near infrared: B08 below
      ``nir_dark_dn`` (DN = reflectance x 10000; 1500 = the tutorial's 0.15) and not cloud;
    - the shadow mask is dilated by ``dilation_size`` px (soft shadow edges).
    """

    min_height_m: float = 200.0
    max_height_m: float = 4000.0
    height_step_m: float = 100.0
    nir_dark_dn: float = 1500.0
    dilation_size: int = 2

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_height_m <= self.max_height_m or self.height_step_m <= 0:
            raise ParameterError(
                "shadow heights: use 0 <= min_height_m <= max_height_m and height_step_m > 0"
            )
        if self.nir_dark_dn <= 0 or self.dilation_size < 0:
            raise ParameterError("shadow nir_dark_dn must be > 0 and dilation_size >= 0")


def _shift(mask: np.ndarray, drow: int, dcol: int) -> np.ndarray:
    """``mask`` moved by (drow, dcol) pixels (rows down, columns right), zero-filled."""
    h, w = mask.shape
    out = np.zeros_like(mask)
    if abs(drow) >= h or abs(dcol) >= w:
        return out
    src = mask[max(0, -drow) : h - max(0, drow), max(0, -dcol) : w - max(0, dcol)]
    out[max(0, drow) : max(0, drow) + src.shape[0], max(0, dcol) : max(0, dcol) + src.shape[1]] = src
    return out


def shadow_projection(
    cloud: np.ndarray,
    sun_azimuth_deg: float,
    sun_zenith_deg: float,
    pixel_m: float = 10.0,
    config: ShadowConfig | None = None,
) -> np.ndarray:
    """(y, x) bool: where the clouds of ``cloud`` (y, x) bool can cast shadow, for a north-up grid
    of ``pixel_m`` metre pixels and the sun at azimuth (deg clockwise from north) / zenith (deg)."""
    cfg = config or ShadowConfig()
    if not 0.0 <= sun_zenith_deg < 90.0:
        raise ImageryError(f"sun zenith {sun_zenith_deg} deg is not in [0, 90): check the scene metadata")
    cloud = np.asarray(cloud, dtype=bool)
    out = np.zeros_like(cloud)
    if not cloud.any():
        return out
    away = np.radians(sun_azimuth_deg + 180.0)
    tan_z = np.tan(np.radians(sun_zenith_deg))
    seen: set[tuple[int, int]] = set()
    for h in np.arange(cfg.min_height_m, cfg.max_height_m + 1e-9, cfg.height_step_m):
        d = h * tan_z / pixel_m
        step = (int(round(-d * np.cos(away))), int(round(d * np.sin(away))))  # north up: rows grow southward
        if step not in seen:
            seen.add(step)
            out |= _shift(cloud, *step)
    return out


def shadow_mask(
    cloud: np.ndarray,
    nir: np.ndarray,
    sun_azimuth_deg: float,
    sun_zenith_deg: float,
    pixel_m: float = 10.0,
    config: ShadowConfig | None = None,
) -> np.ndarray:
    """(y, x) bool cloud-shadow mask (True = shadow) of one scene: the cloud projection
    (:func:`shadow_projection`) where B08 ``nir`` (y, x) DN is dark, outside the clouds, dilated."""
    cfg = config or ShadowConfig()
    cloud = np.asarray(cloud, dtype=bool)
    if cloud.shape != np.shape(nir):
        raise ImageryError(f"cloud mask {cloud.shape} and NIR band {np.shape(nir)} differ: use one grid")
    dark = (np.asarray(nir) < cfg.nir_dark_dn) & (np.asarray(nir) > 0)
    shadow = shadow_projection(cloud, sun_azimuth_deg, sun_zenith_deg, pixel_m, cfg) & dark & ~cloud
    masked: np.ndarray = dilate(shadow, cfg.dilation_size) & ~cloud
    return masked


def cloud_and_shadow_mask(
    bands: np.ndarray,
    cloud: np.ndarray,
    sun_azimuth_deg: Any,
    sun_zenith_deg: Any,
    pixel_m: float = 10.0,
    config: ShadowConfig | None = None,
) -> np.ndarray:
    """(t, y, x) bool: ``cloud`` (t, y, x) plus each scene's shadows, from (t, 12, y, x) DN in model
    order (B08 is read) and per-scene sun angles (sequences of t floats, or one float for all).
    A scene whose angles are unknown (None or NaN) keeps its cloud mask only."""
    t = bands.shape[0]
    az = np.broadcast_to(np.asarray(sun_azimuth_deg, dtype=np.float64), (t,))
    zen = np.broadcast_to(np.asarray(sun_zenith_deg, dtype=np.float64), (t,))
    nir = BAND_NAMES.index("B08")
    out = np.array(cloud, dtype=bool, copy=True)
    for i in range(t):
        if np.isfinite(az[i]) and np.isfinite(zen[i]):
            out[i] |= shadow_mask(cloud[i], bands[i, nir], float(az[i]), float(zen[i]), pixel_m, config)
    return out


def sun_angles(properties: dict[str, Any]) -> tuple[float, float]:
    """(sun azimuth, sun zenith) in degrees from scene metadata: STAC ``view:sun_azimuth`` /
    ``view:sun_elevation`` or Sentinel-2 ``s2:mean_solar_azimuth`` / ``s2:mean_solar_zenith``;
    NaN when absent (shadow masking then skips the scene)."""
    az = properties.get("view:sun_azimuth", properties.get("s2:mean_solar_azimuth"))
    zen = properties.get("s2:mean_solar_zenith")
    try:
        if zen is None and properties.get("view:sun_elevation") is not None:
            zen = 90.0 - float(properties["view:sun_elevation"])
        return float(az), float(zen)  # type: ignore[arg-type]
    except (TypeError, ValueError):  # absent or not a number (catalog fields are untrusted)
        return float("nan"), float("nan")
