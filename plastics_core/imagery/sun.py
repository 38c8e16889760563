"""Sun angles of a Sentinel-2 scene, for cloud-shadow masking (:mod:`plastics_core.imagery.cloudmask`).

Angles are in degrees: azimuth clockwise from north (0..360), zenith from the vertical (0..90;
zenith = 90 - elevation). Where they come from, per source:

- a Sentinel-2 granule metadata file (``MTD_TL.xml``): ``Geometric_Info/Tile_Angles/Mean_Sun_Angle``
  (``ZENITH_ANGLE``, ``AZIMUTH_ANGLE``), the granule's mean (:func:`mtd_tl_sun_angles`);
- GeoTIFF metadata tags (:func:`geotiff_sun_angles`): ``SUN_AZIMUTH`` with ``SUN_ZENITH`` or
  ``SUN_ELEVATION`` as given; otherwise ``DATETIME``, the acquisition time (ISO 8601, UTC when it
  has no offset), from which the sun's position is computed at a given lon/lat with ``astral``
  (NOAA's solar position equations; within 0.02 deg of NREL's SPA reference). GDAL's
  ``TIFFTAG_DATETIME`` is the file's creation time and is never used.
"""

from __future__ import annotations

import datetime as dt
import math
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from pathlib import Path

from plastics_core.errors import ImageryError

#: Largest metadata file parsed (a real MTD_TL.xml is about 0.5-1 MB with its angle grids).
MAX_METADATA_BYTES = 16 * 1024 * 1024


def check_angles(azimuth: float, zenith: float, where: str) -> tuple[float, float]:
    """(azimuth mod 360, zenith) after checking both are finite and the sun is up (zenith in
    [0, 90)); ImageryError naming ``where`` otherwise."""
    if not (math.isfinite(azimuth) and math.isfinite(zenith)) or not 0.0 <= zenith < 90.0:
        raise ImageryError(
            f"{where}: sun azimuth {azimuth} / zenith {zenith} deg are not a daytime sun position "
            "(zenith must be in [0, 90)): fix or remove the scene's sun angles"
        )
    return azimuth % 360.0, zenith


def solar_angles(when: dt.datetime, lon: float, lat: float) -> tuple[float, float]:
    """(sun azimuth, sun zenith) in degrees at ``when`` (naive = UTC) over ``lon``/``lat``
    (EPSG:4326 degrees), without atmospheric refraction."""
    from astral import Observer
    from astral.sun import azimuth, zenith

    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    observer = Observer(latitude=lat, longitude=lon)
    return float(azimuth(observer, when)), float(zenith(observer, when, with_refraction=False))


def parse_datetime(text: str) -> dt.datetime | None:
    """An ISO 8601 acquisition time (``2015-07-11T10:00:08``, optional ``Z`` / offset) as an
    aware UTC datetime, or None when ``text`` is not one."""
    try:
        when = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.astimezone(dt.UTC)


def _float(value: str | None, what: str, where: str) -> float:
    try:
        return float(str(value).strip())
    except ValueError:
        raise ImageryError(
            f"{where}: {what} {str(value)[:40]!r} is not a number of degrees: fix the metadata"
        ) from None


def mtd_tl_sun_angles(path: Path) -> tuple[float, float]:
    """(sun azimuth, sun zenith) from a Sentinel-2 L1C granule ``MTD_TL.xml``
    (``Tile_Angles/Mean_Sun_Angle``). ImageryError when the file is unreadable or lacks them."""
    name = path.name
    try:
        if path.stat().st_size > MAX_METADATA_BYTES:
            raise ImageryError(
                f"{name} is larger than {MAX_METADATA_BYTES // 2**20} MiB: not a granule metadata file"
            )
        root = ET.parse(path).getroot()  # ElementTree never fetches external entities; expat bounds expansion
    except (OSError, ET.ParseError) as err:
        raise ImageryError(f"cannot read sun angles from {name}: {str(err).splitlines()[0]}") from err
    for elem in root.iter():
        if elem.tag.rsplit("}", 1)[-1] == "Mean_Sun_Angle":
            values = {child.tag.rsplit("}", 1)[-1]: child.text for child in elem}
            if "AZIMUTH_ANGLE" in values and "ZENITH_ANGLE" in values:
                az = _float(values["AZIMUTH_ANGLE"], "AZIMUTH_ANGLE", name)
                zen = _float(values["ZENITH_ANGLE"], "ZENITH_ANGLE", name)
                return check_angles(az, zen, name)
    raise ImageryError(
        f"{name} has no Tile_Angles/Mean_Sun_Angle with ZENITH_ANGLE and AZIMUTH_ANGLE: "
        "give the granule's MTD_TL.xml"
    )


def geotiff_sun_angles(
    tags: Mapping[str, str], lon: float, lat: float, where: str, date: dt.date | None = None
) -> tuple[float, float, str] | None:
    """(sun azimuth, sun zenith, how) from a GeoTIFF's metadata ``tags`` (keys case-insensitive):
    ``SUN_AZIMUTH`` + ``SUN_ZENITH`` / ``SUN_ELEVATION``, else the sun at ``DATETIME`` over
    ``lon``/``lat``. None when the tags hold neither, or when ``DATETIME`` is more than a day
    from ``date`` (the acquisition date of the file name: then it is not the acquisition time)."""
    upper = {str(k).upper(): str(v) for k, v in tags.items()}
    if "SUN_AZIMUTH" in upper and ("SUN_ZENITH" in upper or "SUN_ELEVATION" in upper):
        az = _float(upper["SUN_AZIMUTH"], "SUN_AZIMUTH", where)
        if "SUN_ZENITH" in upper:
            zen = _float(upper["SUN_ZENITH"], "SUN_ZENITH", where)
        else:
            zen = 90.0 - _float(upper["SUN_ELEVATION"], "SUN_ELEVATION", where)
        return (*check_angles(az, zen, where), "SUN_* tags")
    when = parse_datetime(upper["DATETIME"]) if "DATETIME" in upper else None
    if when is None or (date is not None and abs((when.date() - date).days) > 1):
        return None
    az, zen = solar_angles(when, lon, lat)
    return (*check_angles(az, zen, f"{where} (DATETIME {when.isoformat()})"), "DATETIME tag")
