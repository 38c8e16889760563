"""EarthOne (EarthDaily, formerly Descartes Labs) adapter: imagery source + compute backend.

Library: ``earthdaily-earthone`` (installed; same API as ``descarteslabs==4.0.0``, which
is used instead when earthone is absent - optional, needs ``setuptools<81``).

Credentials come only from the environment (never files, never logged):

- ``EARTHONE_CLIENT_ID`` + ``EARTHONE_CLIENT_SECRET`` (or ``EARTHONE_REFRESH_TOKEN``), or a
  short-lived ``EARTHONE_TOKEN`` JWT;
- or the seed's ``DESCARTESLABS_CLIENT_ID`` + ``DESCARTESLABS_CLIENT_SECRET`` /
  ``DESCARTESLABS_REFRESH_TOKEN`` (passed to the client as id/secret).

Missing -> :class:`~plastics_core.errors.CredentialsError` naming the variables.
Service URLs default to the library's production settings; :class:`EarthOneUrls` overrides
them (tests point them at a local server).

:class:`EarthOneSource` searches ``Product.get("esa:sentinel-2:l1c:v1").images()
.intersects(DLTile).filter(acquired in period).filter(cloud_fraction <= max)`` and loads
``ImageCollection.stack(12 bands + cirrus, geocontext=DLTile.from_key(tile.key),
scaling="raw", data_type="UInt16")`` - DN on the tile's exact grid (DLTile keys are the
tile keys). Per image: baseline >= 04.00 offset removed; per solar day: first-valid mosaic;
mask = nodata | s2cloudless | cloud shadows. Shadows (``EarthOneConfig.shadow``; None: off) use
the sun angles of the day's first image that has them (catalog ``solar_azimuth_angle`` and
``solar_elevation_angle``, zenith = 90 - elevation); a cloudy day without them keeps its cloud
mask only, and a warning names it. :class:`~plastics_core.imagery.earthone_compute.EarthOneBackend` lives in ``earthone_compute``.
"""

from __future__ import annotations

import datetime as dt
import importlib
import logging
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import numpy as np

from plastics_core.errors import CredentialsError, ImageryError, ParameterError
from plastics_core.geo.bands import BAND_NAMES
from plastics_core.geo.scenes import SceneStack
from plastics_core.imagery.base import SceneInfo
from plastics_core.imagery.cloudmask import CloudMaskConfig, ShadowConfig, cloud_and_shadow_mask, cloud_mask
from plastics_core.imagery.harmonize import harmonize_dn, needs_offset_removal, solar_day
from plastics_core.imagery.sun import check_angles
from plastics_core.retry import RetryPolicy, retry_call

if TYPE_CHECKING:
    from shapely.geometry.base import BaseGeometry

    from plastics_core.geo.periods import Period
    from plastics_core.geo.tiles import Tile

log = logging.getLogger(__name__)
EARTHONE_VARS = ("EARTHONE_CLIENT_ID", "EARTHONE_CLIENT_SECRET", "EARTHONE_REFRESH_TOKEN", "EARTHONE_TOKEN")
DESCARTES_VARS = ("DESCARTESLABS_CLIENT_ID", "DESCARTESLABS_CLIENT_SECRET", "DESCARTESLABS_REFRESH_TOKEN")
S2_L1C_PRODUCT = "esa:sentinel-2:l1c:v1"
#: EarthOne band names of ``esa:sentinel-2:l1c:v1`` in model order (B01 ... B09, B11, B12).
EARTHONE_L1C_BANDS: tuple[str, ...] = (
    "coastal-aerosol",
    "blue",
    "green",
    "red",
    "red-edge",
    "red-edge-2",
    "red-edge-3",
    "nir",
    "red-edge-4",
    "water-vapor",
    "swir1",
    "swir2",
)


@dataclass(frozen=True)
class Credentials:
    """Credentials read from the environment; ``repr`` never shows the values."""

    client_id: str | None
    client_secret: str | None
    jwt_token: str | None
    source: str

    def __repr__(self) -> str:
        parts = [f"{n}=<set>" for n in ("client_id", "client_secret", "jwt_token") if getattr(self, n)]
        return f"Credentials(source={self.source}, {', '.join(parts)})"

    __str__ = __repr__


