"""Reads of one STAC asset onto a tile grid, and the GDAL settings for them.

An asset's first band is warped by GDAL onto a grid ``(crs, transform, (rows, cols))``
(resampling from the config, nearest by default: output values are the source DN), in the
asset's dtype; through the granule cache when one is configured; retried on transient errors.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import rasterio

from plastics_core.errors import ImageryError
from plastics_core.imagery.granule_blocks import Grid, coarsest_level
from plastics_core.imagery.granule_key import Granule
from plastics_core.imagery.local import read_on_grid, resampling_for
from plastics_core.imagery.stac_config import StacConfig
from plastics_core.redact import redact, redact_url, redacted_cause
from plastics_core.retry import retry_call


def read_asset(
    cfg: StacConfig,
    item: dict[str, Any],
    key: str,
    grid: Grid,
    nodata: float | None = 0,
    coarse: bool = False,
    need: np.ndarray | None = None,
) -> np.ndarray:
    """Asset ``key`` of ``item`` on ``grid``: (rows, cols) in the asset dtype. ``coarse``: read
    the source's overview (JPEG 2000 resolution level) nearest below the grid's resolution
    instead of full resolution (through the granule cache: blocks of that level, the same
    pixels, so a cloud mask computed from it does not depend on what is cached). ``need`` ((rows, cols) bool, granule cache only): the
    pixels wanted; blocks of the granule that no wanted pixel samples are not decoded and read
    as ``nodata`` (0 when None)."""
    catalog_href = checked_href(cfg, item, key)
    href = cfg.href_modifier(catalog_href) if cfg.href_modifier is not None else catalog_href
    granule = Granule(
        item_id=str(item.get("id")), href=catalog_href, catalog=redact_url(cfg.url), collection=cfg.collection
    )
    crs, transform, shape = grid
    cache = cfg.granule_cache

    resampling = resampling_for(cfg.resampling)

    def read() -> np.ndarray:
        band: np.ndarray
        if cache is not None:
            if coarse:
                band = cache.read_coarse(
                    granule, key, lambda **kw: rasterio.open(href, **kw), grid, resampling, nodata
                )
            else:
                band = cache.read(granule, key, lambda: rasterio.open(href), grid, resampling, nodata, need)
            return band
        with rasterio.open(href) as src:
            level = overview_level(src, abs(transform.a)) if coarse else None
            if level is None:
                band = read_on_grid(src, crs, transform, shape, resampling, indexes=[1], nodata=nodata)[0]
                return band
        with rasterio.open(href, overview_level=level) as src:
            band = read_on_grid(src, crs, transform, shape, resampling, indexes=[1], nodata=nodata)[0]
        return band

    try:
        return retry_call(read, what=f"read {item.get('id')}:{key}", policy=cfg.retry)
    except rasterio.errors.RasterioIOError as err:
        raise ImageryError(
            f"cannot read asset {key} of {item.get('id')} ({redact(str(err).splitlines()[0])[:160]}): "
            "for s3:// assets set AWS credentials (requester-pays)"
        ) from redacted_cause(err)


def href_scheme(href: str) -> str:
    """The scheme an href is read over: its URL scheme (lower case); ``file`` for a local path;
    ``gdal`` for a GDAL virtual path (``/vsicurl/...``, ``/vsis3/...``)."""
    if href.startswith("/vsi"):
        return "gdal"
    if "://" in href:
        return href.split("://", 1)[0].lower()
    scheme = href.split(":", 1)[0] if ":" in href else ""
    return "file" if not scheme or "/" in scheme or "\\" in scheme else scheme.lower()


def checked_href(cfg: StacConfig, item: dict[str, Any], key: str) -> str:
    """Asset ``key``'s href as the catalog gave it; ImageryError (one line, naming the item) when it
    has none or its scheme is not one the source allows (:meth:`StacConfig.allowed_schemes`)."""
    asset = item.get("assets", {}).get(key)
    if not isinstance(asset, dict) or not isinstance(asset.get("href"), str) or not asset["href"]:
        raise ImageryError(
            f"STAC item {item.get('id')} has no asset {key!r}: check the collection ({cfg.collection}) "
            "and asset_keys"
        )
    href = str(asset["href"])
    scheme, allowed = href_scheme(href), cfg.allowed_schemes()
    if scheme not in allowed:
        shown = redact(href)
        shown = shown if len(shown) <= 120 else shown[:117] + "..."
        raise ImageryError(
            f"STAC item {str(item.get('id'))[:120]!r} asset {key} has an href over {scheme!r} ({shown}): this source "
            f"reads assets over {', '.join(sorted(allowed))} only; the catalog is not trusted for it (allow it "
            "with StacConfig.asset_schemes)"
        )
    return href


def overview_level(src: Any, resolution: float) -> int | None:
    """Index of the coarsest overview of band 1 whose pixels are not larger than ``resolution``
    metres (None: full resolution)."""
    return coarsest_level(src.overviews(1), abs(src.transform.a), resolution)


def gdal_env(cfg: StacConfig) -> dict[str, Any]:
    """``rasterio.Env`` options for the reads: no directory listing, no GDAL-level HTTP retries
    (the retry policy retries), requester-pays and the bucket's region when configured (the
    region from the environment wins)."""
    env: dict[str, Any] = {"GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR", "GDAL_HTTP_MAX_RETRY": 0}
    if cfg.requester_pays:
        env["AWS_REQUEST_PAYER"] = "requester"
    if cfg.aws_region and not (os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")):
        env["AWS_REGION"] = cfg.aws_region  # sentinel-s2-l1c lives in eu-central-1
    return env
