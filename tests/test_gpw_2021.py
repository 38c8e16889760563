"""The ``gpw-2021`` recipe, stage by stage, against re-implementations of the 2021 code's lines
(``earthrise-media/plastics`` at f3e03ce: ``detect/workflows/detect_luigi.py`` = L,
``detect/scripts/dl_utils.py`` = U) on the same inputs; and the paper recipe's contour frames."""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import json
import math
import subprocess
import sys
from pathlib import Path

import cv2
import geopandas as gpd
import numpy as np
import pytest
from pyproj import Transformer
from shapely.geometry import Polygon, box

from plastics_core.execution import pipeline as P
from plastics_core.execution.loaded import load_models
from plastics_core.geo.periods import Period, add_months
from plastics_core.geo.tiles import box_tile, plan_tiles, tile_from_key
from plastics_core.imagery.synthetic import SyntheticSource
from plastics_core.method.candidates import gpw_merge_groups, merge_points_gpw, select_candidates
from plastics_core.method.contours import gpw_blur, rolling_masks
from plastics_core.method.recipes import RECIPE_PARAMS, contour_recipe, gpw_patch_tiling, merge_method
from plastics_core.models.store import ModelStore
from plastics_core.params import DetectParams, make_params, run_hash
from plastics_core.synthetic.sites import PlantedSite


# ----------------------------------------------------------------------------- merge (L:107-141)
def _merge_similar_sites(coords: np.ndarray, radius: float) -> np.ndarray:
    """L:107-141 with a brute-force radius query in place of sklearn's KDTree (inclusive radius)."""

    def query_radius(points: np.ndarray) -> list[np.ndarray]:
        return [np.flatnonzero(np.hypot(*(coords - p).T) <= radius) for p in points]

    mean_coords = np.array([np.mean(coords[elem], axis=0) for elem in query_radius(coords)])
    num_coords = len(mean_coords)
    while True:
        search = query_radius(mean_coords)
        uniques = [list(x) for x in {tuple(elem) for elem in search}]
        mean_coords = np.array([np.mean(coords[elem], axis=0) for elem in uniques])
        if len(mean_coords) == num_coords:
            return mean_coords
        num_coords = len(mean_coords)


def _sorted_rows(a: np.ndarray) -> np.ndarray:
    return a[np.lexsort(a.T[::-1])]


def _ours(coords: np.ndarray, radius: float) -> np.ndarray:
    return np.array([coords[list(g)].mean(axis=0) for g in gpw_merge_groups(coords, radius)])


def test_three_points_in_a_row_stay_three() -> None:
    coords = np.array([[0.0, 0.0], [0.004, 0.0], [0.008, 0.0]])
    ours = _sorted_rows(_ours(coords, 0.005))
    np.testing.assert_allclose(ours[:, 0], [0.002, 0.004, 0.006], atol=1e-15)
    np.testing.assert_array_equal(ours, _sorted_rows(_merge_similar_sites(coords, 0.005)))
    assert gpw_merge_groups(coords, 0.005) == [(0, 1), (0, 1, 2), (1, 2)]  # overlapping groups


def test_four_points_in_a_row_stay_four() -> None:
    coords = np.array([[0.0, 0.0], [0.0045, 0.0], [0.009, 0.0], [0.0135, 0.0]])
    assert len(_ours(coords, 0.005)) == 4 == len(_merge_similar_sites(coords, 0.005))
    np.testing.assert_array_equal(
        _sorted_rows(_ours(coords, 0.005)), _sorted_rows(_merge_similar_sites(coords, 0.005))
    )


@pytest.mark.parametrize("seed", range(8))
def test_random_clouds_equal_the_original(seed: int) -> None:
    rng = np.random.default_rng(seed)
    centres = rng.uniform(0, 0.05, (int(rng.integers(2, 8)), 2))
    coords = np.concatenate([c + rng.normal(0, 0.003, (int(rng.integers(1, 12)), 2)) for c in centres])
    for radius in (0.0025, 0.005):
        ours, ref = _sorted_rows(_ours(coords, radius)), _sorted_rows(_merge_similar_sites(coords, radius))
        assert ours.shape == ref.shape, (seed, radius)
        np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-15)


