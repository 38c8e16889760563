"""A detection window over a span of pairs: the median over pairs, GPW's patch statistics, and
the exact equality with GPW's recipe (np.ma.min mosaics, Keras predict per pair, np.ma.median)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
from affine import Affine

from plastics_core.errors import ParameterError
from plastics_core.execution import pipeline as P
from plastics_core.geo.periods import Period, add_months, range_pair_starts, window_pair_starts
from plastics_core.geo.raster import Raster
from plastics_core.geo.tiles import box_tile
from plastics_core.imagery.synthetic import SyntheticSource
from plastics_core.method.window import median_heatmap, tile_patches
from plastics_core.models.infer import keras_predict
from plastics_core.models.store import ModelStore
from plastics_core.synthetic.sites import PlantedSite

WINDOW = dt.date(2021, 1, 1)


def test_window_pair_starts_and_range() -> None:
    assert (
        window_pair_starts(WINDOW, 8)[0] == dt.date(2019, 4, 1)
        and window_pair_starts(WINDOW, 8)[-1] == WINDOW
    )
    assert window_pair_starts(dt.date(2017, 10, 1), 8, earliest=dt.date(2017, 7, 1)) == [
        dt.date(2017, 7, 1),
        dt.date(2017, 10, 1),
    ]
    for bad in (0, 25):
        with pytest.raises(ParameterError, match="pairs"):
            window_pair_starts(WINDOW, bad)
    # GPW's default Detect range (2019-01-01 .. 2021-06-01) scores 7 pairs, as its published patch counts show
    assert len(range_pair_starts(dt.date(2019, 1, 1), dt.date(2021, 6, 1))) == 7
    starts = range_pair_starts(dt.date(2019, 1, 1), dt.date(2021, 6, 30))
    assert len(starts) == 8 and starts[-1] == dt.date(2020, 10, 1)


def _pair_raster(values: np.ndarray, label: str) -> Raster:
    return Raster(
        values[None].astype(np.float32), "EPSG:32750", Affine(10, 0, 300000, 0, -10, 9050000), (label,)
    )


def test_median_heatmap_skips_masked_pairs() -> None:
    a = np.array([[0.1, np.nan], [0.9, np.nan]])
    b = np.array([[0.3, 0.5], [0.7, np.nan]])
    c = np.array([[0.2, 0.7], [np.nan, np.nan]])
    out = median_heatmap([_pair_raster(a, "p1"), _pair_raster(b, "p2"), _pair_raster(c, "p3")], "t")
    assert out.band_descriptions == ("p1", "p2", "p3", "median") and out.name == "t"
    expected = np.ma.median(np.ma.masked_invalid(np.stack([a, b, c])), axis=0)
    np.testing.assert_allclose(out.data[-1][~expected.mask], expected.compressed())
    assert np.isnan(out.data[-1, 1, 1]) and out.data[-1, 0, 1] == pytest.approx(0.6)


def test_patch_statistics_over_pairs_as_gpw() -> None:
    """GPW appended each cloud-free pair's score per location and kept mean/median/min/max/std/count."""
    transform = Affine(80, 0, 300000, 0, -80, 9050000)  # tile grid x stride 8
    g1 = np.array([[0.2, 0.9]], np.float32)
    g2 = np.array([[0.4, np.nan]], np.float32)
    grids = [
        Raster(g[None], "EPSG:32750", transform, ("patch_score",), tags={"stride": "8", "window": "45"})
        for g in (g1, g2)
    ]
    gdf = tile_patches(grids)
    assert gdf.crs.to_epsg() == 4326 and list(gdf["count"]) == [2, 1]
    assert gdf["mean"].tolist() == pytest.approx([0.3, 0.9]) and gdf["std"].tolist() == pytest.approx(
        [0.1, 0.0]
    )
    assert gdf["min"].tolist() == pytest.approx([0.2, 0.9]) and gdf["median"].tolist() == pytest.approx(
        [0.3, 0.9]
    )
    # footprint: 45 px x 10 m, the second window 8 px (80 m) east of the first
    native = gdf.to_crs("EPSG:32750").geometry
    assert native.iloc[0].bounds == pytest.approx((300000, 9050000 - 450, 300450, 9050000), abs=1e-3)
    assert native.iloc[1].bounds[0] == pytest.approx(300080, abs=1e-3)


@pytest.fixture(scope="module")
def temesi(gpw_dir: Path) -> PlantedSite:
    g = gpd.read_file(gpw_dir / "tpa_polygons.geojson")
    row = g[g["Name"].str.contains("Temesi")].iloc[0]
    return PlantedSite(str(row["Name"]), row.geometry)


