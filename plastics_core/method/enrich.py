"""Enrich candidate sites: a stable-ish site id (H3), a reverse-geocoded address, contour stats.

Geocoding is optional and never fatal: a network error, timeout or refusal gives an empty
address and ``geocode_status="unavailable"``. :class:`NominatimGeocoder` follows the OSM
Nominatim usage policy: at most one request per second across all threads AND processes
sharing a cache dir (``fcntl.flock`` on a lock file + a timestamp file), an on-disk JSON
cache, and a descriptive User-Agent.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import geopandas as gpd
import h3
import numpy as np
import pandas as pd

from plastics_core import __version__
from plastics_core.errors import ParameterError

GeocodeStatus = Literal["ok", "unavailable", "not_found", "cached", "nearest_place"]
#: Address fields copied into the site table (``city`` falls back to town, ``village`` to hamlet).
ADDRESS_FIELDS = ["display_name", "road", "village", "city", "county", "state", "country", "country_code"]
DEFAULT_H3_RESOLUTION = 9
SITE_COLUMNS = [
    "site_id", "name", "lon", "lat", "score", "patch_mean", *ADDRESS_FIELDS, "geocode_status",
    "area_km2_mean", "area_km2_min", "area_km2_max", "first_date", "last_date", "n_frames",
]  # fmt: skip


def site_id(lon: float, lat: float, resolution: int = DEFAULT_H3_RESOLUTION) -> str:
    """H3 cell (hex string) of a site's point (EPSG:4326 degrees).

    Resolution 9 (default): hexagons of ~0.105 km^2 (edge ~200 m, ~350 m across) - about a
    landfill. Trade-off, measured on random points: 50 m of jitter between runs changes the
    res-9 cell ~17% of the time (res 8, 0.74 km^2: ~6%; res 7: ~3%; res 10: ~45%). Coarser
    cells are more stable but wider than the 0.005 deg (~550 m) merge radius, so two distinct
    candidates could share an id; at res 9 merged candidates are always further apart than a
    cell is wide, so ids are unique within a run. No resolution is jitter-proof (points near a
    cell edge always flip), so match sites ACROSS runs with :func:`same_site` (the cell or one
    of its 6 neighbours), not by id equality.
    """
    if not 0 <= resolution <= 15:
        raise ParameterError(f"H3 resolution {resolution} is outside 0..15")
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise ParameterError(f"lon={lon}, lat={lat} is not an EPSG:4326 coordinate")
    return str(h3.latlng_to_cell(lat, lon, resolution))


def same_site(id_a: str, id_b: str) -> bool:
    """True when two site ids are the same H3 cell or adjacent cells (tolerates edge jitter)."""
    return id_b in h3.grid_disk(id_a, 1)


@dataclass(frozen=True)
class GeocodeResult:
    """``address``: flat dict (``display_name`` + OSM address parts) or None; ``status``."""

    address: dict[str, str] | None
    status: GeocodeStatus


class Geocoder(Protocol):
    """Reverse geocoder: (lat, lon) in EPSG:4326 degrees -> :class:`GeocodeResult`."""

    def reverse(self, lat: float, lon: float) -> GeocodeResult: ...


def _key(lat: float, lon: float) -> str:
    """Cache/fixture key: coordinates rounded to 5 decimals (~1 m)."""
    return f"{round(lat, 5):.5f},{round(lon, 5):.5f}"


class OfflineGeocoder:
    """Never geocodes: every result is ``unavailable`` (offline runs, CI)."""

    def reverse(self, lat: float, lon: float) -> GeocodeResult:
        return GeocodeResult(None, "unavailable")


class FixtureGeocoder:
    """TEST FIXTURE: canned responses from a JSON file, no network.

    File format: ``{"<lat>,<lon>": {address fields...} | null}`` with 5-decimal keys
    (see ``_key``); null -> ``not_found``, a missing key -> ``unavailable``.
    """

    def __init__(self, path: str | Path) -> None:
        try:
            responses = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise ParameterError(
                f"geocoder fixture {path} cannot be read ({type(exc).__name__}): give a JSON file "
                "of canned answers (PLASTICS_GEOCODER_FIXTURE)"
            ) from exc
        if not isinstance(responses, dict):
            raise ParameterError(f"geocoder fixture {path} is not a JSON object of '<lat>,<lon>' keys")
        self.responses: dict[str, dict[str, str] | None] = responses

    def reverse(self, lat: float, lon: float) -> GeocodeResult:
        key = _key(lat, lon)
        if key not in self.responses:
            return GeocodeResult(None, "unavailable")
        value = self.responses[key]
        return GeocodeResult(dict(value), "ok") if value is not None else GeocodeResult(None, "not_found")


def default_user_agent() -> str:
    """``plastics/<version> (plastic-waste site detection[; +<url>]; contact ...)``.

    The contact is $PLASTICS_GEOCODER_EMAIL and the URL $PLASTICS_PROJECT_URL (both optional).
    """
    email = os.environ.get("PLASTICS_GEOCODER_EMAIL")
    contact = f"contact {email}" if email else "contact via PLASTICS_GEOCODER_EMAIL"
    project = os.environ.get("PLASTICS_PROJECT_URL")  # where the deployment documents itself; read now
    url = f"; +{project}" if project else ""
    return f"plastics/{__version__} (plastic-waste site detection{url}; {contact})"


class NominatimGeocoder:
    """OSM Nominatim via geopy, rate limited across threads and processes, cached on disk.

    ``cache_dir`` holds ``nominatim.lock`` / ``nominatim.last`` (wall-clock time of the end of
    the last request) and ``nominatim/<lat>,<lon>.json``. The lock is held for the whole
    request, so consecutive requests from any process are >= ``min_delay_s`` apart.
    """

    _thread_lock = threading.Lock()

    def __init__(
        self,
        user_agent: str | None = None,
        cache_dir: str | Path = ".cache/geocode",
        timeout: float = 10,
        min_delay_s: float = 1.0,
        domain: str = "nominatim.openstreetmap.org",
        scheme: str = "https",
    ) -> None:
        from geopy.geocoders import Nominatim  # lazy: geopy is only needed when geocoding

        self.user_agent = user_agent or default_user_agent()
        self.cache_dir = Path(cache_dir)
        self.min_delay_s = float(min_delay_s)
        self._entries = self.cache_dir / "nominatim"
        self._entries.mkdir(parents=True, exist_ok=True)
        self._nominatim = Nominatim(user_agent=self.user_agent, timeout=timeout, domain=domain, scheme=scheme)

    def _cache_path(self, lat: float, lon: float) -> Path:
        return self._entries / f"{_key(lat, lon)}.json"

    def _request(self, lat: float, lon: float) -> tuple[GeocodeStatus, dict[str, str] | None]:
        from geopy.exc import GeopyError

        stamp = self.cache_dir / "nominatim.last"
        with self._thread_lock, open(self.cache_dir / "nominatim.lock", "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                try:
                    last = float(stamp.read_text() or 0)
                except (OSError, ValueError):
                    last = 0.0
                wait = last + self.min_delay_s - time.time()
                if wait > 0:
                    time.sleep(wait)
                try:
                    loc = self._nominatim.reverse(
                        (lat, lon), exactly_one=True, addressdetails=True, language="en"
                    )
                except (GeopyError, OSError, ValueError):
                    return "unavailable", None
                finally:
                    stamp.write_text(repr(time.time()))
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
        if loc is None:
            return "not_found", None
        raw = getattr(loc, "raw", None)
        if not isinstance(raw, dict) or not isinstance(raw.get("address") or {}, dict):
            return "unavailable", None  # an answer of another shape (the service is untrusted): never fatal
        address = {str(k): str(v) for k, v in (raw.get("address") or {}).items()}
        address["display_name"] = str(raw.get("display_name", getattr(loc, "address", "")))
        return "ok", address

    def reverse(self, lat: float, lon: float) -> GeocodeResult:
        path = self._cache_path(lat, lon)
        if path.exists():
            try:
                entry = json.loads(path.read_text())
                cached = entry["address"]
                if cached is None or isinstance(cached, dict):
                    return GeocodeResult(cached, "cached" if cached else "not_found")
            except (OSError, ValueError, KeyError, TypeError):
                pass  # a corrupt entry is re-fetched
        status, address = self._request(lat, lon)
        if status in ("ok", "not_found"):  # definitive answers are cached; outages are not
            tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
            tmp.write_text(json.dumps({"lat": lat, "lon": lon, "address": address}, sort_keys=True))
            os.replace(tmp, path)
        return GeocodeResult(address, status)


def _address_row(address: dict[str, str] | None) -> dict[str, str | None]:
    a = address or {}
    row: dict[str, str | None] = {f: a.get(f) for f in ADDRESS_FIELDS}
    row["village"] = a.get("village") or a.get("hamlet") or a.get("suburb")
    row["city"] = a.get("city") or a.get("town") or a.get("municipality")
    return row


def _area_stats(contours: gpd.GeoDataFrame | None, name: str) -> dict[str, Any]:
    rows = contours[contours["name"] == name] if contours is not None and len(contours) else None
    if rows is None or not len(rows):
        nan = float("nan")
        return dict(
            area_km2_mean=nan, area_km2_min=nan, area_km2_max=nan, first_date=None, last_date=None, n_frames=0
        )
    area = rows["area_km2"].to_numpy(dtype=float)
    dates = sorted(str(d) for d in rows["date"])
    return dict(
        area_km2_mean=float(area.mean()), area_km2_min=float(area.min()), area_km2_max=float(area.max()),
        first_date=dates[0], last_date=dates[-1], n_frames=len(rows),
    )  # fmt: skip


def enrich_sites(
    candidates: gpd.GeoDataFrame,
    contours: gpd.GeoDataFrame | None,
    geocoder: Geocoder,
    h3_resolution: int = DEFAULT_H3_RESOLUTION,
) -> gpd.GeoDataFrame:
    """One row per candidate (Point, EPSG:4326) with :data:`SITE_COLUMNS`.

    ``candidates``: points with ``name`` (and optional ``score``/``patch_mean``), e.g.
    :func:`plastics_core.method.candidates.select_candidates`. ``contours``: rows with ``name``, ``date``,
    ``area_km2`` (:func:`plastics_core.method.contours.site_contours`), matched by name; a site with
    no contour gets NaN areas, null dates and ``n_frames`` 0.
    """
    if candidates is None or len(candidates) == 0:
        return gpd.GeoDataFrame(
            {c: [] for c in SITE_COLUMNS}, geometry=gpd.points_from_xy([], []), crs="EPSG:4326"
        )
    pts = candidates.geometry if candidates.crs is None else candidates.geometry.to_crs(4326)
    rows = []
    for i, point in enumerate(pts):
        rec = candidates.iloc[i]
        lon, lat = float(point.x), float(point.y)
        result = geocoder.reverse(lat, lon)
        name = str(rec["name"])
        row: dict[str, Any] = {
            "site_id": site_id(lon, lat, h3_resolution),
            "name": name,
            "lon": lon,
            "lat": lat,
            "score": float(rec["score"]) if "score" in rec else float("nan"),
            "patch_mean": float(rec["patch_mean"]) if "patch_mean" in rec else float("nan"),
        }
        row.update(_address_row(result.address))
        row["geocode_status"] = result.status
        row.update(_area_stats(contours, name))
        rows.append(row)
    df = pd.DataFrame(rows, columns=SITE_COLUMNS)
    df["n_frames"] = df["n_frames"].astype(np.int64)
    return gpd.GeoDataFrame(df, geometry=gpd.points_from_xy(df["lon"], df["lat"]), crs="EPSG:4326")