@pytest.fixture(scope="module")
def east_timor(gpw_dir: Path) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame, gpd.GeoDataFrame]:
    d = gpw_dir / "east_timor"
    return (
        gpd.read_file(d / "pixel_candidates_v0.0.11_thresh0.6_minsigma3.5.geojson"),
        gpd.read_file(d / "patch_classifier_v1.2_stride8.geojson"),
        gpd.read_file(d / "published_candidates_patch_threshold_0.4.geojson"),
    )


def test_east_timor_blobs_equal_the_original(east_timor: tuple[gpd.GeoDataFrame, ...]) -> None:
    blobs, patches, published = east_timor
    coords = np.column_stack([blobs.geometry.x, blobs.geometry.y])
    merged = merge_points_gpw(blobs, 0.005)
    ref = _sorted_rows(_merge_similar_sites(coords, 0.005))
    np.testing.assert_allclose(_sorted_rows(merged[["lon", "lat"]].to_numpy()), ref, rtol=0, atol=1e-12)
    assert merged["name"].is_unique
    found = select_candidates(blobs, patches, 0.4, 0.005, merge="gpw")
    assert sorted(found["name"]) == sorted(published["name"])


# ----------------------------------------------------------------------------- blobs (L:556-575)
def test_blobs_on_the_wgs84_grid_at_pixel_corners_equal_the_original() -> None:
    from affine import Affine
    from skimage.feature import blob_doh

    from plastics_core.geo.raster import Raster
    from plastics_core.method.blobs import detect_blobs, wgs84_band

    rng = np.random.default_rng(5)
    data = np.clip(rng.normal(0.2, 0.1, (1, 160, 150)), 0, 1).astype(np.float32)
    for r, c, size, value in ((30, 40, 6, 0.9), (100, 90, 9, 0.8), (60, 120, 4, 0.95)):
        data[0, r : r + size, c : c + size] = value
    heatmap = Raster(data, "EPSG:32750", Affine(10, 0, 300_000, 0, -10, 9_050_000), ("median",))
    params = make_params({"recipe": "gpw-2021"}).blob_params()
    ours = detect_blobs(heatmap, params)
    values, transform = wgs84_band(heatmap, 0)  # the heatmap GPW downloaded with srs='WGS84' (L:524-527)
    values = values.astype("float")
    values[values < params.pred_threshold] = 0  # L:561-562 (NaN outside the tile: 0 here, as DL's fill)
    values[np.isnan(values)] = 0
    blobs = blob_doh(
        values, min_sigma=params.min_sigma, max_sigma=params.max_sigma, threshold=params.area_threshold
    )
    ref = np.array([transform @ (b[1], b[0]) for b in blobs])  # L:572 (transform * [col, row]): the corner
    assert len(ours) == len(ref) == 3
    np.testing.assert_allclose(
        _sorted_rows(ours[["lon", "lat"]].to_numpy()), _sorted_rows(ref), rtol=0, atol=1e-9
    )
    native = detect_blobs(heatmap, make_params({}).blob_params())  # the default: UTM grid, pixel centres
    assert len(native) == 3


# ----------------------------------------------------------------------------- blur (L:186-190)
def test_blur_is_the_originals_sigma_4() -> None:
    img = np.random.default_rng(3).random((64, 88)).astype(np.float32)
    original = cv2.GaussianBlur(img, (8 * 4 + 1, 8 * 4 + 1), cv2.BORDER_DEFAULT)  # L:190
    np.testing.assert_allclose(gpw_blur(img), original, rtol=0, atol=1e-6)
    sigma_0 = cv2.GaussianBlur(img, (33, 33), 0)  # what docs once assumed: sigma 5.3
    assert np.abs(gpw_blur(img) - sigma_0).max() > 1e-2


