"""Negative control on real Sentinel-2 L1C (Slovenia 2015, farmland/forest/villages, no waste site).

Every clear-pixel prediction of the default pixel model and of all 6 ensemble members stays
< 0.5 (clear dates paired with each other), and the fully cloudy dates (07-31, 08-20) are masked
by the reference cloud mask and never predicted (NaN in the heatmap).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest
from rasterio.transform import from_bounds

from plastics_core.geo.periods import Period
from plastics_core.method.composite import Composite
from plastics_core.method.heatmap import pixel_heatmap
from plastics_core.models import DEFAULT_ENSEMBLE, DEFAULT_MODEL, ModelStore
from plastics_core.models.infer import PixelClassifier

CLEAR, CLOUDY = (0, 3, 4), (1, 2)
CLEAR_PAIRS = [(0, 3), (0, 4), (3, 4), (3, 0), (4, 0), (4, 3)]


@pytest.fixture(scope="module")
def scenes(shared_dir: Path) -> list[Composite]:
    z = np.load(shared_dir / "data" / "s2l1c_slovenia_2015" / "s2l1c_ref5_12band_uint16.npz")
    bands, clm = z["bands"], z["clm"].astype(bool)
    _, _, h, w = bands.shape
    transform = from_bounds(*z["bounds"], width=w, height=h)
    out = []
    for t, stamp in enumerate(z["dates"]):
        day = dt.date.fromisoformat(str(stamp)[:10])
        mask = clm[t] | (bands[t] == 0).all(axis=0)
        data = bands[t].astype(np.float32)
        data[:, mask] = 0.0
        out.append(
            Composite(data, mask, Period(day, day + dt.timedelta(days=1)), str(z["crs"]), transform, 1)
        )
    return out


def test_reference_masks(scenes: list[Composite]) -> None:
    assert all(scenes[t].mask.all() for t in CLOUDY)
    assert all(not scenes[t].mask.any() for t in CLEAR)


@pytest.mark.parametrize("which", ["default", *"abcdef"])
def test_models_stay_below_half(scenes: list[Composite], models_dir: Path, which: str) -> None:
    store = ModelStore(str(models_dir))
    if which == "default":
        ref = store.resolve(DEFAULT_MODEL)
    else:
        ref = next(r for r in store.resolve_ensemble(DEFAULT_ENSEMBLE) if f"_unit_norm_{which}_" in r.name)
    pairs = CLEAR_PAIRS + [(0, 1), (1, 2), (2, 4)]
    hm = pixel_heatmap(scenes, pairs, PixelClassifier.from_ref(ref))
    clear = hm.data[: len(CLEAR_PAIRS)]
    assert np.isfinite(clear).all()
    peak = float(clear.max())
    print(f"{ref.name}: max {peak:.4f}, p99.9 {np.quantile(clear, 0.999):.4f}, mean {clear.mean():.4f}")
    assert peak < 0.5, f"{ref.name}: {(clear >= 0.5).sum()} clear-pixel predictions >= 0.5 (max {peak:.3f})"
    assert np.isnan(hm.data[len(CLEAR_PAIRS) : -1]).all()  # cloudy dates: no predictions
    assert np.isfinite(hm.data[-1]).all() and float(np.nanmax(hm.data[-1])) < 0.5


def test_patch_classifier_stays_below_half(scenes: list[Composite], models_dir: Path) -> None:
    from plastics_core.method.patches import keep_patches, patch_scores
    from plastics_core.models import DEFAULT_PATCH_MODEL
    from plastics_core.models.patch_classifier import PatchClassifier

    clf = PatchClassifier.from_ref(ModelStore(str(models_dir)).resolve(DEFAULT_PATCH_MODEL))
    gdf = patch_scores(scenes, [(0, 3), (3, 4), (4, 0), (1, 2), (2, 0)], clf)
    assert len(gdf) == 8 * 7 and (gdf["count"] == 3).all()  # the cloudy-first pairs score nothing
    print(f"patch classifier: max {gdf['max'].max():.4f}, mean {gdf['mean'].mean():.4f}")
    assert gdf["max"].max() < 0.5 and len(keep_patches(gdf, 0.3)) == 0
