"""patch_scores / keep_patches: stride-8 windows, mask skipping, stats over pairs, EPSG:4326 polygons."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from affine import Affine
from numpy.lib.stride_tricks import sliding_window_view
from pyproj import Transformer

from plastics_core.errors import ParameterError
from plastics_core.geo.periods import Period
from plastics_core.method.composite import Composite
from plastics_core.method.patches import COLUMNS, keep_patches, patch_scores

TRANSFORM = Affine(10.0, 0.0, 300000.0, 0.0, -10.0, 9050000.0)
CRS = "EPSG:32750"


def comp(
    k: int, value: float, shape: tuple[int, int] = (69, 77), mask: np.ndarray | None = None
) -> Composite:
    data = np.full((12, *shape), value, np.float32)
    m = np.zeros(shape, bool) if mask is None else mask
    data[:, m] = 0.0
    p = Period(dt.date(2021, 1 + 3 * k, 1), dt.date(2021, 4 + 3 * k, 1))
    return Composite(data, m, p, CRS, TRANSFORM, 1)


class MeanPatchModel:
    """Stand-in: score = mean DN of the window / 10000 (channels 12, window 45)."""

    window, channels = 45, 12

    def predict_grid(self, image: np.ndarray, stride: int = 8) -> np.ndarray:
        v = sliding_window_view(image, (45, 45), axis=(0, 1))[::stride, ::stride]
        return (v.mean(axis=(2, 3, 4)) / 10000).astype(np.float32)


def test_stats_over_pairs_and_geometry() -> None:
    comps = [comp(0, 1000.0), comp(1, 3000.0), comp(2, 5000.0)]
    gdf = patch_scores(comps, [(0, 1), (1, 2)], MeanPatchModel())
    rows, cols = (69 - 45) // 8 + 1, (77 - 45) // 8 + 1
    assert len(gdf) == rows * cols == 20 and gdf.crs.to_epsg() == 4326
    assert list(gdf.columns) == [*COLUMNS, "geometry"]
    # 12-channel model: each pair scores its FIRST composite -> scores 0.1 and 0.3
    np.testing.assert_allclose(gdf["mean"], 0.2, atol=1e-6)
    np.testing.assert_allclose(gdf["median"], 0.2, atol=1e-6)
    np.testing.assert_allclose(gdf["min"], 0.1, atol=1e-6)
    np.testing.assert_allclose(gdf["max"], 0.3, atol=1e-6)
    np.testing.assert_allclose(gdf["std"], 0.1, atol=1e-6)
    assert (gdf["count"] == 2).all()
    # second window in row-major order: columns 8..53 px, rows 0..45 px
    to_ll = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True)
    corners = [TRANSFORM @ cr for cr in [(8, 0), (53, 0), (53, 45), (8, 45), (8, 0)]]
    expected = [to_ll.transform(x, y) for x, y in corners]
    np.testing.assert_allclose(np.asarray(gdf.geometry.iloc[1].exterior.coords), expected, atol=1e-9)


def test_masked_windows_skipped() -> None:
    mask = np.zeros((69, 77), bool)
    mask[:20, :20] = True  # 400 / 2025 px masked in window (0, 0): >= 10 %
    mask[60:, 70:] = True  # 9 * 7 = 63 px in the last window: < 10 %, still scored
    comps = [comp(0, 1000.0, mask=mask), comp(1, 3000.0)]
    gdf = patch_scores(comps, [(0, 1), (1, 0)], MeanPatchModel())
    counts = gdf["count"].to_numpy()
    assert counts[0] == 1 and counts[-1] == 2 and len(gdf) == 20
    assert gdf["mean"].iloc[0] == pytest.approx(0.3, abs=1e-6)
    all_masked = patch_scores(
        [comp(0, 1.0, mask=np.ones((69, 77), bool)), comp(1, 1.0)], [(0, 1)], MeanPatchModel()
    )
    assert len(all_masked) == 0 and list(all_masked.columns) == [*COLUMNS, "geometry"]
    assert all_masked.crs.to_epsg() == 4326


def test_empty_and_keep() -> None:
    small = [comp(0, 1.0, shape=(30, 30)), comp(1, 1.0, shape=(30, 30))]
    assert len(patch_scores(small, [(0, 1)], MeanPatchModel())) == 0
    assert len(patch_scores(small, [], MeanPatchModel())) == 0
    gdf = patch_scores([comp(0, 2000.0), comp(1, 5000.0)], [(0, 1), (1, 0)], MeanPatchModel())
    assert len(keep_patches(gdf, 0.3)) == 20 and len(keep_patches(gdf, 0.36)) == 0
    assert keep_patches(gdf.iloc[:0]).crs.to_epsg() == 4326
    with pytest.raises(ParameterError):
        keep_patches(gdf, 1.5)
    with pytest.raises(ParameterError):
        patch_scores(small, [(0, 1)], MeanPatchModel(), stride=0)


def test_real_patch_model(models_dir) -> None:  # type: ignore[no-untyped-def]
    from plastics_core.models import DEFAULT_PATCH_MODEL, ModelStore
    from plastics_core.models.infer import keras_predict
    from plastics_core.models.patch_classifier import PatchClassifier

    ref = ModelStore(str(models_dir)).resolve(DEFAULT_PATCH_MODEL)
    rng = np.random.default_rng(5)
    comps = [comp(0, 0.0), comp(1, 0.0)]
    for c in comps:
        c.data[:] = rng.uniform(300, 3000, c.data.shape).astype(np.float32)
    gdf = patch_scores(comps, [(0, 1)], PatchClassifier.from_ref(ref))
    wins = sliding_window_view(comps[0].data.transpose(1, 2, 0), (45, 45), axis=(0, 1))[::8, ::8]
    expected = keras_predict(ref, wins.transpose(0, 1, 3, 4, 2).reshape(-1, 45, 45, 12))
    np.testing.assert_allclose(gdf["mean"], expected, atol=1e-5)