# ----------------------------------------------------------------------------- mask (L:143-159)
def _mask_predictions(preds: np.ndarray, window_size: int = 8, threshold: float = 0.1) -> np.ndarray:
    """L:143-159: the trailing median mask (1 where kept)."""
    if len(preds) <= window_size:
        window_size = len(preds)
    pad_len = window_size - 1
    padded = np.concatenate(([np.mean(preds[:pad_len], axis=0) for _ in range(pad_len)], preds))
    masks = np.array([np.median(padded[i : i + window_size], axis=0) for i in range(len(preds))])
    masks[masks < threshold] = 0
    masks[masks > threshold] = 1
    return masks


@pytest.mark.parametrize("n", [3, 8, 20])
def test_trailing_mask_equals_the_original(n: int) -> None:
    rng = np.random.default_rng(n)
    preds = rng.random((n, 30, 30)).astype(np.float32)
    preds[preds < 0.5] = 0  # L:1003-1004
    ours = rolling_masks(preds, 8, 0.1, "trailing")
    np.testing.assert_array_equal(ours, _mask_predictions(preds) == 1)
    following = rolling_masks(preds, 8, 0.1, "following")
    np.testing.assert_array_equal(following, (_mask_predictions(preds[::-1]) == 1)[::-1])


# ----------------------------------------------------------------------------- contour frames
@pytest.fixture(scope="module")
def contour_inputs(gpw_dir: Path, models_dir: Path) -> tuple[object, Period, object]:
    sites = gpd.read_file(gpw_dir / "tpa_polygons.geojson")
    row = sites[sites["Name"].str.contains("Temesi")].iloc[0]
    centre = row.geometry.centroid
    tile = box_tile(centre.x, centre.y, 0.004, "temesi")
    span = Period(dt.date(2020, 1, 1), dt.date(2021, 1, 1))
    stack = SyntheticSource([PlantedSite(str(row["Name"]), row.geometry)], seed=0).load(tile, span)
    ens = load_models(ModelStore(str(models_dir)), DetectParams(), ensemble=True).ensemble
    return stack, span, ens


def _masked_scenes(stack: object, period: Period) -> np.ma.MaskedArray:
    idx = [i for i, d in enumerate(stack.dates) if period.contains(d)]  # type: ignore[attr-defined]
    data = stack.data[idx].astype(np.float64)  # type: ignore[attr-defined]
    mask = np.repeat(stack.mask[idx][:, None], data.shape[1], axis=1)  # type: ignore[attr-defined]
    return np.ma.masked_array(data, mask)


def _frame(ens: object, m0: np.ma.MaskedArray, m1: np.ma.MaskedArray) -> np.ndarray:
    valid = ~(np.ma.getmaskarray(m0)[0] | np.ma.getmaskarray(m1)[0])  # band 0, as U:325-328
    x = np.stack([m0.data[:, valid].T, m1.data[:, valid].T], axis=-1).astype(np.float32)
    out = np.full(valid.shape, np.nan, np.float32)
    out[valid] = np.median(ens.predict(x), axis=0)  # type: ignore[attr-defined]  # U:350-358
    return out


def test_gpw_2021_contour_frames_equal_the_original(contour_inputs: tuple[object, Period, object]) -> None:
    """L:977 monthly ``median`` mosaics, L:1000 ``pair(mosaics, 1)``: months (m, m + 1)."""
    stack, span, ens = contour_inputs
    frames, dates = P.contour_frames(stack, span, make_params({"recipe": "gpw-2021"}), ens)  # type: ignore[arg-type]
    months = [Period(add_months(span.start, k), add_months(span.start, k + 1)) for k in range(12)]
    mosaics = [np.ma.median(_masked_scenes(stack, p), axis=0) for p in months]  # type: ignore[no-untyped-call]
    pairs = [[a, b] for a, b in zip(mosaics, mosaics[1:], strict=False)]  # U:255
    assert dates == [p.start for p in months[: len(pairs)]] and len(frames) == len(pairs) == 11
    for ours, (a, b) in zip(frames, pairs, strict=True):
        np.testing.assert_allclose(ours, _frame(ens, a, b), rtol=0, atol=1e-5, equal_nan=True)


