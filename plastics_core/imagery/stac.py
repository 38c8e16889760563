"""StacSource: Sentinel-2 L1C from a STAC API (default Element 84 Earth Search v1).

- Search: pystac-client POST ``/search`` (collection, tile/ROI geometry, date range widened
  by a day, ``query={"eo:cloud_cover": {"lte": max_cloud_cover}}``); results are filtered
  again client-side (cloud cover, solar day inside the half-open period).
- Load: each band asset (``coastal blue green red rededge1-3 nir nir08 nir09 swir16 swir22``,
  plus ``cirrus`` = B10 for s2cloudless only) is warped with GDAL straight onto the tile's
  UTM 10 m grid (nearest neighbour: output values are real DN; 20/60 m bands are
  replicated), harmonized per item (processing baseline >= 04.00 -> minus 1000 DN, decided
  by ``s2:processing_baseline``), and items of one **solar day** are mosaicked (first valid
  item wins, in acquisition order). Masked = any band nodata | cloud (s2cloudless, or an
  ESA mask / L2A SCL asset if configured). Days with no data on the tile are dropped;
  fully cloudy days are kept (all masked) so manifests show they were seen.
- Decode only what is needed: items are dropped before any pixel is read by catalog cloud
  cover and footprint; a day's items stop being read once every tile pixel is filled. With
  s2cloudless and ``cloud_mask_resolution`` (default 60 m), the mask is computed first on a
  coarse grid (the tile grid with 60 m pixels) from the bands it needs (B01 B02 B04 B05 B08
  B8A B09 B10 B11 B12) read from the source files' resolution levels (JPEG 2000) nearest that
  resolution, never from the granule cache (so the mask does not depend on what is cached),
  repeated onto the 10 m grid and post-processed there (``average_over`` and
  ``dilation_size`` in 10 m pixels); a day masked everywhere (cloud or nodata) on the tile is
  then not decoded at 10 m: it is kept with data 0 and mask True. ``cloud_mask_resolution=None``
  computes the mask from the 10 m bands as before.
- 20 m and 60 m bands are decoded at their native resolution and replicated onto the 10 m
  grid by the nearest-neighbour warp (the same values as upsampling after the read).
- ``granule_cache``: a :class:`~plastics_core.imagery.granule_cache.GranuleCache` decodes each
  granule band once (whole, native resolution, as a COG) and every tile reads windows of it.
- ``timer`` accumulates wall / CPU seconds per stage: ``catalog``, ``read`` (fetch + decode +
  warp of every band read, cache fills included), ``cloud_mask`` (s2cloudless compute).
- Earth Search's L1C JP2s live in the requester-pays bucket ``s3://sentinel-s2-l1c``:
  reads need AWS credentials in the environment and are made with
  ``AWS_REQUEST_PAYER=requester`` (set by this module via ``rasterio.Env``); the requester
  pays the egress.
- Faults: catalog requests and raster reads are retried on transient errors (HTTP 429/5xx,
  timeouts) per :class:`~plastics_core.imagery.retry.RetryPolicy`; then ImageryError.
"""

from __future__ import annotations

import datetime as dt
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import rasterio
from affine import Affine
from shapely.geometry import mapping, shape

from plastics_core.errors import ImageryError, ParameterError
from plastics_core.geo.bands import BAND_NAMES, STAC_ASSET_KEYS
from plastics_core.geo.scenes import SceneStack
from plastics_core.imagery.base import SceneInfo
from plastics_core.imagery.cloudmask import (
    S2CLOUDLESS_BANDS,
    CloudMaskConfig,
    cloud_and_shadow_mask,
    cloud_mask,
    cloud_probability,
    esa_l1c_mask,
    mask_from_probability,
    sun_angles,
)
from plastics_core.imagery.granule_cache import GranuleCache
from plastics_core.imagery.harmonize import harmonize_dn, needs_offset_removal, solar_day
from plastics_core.imagery.local import read_on_grid, resampling_for
from plastics_core.imagery.retry import RetryPolicy, redact, retry_call
from plastics_core.imagery.timing import StageTimer

