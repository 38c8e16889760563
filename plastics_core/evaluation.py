"""Evaluation of published sites: reference sites of an ROI, recall within a distance, precision.

Reference sites are known dump sites of an ROI (e.g. the ten Bali landfills of
``gpw/tpa_points.geojson``), given as GeoJSON points (EPSG:4326 lon/lat; a FeatureCollection, a
Feature or a bare Point/MultiPoint). They are validated by :func:`read_reference_sites` and stored
beside the ROI as ``<store>/rois/<name>.reference.geojson`` (:func:`reference_path`), normalised to
points with a ``name`` property (a string; every other property of the file is dropped).

- :func:`reference_recall`: the share of reference sites with a published site within
  ``radius_m`` metres (geodesic distance on the WGS84 ellipsoid);
- :func:`verdict_precision`: confirmed ÷ reviewed, where reviewed counts the sites whose latest
  verdict is ``confirm`` or ``reject`` (``unsure`` is not a decision and is left out).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pyproj import Geod
from upath import UPath

from plastics_core.errors import RoiError
from plastics_core.geo.roi import validate_roi_name

#: distance (m) within which a published site counts as finding a reference site
RECALL_RADIUS_M = 500.0
_LONLAT_CRS_NAMES = ("CRS84", "EPSG::4326", "EPSG:4326", "CRS:84")
_MAX_NAME = 200
_GEOD = Geod(ellps="WGS84")


@dataclass(frozen=True)
class ReferenceSite:
    """One known site: ``lon``/``lat`` in degrees (EPSG:4326) and a label (plain text)."""

    name: str
    lon: float
    lat: float


@dataclass(frozen=True)
class Recall:
    """Recall of ``total`` reference sites: ``found`` have a published site within ``radius_m``;
    ``recall`` is ``found / total`` (NaN when there is no reference site); ``nearest_m`` holds each
    reference site's distance (m) to the nearest published site (inf when none is published);
    ``missed`` the names of those not found."""

    found: int
    total: int
    radius_m: float
    nearest_m: tuple[float, ...]
    missed: tuple[str, ...]

    @property
    def recall(self) -> float:
        return self.found / self.total if self.total else math.nan


@dataclass(frozen=True)
class Precision:
    """``confirmed`` of ``reviewed`` (confirm + reject) sites; ``precision`` NaN when none is reviewed."""

    confirmed: int
    rejected: int
    unsure: int

    @property
    def reviewed(self) -> int:
        return self.confirmed + self.rejected

    @property
    def precision(self) -> float:
        return self.confirmed / self.reviewed if self.reviewed else math.nan


def _points(geometry: Any, where: str) -> list[tuple[float, float]]:
    if not isinstance(geometry, dict):
        raise RoiError(f"{where}: a feature has no geometry; give each reference site a Point geometry")
    kind, coords = geometry.get("type"), geometry.get("coordinates")
    if kind == "Point":
        coords = [coords]
    elif kind != "MultiPoint":
        raise RoiError(f"{where}: reference sites must be Point or MultiPoint geometries, not {kind!r}")
    out = []
    for c in coords or []:
        try:
            lon, lat = float(c[0]), float(c[1])
        except (TypeError, ValueError, IndexError):
            raise RoiError(f"{where}: a point has no numeric [lon, lat] coordinates") from None
        if not (math.isfinite(lon) and math.isfinite(lat) and -180 <= lon <= 180 and -90 <= lat <= 90):
            raise RoiError(
                f"{where}: point ({c[0]}, {c[1]}) is not lon/lat in degrees; give EPSG:4326 coordinates"
            )
        out.append((lon, lat))
    return out


def _label(props: Any, ident: Any, index: int) -> str:
    props = props if isinstance(props, dict) else {}
    for key in ("name", "Name", "NAME", "id", "ID"):
        value = props.get(key)
        if value is not None and str(value).strip():
            return " ".join(str(value).split())[:_MAX_NAME]
    return " ".join(str(ident).split())[:_MAX_NAME] if ident is not None else f"reference {index + 1}"


def parse_reference_sites(doc: Any, where: str = "reference file") -> list[ReferenceSite]:
    """Reference sites from a parsed GeoJSON document (see the module docstring); RoiError (one
    line naming ``where``) when it is not GeoJSON points in EPSG:4326. No point is not an error."""
    if not isinstance(doc, dict):
        raise RoiError(f"{where} is not a GeoJSON object: give a FeatureCollection of Point features")
    crs = doc.get("crs")
    if isinstance(crs, dict):
        name = str((crs.get("properties") or {}).get("name", ""))
        if not any(name.endswith(n) for n in _LONLAT_CRS_NAMES):
            raise RoiError(f"{where} declares CRS {name!r}: reproject it to EPSG:4326 (lon/lat degrees)")
    kind = doc.get("type")
    if kind == "FeatureCollection":
        features = doc.get("features")
        if not isinstance(features, list):
            raise RoiError(f"{where}: 'features' is not a list; give a FeatureCollection of Point features")
    elif kind == "Feature":
        features = [doc]
    elif kind in ("Point", "MultiPoint"):
        features = [{"type": "Feature", "geometry": doc, "properties": {}}]
    else:
        raise RoiError(f"{where} is GeoJSON of type {kind!r}: give a FeatureCollection of Point features")
    sites: list[ReferenceSite] = []
    for i, feat in enumerate(features):
        if not isinstance(feat, dict):
            raise RoiError(f"{where}: feature {i} is not a GeoJSON Feature")
        pts = _points(feat.get("geometry"), f"{where} feature {i}")
        label = _label(feat.get("properties"), feat.get("id"), i)
        for j, (lon, lat) in enumerate(pts):
            sites.append(ReferenceSite(label if len(pts) == 1 else f"{label} #{j + 1}", lon, lat))
    return sites


def read_reference_sites(path: str | Path) -> list[ReferenceSite]:
    """:func:`parse_reference_sites` of a local file; RoiError when it is unreadable or not JSON."""
    p = Path(path)
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        reason = "cannot be read" if isinstance(err, OSError) else "is not valid JSON"
        raise RoiError(f"reference file {p} {reason}: give a GeoJSON FeatureCollection of points") from None
    return parse_reference_sites(doc, f"reference file {p}")


def reference_geojson_bytes(sites: Sequence[ReferenceSite]) -> bytes:
    """Sites as a FeatureCollection of Points (EPSG:4326) with one property, ``name``."""
    doc = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {"name": s.name},
                "geometry": {"type": "Point", "coordinates": [s.lon, s.lat]},
            }
            for s in sites
        ],
    }
    return json.dumps(doc, sort_keys=True, ensure_ascii=False).encode("utf-8")


def reference_path(store: UPath, roi: str) -> UPath:
    """``<store>/rois/<roi>.reference.geojson``: the ROI's reference sites."""
    return store / "rois" / f"{validate_roi_name(roi)}.reference.geojson"