def test_paper_contour_frames_are_3_month_min_composites_6_months_apart(
    contour_inputs: tuple[object, Period, object],
) -> None:
    stack, span, ens = contour_inputs
    frames, dates = P.contour_frames(stack, span, DetectParams(), ens)  # type: ignore[arg-type]
    starts = [add_months(span.start, k) for k in range(12) if add_months(span.start, k + 9) <= span.end]
    assert dates == starts and len(frames) == 4
    for ours, s in zip(frames, starts, strict=True):
        a = np.ma.min(_masked_scenes(stack, Period(s, add_months(s, 3))), axis=0)
        b = np.ma.min(_masked_scenes(stack, Period(add_months(s, 6), add_months(s, 9))), axis=0)
        np.testing.assert_allclose(ours, _frame(ens, a, b), rtol=0, atol=1e-5, equal_nan=True)


# ----------------------------------------------------------------------------- patch grid
@functools.cache
def _extent(key: str) -> tuple[tuple[float, float], tuple[float, float], tuple[float, float], int]:
    """Upper-left, lower-left and lower-right corners (lon, lat) of DLTile ``key``'s padded raster
    (its ``wgs84Extent``) and its size in pixels."""
    tile = tile_from_key(key)
    n = tile.shape[0]
    to_wgs84 = Transformer.from_crs(tile.crs, "EPSG:4326", always_xy=True)
    ul, ll, lr = (to_wgs84.transform(*(tile.transform @ cr)) for cr in ((0, 0), (0, n), (n, n)))
    return ul, ll, lr, n


def _grid_residual(window: Polygon, tilesize: int, pad: int, stride: int, width: int) -> float:
    """Pixels between a published patch window (corner and width) and the nearest window that
    dl_utils:377-405 lays on a DLTile of ``tilesize`` + ``pad`` at ``stride``: windows start at
    ``stride`` multiples from the padded raster's corner, placed linearly in its WGS84 extent.
    The best over the tile holding the window's centre and its eight neighbours (inf: none)."""
    nw, se = window.exterior.coords[0], window.exterior.coords[2]
    centre = window.centroid
    spot = box(centre.x - 1e-7, centre.y - 1e-7, centre.x + 1e-7, centre.y + 1e-7)
    size, p, res, zone, ti, tj = plan_tiles(spot, tilesize, pad)[0].key.split(":")
    best = math.inf
    for di, dj in itertools.product((-1, 0, 1), repeat=2):
        ul, ll, lr, n = _extent(f"{size}:{p}:{res}:{zone}:{int(ti) + di}:{int(tj) + dj}")
        dlon, dlat = (lr[0] - ul[0]) / n, (ll[1] - ul[1]) / n  # dl_utils:378-381
        i, j = (nw[0] - ul[0]) / dlon, (nw[1] - ul[1]) / dlat
        if not (0 <= round(i) <= n - width and 0 <= round(j) <= n - width):
            continue
        on_grid = max(abs(i - stride * round(i / stride)), abs(j - stride * round(j / stride)))
        best = min(best, max(on_grid, abs((se[0] - nw[0]) / dlon - width)))
    return best


