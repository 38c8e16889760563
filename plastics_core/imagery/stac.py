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
- Earth Search's L1C JP2s live in the requester-pays bucket ``s3://sentinel-s2-l1c``:
  reads need AWS credentials in the environment and are made with
  ``AWS_REQUEST_PAYER=requester`` (set by this module via ``rasterio.Env``); the requester
  pays the egress.
- Faults: catalog requests and raster reads are retried on transient errors (HTTP 429/5xx,
  timeouts) per :class:`~plastics_core.imagery.retry.RetryPolicy`; then ImageryError.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import rasterio
from shapely.geometry import mapping, shape

from plastics_core.bands import BAND_NAMES, STAC_ASSET_KEYS
from plastics_core.errors import ImageryError, ParameterError
from plastics_core.imagery.base import SceneInfo
from plastics_core.imagery.cloudmask import (
    CloudMaskConfig,
    cloud_and_shadow_mask,
    cloud_mask,
    esa_l1c_mask,
    sun_angles,
)
from plastics_core.imagery.harmonize import harmonize_dn, needs_offset_removal, solar_day
from plastics_core.imagery.local import read_on_grid, resampling_for
from plastics_core.imagery.retry import RetryPolicy, redact, retry_call
from plastics_core.scenes import SceneStack

if TYPE_CHECKING:
    from shapely.geometry.base import BaseGeometry

    from plastics_core.periods import Period
    from plastics_core.tiles import Tile

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

    def __post_init__(self) -> None:
        if len(self.asset_keys) != len(BAND_NAMES):
            raise ParameterError(f"asset_keys must name the 12 model bands {','.join(BAND_NAMES)} in order")
        if not 0.0 <= self.max_cloud_cover <= 100.0:
            raise ParameterError(f"max_cloud_cover {self.max_cloud_cover} is outside [0, 100] percent")
        resampling_for(self.resampling)


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
                data, mask = self._load_day(group, tile)
                if np.any(data == 0, axis=0).all():  # no data on this tile (cloudy days are kept, masked)
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

    def _load_day(self, group: Iterable[dict[str, Any]], tile: Tile) -> tuple[np.ndarray, np.ndarray]:
        """Mosaic of one solar day's items: (12, rows, cols) uint16 DN and (rows, cols) mask."""
        cfg = self.config
        rows, cols = tile.shape
        data = np.zeros((len(BAND_NAMES), rows, cols), np.uint16)
        cirrus = np.zeros((rows, cols), np.uint16)
        flagged = np.zeros((rows, cols), bool)
        for item in group:
            offset = cfg.harmonize and needs_offset_removal(
                item.get("properties", {}).get("s2:processing_baseline"), _when(item).date()
            )
            bands = np.stack([self._read(item, key, tile) for key in cfg.asset_keys])
            fill = np.any(data == 0, axis=0) & np.all(bands != 0, axis=0)
            data[:, fill] = harmonize_dn(bands[:, fill], offset)
            if cfg.cirrus_key is not None and cfg.cloud_mask.method != "none":
                cirrus[fill] = harmonize_dn(self._read(item, cfg.cirrus_key, tile)[fill], offset)
            if cfg.mask_asset is not None and cfg.mask_asset in item.get("assets", {}):
                flagged[fill] = esa_l1c_mask(self._read(item, cfg.mask_asset, tile, nodata=None))[fill]
            if cfg.scl_asset is not None and cfg.scl_asset in item.get("assets", {}):
                scl = self._read(item, cfg.scl_asset, tile, nodata=None)
                flagged[fill] = np.isin(scl, SCL_MASKED)[fill]
        nodata = np.any(data == 0, axis=0)
        if cfg.cloud_mask.method != "none" and not nodata.all():
            if cfg.cirrus_key is None:
                raise ImageryError("s2cloudless needs the B10 cirrus asset: set cirrus_key or cloud_mask method 'none'")
            flagged |= cloud_mask(data[None], cirrus[None], cfg.cloud_mask)[0]
            az, zen = sun_angles(next(iter(group)).get("properties", {}))  # L1C: add the clouds' shadows
            flagged = cloud_and_shadow_mask(data[None], flagged[None], az, zen, float(tile.resolution))[0]
        return data, nodata | flagged

    def _read(self, item: dict[str, Any], key: str, tile: Tile, nodata: float | None = 0) -> np.ndarray:
        """One asset's first band warped onto the tile grid, (rows, cols) in the asset dtype."""
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

        def read() -> np.ndarray:
            with rasterio.open(href) as src:
                arr = read_on_grid(src, str(tile.crs), tile.transform, tile.shape,
                                   resampling_for(cfg.resampling), indexes=[1], nodata=nodata)
            return arr[0]

        try:
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


def _when(item: dict[str, Any]) -> dt.datetime:
    props = item.get("properties", {})
    text = props.get("datetime") or props.get("start_datetime")
    if not text:
        raise ImageryError(f"STAC item {item.get('id')} has no datetime: the catalog is not STAC-compliant")
    return dt.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
