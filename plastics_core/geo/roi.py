"""Regions of interest: reading and validating ROI GeoJSON files and ROI names.

An ROI is a shapely Polygon or MultiPolygon in EPSG:4326 (lon, lat degrees). Files may hold
a FeatureCollection, a single Feature, or a bare geometry; all features are unioned.

Repair rule: an invalid geometry (self-intersection, bow-tie...) is repaired with
``shapely.make_valid``; the repair is accepted when its polygonal part is non-empty (any
zero-area lines or points make_valid produces are dropped), otherwise RoiError.
"""

from __future__ import annotations

import json
import re
import unicodedata
import warnings
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
import shapely
from pyproj import Transformer
from shapely.geometry import MultiPolygon, Polygon, shape
from shapely.geometry.base import BaseGeometry

from plastics_core.errors import RoiError

#: Default largest ROI accepted without ``force=True`` (km^2; Bali is ~5,600).
MAX_AREA_KM2 = 200_000.0
ROI_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_LONLAT_CRS_NAMES = ("CRS84", "EPSG::4326", "EPSG:4326", "CRS:84")
_EQUAL_AREA = Transformer.from_crs("EPSG:4326", "EPSG:6933", always_xy=True)

Roi: TypeAlias = Polygon | MultiPolygon


def slugify_roi_name(text: str) -> str:
    """A valid ROI name made from free text: ASCII-folded, lower case, runs of other
    characters turned into ``-``, at most 64 characters (``roi`` when nothing is left)."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^a-z0-9_]+", "-", ascii_text.lower()).strip("-_")
    slug = slug[:64].rstrip("-_")
    return slug or "roi"


def roi_name_ok(name: str) -> bool:
    """True when ``name`` is usable in paths, S3 keys and Dagster partition keys."""
    return isinstance(name, str) and ROI_NAME_RE.fullmatch(name) is not None


def validate_roi_name(name: str) -> str:
    """Return ``name`` if it matches ``^[a-z0-9][a-z0-9_-]{0,63}$``, else raise RoiError
    suggesting a slug."""
    if roi_name_ok(name):
        return name
    raise RoiError(
        f"ROI name {name!r} is not allowed: use 1-64 characters of a-z, 0-9, '_' or '-' "
        f"starting with a letter or digit, e.g. {slugify_roi_name(str(name))!r}"
    )


def roi_area_km2(geom: BaseGeometry) -> float:
    """Area of a lon/lat (EPSG:4326) geometry in km^2, in equal-area EPSG:6933."""
    projected = shapely.transform(geom, lambda xy: np.column_stack(_EQUAL_AREA.transform(xy[:, 0], xy[:, 1])))
    return float(projected.area) / 1e6


def _polygonal(geom: BaseGeometry) -> BaseGeometry:
    """The polygonal part of ``geom`` (empty if none)."""
    if isinstance(geom, Polygon | MultiPolygon):
        return geom
    parts = [g for g in getattr(geom, "geoms", []) if isinstance(g, Polygon | MultiPolygon)]
    return shapely.union_all(parts) if parts else Polygon()


def _geometries(doc: Any, path: Path) -> list[BaseGeometry]:
    if not isinstance(doc, dict) or "type" not in doc:
        raise RoiError(
            f"{path} is JSON but not GeoJSON (no 'type'): give a GeoJSON FeatureCollection, Feature or Polygon"
        )
    kind = doc["type"]
    if kind == "FeatureCollection":
        feats = doc.get("features")
        raw = [f.get("geometry") for f in (feats if isinstance(feats, list) else []) if isinstance(f, dict)]
    elif kind == "Feature":
        raw = [doc.get("geometry")]
    else:
        raw = [doc]
    raw = [g for g in raw if g]
    if not raw:
        raise RoiError(f"{path} has no features with a geometry: draw at least one polygon")
    geoms = []
    for g in raw:
        try:
            with warnings.catch_warnings():  # a NaN coordinate is reported below as one line, not a warning
                warnings.simplefilter("ignore", RuntimeWarning)
                geoms.append(shape(g))
        except Exception as exc:
            detail = " ".join(str(exc).split())  # GEOS messages can span lines
            raise RoiError(f"{path} has a malformed geometry ({detail}): fix its coordinates") from exc
    return geoms


def _check_crs(doc: Any, path: Path) -> None:
    crs = doc.get("crs") if isinstance(doc, dict) else None
    if not crs:
        return
    props = crs.get("properties") if isinstance(crs, dict) else None
    name = (
        str(props.get("name", "")) if isinstance(props, dict) else ("" if isinstance(crs, dict) else str(crs))
    )
    if not any(name.upper().endswith(n) for n in _LONLAT_CRS_NAMES):
        raise RoiError(f"{path} declares CRS {name!r}: save the ROI in lon/lat WGS84 (EPSG:4326)")


#: Sentinel-2 acquires land between 56 deg S and 84 deg N; UTM tiles (the tile grid) end at 84 N / 80 S.
#: An ROI must lie within these latitudes (degrees, north and south of the equator); the check and its
#: message use these constants.
MAX_LAT_N = 84.0
MAX_LAT_S = 80.0


def _check_polar(path: Path, minx: float, miny: float, maxx: float, maxy: float) -> None:
    """RoiError for an ROI reaching a pole, wrapping round one (spanning 360 deg of longitude), or lying
    north of :data:`MAX_LAT_N` / south of :data:`MAX_LAT_S`."""
    if not (-90 <= miny and maxy <= 90):
        return  # outside lon/lat range: reported by the caller
    keep = f"keep the ROI between {MAX_LAT_S:.0f} deg S and {MAX_LAT_N:.0f} deg N"
    beyond = maxy > MAX_LAT_N or miny < -MAX_LAT_S
    if maxy >= 90 or miny <= -90 or (maxx - minx >= 360 and beyond):
        pole = "North" if maxy >= 90 or (maxx - minx >= 360 and abs(maxy) >= abs(miny)) else "South"
        raise RoiError(
            f"{path} reaches or encircles the {pole} Pole: polar caps are outside Sentinel-2 land "
            f"coverage and the UTM tile grid; {keep}"
        )
    if maxy > MAX_LAT_N:
        raise RoiError(f"{path} reaches {maxy:.2f} deg N, beyond the UTM tile grid; {keep}")
    if miny < -MAX_LAT_S:
        raise RoiError(f"{path} reaches {-miny:.2f} deg S, beyond the UTM tile grid; {keep}")


def read_roi(path: str | Path, max_area_km2: float = MAX_AREA_KM2, force: bool = False) -> Roi:
    """Read and validate an ROI GeoJSON file; returns a (Multi)Polygon in EPSG:4326.

    Raises RoiError (one line: problem and fix) when the file is missing or not GeoJSON,
    has no features, holds non-polygonal or irreparably invalid geometry, lies outside
    lon/lat bounds, reaches or encircles a pole, crosses the antimeridian, or is larger than ``max_area_km2`` (unless
    ``force``).
    """
    path = Path(path)
    if not path.is_file():
        raise RoiError(f"ROI file {path} not found: check the path or --roi name")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
        raise RoiError(f"{path} is not valid JSON ({exc}): give a GeoJSON file") from exc
    _check_crs(doc, path)
    geoms = _geometries(doc, path)
    for g in geoms:
        if not isinstance(g, Polygon | MultiPolygon):
            raise RoiError(
                f"{path} contains a {g.geom_type}, not a polygon: ROIs must be Polygon or MultiPolygon areas"
            )
    if not np.isfinite(shapely.get_coordinates(geoms)).all():
        raise RoiError(
            f"{path} has a coordinate that is not a finite number (NaN or infinity): fix the polygon's "
            "coordinates"
        )
    minx, miny, maxx, maxy = shapely.total_bounds(geoms)
    _check_polar(path, minx, miny, maxx, maxy)
    if minx < -180 or maxx > 180 or miny < -90 or maxy > 90:
        if -360 <= minx and maxx <= 360 and -90 <= miny and maxy <= 90:
            raise RoiError(
                f"{path} has longitudes beyond +-180 (it crosses the antimeridian): split it into two ROIs, one each side of 180 deg"
            )
        raise RoiError(
            f"{path} has coordinates outside lon/lat range (projected?): save it in EPSG:4326 degrees"
        )
    if maxx - minx > 180:
        raise RoiError(
            f"{path} spans {maxx - minx:.1f} deg of longitude (it crosses the antimeridian): split it into ROIs that do not cross 180 deg"
        )
    try:
        roi = _polygonal(
            shapely.union_all([g if g.is_valid else _polygonal(shapely.make_valid(g)) for g in geoms])
        )
    except shapely.errors.GEOSException as exc:
        raise RoiError(
            f"{path} has a geometry GEOS cannot repair ({' '.join(str(exc).split())}): redraw the polygon"
        ) from exc
    if roi.is_empty or roi.area == 0:
        raise RoiError(
            f"{path} has no polygon area (empty or degenerate after repair): draw a polygon with a non-zero area"
        )
    area = roi_area_km2(roi)
    if area > max_area_km2 and not force:
        raise RoiError(
            f"ROI {path} covers {area:,.0f} km^2, more than the {max_area_km2:,.0f} km^2 limit: "
            "use a smaller ROI or split it into cells with `plastics roi split NAME FILE --cell DEG`"
        )
    assert isinstance(roi, Polygon | MultiPolygon)
    return roi