def credentials_from_env(environ: Mapping[str, str] | None = None) -> Credentials:
    """EarthOne credentials from ``EARTHONE_*`` or the seed's ``DESCARTESLABS_*`` variables."""
    env = os.environ if environ is None else environ

    def get(name: str) -> str | None:  # empty strings count as unset
        return env.get(name) or None

    secret = get("EARTHONE_REFRESH_TOKEN") or get("EARTHONE_CLIENT_SECRET")
    if get("EARTHONE_CLIENT_ID") and secret:
        return Credentials(get("EARTHONE_CLIENT_ID"), secret, get("EARTHONE_TOKEN"), "EARTHONE_*")
    if get("EARTHONE_TOKEN"):
        return Credentials(get("EARTHONE_CLIENT_ID"), None, get("EARTHONE_TOKEN"), "EARTHONE_TOKEN")
    dl_secret = get("DESCARTESLABS_REFRESH_TOKEN") or get("DESCARTESLABS_CLIENT_SECRET")
    if get("DESCARTESLABS_CLIENT_ID") and dl_secret:
        return Credentials(get("DESCARTESLABS_CLIENT_ID"), dl_secret, None, "DESCARTESLABS_*")
    raise CredentialsError(
        "EarthOne credentials missing: set EARTHONE_CLIENT_ID and EARTHONE_CLIENT_SECRET (or "
        "EARTHONE_REFRESH_TOKEN, or EARTHONE_TOKEN), or DESCARTESLABS_CLIENT_ID with "
        "DESCARTESLABS_CLIENT_SECRET / DESCARTESLABS_REFRESH_TOKEN"
    )


def load_library() -> SimpleNamespace:
    """The client library as a namespace (root, auth, catalog, compute, geo, raster module)."""
    for root in ("earthdaily.earthone", "descarteslabs"):
        try:
            mods = {n: importlib.import_module(f"{root}.{n}") for n in ("auth", "catalog", "compute", "geo")}
            raster = importlib.import_module(f"{root}.core.client.services.raster")
        except ImportError:
            continue
        return SimpleNamespace(root=root, raster=raster, **mods)
    raise ImageryError(
        "EarthOne client library not installed: pip install earthdaily-earthone==6.2.0 "
        "(or descarteslabs==4.0.0 with setuptools<81)"
    )


@dataclass(frozen=True)
class EarthOneUrls:
    """Service base URLs; ``None`` = the library's configured (production) URL."""

    catalog: str | None = None
    raster: str | None = None
    compute: str | None = None


def make_clients(
    credentials: Credentials, urls: EarthOneUrls | None = None, lib: SimpleNamespace | None = None
) -> SimpleNamespace:
    """Authenticated ``catalog``, ``raster`` and ``compute`` clients (+ ``auth``, ``lib``).

    Never reads or writes ``~/.earthone/token_info.json`` (``token_info_path=None``). The
    library's own HTTP status retries are switched off: :mod:`retry` owns the budget."""
    from urllib3.util.retry import Retry

    lib = lib or load_library()
    u = urls or EarthOneUrls()
    once = Retry(total=0, raise_on_status=False, redirect=3)
    auth = lib.auth.Auth(
        client_id=credentials.client_id,
        client_secret=credentials.client_secret,
        jwt_token=credentials.jwt_token,
        token_info_path=None,
        retries=once,
        _suppress_warning=True,
    )
    catalog = lib.catalog.CatalogClient(url=u.catalog, auth=auth, retries=once)
    raster = lib.raster.Raster(url=u.raster, auth=auth, retries=once)
    compute = lib.compute.ComputeClient(url=u.compute, auth=auth, catalog_client=catalog, retries=once)
    return SimpleNamespace(lib=lib, auth=auth, catalog=catalog, raster=raster, compute=compute)


