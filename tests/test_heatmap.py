"""pixel_heatmap: one band per pair + median; masked pixels NaN and never sent to the model."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pytest
from affine import Affine

from plastics_core.errors import ParameterError
from plastics_core.geo.bands import UNIT_NORM_MEAN, UNIT_NORM_STD
from plastics_core.geo.periods import Period
from plastics_core.method.composite import Composite
from plastics_core.method.heatmap import pixel_heatmap

SIGNATURES = Path(__file__).resolve().parents[1] / "plastics_core" / "data" / "waste_signatures.json"
TRANSFORM = Affine(10.0, 0.0, 500000.0, 0.0, -10.0, 9100000.0)


def make_composites(n: int = 3, shape: tuple[int, int] = (20, 30), seed: int = 0) -> list[Composite]:
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        data = rng.uniform(200, 3000, (12, *shape)).astype(np.float32)
        mask = rng.random(shape) < 0.2
        data[:, mask] = 0.0
        start = dt.date(2021, 1 + 3 * k, 1)
        period = Period(start, dt.date(2021, 4 + 3 * k, 1) if k < 3 else dt.date(2022, 1, 1))
        out.append(Composite(data, mask, period, "EPSG:32750", TRANSFORM, 2))
    return out


class MeanModel:
    """Stand-in model: probability = mean DN / 10000; records what it was given."""

    def __init__(self) -> None:
        self.seen: list[np.ndarray] = []

    def predict(self, x: np.ndarray) -> np.ndarray:
        assert x.ndim == 3 and x.shape[1:] == (12, 2) and x.dtype == np.float32
        self.seen.append(x.copy())
        return (x.mean(axis=(1, 2)) / 10000).astype(np.float32)


def test_bands_masking_and_median() -> None:
    comps = make_composites()
    pairs = [(0, 1), (1, 2), (0, 2)]
    model = MeanModel()
    calls: list[tuple[int, int]] = []
    hm = pixel_heatmap(comps, pairs, model, progress=lambda d, t: calls.append((d, t)))
    assert hm.data.shape == (4, 20, 30) and hm.data.dtype == np.float32
    assert hm.band_descriptions == (
        "2021-01-01_2021-04-01|2021-04-01_2021-07-01",
        "2021-04-01_2021-07-01|2021-07-01_2021-10-01",
        "2021-01-01_2021-04-01|2021-07-01_2021-10-01",
        "median",
    )
    assert hm.crs == "EPSG:32750" and hm.transform == TRANSFORM and np.isnan(hm.nodata)
    for k, (a, b) in enumerate(pairs):
        masked = comps[a].mask | comps[b].mask
        assert np.isnan(hm.data[k][masked]).all()
        assert np.isfinite(hm.data[k][~masked]).all()
        expected = (comps[a].data + comps[b].data).mean(axis=0)[~masked] / 2 / 10000
        np.testing.assert_allclose(hm.data[k][~masked], expected, rtol=1e-5)
    # no masked (all-zero) pixel ever reached the model
    seen = np.concatenate(model.seen)
    assert len(seen) == sum(int((~(comps[a].mask | comps[b].mask)).sum()) for a, b in pairs)
    assert (seen.reshape(len(seen), -1).max(axis=1) > 0).all()
    with np.errstate(all="ignore"):
        med = np.nanmedian(np.where(np.isnan(hm.data[:3]), np.nan, hm.data[:3]), axis=0)
    np.testing.assert_allclose(hm.data[3], med, equal_nan=True)
    all_masked = np.logical_and.reduce([comps[a].mask | comps[b].mask for a, b in pairs])
    assert np.isnan(hm.data[3][all_masked]).all() and np.isfinite(hm.data[3][~all_masked]).all()
    assert calls[0] == (0, calls[-1][1]) and calls[-1][0] == calls[-1][1] == len(seen)


def test_all_masked_and_no_pairs() -> None:
    comps = make_composites(2)
    comps[1] = Composite(
        comps[1].data * 0, np.ones((20, 30), bool), comps[1].period, "EPSG:32750", TRANSFORM, 0
    )
    model = MeanModel()
    hm = pixel_heatmap(comps, [(0, 1)], model)
    assert np.isnan(hm.data).all() and hm.data.shape == (2, 20, 30)
    hm0 = pixel_heatmap(comps, [], model)
    assert hm0.band_descriptions == ("median",) and np.isnan(hm0.data).all()
    assert sum(len(s) for s in model.seen) == 0


def test_bad_pairs() -> None:
    comps = make_composites(2)
    with pytest.raises(ParameterError, match="pair"):
        pixel_heatmap(comps, [(0, 2)], MeanModel())


def test_real_model_heatmap(models_dir) -> None:  # type: ignore[no-untyped-def]
    from plastics_core.models import DEFAULT_MODEL, ModelStore
    from plastics_core.models.infer import PixelClassifier, keras_predict

    ref = ModelStore(str(models_dir)).resolve(DEFAULT_MODEL)
    comps = make_composites(2, shape=(16, 16), seed=4)
    hm = pixel_heatmap(comps, [(0, 1)], PixelClassifier.from_ref(ref))
    valid = ~(comps[0].mask | comps[1].mask)
    x = np.stack([comps[0].data[:, valid].T, comps[1].data[:, valid].T], axis=-1)
    np.testing.assert_allclose(hm.data[0][valid], keras_predict(ref, x), atol=1e-5)
    assert hm.tags["model"] == DEFAULT_MODEL


def test_ensemble_heatmap_is_member_median(models_dir) -> None:  # type: ignore[no-untyped-def]
    from plastics_core.models import DEFAULT_ENSEMBLE, ModelStore
    from plastics_core.models.ensemble import EnsembleClassifier
    from plastics_core.models.infer import keras_predict

    refs = ModelStore(str(models_dir)).resolve_ensemble(DEFAULT_ENSEMBLE)
    ens = EnsembleClassifier.from_refs(refs)
    comps = make_composites(2, shape=(12, 12), seed=6)
    # pixels blend a derived waste spectrogram into realistic background DN, so the members'
    # probabilities spread over (0, 1) and disagree
    sigs = json.loads(SIGNATURES.read_text())["signatures"]
    rng = np.random.default_rng(6)
    k = rng.integers(0, len(sigs), (12, 12))
    alpha = rng.uniform(0, 1, (12, 12))
    for c, t in zip(comps, ("t0", "t1"), strict=True):
        waste = np.array([s[t] for s in sigs], np.float32)[k].transpose(2, 0, 1)
        background = rng.normal(UNIT_NORM_MEAN[:, None, None], UNIT_NORM_STD[:, None, None], c.data.shape)
        c.data[:] = (np.clip(alpha * waste + (1 - alpha) * background, 0, 10000) * ~c.mask).astype(np.float32)
    hm = pixel_heatmap(comps, [(0, 1)], ens)
    valid = ~(comps[0].mask | comps[1].mask)
    x = np.stack([comps[0].data[:, valid].T, comps[1].data[:, valid].T], axis=-1)
    # independent reference: each member through Keras ``predict``, then the median over members
    members = np.stack([keras_predict(ref, x, batch_size=1024) for ref in refs])
    assert members.shape == (6, int(valid.sum())) and np.ptp(members, axis=0).max() > 0.05  # members differ
    assert members.max() > 0.5  # waste-like pixels reach the models' positive side
    np.testing.assert_allclose(hm.data[0][valid], np.median(members, axis=0), rtol=0, atol=1e-5)
    assert np.isnan(hm.data[0][~valid]).all()
    assert hm.tags["model"].count(DEFAULT_ENSEMBLE) == 6


def test_row_blocks_equal_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    import plastics_core.method.heatmap as heatmap

    comps = make_composites(3, shape=(23, 17), seed=9)
    whole = pixel_heatmap(comps, [(0, 2), (1, 2)], MeanModel())
    monkeypatch.setattr(heatmap, "CHUNK", 40)  # 2 rows per block
    calls: list[tuple[int, int]] = []
    blocks = pixel_heatmap(comps, [(0, 2), (1, 2)], MeanModel(), progress=lambda d, t: calls.append((d, t)))
    np.testing.assert_array_equal(blocks.data, whole.data)
    assert len(calls) > 10 and calls[-1][0] == calls[-1][1]
