"""Country scale: split an ROI into tile-aligned grid-cell ROIs (Bali, ../shared/data/gpw/bali.geojson).

Every cell plans exactly its own tiles (no tile computed twice), the cells' tiles are the
ROI's tiles, each cell holds at most a few hundred tiles, and the cells' area is the ROI's.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from shapely import unary_union

from plastics_core.errors import ParameterError, RoiError
from plastics_core.geo.roi import read_roi, roi_area_km2
from plastics_core.geo.roi_split import split_roi
from plastics_core.geo.tiles import plan_tiles

BALI_TILES = 105  # at the default tile size (897 px + 22 px pad, 10 m)


@pytest.fixture(scope="module")
def bali(gpw_dir: Path) -> Any:
    return read_roi(gpw_dir / "bali.geojson", force=True)


@pytest.fixture(scope="module")
def cells(bali: Any) -> list[Any]:
    return split_roi("bali", bali, 0.25)


def test_bali_has_105_tiles(bali: Any) -> None:
    assert len(plan_tiles(bali)) == BALI_TILES


def test_cells_plan_exactly_their_own_tiles(bali: Any, cells: list[Any]) -> None:
    assert len(cells) > 5
    plans = [{t.key for t in plan_tiles(c.geometry)} for c in cells]
    for cell, plan in zip(cells, plans, strict=True):
        assert plan == set(cell.tile_keys), cell.name
        assert 1 <= len(plan) <= 300
    assert sum(len(p) for p in plans) == BALI_TILES  # disjoint: no tile runs twice
    assert set().union(*plans) == {t.key for t in plan_tiles(bali)}


def test_cells_cover_the_roi(bali: Any, cells: list[Any]) -> None:
    total = sum(roi_area_km2(c.geometry) for c in cells)
    assert abs(total - roi_area_km2(bali)) < 0.5  # km2, of ~5,590 (0.25 m edge strips only)
    union = unary_union([c.geometry for c in cells])
    assert union.difference(bali).area < 1e-12 and bali.difference(union).area < 4e-5  # deg2: the edge strips
    for a in cells:
        assert a.geometry.is_valid and a.geometry.geom_type in ("Polygon", "MultiPolygon")


def test_names_are_partition_safe_and_stable(bali: Any, cells: list[Any]) -> None:
    names = [c.name for c in cells]
    assert len(set(names)) == len(names)
    assert all(re.fullmatch(r"bali-r\d{3}c\d{3}", n) for n in names)
    assert names == sorted(names)
    again = split_roi("bali", bali, 0.25)
    assert [(c.name, c.tile_keys) for c in again] == [(c.name, c.tile_keys) for c in cells]
    assert again[0].geometry.equals(cells[0].geometry)


def test_larger_cells_hold_more_tiles(bali: Any) -> None:
    big = split_roi("bali", bali, 1.0)
    assert len(big) < 5 and sum(len(c.tile_keys) for c in big) == BALI_TILES


def test_bad_input_is_one_line_user_error(bali: Any) -> None:
    for cell in (0.0, -1.0, float("nan"), 11.0):
        with pytest.raises(ParameterError, match="--cell"):
            split_roi("bali", bali, cell)
    with pytest.raises(RoiError):
        split_roi("Bali Island", bali, 0.25)


def test_registered_cells_round_trip_through_the_store(bali: Any, cells: list[Any], tmp_path: Path) -> None:
    from plastics_core.storage.store import store_path
    from plastics_dagster.registry import load_roi, store_roi

    store = store_path(str(tmp_path))
    for cell in cells[:4]:
        store_roi(store, cell.name, cell.geometry)
        assert {t.key for t in plan_tiles(load_roi(store, cell.name))} == set(cell.tile_keys)
