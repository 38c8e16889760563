"""Fast inference paths equal keras ``predict`` within 1e-5 for all 8 real GPW models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from plastics_core.errors import ModelError
from plastics_core.geo.bands import UNIT_NORM_MEAN, UNIT_NORM_STD
from plastics_core.models import DEFAULT_ENSEMBLE, DEFAULT_MODEL, DEFAULT_PATCH_MODEL, SHA256, ModelStore
from plastics_core.models.ensemble import EnsembleClassifier
from plastics_core.models.infer import PixelClassifier, keras_predict
from plastics_core.models.patch_classifier import PatchClassifier

PIXEL_MODELS = sorted(k for k in SHA256 if "patch" not in k)


def realistic_dn(rng: np.random.Generator, shape: tuple[int, ...], band_axis: int) -> np.ndarray:
    """Random L1C DN drawn around the unit-norm mean/std per band, clipped to 0..10000, float32."""
    bshape = [1] * len(shape)
    bshape[band_axis] = 12
    mean, std = UNIT_NORM_MEAN.reshape(bshape), UNIT_NORM_STD.reshape(bshape)
    return np.clip(rng.normal(mean, std, shape), 0, 10000).astype(np.float32)


@pytest.fixture(scope="module")
def store(models_dir: Path) -> ModelStore:
    return ModelStore(str(models_dir))


@pytest.mark.parametrize("name", PIXEL_MODELS)
def test_pixel_fast_path_matches_keras(store: ModelStore, name: str) -> None:
    ref = store.resolve(name)
    clf = PixelClassifier.from_ref(ref)
    pool = realistic_dn(np.random.default_rng(1), (100_000, 12, 2), band_axis=1)
    top = np.argsort(clf.predict(pool))[-2000:]  # include the model's most 'waste-like' inputs
    x = np.concatenate([pool[top], pool[:4000]])
    x[:10] = 0.0  # edge cases: dark / saturated pixels
    x[10:20] = 10000.0
    fast = clf.predict(x)
    slow = keras_predict(ref, x, batch_size=1024)
    assert fast.dtype == np.float32 and fast.shape == (6000,)
    np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-5)
    assert slow.max() - slow.min() > 1e-3  # inputs exercise the model


def test_ensemble_matches_members(store: ModelStore) -> None:
    refs = store.resolve_ensemble(DEFAULT_ENSEMBLE)
    ens = EnsembleClassifier.from_refs(refs)
    x = realistic_dn(np.random.default_rng(2), (5000, 12, 2), band_axis=1)
    preds = ens.predict(x)
    assert preds.shape == (6, 5000) and preds.dtype == np.float32
    for i, ref in enumerate(refs):
        np.testing.assert_allclose(preds[i], keras_predict(ref, x, batch_size=1024), rtol=0, atol=1e-5)
    np.testing.assert_allclose(ens.predict_median(x), np.median(preds, axis=0), atol=1e-7)
    assert ens.predict(np.zeros((0, 12, 2), np.float32)).shape == (6, 0)


def test_pixel_input_validation(store: ModelStore) -> None:
    clf = PixelClassifier.from_ref(store.resolve(DEFAULT_MODEL))
    with pytest.raises(ModelError, match=r"\(n, 12 bands, 2 dates\)"):
        clf.predict(np.zeros((5, 13, 2), np.float32))
    with pytest.raises(ModelError, match="not a pixel model"):
        PixelClassifier.from_ref(store.resolve(DEFAULT_PATCH_MODEL))
    assert clf.predict(np.zeros((0, 12, 2), np.float32)).shape == (0,)


def test_patch_classifier_matches_keras(store: ModelStore) -> None:
    ref = store.resolve(DEFAULT_PATCH_MODEL)
    clf = PatchClassifier.from_ref(ref)
    assert (clf.window, clf.channels) == (45, 12)
    img = realistic_dn(np.random.default_rng(3), (141, 157, 12), band_axis=2)
    img[60:100, 20:70] = img[60:100, 20:70] * 0.3  # structure
    wins = sliding_window_view(img, (45, 45), axis=(0, 1))[::8, ::8].transpose(0, 1, 3, 4, 2)
    rows, cols = wins.shape[:2]
    wins = wins.reshape(-1, 45, 45, 12)
    slow = keras_predict(ref, wins, batch_size=64)
    np.testing.assert_allclose(clf.predict(wins), slow, rtol=0, atol=1e-5)
    grid = clf.predict_grid(img, stride=8)
    assert grid.shape == (rows, cols) == ((141 - 45) // 8 + 1, (157 - 45) // 8 + 1)
    np.testing.assert_allclose(grid.ravel(), slow, rtol=0, atol=1e-5)
    grid5 = clf.predict_grid(img[:60, :60], stride=5)  # non-shared stride: explicit windows
    wins5 = sliding_window_view(img[:60, :60], (45, 45), axis=(0, 1))[::5, ::5].transpose(0, 1, 3, 4, 2)
    np.testing.assert_allclose(grid5.ravel(), keras_predict(ref, wins5.reshape(-1, 45, 45, 12)), atol=1e-5)
    assert clf.predict_grid(img[:40], stride=8).shape == (0, 15)
    with pytest.raises(ModelError, match="12 channels"):
        clf.predict(np.zeros((2, 45, 45, 13), np.float32))
    with pytest.raises(ModelError, match="12 channels"):
        clf.predict(np.zeros((2, 28, 28, 12), np.float32))


def test_patch_grid_blocks(store: ModelStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """The shared conv grid computed in blocks of window rows equals the grid in one block."""
    from plastics_core.models import patch_fast

    clf = PatchClassifier.from_ref(store.resolve(DEFAULT_PATCH_MODEL))
    clf.device = "cpu"
    img = realistic_dn(np.random.default_rng(4), (133, 101, 12), band_axis=2)
    whole = clf.predict_grid(img)
    calls: list[tuple[int, ...]] = []
    features = clf._features

    def counted(block: np.ndarray) -> np.ndarray:
        calls.append(block.shape)
        return features(block)

    monkeypatch.setattr(clf, "_features", counted)
    monkeypatch.setattr(patch_fast, "BLOCK_PIXELS", 60 * 101)  # several blocks of window rows
    np.testing.assert_allclose(clf.predict_grid(img), whole, atol=1e-6)
    assert len(calls) > 1  # really several blocks


def test_keras_device_path_matches_numpy_and_predict(
    store: ModelStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The accelerator path (direct Keras calls in large batches; what a GPU worker runs) forced on
    the CPU: equal to keras predict and to the numpy path within 1e-5, for a model and the ensemble."""
    from plastics_core.models import ensemble, infer
    from plastics_core.models.device import jax_gpu
    from plastics_core.models.infer import configure_devices, use_keras_path

    batch = 16_384  # small batches so 40,000 pixels span three device batches (the last one partial)
    calls: list[tuple[int, int]] = []
    forward = infer.keras_forward

    def small_batches(models: Any, xn: np.ndarray, batch: int = batch) -> np.ndarray:
        calls.append((len(xn), batch))
        return forward(models, xn, batch=batch)

    monkeypatch.setattr(infer, "keras_forward", small_batches)
    monkeypatch.setattr(ensemble, "keras_forward", small_batches)
    x = realistic_dn(np.random.default_rng(3), (40_000, 12, 2), band_axis=1)
    clf = PixelClassifier.from_ref(store.resolve(DEFAULT_MODEL))
    # auto: JAX on a JAX GPU, else Keras on a Keras GPU, else numpy
    assert use_keras_path() == (not jax_gpu() and configure_devices().startswith("GPU"))
    monkeypatch.setenv("PLASTICS_PIXEL_DEVICE", "cpu")
    numpy_out = clf.predict(x)
    monkeypatch.setenv("PLASTICS_PIXEL_DEVICE", "keras")
    assert use_keras_path()
    keras_out = clf.predict(x)
    assert calls and calls[-1][0] == len(x) and calls[-1][0] > 2 * calls[-1][1]  # really several batches
    np.testing.assert_allclose(keras_out, numpy_out, rtol=0, atol=1e-5)
    np.testing.assert_allclose(
        keras_out[:3000], keras_predict(clf.ref, x[:3000], batch_size=1024), rtol=0, atol=1e-5
    )
    ens = EnsembleClassifier.from_refs(store.resolve_ensemble(DEFAULT_ENSEMBLE))
    via_keras = ens.predict(x[:20_000])
    assert calls[-1][0] == 20_000  # the ensemble shares each batch: two batches, the last partial
    monkeypatch.setenv("PLASTICS_PIXEL_DEVICE", "cpu")
    np.testing.assert_allclose(via_keras, ens.predict(x[:20_000]), rtol=0, atol=1e-5)
    monkeypatch.setenv("PLASTICS_PIXEL_DEVICE", "tpu")
    with pytest.raises(ModelError, match="inference device 'tpu'"):
        clf.predict(x[:10])
