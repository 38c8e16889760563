"""STAC catalog search: raw item dicts for a geometry and a period.

pystac-client POST ``/search`` (collection, geometry, date range widened by a day,
``query={"eo:cloud_cover": {"lte": max_cloud_cover}}``), retried on transient errors per the
config's :class:`~plastics_core.retry.RetryPolicy`; then filtered again client-side
(cloud cover, solar day inside the half-open period, footprint) and sorted by acquisition time.
:func:`footprint_coverage`: the share of a tile that a day's footprints cover (``min_coverage``).
"""

from __future__ import annotations

import datetime as dt
import warnings
from typing import TYPE_CHECKING, Any

from shapely.geometry import mapping, shape

from plastics_core.errors import ImageryError, PlasticsError
from plastics_core.imagery.harmonize import solar_day
from plastics_core.imagery.stac_config import StacConfig
from plastics_core.redact import redact, redacted_cause
from plastics_core.retry import retry_call

if TYPE_CHECKING:
    from shapely.geometry.base import BaseGeometry

    from plastics_core.geo.periods import Period


def fetch_items(cfg: StacConfig, geometry_4326: BaseGeometry, period: Period) -> list[dict[str, Any]]:
    """Every item the catalog returns for ``geometry_4326`` (EPSG:4326) in ``period`` ± 1 day."""
    from pystac_client import Client
    from pystac_client.stac_api_io import StacApiIO

    lo = (period.start - dt.timedelta(days=1)).isoformat()
    hi = (period.end + dt.timedelta(days=1)).isoformat()

    def fetch() -> list[dict[str, Any]]:
        io = StacApiIO(max_retries=None, timeout=cfg.timeout_s)
        client = Client.open(cfg.url, stac_io=io)
        search = client.search(
            collections=[cfg.collection],
            intersects=mapping(geometry_4326),
            datetime=f"{lo}T00:00:00Z/{hi}T00:00:00Z",
            query={"eo:cloud_cover": {"lte": cfg.max_cloud_cover}},
            max_items=cfg.max_items,
        )
        return list(search.items_as_dicts())

    what = f"STAC search {redact(cfg.url)} ({cfg.collection})"
    try:
        return retry_call(fetch, what=what, policy=cfg.retry)
    except PlasticsError:
        raise
    except Exception as err:  # noqa: BLE001 - a refusal (401, 404, bad JSON): one line, no URL secret
        text = redact(" ".join(str(err).split()))[:200] or type(err).__name__
        status = getattr(err, "status_code", None)
        text = f"HTTP {status} {text}" if isinstance(status, int) and str(status) not in text else text
        raise ImageryError(
            f"{what} failed ({type(err).__name__}: {text}): check the catalog URL, collection and credentials"
        ) from redacted_cause(err)


def filter_items(
    raw: list[dict[str, Any]], cfg: StacConfig, geometry_4326: BaseGeometry, period: Period
) -> list[dict[str, Any]]:
    """The items of ``raw`` whose ``eo:cloud_cover`` <= max, whose solar day (at the geometry's
    centroid) is in ``period`` and whose footprint meets the geometry, sorted by (time, id)."""
    lon = geometry_4326.centroid.x
    kept = []
    for item in raw:
        cc = cloud_cover(item)
        if cc is not None and cc > cfg.max_cloud_cover:
            continue
        when = item_time(item)
        if not period.contains(solar_day(when, lon)):
            continue
        geom = footprint(item)
        if geom is not None and not geom.intersects(geometry_4326):
            continue
        kept.append((when, item["id"], item))
    return [item for _, _, item in sorted(kept, key=lambda k: k[:2])]


def footprint_coverage(
    items: list[dict[str, Any]], crs: str, bounds: tuple[float, float, float, float]
) -> float:
    """Fraction (0..1) of the box ``bounds`` = (left, bottom, right, top) in ``crs`` (a tile) covered
    by the union of the items' footprints (their GeoJSON ``geometry``, EPSG:4326, projected to
    ``crs``; a self-intersecting footprint is repaired first); 1.0 when an item has no geometry
    (nothing can be ruled out), 0.0 for no item."""
    from pyproj import Transformer
    from shapely.geometry import box
    from shapely.ops import transform as reproject
    from shapely.ops import unary_union

    shapes = [footprint(it) for it in items]
    if not items or any(g is None for g in shapes):
        return 1.0 if items else 0.0
    grid = box(*bounds)
    to_crs = Transformer.from_crs("EPSG:4326", crs, always_xy=True).transform
    footprints = unary_union([reproject(to_crs, g) for g in shapes])
    return float(footprints.intersection(grid).area / grid.area)


def footprint(item: dict[str, Any]) -> BaseGeometry | None:
    """The item's footprint (its GeoJSON ``geometry``, EPSG:4326; a self-intersecting one repaired),
    None when it has none; ImageryError (one line) when the geometry is malformed."""
    from shapely import make_valid

    if not item.get("geometry"):
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            geom = make_valid(shape(item["geometry"]))
    except Exception as exc:  # shapely raises several kinds on malformed GeoJSON
        raise ImageryError(
            f"STAC item {item.get('id')!r} has a malformed geometry ({type(exc).__name__}): the "
            "catalog item is malformed"
        ) from exc
    return geom


def _properties(item: dict[str, Any]) -> dict[str, Any]:
    """The item's ``properties`` after checking the fields every item needs (catalog answers are
    untrusted): a non-empty string ``id`` and a ``properties`` object; else one-line ImageryError."""
    ident, props = item.get("id"), item.get("properties")
    if not isinstance(ident, str) or not ident:
        raise ImageryError(
            f"STAC item with id {ident!r}: an item needs a non-empty string id; the catalog is "
            "not STAC-compliant"
        )
    if not isinstance(props, dict):
        raise ImageryError(f"STAC item {ident!r} has no properties object: the catalog is not STAC-compliant")
    return props


def cloud_cover(item: dict[str, Any]) -> float | None:
    """The item's ``eo:cloud_cover`` in percent (None when absent); ImageryError (one line) when it
    is not a finite number in [0, 100]."""
    value = _properties(item).get("eo:cloud_cover")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= float(value) <= 100.0:
        raise ImageryError(
            f"STAC item {item['id']!r} has eo:cloud_cover {value!r}: expected a percentage in "
            "[0, 100]; the catalog item is malformed"
        )
    return float(value)


def item_time(item: dict[str, Any]) -> dt.datetime:
    """The item's acquisition time (``datetime``, else ``start_datetime``), timezone-aware."""
    props = _properties(item)
    text = props.get("datetime") or props.get("start_datetime")
    if not text:
        raise ImageryError(f"STAC item {item['id']!r} has no datetime: the catalog is not STAC-compliant")
    try:
        when = dt.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError as exc:
        raise ImageryError(
            f"STAC item {item['id']!r} has datetime {text!r}, not an ISO 8601 time: the catalog "
            "item is malformed"
        ) from exc
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)