if TYPE_CHECKING:
    from shapely.geometry.base import BaseGeometry

    from plastics_core.geo.periods import Period
    from plastics_core.geo.tiles import Tile

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
    ``granule_cache``: decode each granule band once into a COG cache (None: read windows of
    the source files per tile). ``cloud_mask_resolution``: metres of the s2cloudless grid
    (None: the tile's resolution).
    """

    url: str = EARTH_SEARCH_V1
    collection: str = "sentinel-2-l1c"
    asset_keys: tuple[str, ...] = STAC_ASSET_KEYS
    cirrus_key: str | None = "cirrus"
    mask_asset: str | None = None
    scl_asset: str | None = None
    max_cloud_cover: float = 80.0
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

    def __post_init__(self) -> None:
        if len(self.asset_keys) != len(BAND_NAMES):
            raise ParameterError(f"asset_keys must name the 12 model bands {','.join(BAND_NAMES)} in order")
        if not 0.0 <= self.max_cloud_cover <= 100.0:
            raise ParameterError(f"max_cloud_cover {self.max_cloud_cover} is outside [0, 100] percent")
        resampling_for(self.resampling)
        if self.cloud_mask_resolution is not None and self.cloud_mask_resolution <= 0:
            raise ParameterError(f"cloud_mask_resolution {self.cloud_mask_resolution} must be > 0 m (or None)")


def planetary_computer_l2a(**overrides: Any) -> StacConfig:
    """Microsoft Planetary Computer ``sentinel-2-l2a``: surface reflectance, a DISTRIBUTION
    SHIFT for the L1C-trained models (use for experiments only). No B10, so masking uses
    the SCL asset. Hrefs need signing: pass ``href_modifier=planetary_computer.sign``."""
    base = StacConfig(
        url=PLANETARY_COMPUTER, collection="sentinel-2-l2a",
        asset_keys=("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12"),
        cirrus_key=None, scl_asset="SCL", cloud_mask=CloudMaskConfig(method="none"), requester_pays=False,
        aws_region=None,
    )
    return replace(base, **overrides)


def stac_source(url: str | None = None, collection: str = "sentinel-2-l1c") -> StacSource:
    """The source for a catalog URL (default Earth Search v1) and collection.

    ``sentinel-2-l2a`` at Planetary Computer (or with no URL) uses :func:`planetary_computer_l2a`
    (hrefs unsigned: set ``href_modifier`` in code for signing); elsewhere L2A uses Earth Search's
    L2A asset keys (same as L1C's) with its ``scl`` asset as the mask.
    """
    if collection == "sentinel-2-l1c":
        return StacSource(url=url) if url else StacSource()
    if collection == "sentinel-2-l2a":
        if url is None or url.rstrip("/") == PLANETARY_COMPUTER:
            return StacSource(planetary_computer_l2a())
        return StacSource(url=url, collection=collection, cirrus_key=None, scl_asset="scl",
                          cloud_mask=CloudMaskConfig(method="none"), requester_pays=False)
    raise ParameterError(f"unknown STAC collection {collection!r}: use sentinel-2-l1c or sentinel-2-l2a")


class StacSource:
    """ImagerySource over a STAC API; see the module docstring for the exact behaviour."""

    def __init__(self, config: StacConfig | None = None, **overrides: Any) -> None:
        self.config = replace(config or StacConfig(), **overrides)
        self.name = f"stac:{self.config.url}#{self.config.collection}"
        self.timer = StageTimer()

    # -- catalog -------------------------------------------------------------------------
    def items(self, geometry_4326: BaseGeometry, period: Period) -> list[dict[str, Any]]:
        """Raw STAC item dicts intersecting the geometry whose solar day is in ``period`` and
        whose ``eo:cloud_cover`` <= max, sorted by datetime."""
        from pystac_client import Client
        from pystac_client.stac_api_io import StacApiIO

        cfg = self.config
        lo = (period.start - dt.timedelta(days=1)).isoformat()
        hi = (period.end + dt.timedelta(days=1)).isoformat()

        def fetch() -> list[dict[str, Any]]:
            io = StacApiIO(max_retries=None, timeout=cfg.timeout_s)
            client = Client.open(cfg.url, stac_io=io)
            search = client.search(
                collections=[cfg.collection], intersects=mapping(geometry_4326),
                datetime=f"{lo}T00:00:00Z/{hi}T00:00:00Z",
                query={"eo:cloud_cover": {"lte": cfg.max_cloud_cover}}, max_items=cfg.max_items,
            )
            return list(search.items_as_dicts())

        with self.timer("catalog"):
            raw = retry_call(fetch, what=f"STAC search {cfg.url} ({cfg.collection})", policy=cfg.retry)
        lon = geometry_4326.centroid.x
        kept = []
        for item in raw:
            cc = item.get("properties", {}).get("eo:cloud_cover")
            if cc is not None and float(cc) > cfg.max_cloud_cover:
                continue
            if not period.contains(solar_day(_when(item), lon)):
                continue
            if item.get("geometry") and not shape(item["geometry"]).intersects(geometry_4326):
                continue
            kept.append(item)
        return sorted(kept, key=lambda it: (_when(it), it.get("id", "")))

    def search(self, geometry_4326: BaseGeometry, period: Period) -> list[SceneInfo]:
        """One SceneInfo per item (date = solar day at the geometry's centroid)."""
        lon = geometry_4326.centroid.x
        out = []
        for item in self.items(geometry_4326, period):
            cc = item.get("properties", {}).get("eo:cloud_cover")
            out.append(SceneInfo(str(item["id"]), solar_day(_when(item), lon), None if cc is None else float(cc)))
        return out

    # -- pixels --------------------------------------------------------------------------
    def load(self, tile: Tile, period: Period) -> SceneStack:
        """Items of ``period`` on ``tile``'s grid: data (t, 12, rows, cols) uint16 harmonized DN,
        mask (t, rows, cols) bool; one time step per solar day."""
        rows, cols = tile.shape
        lon = tile.geometry_4326.centroid.x
        groups: dict[dt.date, list[dict[str, Any]]] = {}
        for item in self.items(tile.geometry_4326, period):
            groups.setdefault(solar_day(_when(item), lon), []).append(item)
        datas, masks, dates, ids = [], [], [], []
        with rasterio.Env(**self._gdal_env()):
            for day, group in sorted(groups.items()):
                data, mask, seen = self._load_day(group, tile)
                if not seen:  # no data on this tile (cloudy days are kept, masked)
                    continue
                datas.append(data)
                masks.append(mask)
                dates.append(day)
                ids.append("+".join(str(it["id"]) for it in group))
        return SceneStack(
            data=np.stack(datas) if datas else np.zeros((0, len(BAND_NAMES), rows, cols), np.uint16),
            mask=np.stack(masks) if masks else np.zeros((0, rows, cols), bool),
            crs=str(tile.crs), transform=tile.transform, dates=tuple(dates), scene_ids=tuple(ids),
        )

    def _load_day(self, group: list[dict[str, Any]], tile: Tile) -> tuple[np.ndarray, np.ndarray, bool]:
        """Mosaic of one solar day's items: (12, rows, cols) uint16 DN, (rows, cols) mask, and
        whether any item has data on the tile."""
        cfg = self.config
        rows, cols = tile.shape
        grid = (str(tile.crs), tile.transform, tile.shape)
        data = np.zeros((len(BAND_NAMES), rows, cols), np.uint16)
        cirrus = np.zeros((rows, cols), np.uint16)
        flagged = np.zeros((rows, cols), bool)
        factor = self._coarse_factor(tile)
        if factor > 1:
            flagged, seen = self._coarse_cloud(group, tile, factor)
            if (flagged | ~seen).all():  # nothing clear on the tile: no 10 m decode
                return data, np.ones((rows, cols), bool), bool(seen.any())
        for item in group:
            empty = np.any(data == 0, axis=0)
            if not empty.any():
                break
            offset = self._offset(item)
            bands = np.stack([self._read(item, key, grid) for key in cfg.asset_keys])
            fill = empty & np.all(bands != 0, axis=0)
            data[:, fill] = harmonize_dn(bands[:, fill], offset)
            if factor <= 1 and cfg.cirrus_key is not None and cfg.cloud_mask.method != "none":
                cirrus[fill] = harmonize_dn(self._read(item, cfg.cirrus_key, grid)[fill], offset)
            if cfg.mask_asset is not None and cfg.mask_asset in item.get("assets", {}):
                flagged[fill] = esa_l1c_mask(self._read(item, cfg.mask_asset, grid, nodata=None))[fill]
            if cfg.scl_asset is not None and cfg.scl_asset in item.get("assets", {}):
                scl = self._read(item, cfg.scl_asset, grid, nodata=None)
                flagged[fill] = np.isin(scl, SCL_MASKED)[fill]
        nodata = np.any(data == 0, axis=0)
        if factor <= 1 and cfg.cloud_mask.method != "none" and not nodata.all():
            if cfg.cirrus_key is None:
                raise ImageryError("s2cloudless needs the B10 cirrus asset: set cirrus_key or cloud_mask method 'none'")
            with self.timer("cloud_mask"):
                flagged |= cloud_mask(data[None], cirrus[None], cfg.cloud_mask)[0]
        if cfg.cloud_mask.method != "none" and not nodata.all():  # L1C: add the clouds' shadows
            with self.timer("cloud_mask"):
                az, zen = sun_angles(next(iter(group)).get("properties", {}))
                flagged = cloud_and_shadow_mask(data[None], flagged[None], az, zen, float(tile.resolution))[0]
        return data, nodata | flagged, not nodata.all()

    def _offset(self, item: dict[str, Any]) -> bool:
        return bool(self.config.harmonize and needs_offset_removal(
            item.get("properties", {}).get("s2:processing_baseline"), _when(item).date()))

    def _coarse_factor(self, tile: Tile) -> int:
        """How many tile pixels one cloud-mask pixel spans (1: mask at the tile's resolution)."""
        cfg = self.config
        if cfg.cloud_mask.method == "none" or cfg.cloud_mask_resolution is None or cfg.cirrus_key is None:
            return 1
        return max(1, round(cfg.cloud_mask_resolution / abs(tile.transform.a)))

    def _coarse_cloud(self, group: list[dict[str, Any]], tile: Tile, factor: int) -> tuple[np.ndarray, np.ndarray]:
        """s2cloudless on the tile grid coarsened ``factor`` x: (rows, cols) cloud mask and
        (rows, cols) 'some item has data' flags, both on the tile grid."""
        cfg = self.config
        rows, cols = tile.shape
        shape = (math.ceil(rows / factor), math.ceil(cols / factor))
        grid = (str(tile.crs), tile.transform @ Affine.scale(factor), shape)
        index = {name: i for i, name in enumerate(BAND_NAMES)}
        used = [index[b] for b in S2CLOUDLESS_BANDS if b != "B10"]
        data = np.zeros((len(BAND_NAMES), *shape), np.uint16)
        cirrus = np.zeros(shape, np.uint16)
        assert cfg.cirrus_key is not None
        for item in group:
            empty = np.any(data[used] == 0, axis=0)
            if not empty.any():
                break
            offset = self._offset(item)
            bands = np.stack([self._read(item, cfg.asset_keys[i], grid, coarse=True) for i in used])
            fill = empty & np.all(bands != 0, axis=0)
            for j, i in enumerate(used):
                data[i][fill] = harmonize_dn(bands[j][fill], offset)
            cirrus[fill] = harmonize_dn(self._read(item, cfg.cirrus_key, grid, coarse=True)[fill], offset)
        with self.timer("cloud_mask"):
            prob = cloud_probability(data[None], cirrus[None], cfg.cloud_mask)[0]
            up = np.repeat(np.repeat(prob, factor, axis=0), factor, axis=1)[:rows, :cols]
            seen = np.isfinite(up)
            return mask_from_probability(up[None], cfg.cloud_mask)[0], seen

    def _read(self, item: dict[str, Any], key: str, grid: tuple[str, Affine, tuple[int, int]],
              nodata: float | None = 0, coarse: bool = False) -> np.ndarray:
        """One asset's first band warped onto ``grid`` (crs, transform, shape), (rows, cols) in
        the asset dtype. ``coarse``: read the source's overview (JPEG 2000 resolution level)
        nearest below the grid's resolution instead of full resolution."""
        cfg = self.config
        asset = item.get("assets", {}).get(key)
        if asset is None or "href" not in asset:
            raise ImageryError(
                f"STAC item {item.get('id')} has no asset {key!r}: check the collection ({cfg.collection}) "
                "and asset_keys"
            )
        href = str(asset["href"])
        if cfg.href_modifier is not None:
            href = cfg.href_modifier(href)
        crs, transform, shape = grid
        cache = cfg.granule_cache

        def dataset(**kw: Any) -> Any:
            # coarse (cloud-mask) reads always use the source's own resolution levels, so that the
            # mask does not depend on whether a band is cached yet
            if cache is None or coarse:
                return rasterio.open(href, **kw)
            return cache.open(str(item.get("id")), key, lambda: rasterio.open(href), **kw)

        def read() -> np.ndarray:
            band: np.ndarray
            with dataset() as src:
                level = _overview_level(src, abs(transform.a)) if coarse else None
                if level is None:
                    band = read_on_grid(src, crs, transform, shape, resampling_for(cfg.resampling),
                                        indexes=[1], nodata=nodata)[0]
                    return band
            with dataset(overview_level=level) as src:
                band = read_on_grid(src, crs, transform, shape, resampling_for(cfg.resampling),
                                    indexes=[1], nodata=nodata)[0]
            return band

        try:
            with self.timer("read"):
                return retry_call(read, what=f"read {item.get('id')}:{key}", policy=cfg.retry)
        except rasterio.errors.RasterioIOError as err:
            raise ImageryError(
                f"cannot read asset {key} of {item.get('id')} ({redact(str(err).splitlines()[0])[:160]}): "
                "for s3:// assets set AWS credentials (requester-pays)"
            ) from err

    def _gdal_env(self) -> dict[str, Any]:
        env: dict[str, Any] = {"GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR", "GDAL_HTTP_MAX_RETRY": 0}
        if self.config.requester_pays:
            env["AWS_REQUEST_PAYER"] = "requester"
        if self.config.aws_region and not (os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")):
            env["AWS_REGION"] = self.config.aws_region  # sentinel-s2-l1c lives in eu-central-1
        return env


def _overview_level(src: Any, resolution: float) -> int | None:
    """Index of the coarsest overview of band 1 whose pixels are not larger than ``resolution``
    (None: full resolution)."""
    factors = src.overviews(1)
    pixel = abs(src.transform.a)
    fits = [i for i, f in enumerate(factors) if f * pixel <= resolution * 1.0001]
    return max(fits) if fits else None


def _when(item: dict[str, Any]) -> dt.datetime:
    props = item.get("properties", {})
    text = props.get("datetime") or props.get("start_datetime")
    if not text:
        raise ImageryError(f"STAC item {item.get('id')} has no datetime: the catalog is not STAC-compliant")
    return dt.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