def test_published_patches_lie_on_the_deployment_grid(east_timor: tuple[gpd.GeoDataFrame, ...]) -> None:
    """GPW's published East Timor patches: 28 px windows at stride 8 on DLTiles of 876 px + 20 px
    pad, the deployment script's sizing (``gpw_patch_tiling``), not the workflow's 906 / 0 at the
    model's width. The only misfits are windows at the UTM zone 51 / 52 seam (126 deg E)."""
    _, patches, _ = east_timor
    assert gpw_patch_tiling(28) == (876, 20) and gpw_patch_tiling(45) == (863, 37)
    deployed = np.array([_grid_residual(g, 876, 20, 8, 28) for g in patches.geometry])
    off = patches.geometry[deployed >= 0.05]
    assert len(off) < 0.02 * len(patches)
    assert all(abs(g.centroid.x - 126.0) < 0.02 for g in off), [g.centroid.x for g in off]
    workflow = np.array([_grid_residual(g, 906, 0, 28, 28) for g in patches.geometry[::8]])
    assert not (workflow < 0.05).any()


@pytest.mark.slow
def test_gpw_2021_demo_finds_tpa_temesi(tmp_path: Path) -> None:
    """``plastics demo --preset gpw-2021`` confirms a candidate within 500 m of TPA Temesi."""
    from tests._env import user_env

    env = user_env(DAGSTER_HOME=str(tmp_path / "home"), PLASTICS_STORE=str(tmp_path / "store"))
    (tmp_path / "home").mkdir()
    proc = subprocess.run(
        [sys.executable, "-m", "plastics_dagster.cli", "demo", "--preset", "gpw-2021", "--json"],
        env={**env, "PLASTICS_PROGRESS": "0"},
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    out = json.loads(proc.stdout)
    assert min(out["distance_to_tpa_temesi_m"]) < 500, out["distance_to_tpa_temesi_m"]


# ----------------------------------------------------------------------------- parameters
def test_recipe_parameters_enter_the_run_hash() -> None:
    paper, gpw = DetectParams(), make_params({"recipe": "gpw-2021"})
    resolved = gpw.resolved()
    others = {
        "tilesize": 512,
        "pad": 4,
        "pairs": 3,
        "stride": 16,
        "pred_threshold": 0.5,
        "min_sigma": 2.0,
        "max_sigma": 50.0,
        "area_threshold": 0.01,
        "patch_threshold": 0.5,
    }
    assert set(others) == set(RECIPE_PARAMS["gpw-2021"])
    for key, value in RECIPE_PARAMS["gpw-2021"].items():
        assert resolved[key] == value, key
        changed = make_params({"recipe": "gpw-2021", key: others[key]})
        assert changed.resolved()[key] == others[key]
        assert run_hash(changed, "synthetic", "r") != run_hash(gpw, "synthetic", "r"), key
    assert run_hash(gpw, "synthetic", "r") != run_hash(paper, "synthetic", "r")
    assert (gpw.tilesize, gpw.pad, gpw.pairs, gpw.stride) == (863, 37, 7, 8)
    assert make_params({"recipe": "gpw-2021", "pairs": 5, "stride": 8}).pairs == 5  # explicit values win
    assert merge_method("gpw-2021") == "gpw" and merge_method("paper") == "chain"
    c = contour_recipe("gpw-2021")
    assert (
        c.composite_months,
        c.lag_months,
        c.composite_method,
        c.mask_align,
        c.blur_sigma,
        c.max_masked,
    ) == (1, 1, "median", "trailing", 4.0, None)


def test_dagster_resource_selects_the_recipe() -> None:
    from plastics_dagster.config import DetectionParams

    core = DetectionParams(recipe="gpw-2021").core()
    assert core.recipe == "gpw-2021" and core.tilesize == 863 and core.blob_params().max_sigma == 100.0


def test_cli_preset_selects_the_recipe() -> None:
    from click.testing import CliRunner

    from plastics_dagster.cli.run import demo, detection_params, preset_overrides

    assert preset_overrides("gpw-2021") == {"recipe": "gpw-2021"} and preset_overrides("low") == {
        "preset": "low"
    }
    params = detection_params({"pairs": 5, **preset_overrides("gpw-2021")})
    assert params.recipe == "gpw-2021" and params.tilesize == 863 and params.pairs == 5
    assert "gpw-2021" in CliRunner().invoke(demo, ["--help"]).output
