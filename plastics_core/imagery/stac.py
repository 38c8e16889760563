"""StacSource: Sentinel-2 L1C from a STAC API (default Element 84 Earth Search v1).

Settings in :mod:`.stac_config`, the catalog search in :mod:`.stac_catalog`, one asset's read
in :mod:`.stac_read`; this module mosaics, masks and stacks.

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
  cover (``max_cloud_cover``) and footprint, and a solar day by ``min_coverage`` (the share
  of the tile its items' footprints cover, :func:`.stac_catalog.footprint_coverage`); a day's
  items stop being read once every tile pixel (with the granule cache: every pixel not masked
  as cloud at 60 m) is filled. With
  s2cloudless and ``cloud_mask_resolution`` (default 60 m), the mask is computed first on a
  coarse grid (the tile grid with 60 m pixels) from the bands it needs (B01 B02 B04 B05 B08
  B8A B09 B10 B11 B12) read from the source files' resolution levels (JPEG 2000) nearest that
  resolution (with the granule cache: blocks of those levels, decoded once per granule; the
  same pixels, so the mask does not depend on what is cached),
  repeated onto the 10 m grid and post-processed there (``average_over`` and
  ``dilation_size`` in 10 m pixels); a day masked everywhere (cloud or nodata) on the tile is
  then not decoded at 10 m: it is kept with data 0 and mask True. ``cloud_mask_resolution=None``
  computes the mask from the 10 m bands as before.
- 20 m and 60 m bands are decoded at their native resolution and replicated onto the 10 m
  grid by the nearest-neighbour warp (the same values as upsampling after the read).
- ``granule_cache``: a :class:`~plastics_core.imagery.granule_cache.GranuleCache` decodes each
  block of a granule band (aligned to its JPEG 2000 code tiles, native resolution) once, when a
  tile first needs it; tiles read the blocks. With the 60 m cloud mask (and no ESA mask or SCL
  asset), blocks in which every pixel of the tile is cloud are not decoded for that tile: those
  pixels are masked whatever their values (the mask, shadows included, and the composites are
  the same; their data is 0 instead of the cloud's DN).
- ``timer`` accumulates wall / CPU seconds per stage: ``catalog``, ``read`` (fetch + decode +
  warp of every band read, cache fills included), ``cloud_mask`` (s2cloudless compute).
- Earth Search's L1C JP2s live in the requester-pays bucket ``s3://sentinel-s2-l1c``:
  reads need AWS credentials in the environment and are made with
  ``AWS_REQUEST_PAYER=requester`` (set by this module via ``rasterio.Env``); the requester
  pays the egress.
- Faults: catalog requests and raster reads are retried on transient errors (HTTP 429/5xx,
  timeouts) per :class:`~plastics_core.retry.RetryPolicy`; then ImageryError.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np
import rasterio
from affine import Affine

from plastics_core.errors import ImageryError, ParameterError
from plastics_core.geo.bands import BAND_NAMES
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
from plastics_core.imagery.granule_blocks import Grid
from plastics_core.imagery.harmonize import harmonize_dn, needs_offset_removal, solar_day
from plastics_core.imagery.stac_catalog import (
    cloud_cover,
    fetch_items,
    filter_items,
    footprint_coverage,
    item_time,
)
from plastics_core.imagery.stac_config import (
    PLANETARY_COMPUTER,
    SCL_MASKED,
    StacConfig,
    planetary_computer_l2a,
)
from plastics_core.imagery.stac_read import checked_href, gdal_env, read_asset
from plastics_core.redact import redact_url, remember
from plastics_core.timing import StageTimer

if TYPE_CHECKING:
    from shapely.geometry.base import BaseGeometry

    from plastics_core.geo.periods import Period
    from plastics_core.geo.tiles import Tile


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
        return StacSource(
            url=url,
            collection=collection,
            cirrus_key=None,
            scl_asset="scl",
            cloud_mask=CloudMaskConfig(method="none"),
            requester_pays=False,
        )
    raise ParameterError(f"unknown STAC collection {collection!r}: use sentinel-2-l1c or sentinel-2-l2a")


class StacSource:
    """ImagerySource over a STAC API; see the module docstring for the exact behaviour."""

    def __init__(self, config: StacConfig | None = None, **overrides: Any) -> None:
        self.config = replace(config or StacConfig(), **overrides)
        remember(self.config.url)  # its token is scrubbed even where the catalog echoes it
        self.name = f"stac:{redact_url(self.config.url)}#{self.config.collection}"
        self.timer = StageTimer()

    # -- catalog -------------------------------------------------------------------------
    def items(self, geometry_4326: BaseGeometry, period: Period) -> list[dict[str, Any]]:
        """Raw STAC item dicts intersecting the geometry whose solar day is in ``period`` and
        whose ``eo:cloud_cover`` <= max, sorted by datetime; ImageryError (one line, naming the
        item) when an asset the source reads has an href over a scheme it does not allow. Items
        sharing an id stay distinct (the granule cache keys them by href too)."""
        with self.timer("catalog"):
            raw = fetch_items(self.config, geometry_4326, period)
        kept = filter_items(raw, self.config, geometry_4326, period)
        cfg = self.config
        keys = [*cfg.asset_keys, *(k for k in (cfg.cirrus_key, cfg.mask_asset, cfg.scl_asset) if k)]
        for item in kept:  # before any pixel is read: every href over a scheme this source allows
            for key in keys:
                if key in item.get("assets", {}):
                    checked_href(cfg, item, key)
        return kept

    def search(self, geometry_4326: BaseGeometry, period: Period) -> list[SceneInfo]:
        """One SceneInfo per item (date = solar day at the geometry's centroid)."""
        lon = geometry_4326.centroid.x
        out = []
        for item in self.items(geometry_4326, period):
            out.append(SceneInfo(str(item["id"]), solar_day(item_time(item), lon), cloud_cover(item)))
        return out

    # -- pixels --------------------------------------------------------------------------
    def load(self, tile: Tile, period: Period) -> SceneStack:
        """Items of ``period`` on ``tile``'s grid: data (t, 12, rows, cols) uint16 harmonized DN,
        mask (t, rows, cols) bool; one time step per solar day."""
        rows, cols = tile.shape
        lon = tile.geometry_4326.centroid.x
        groups: dict[dt.date, list[dict[str, Any]]] = {}
        for item in self.items(tile.geometry_4326, period):
            groups.setdefault(solar_day(item_time(item), lon), []).append(item)
        datas, masks, dates, ids = [], [], [], []
        with rasterio.Env(**gdal_env(self.config)):
            for day, group in sorted(groups.items()):
                if (
                    self.config.min_coverage > 0
                    and footprint_coverage(group, str(tile.crs), tile.bounds) < self.config.min_coverage
                ):
                    continue  # GPW's coverage rule: the day's footprints leave too much of the tile
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
            crs=str(tile.crs),
            transform=tile.transform,
            dates=tuple(dates),
            scene_ids=tuple(ids),
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
        clear: np.ndarray | None = None  # pixels worth decoding at 10 m (None: every pixel)
        if factor > 1:
            flagged, seen = self._coarse_cloud(group, tile, factor)
            if (flagged | ~seen).all():  # nothing clear on the tile: no 10 m decode
                return data, np.ones((rows, cols), bool), bool(seen.any())
            if cfg.granule_cache is not None and cfg.mask_asset is None and cfg.scl_asset is None:
                clear = ~flagged  # cloud pixels stay masked whatever their values: skip their blocks
        for item in group:
            empty = np.any(data == 0, axis=0)
            want = empty if clear is None else empty & clear
            if not want.any():
                break
            offset = self._offset(item)
            need = None if clear is None else want
            bands = np.stack([self._read(item, key, grid, need=need) for key in cfg.asset_keys])
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
                raise ImageryError(
                    "s2cloudless needs the B10 cirrus asset: set cirrus_key or cloud_mask method 'none'"
                )
            with self.timer("cloud_mask"):
                flagged |= cloud_mask(data[None], cirrus[None], cfg.cloud_mask)[0]
        if cfg.cloud_mask.method != "none" and not nodata.all():  # L1C: add the clouds' shadows
            with self.timer("cloud_mask"):
                az, zen = sun_angles(next(iter(group)).get("properties", {}))
                flagged = cloud_and_shadow_mask(data[None], flagged[None], az, zen, float(tile.resolution))[0]
        if clear is not None:  # a cloud pixel whose blocks were skipped was seen at 60 m
            return data, nodata | flagged, not (nodata & ~(flagged & seen)).all()
        return data, nodata | flagged, not nodata.all()

    def _offset(self, item: dict[str, Any]) -> bool:
        return bool(
            self.config.harmonize
            and needs_offset_removal(
                item.get("properties", {}).get("s2:processing_baseline"), item_time(item).date()
            )
        )

    def _coarse_factor(self, tile: Tile) -> int:
        """How many tile pixels one cloud-mask pixel spans (1: mask at the tile's resolution)."""
        cfg = self.config
        if cfg.cloud_mask.method == "none" or cfg.cloud_mask_resolution is None or cfg.cirrus_key is None:
            return 1
        return max(1, round(cfg.cloud_mask_resolution / abs(tile.transform.a)))

    def _coarse_cloud(
        self, group: list[dict[str, Any]], tile: Tile, factor: int
    ) -> tuple[np.ndarray, np.ndarray]:
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

    def _read(
        self,
        item: dict[str, Any],
        key: str,
        grid: Grid,
        nodata: float | None = 0,
        coarse: bool = False,
        need: np.ndarray | None = None,
    ) -> np.ndarray:
        """One asset's first band on ``grid`` (:func:`.stac_read.read_asset`), timed as ``read``."""
        with self.timer("read"):
            return read_asset(self.config, item, key, grid, nodata, coarse, need)
