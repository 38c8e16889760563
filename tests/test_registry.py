"""Site registry: merge across windows, statuses, time series, writers, terminal table."""

from __future__ import annotations

import json
import math

import geopandas as gpd
import h3
import pandas as pd
import pytest

from plastics_core.method.enrich import site_id
from plastics_core.method.site_registry import (
    REGISTRY_COLUMNS,
    build_site_registry,
    format_registry_table,
    registry_csv_bytes,
    write_registry,
)
from plastics_core.storage.outputs import read_geojson
from tests import _preview_data as d

W1, W2, W3 = "2023-01-01", "2023-04-01", "2023-07-01"


def _ids() -> tuple[str, str]:
    a, b = (site_id(lon, lat) for lon, lat in d.site_lonlats())
    return a, b


def _sites(
    rows: list[int], ids: tuple[str, str] | None = None, score: float | None = None
) -> gpd.GeoDataFrame:
    e = d.enriched(ids or _ids()).iloc[rows].reset_index(drop=True)
    if score is not None:
        e["score"] = score
    return e


@pytest.fixture()
def registry() -> gpd.GeoDataFrame:
    a, b = _ids()
    neighbour = next(c for c in h3.grid_disk(a, 1) if c != a)  # jitter moved site 0 one cell over
    empty = d.enriched().iloc[0:0]
    per_window = {
        W3: (_sites([0], (neighbour, b), score=0.5), d.contours(("2023-07-01",))),
        W1: (_sites([0, 1]), d.contours(("2023-01-01", "2023-02-01"))),
        W2: (empty, None),
    }
    return build_site_registry(per_window)


def test_columns_crs_and_one_row_per_site(registry: gpd.GeoDataFrame) -> None:
    assert list(registry.columns) == [*REGISTRY_COLUMNS, "geometry"]
    assert registry.crs.to_epsg() == 4326
    assert len(registry) == 2
    assert list(registry["site_id"]) == sorted(registry["site_id"])


def test_status_first_last_and_neighbour_cells_merge(registry: gpd.GeoDataFrame) -> None:
    a, b = _ids()
    r = registry.set_index("site_id")
    assert r.loc[a, "status"] == "persistent"  # W1 and (as a neighbour cell) W3 = latest
    assert (r.loc[a, "first_window"], r.loc[a, "last_window"], r.loc[a, "n_windows"]) == (W1, W3, 2)
    assert len(json.loads(r.loc[a, "site_ids"])) == 2
    assert r.loc[b, "status"] == "gone" and r.loc[b, "last_window"] == W1
    assert json.loads(r.loc[a, "pixel_scores"]) == {W1: 0.91, W3: 0.5}
    assert json.loads(r.loc[a, "patch_scores"]) == {W1: 0.66, W3: 0.66}
    assert r.loc[a, "score_latest"] == 0.5 and r.loc[a, "score_max"] == 0.91


def test_area_over_time_from_contours(registry: gpd.GeoDataFrame) -> None:
    a, _ = _ids()
    areas = json.loads(registry.set_index("site_id").loc[a, "areas_km2"])
    assert list(areas) == ["2023-01-01", "2023-02-01", "2023-07-01"]
    assert all(v > 0 for v in areas.values())
    assert registry.set_index("site_id").loc[a, "area_km2_latest"] == pytest.approx(areas["2023-07-01"])


def test_new_site_only_in_latest_window() -> None:
    reg = build_site_registry({W1: (_sites([0]), None), W2: (_sites([0, 1]), None)})
    status = dict(zip(reg["name"], reg["status"], strict=True))
    assert status == {"site_0": "persistent", "site_1": "new"}


def test_two_sites_of_one_window_never_merge() -> None:
    a, _ = _ids()
    neighbour = next(c for c in h3.grid_disk(a, 1) if c != a)
    reg = build_site_registry({W1: (_sites([0, 1], (a, neighbour)), None)})
    assert len(reg) == 2 and set(reg["status"]) == {"new"}


def test_empty_inputs() -> None:
    for per_window in ({}, {W1: (None, None)}, {W1: (d.enriched().iloc[0:0], None)}):
        reg = build_site_registry(per_window)  # type: ignore[arg-type]
        assert len(reg) == 0 and list(reg.columns) == [*REGISTRY_COLUMNS, "geometry"]
        assert reg.crs.to_epsg() == 4326
    assert format_registry_table(build_site_registry({})) == "no sites in the registry"


def test_writers_are_deterministic_and_round_trip(registry: gpd.GeoDataFrame, tmp_path) -> None:
    gj, csv = write_registry(registry, tmp_path / "reg.geojson")
    assert csv == tmp_path / "reg.csv"
    first = (gj.read_bytes(), csv.read_bytes())
    write_registry(registry.iloc[::-1], gj)
    assert (gj.read_bytes(), csv.read_bytes())[0] == first[0]
    assert csv.read_bytes() == registry_csv_bytes(registry.iloc[::-1])
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    back = read_geojson(gj)
    assert set(back["site_id"]) == set(registry["site_id"])
    assert json.loads(back.set_index("site_id").loc[_ids()[0], "pixel_scores"])[W1] == 0.91
    table = pd.read_csv(csv)
    assert list(table.columns) == REGISTRY_COLUMNS and len(table) == 2


def test_format_registry_table(registry: gpd.GeoDataFrame) -> None:
    text = format_registry_table(registry)
    lines = text.splitlines()
    assert lines[0].split()[:5] == ["site_id", "status", "first", "last", "n"]
    assert lines[2].split()[1] == "persistent" and lines[3].split()[1] == "gone"
    assert lines[-1] == "2 sites: 0 new, 1 persistent, 1 gone; 2 unreviewed"
    assert "Jl. Contoh 1" in text
    assert not math.isnan(float(lines[2].split()[5]))
