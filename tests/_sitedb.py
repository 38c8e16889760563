"""Site database test helpers: a fresh database per test on each backend, and seeded inputs.

``sitedb_url`` (a fixture in tests/conftest.py) is parametrized over ``sqlite`` (a file in the
test's tmp_path) and ``postgis`` (a new database on the server of $PLASTICS_TEST_DATABASE_URL,
which ``.ci/with-services`` starts; dropped after the test). The postgis case skips with its
reason when that variable is absent.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
from shapely.geometry import Point, box

from plastics_core.method.enrich import site_id
from plastics_core.method.site_registry import build_site_registry

BACKENDS = ("sqlite", "postgis")
PG_ENV = "PLASTICS_TEST_DATABASE_URL"


def postgis_server_url() -> str:
    """$PLASTICS_TEST_DATABASE_URL, or skip the test with the reason."""
    url = os.environ.get(PG_ENV, "")
    if not url:
        pytest.skip(
            f"{PG_ENV} is not set: run under .ci/with-services (PostgreSQL 15 + PostGIS) for the postgis backend"
        )
    return url


def _driver_url(url: str) -> str:
    return url.replace("postgresql://", "postgresql+psycopg2://", 1)


def fresh_postgis_database() -> Iterator[str]:
    """A new, empty database on the test server (URL with its password); dropped afterwards."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    server = postgis_server_url()
    name = f"sitedb_{uuid.uuid4().hex[:16]}"
    admin = create_engine(_driver_url(server), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))  # name built above from hex digits only
    try:
        yield make_url(server).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def database_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """A URL of an empty database of ``backend`` (``sqlite`` or ``postgis``) for one test."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'sites.sqlite'}"
    else:
        yield from fresh_postgis_database()


def synthetic_windows(
    n_sites: int,
    windows: list[str],
    seed: int = 0,
    lon0: float = 115.3,
    lat0: float = -8.6,
    spread: float = 0.5,
    drop: float = 0.2,
) -> dict[str, tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]]:
    """Enriched sites and contours per window: ``n_sites`` fixed places (``spread`` degrees around
    lon0/lat0), each detected in a window with probability ``1 - drop``, seeded. Contours: one
    square (~100-300 m) per site and window, dated the window's first day."""
    rng = np.random.default_rng(seed)
    lons = lon0 + rng.uniform(-spread, spread, n_sites)
    lats = lat0 + rng.uniform(-spread, spread, n_sites)
    out = {}
    for window in windows:
        keep = rng.uniform(size=n_sites) >= drop
        rows, outlines = [], []
        for i in np.flatnonzero(keep):
            lon, lat = float(lons[i]), float(lats[i])
            name = f"site_{i}"
            score = float(rng.uniform(0.5, 1.0))
            half = float(rng.uniform(0.0005, 0.0015))
            rows.append(
                {
                    "site_id": site_id(lon, lat),
                    "name": name,
                    "lon": lon,
                    "lat": lat,
                    "score": score,
                    "patch_mean": float(rng.uniform(0.5, 1.0)),
                    "display_name": f"Desa {i}, Bali",
                    "area_km2_mean": (2 * half * 111) ** 2,
                    "area_km2_min": 0.0,
                    "area_km2_max": 1.0,
                    "n_frames": 1,
                    "geometry": Point(lon, lat),
                }
            )
            outlines.append(
                {
                    "name": name,
                    "date": window,
                    "frame": 0,
                    "area_km2": (2 * half * 111) ** 2,
                    "geometry": box(lon - half, lat - half, lon + half, lat + half),
                }
            )
        out[window] = (
            gpd.GeoDataFrame(rows, geometry="geometry", crs="EPSG:4326"),
            gpd.GeoDataFrame(outlines, geometry="geometry", crs="EPSG:4326"),
        )
    return out


def registry_inputs(
    n_sites: int = 12, windows: tuple[str, ...] = ("2021-01-01", "2021-04-01"), seed: int = 0, **kw: float
) -> tuple[gpd.GeoDataFrame, dict[str, tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]]]:
    """(registry, per-window inputs) as ``site_registry`` builds them from :func:`synthetic_windows`."""
    per_window = synthetic_windows(n_sites, list(windows), seed, **kw)
    return build_site_registry(per_window), per_window