@pytest.mark.slow
def test_window_median_equals_gpw_recipe_with_keras(temesi: PlantedSite, models_dir: Path) -> None:
    """Our window heatmap = GPW's recipe on the same scenes: np.ma.min mosaics of every period,
    Keras ``predict`` on every pair (k, k + 2), np.ma.median over the pairs; within 1e-5."""
    params = P.DetectParams(pairs=3)
    c = temesi.geometry_4326.centroid
    tile = box_tile(c.x, c.y, 0.004, "exact")  # ~45 x 45 px around the planted site
    src = SyntheticSource([temesi], seed=0)
    store = ModelStore(str(models_dir))
    heatmaps, _, _ = P.run_window([tile], src, store, params, WINDOW)
    ours = heatmaps[0]

    # GPW: every 3-month period of the range, mosaicked with np.ma.min (channels last) ...
    first = window_pair_starts(WINDOW, params.pairs)[0]
    periods = [
        Period(add_months(first, 3 * k), add_months(first, 3 * k + 3)) for k in range(params.pairs + 2)
    ]
    mosaics = []
    for p in periods:
        stack = src.load(tile, p)
        arr = np.ma.masked_array(
            np.moveaxis(stack.data, 1, -1).astype(np.float32), np.repeat(stack.mask[..., None], 12, axis=-1)
        )
        mosaics.append(np.ma.min(arr, axis=0))
    # ... pair(mosaics, 2), predict_spectrogram per pair (Keras), np.ma.median over the pair images
    ref = store.resolve(params.model)
    preds = []
    for a, b in zip(mosaics, mosaics[2:], strict=False):
        h, w, _ = a.shape
        pixels = np.moveaxis(np.array([a.data, b.data]), 0, -1).reshape(h * w, 12, 2)
        img = keras_predict(ref, pixels).reshape(h, w)
        preds.append(np.ma.array(img, mask=a.mask[..., 0] | b.mask[..., 0] | np.isnan(img)))
    gpw_median = np.ma.median(np.ma.stack(preds), axis=0)

    assert ours.data.shape[0] == params.pairs + 1
    for k, pred in enumerate(preds):  # each pair band
        np.testing.assert_array_equal(np.isnan(ours.data[k]), np.ma.getmaskarray(pred))
        np.testing.assert_allclose(ours.data[k][~pred.mask], pred.compressed(), atol=1e-5)
    mask = np.ma.getmaskarray(gpw_median)
    np.testing.assert_array_equal(np.isnan(ours.data[-1]), mask)
    np.testing.assert_allclose(ours.data[-1][~mask], gpw_median.compressed(), atol=1e-5)
    assert (ours.data[-1] > 0.6).sum() > 20  # the planted site is in it


def test_run_window_reuses_composites(temesi: PlantedSite, models_dir: Path) -> None:
    """3 pairs (k, k + 2) need 5 composites, not 6: each is made once per tile."""
    params = P.DetectParams(pairs=3)
    c = temesi.geometry_4326.centroid
    tile = box_tile(c.x, c.y, 0.002, "reuse")
    src = SyntheticSource([temesi], seed=0)
    _, _, results = P.run_window([tile], src, ModelStore(str(models_dir)), params, WINDOW)
    pairs = results[tile.key]
    assert len(pairs) == 3 and sum(r.composites_computed for r in pairs) == 5


def test_cli_range_is_gpw_detect() -> None:
    """``plastics run --start 2019-01-01 --end 2021-06-30`` = every pair of the range: window 2020-10-01, 8 pairs."""
    from plastics_core.params import make_params
    from plastics_dagster.cli.run import resolve_window

    given = make_params({"preset": "low"})
    window, params = resolve_window(None, "2019-01-01", "2021-06-30", given)
    assert (window, params) == ("2020-10-01", make_params({"preset": "low", "pairs": 8}))
    assert resolve_window("2021-01-01", None, None, given) == ("2021-01-01", given)
    for args, needle in (
        ((("2021-01-01", "2019-01-01", "2021-06-30")), "not both"),
        ((None, "2021-01-01", "2021-06-30"), "no spectrogram pair"),
        ((None, "2019-01-01", None), "--start and --end"),
        ((None, "2019-01-01", "2030-01-01"), "more than 24"),
    ):
        with pytest.raises(ParameterError, match=needle):
            resolve_window(*args, given)
