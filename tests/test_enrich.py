"""Enrichment: H3 site ids, geocoders (offline, fixture, Nominatim against local servers), site table."""

from __future__ import annotations

import json
import multiprocessing as mp
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import geopandas as gpd
import h3
import numpy as np
import pytest

from plastics_core.errors import ParameterError
from plastics_core.method.enrich import (
    SITE_COLUMNS,
    FixtureGeocoder,
    NominatimGeocoder,
    OfflineGeocoder,
    default_user_agent,
    enrich_sites,
    same_site,
    site_id,
)


class _Handler(BaseHTTPRequestHandler):
    log: list[tuple[float, str, str]] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server API)
        self.log.append((time.time(), self.path, self.headers.get("User-Agent", "")))
        q = parse_qs(urlparse(self.path).query)
        lat, lon = float(q["lat"][0]), float(q["lon"][0])
        body: dict[str, object]
        if lat > 80:
            body = {"error": "Unable to geocode"}
        elif lat > 70:  # an answer of another shape: the address is a list
            body = {"lat": str(lat), "lon": str(lon), "display_name": "x", "address": ["Dump road", "Dili"]}
        else:
            body = {"lat": str(lat), "lon": str(lon), "display_name": f"Dump road, Dili, Timor-Leste ({lat:.3f})",
                    "address": {"road": "Dump road", "town": "Dili", "country": "Timor-Leste", "country_code": "tl"}}  # fmt: skip
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def server() -> Iterator[tuple[str, list[tuple[float, str, str]]]]:
    _Handler.log = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{httpd.server_address[1]}", _Handler.log
    httpd.shutdown()
    httpd.server_close()


def test_site_id_resolution_and_jitter() -> None:
    sid = site_id(125.57, -8.55)
    assert h3.get_resolution(sid) == 9 and sid == site_id(125.57, -8.55)
    jittered = site_id(125.57 + 0.0004, -8.55 + 0.0003)  # ~55 m away
    assert same_site(sid, jittered)
    assert not same_site(sid, site_id(125.58, -8.55))  # ~1.1 km away
    with pytest.raises(ParameterError):
        site_id(200.0, 0.0)


def test_offline_and_closed_port(tmp_path: Path) -> None:
    assert OfflineGeocoder().reverse(-8.5, 125.5).status == "unavailable"
    geo = NominatimGeocoder(
        cache_dir=tmp_path, domain="127.0.0.1:9", scheme="http", timeout=2, min_delay_s=0.0
    )
    real, calls = geo._nominatim.reverse, []

    def counted(*args: object, **kwargs: object) -> object:  # the real geopy request, counted
        calls.append(args)
        return real(*args, **kwargs)

    geo._nominatim.reverse = counted  # type: ignore[method-assign]
    res = geo.reverse(-8.5, 125.5)
    assert res.address is None and res.status == "unavailable"
    assert len(calls) == 1  # one request, no retry loop against a dead endpoint
    assert not list((tmp_path / "nominatim").glob("*.json"))  # outages are not cached
    assert geo.reverse(-8.5, 125.5).status == "unavailable" and len(calls) == 2  # so the next call asks again