@dataclass(frozen=True)
class EarthOneConfig:
    """Which product/bands to read and how. ``max_cloud_fraction`` is a fraction in [0, 1]."""

    product_id: str = S2_L1C_PRODUCT
    bands: tuple[str, ...] = EARTHONE_L1C_BANDS
    cirrus_band: str | None = "cirrus"
    max_cloud_fraction: float = 0.8
    harmonize: bool = True
    cloud_mask: CloudMaskConfig = field(default_factory=CloudMaskConfig)
    shadow: ShadowConfig | None = field(default_factory=ShadowConfig)
    max_images: int = 500
    urls: EarthOneUrls = field(default_factory=EarthOneUrls)
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    def __post_init__(self) -> None:
        if len(self.bands) != len(BAND_NAMES):
            raise ParameterError(
                f"EarthOne bands must name the 12 model bands {','.join(BAND_NAMES)} in order"
            )
        if not 0.0 <= self.max_cloud_fraction <= 1.0:
            raise ParameterError(f"max_cloud_fraction {self.max_cloud_fraction} is outside [0, 1]")


class EarthOneSource:
    """ImagerySource over the EarthOne catalog + raster service (see module docstring)."""

    def __init__(
        self,
        config: EarthOneConfig | None = None,
        *,
        clients: SimpleNamespace | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.config = config or EarthOneConfig()
        self.clients = clients or make_clients(credentials_from_env(environ), self.config.urls)
        self.name = f"earthone:{self.config.product_id}"
        self._no_sun: set[str] = set()  # images already reported as lacking sun angles

    def images(self, where: Any, period: Period) -> Any:
        """The catalog ImageCollection intersecting ``where`` (geometry or DLTile) in ``period``."""
        cfg, lib = self.config, self.clients.lib
        p = lib.catalog.properties
        start, end = period.start - dt.timedelta(days=1), period.end + dt.timedelta(days=1)

        def query() -> Any:
            product = lib.catalog.Product.get(cfg.product_id, client=self.clients.catalog)
            if product is None:
                raise ImageryError(
                    f"EarthOne product {cfg.product_id} not found: check the product id and access"
                )
            return (
                product.images()
                .intersects(where)
                .filter(start.isoformat() <= p.acquired)
                .filter(p.acquired < end.isoformat())
                .filter(p.cloud_fraction <= cfg.max_cloud_fraction)
                .sort("acquired")
                .limit(cfg.max_images)
                .collect()
            )

        return retry_call(query, what=f"EarthOne image search ({cfg.product_id})", policy=cfg.retry)

    def _in_period(self, images: Any, lon: float, period: Period) -> list[Any]:
        return [im for im in images if period.contains(solar_day(_acquired(im), lon))]

    def search(self, geometry_4326: BaseGeometry, period: Period) -> list[SceneInfo]:
        """One SceneInfo per image (solar day at the geometry centroid; cloud cover in %)."""
        lon = geometry_4326.centroid.x
        out = []
        for im in self._in_period(self.images(geometry_4326, period), lon, period):
            cf = getattr(im, "cloud_fraction", None)
            out.append(
                SceneInfo(str(im.id), solar_day(_acquired(im), lon), None if cf is None else 100.0 * cf)
            )
        return out

    def load(self, tile: Tile, period: Period) -> SceneStack:
        """Images of ``period`` on the tile's DLTile grid: (t, 12, rows, cols) uint16 DN + mask."""
        cfg, lib = self.config, self.clients.lib
        rows, cols = tile.shape
        ctx = lib.geo.DLTile.from_key(tile.key)
        lon = tile.geometry_4326.centroid.x
        images = self._in_period(self.images(ctx, period), lon, period)
        use_cirrus = cfg.cirrus_band is not None and cfg.cloud_mask.method != "none"
        names: list[str] = [*cfg.bands, *([cfg.cirrus_band] if use_cirrus and cfg.cirrus_band else [])]
        groups: dict[dt.date, list[int]] = {}
        for i, im in enumerate(images):
            groups.setdefault(solar_day(_acquired(im), lon), []).append(i)
        arr = np.zeros((0, len(names), rows, cols), np.uint16)
        if images:
            collection = lib.catalog.ImageCollection(images, geocontext=ctx)
            arr = retry_call(
                lambda: self._stack(collection, names, ctx),
                what=f"EarthOne stack {tile.key}",
                policy=cfg.retry,
            )
        if arr.shape[2:] != (rows, cols):
            raise ImageryError(
                f"EarthOne returned {arr.shape[2:]} px for tile {tile.key}, expected {(rows, cols)}"
            )
        datas, masks, dates, ids = [], [], [], []
        for day, idx in sorted(groups.items()):
            data = np.zeros((len(names), rows, cols), np.uint16)
            for i in idx:
                offset = cfg.harmonize and needs_offset_removal(
                    _baseline(images[i]), _acquired(images[i]).date()
                )
                fill = np.any(data[: len(BAND_NAMES)] == 0, axis=0) & np.all(
                    arr[i, : len(BAND_NAMES)] != 0, axis=0
                )
                data[:, fill] = harmonize_dn(arr[i][:, fill], offset)
            bands, nodata = data[: len(BAND_NAMES)], np.any(data[: len(BAND_NAMES)] == 0, axis=0)
            if nodata.all():
                continue
            cloud = (
                cloud_mask(bands[None], data[-1][None], cfg.cloud_mask)[0] & ~nodata
                if use_cirrus
                else np.zeros_like(nodata)
            )
            if cfg.shadow is not None and cloud.any():
                az, zen = _sun_angles([images[i] for i in idx], self._no_sun)
                cloud = cloud_and_shadow_mask(
                    bands[None], cloud[None], az, zen, float(tile.resolution), cfg.shadow
                )[0]
            flagged = nodata | cloud
            datas.append(bands)
            masks.append(nodata | flagged)
            dates.append(day)
            ids.append("+".join(str(images[i].id) for i in idx))
        return SceneStack(
            data=np.stack(datas) if datas else np.zeros((0, len(BAND_NAMES), rows, cols), np.uint16),
            mask=np.stack(masks) if masks else np.zeros((0, rows, cols), bool),
            crs=str(tile.crs),
            transform=tile.transform,
            dates=tuple(dates),
            scene_ids=tuple(ids),
        )

    def _stack(self, collection: Any, names: list[str], ctx: Any) -> np.ndarray:
        """(images, bands, rows, cols) uint16 raw DN; nodata/masked -> 0."""
        try:
            stack = collection.stack(
                names,
                geocontext=ctx,
                scaling="raw",
                data_type="UInt16",
                mask_alpha=False,
                raster_client=self.clients.raster,
                progress=False,
            )
        except ValueError as err:  # unknown band names, bad geocontext
            raise ImageryError(
                f"EarthOne stack of {self.config.product_id} failed ({str(err).splitlines()[0]}): "
                "check the band names in EarthOneConfig.bands"
            ) from err
        return np.asarray(np.ma.filled(stack, 0), dtype=np.uint16)


def _acquired(image: Any) -> dt.datetime:
    """The image's acquisition time (the client gives a datetime, or the raw string if naive)."""
    value = image.acquired
    if isinstance(value, dt.datetime):
        return value
    return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _sun_angles(images: list[Any], reported: set[str]) -> tuple[float, float]:
    """(sun azimuth, sun zenith) in degrees of the first image with ``solar_azimuth_angle`` and
    ``solar_elevation_angle``; NaN (no shadow masking) if none has them: a warning names the
    images, once (``reported`` keeps the names already warned about)."""
    for image in images:
        az, elev = getattr(image, "solar_azimuth_angle", None), getattr(image, "solar_elevation_angle", None)
        if az is not None and elev is not None and math.isfinite(float(az)) and math.isfinite(float(elev)):
            return check_angles(float(az), 90.0 - float(elev), f"EarthOne image {image.id}")
    key = "+".join(str(im.id) for im in images)
    if key not in reported:
        reported.add(key)
        log.warning(
            "cloud shadows not masked on %s: the catalog gives no solar_azimuth_angle / "
            "solar_elevation_angle",
            key,
        )
    return float("nan"), float("nan")


def _baseline(image: Any) -> str | None:
    """Processing baseline from ``extra_properties`` or an ``_Nxxyy_`` product URI in the ids."""
    extra = getattr(image, "extra_properties", None) or {}
    for key in ("processing_baseline", "s2:processing_baseline"):
        if extra.get(key):
            return str(extra[key])
    for attr in ("provider_id", "name", "id"):
        text = str(getattr(image, attr, None) or "")
        if re.search(r"_N\d{4}(_|$)", text):
            return text
    return None