def store_reference_sites(store: UPath, roi: str, sites: Sequence[ReferenceSite]) -> UPath:
    """Write ``sites`` to :func:`reference_path` (atomic) and return the path."""
    from plastics_core.storage.store import atomic_write

    path = reference_path(store, roi)
    atomic_write(path, reference_geojson_bytes(sites))
    return path


def sites_in_roi(
    sites: Sequence[ReferenceSite], roi: Any, where: str = "reference file", margin_m: float = RECALL_RADIUS_M
) -> tuple[list[ReferenceSite], int]:
    """(the sites within ``margin_m`` of the ROI polygon (shapely, EPSG:4326), how many were left out).
    RoiError when the file held sites and none lies in the ROI (the wrong file for this ROI)."""
    import shapely

    lons = np.array([s.lon for s in sites], dtype=np.float64)
    lats = np.array([s.lat for s in sites], dtype=np.float64)
    # a degree of latitude is ~111 km; a degree of longitude is shorter, so this margin is generous
    inside = shapely.intersects(roi.buffer(margin_m / 111_000.0), shapely.points(lons, lats)) if sites else []
    kept = [s for s, ok in zip(sites, inside, strict=True) if ok]
    if sites and not kept:
        raise RoiError(
            f"{where}: none of its {len(sites)} reference sites lies in the ROI; give the known "
            "sites of this ROI"
        )
    return kept, len(sites) - len(kept)


def load_reference_sites(store: UPath, roi: str) -> list[ReferenceSite] | None:
    """The stored reference sites of ``roi``; None when the ROI has none."""
    path = reference_path(store, roi)
    if not path.exists():
        return None
    return parse_reference_sites(json.loads(path.read_bytes()), f"stored reference sites of ROI {roi}")


def nearest_distances_m(
    refs: Sequence[tuple[float, float]], sites: Sequence[tuple[float, float]]
) -> np.ndarray:
    """For each reference (lon, lat), the geodesic distance (m, WGS84) to the nearest site; inf when
    ``sites`` is empty. Shape (len(refs),), float64."""
    out = np.full(len(refs), np.inf)
    if not len(sites) or not len(refs):
        return out
    slon = np.array([s[0] for s in sites], dtype=np.float64)
    slat = np.array([s[1] for s in sites], dtype=np.float64)
    for i, (lon, lat) in enumerate(refs):
        _, _, dist = _GEOD.inv(np.full_like(slon, lon), np.full_like(slat, lat), slon, slat)
        out[i] = float(np.min(dist))
    return out


def reference_recall(
    reference: Sequence[ReferenceSite],
    sites: Iterable[tuple[float, float]],
    radius_m: float = RECALL_RADIUS_M,
) -> Recall:
    """Recall of ``reference`` by published ``sites`` ((lon, lat) degrees, EPSG:4326) within
    ``radius_m`` metres. Sites with a non-finite coordinate are ignored."""
    pts = [(float(x), float(y)) for x, y in sites if math.isfinite(float(x)) and math.isfinite(float(y))]
    dist = nearest_distances_m([(r.lon, r.lat) for r in reference], pts)
    hit = dist <= radius_m
    return Recall(
        found=int(hit.sum()),
        total=len(reference),
        radius_m=radius_m,
        nearest_m=tuple(float(d) for d in dist),
        missed=tuple(r.name for r, h in zip(reference, hit, strict=True) if not h),
    )


def verdict_precision(latest_verdicts: Iterable[str]) -> Precision:
    """Precision from each reviewed site's latest verdict (``confirm`` | ``reject`` | ``unsure``)."""
    counts = {"confirm": 0, "reject": 0, "unsure": 0}
    for v in latest_verdicts:
        if v in counts:
            counts[v] += 1
    return Precision(confirmed=counts["confirm"], rejected=counts["reject"], unsure=counts["unsure"])