def test_user_agent_is_descriptive(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PLASTICS_GEOCODER_EMAIL", raising=False)
    assert default_user_agent().startswith("plastics/") and "PLASTICS_GEOCODER_EMAIL" in default_user_agent()
    monkeypatch.setenv("PLASTICS_GEOCODER_EMAIL", "ops@example.org")
    monkeypatch.setenv(
        "PLASTICS_PROJECT_URL", "https://example.org/plastics"
    )  # read when used, not at import
    assert (
        "ops@example.org" in default_user_agent() and "+https://example.org/plastics" in default_user_agent()
    )


def test_nominatim_ok_not_found_and_cache(tmp_path: Path, server: tuple[str, list]) -> None:
    domain, log = server
    geo = NominatimGeocoder(cache_dir=tmp_path, domain=domain, scheme="http", timeout=5, min_delay_s=0.2)
    res = geo.reverse(-8.55, 125.57)
    assert res.status == "ok" and res.address is not None and res.address["town"] == "Dili"
    assert res.address["display_name"].startswith("Dump road")
    assert geo.reverse(-8.550001, 125.570001).status == "cached"  # same 5-decimal key: no request
    assert geo.reverse(85.0, 0.0).status == "not_found"
    assert geo.reverse(85.0, 0.0).status == "not_found"
    assert len(log) == 2 and log[0][2].startswith("plastics/")
    assert geo.reverse(75.0, 0.0).status == "unavailable"  # malformed answer: never fatal, not cached
    assert geo.reverse(75.0, 0.0).status == "unavailable" and len(log) == 4
    entry = next(p for p in tmp_path.rglob("*.json") if json.loads(p.read_text())["address"])
    entry.write_text(json.dumps({"address": ["not", "a", "dict"]}))  # a corrupt cache entry is re-fetched
    assert geo.reverse(-8.55, 125.57).status == "ok" and len(log) == 5


def _worker(domain: str, cache_dir: str, offset: int) -> None:
    geo = NominatimGeocoder(cache_dir=cache_dir, domain=domain, scheme="http", timeout=5, min_delay_s=1.0)
    for i in range(2):
        assert geo.reverse(-8.0 - offset - i / 10, 125.0).status == "ok"


def test_rate_limit_across_processes(tmp_path: Path, server: tuple[str, list]) -> None:
    domain, log = server
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_worker, args=(domain, str(tmp_path), k)) for k in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    stamps = sorted(t for t, _, _ in log)
    assert len(stamps) == 4
    assert min(np.diff(stamps)) >= 1.0


def test_fixture_and_enrich_sites(tmp_path: Path) -> None:
    fixture = tmp_path / "geocode_fixture.json"
    fixture.write_text(json.dumps({
        "-8.55000,125.57000": {"display_name": "Tibar, Liquica, Timor-Leste", "village": "Tibar",
                               "county": "Liquica", "country": "Timor-Leste", "country_code": "tl"},
        "-8.60000,125.60000": None,
    }))  # fmt: skip
    cands = gpd.GeoDataFrame(
        {"name": ["a", "b", "c"], "score": [0.9, 0.8, 0.7], "patch_mean": [0.5, 0.45, 0.41]},
        geometry=gpd.points_from_xy([125.57, 125.6, 125.7], [-8.55, -8.6, -8.7]),
        crs="EPSG:4326",
    )
    contours = gpd.GeoDataFrame(
        {"name": ["a", "a", "a"], "date": ["2020-03-01", "2020-01-01", "2020-02-01"], "frame": [2, 0, 1],
         "area_km2": [0.03, 0.01, 0.02]},
        geometry=[None, None, None], crs="EPSG:4326",
    )  # fmt: skip
    sites = enrich_sites(cands, contours, FixtureGeocoder(fixture))
    assert list(sites.columns[:-1]) == SITE_COLUMNS and sites.crs.to_epsg() == 4326
    assert list(sites["geocode_status"]) == ["ok", "not_found", "unavailable"]
    a = sites.iloc[0]
    assert a["village"] == "Tibar" and a["country_code"] == "tl" and a["site_id"] == site_id(125.57, -8.55)
    assert (a["area_km2_mean"], a["area_km2_min"], a["area_km2_max"]) == pytest.approx((0.02, 0.01, 0.03))
    assert (a["first_date"], a["last_date"], a["n_frames"]) == ("2020-01-01", "2020-03-01", 3)
    assert sites["n_frames"].iat[1] == 0 and np.isnan(sites["area_km2_mean"].iat[1])
    offline = enrich_sites(cands, None, OfflineGeocoder())
    assert (offline["geocode_status"] == "unavailable").all() and offline["display_name"].isna().all()
    assert len(enrich_sites(cands.iloc[:0], None, OfflineGeocoder())) == 0
