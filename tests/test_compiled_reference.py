"""The compiled JAX path against the float64 reference read from the .h5 files (no TensorFlow).

Needs only numpy, h5py and JAX, so ``bench/device.sh`` runs it on an accelerator worker (where
Keras is absent) as well as in CI on the CPU; ``tests/test_models_compiled.py`` ties the same
reference to Keras ``predict``. Random inputs from a fixed seed, so a failure reproduces.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from plastics_core.models import DEFAULT_ENSEMBLE, DEFAULT_PATCH_MODEL, SHA256, ModelStore
from plastics_core.models.ensemble import EnsembleClassifier
from plastics_core.models.h5weights import read_h5
from plastics_core.models.infer import PixelClassifier
from plastics_core.models.patch_classifier import PatchClassifier
from plastics_core.models.pixel_fast import norm_vectors
from plastics_core.models.reference import forward, normalize64
from tests.test_models_compiled import realistic_dn

PIXEL_MODELS = sorted(k for k in SHA256 if "patch" not in k)
SEED = 20210101


dn = realistic_dn  # whole-number L1C DN around the unit-norm mean/std per band


@pytest.fixture(scope="module")
def store(models_dir: Path) -> ModelStore:
    return ModelStore(str(models_dir))


@pytest.mark.parametrize("name", PIXEL_MODELS)
def test_pixel_exact_and_fast_vs_float64(store: ModelStore, name: str) -> None:
    ref = store.resolve(name)
    clf = PixelClassifier.from_ref(ref)
    clf.device = "jax"
    x = dn(np.random.default_rng(SEED), (6000, 12, 2), band_axis=1)
    x[:5], x[5:10] = 0.0, 10000.0
    sub, div = norm_vectors(ref.normalization, 12, dates=2)
    r64 = forward(
        read_h5(str(ref.path)), normalize64(x.reshape(len(x), 24), sub, div, 1).reshape(-1, 12, 2, 1)
    )
    out = np.full(len(x), np.nan, np.float32)  # poisoned: every element must be written
    out[:] = clf.predict(x)
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out, r64, rtol=0, atol=1e-5)
    clf.precision = "fast"
    fast = clf.predict(x)
    assert np.isfinite(fast).all() and np.abs(fast - r64).max() < 0.1  # bf16: bounded, not exact


def test_ensemble_and_patch_vs_float64(store: ModelStore) -> None:
    rng = np.random.default_rng(SEED + 1)
    refs = store.resolve_ensemble(DEFAULT_ENSEMBLE)
    ens = EnsembleClassifier.from_refs(refs)
    for m in ens.members:
        m.device = "jax"
    x = dn(rng, (3000, 12, 2), band_axis=1)
    out = ens.predict(x)
    sub, div = norm_vectors(refs[0].normalization, 12, dates=2)
    xn = normalize64(x.reshape(len(x), 24), sub, div, 1).reshape(-1, 12, 2, 1)
    for i, r in enumerate(refs):
        np.testing.assert_allclose(out[i], forward(read_h5(str(r.path)), xn), rtol=0, atol=1e-5)
    pref = store.resolve(DEFAULT_PATCH_MODEL)
    patch = PatchClassifier.from_ref(pref)
    patch.device = "jax"
    img = dn(rng, (77, 85, 12), band_axis=2)
    grid = patch.predict_grid(img, stride=8)
    from numpy.lib.stride_tricks import sliding_window_view

    wins = sliding_window_view(img, (45, 45), axis=(0, 1))[::8, ::8].transpose(0, 1, 3, 4, 2)
    assert grid.shape == wins.shape[:2]
    psub, pdiv = norm_vectors(pref.normalization, 12)
    r64 = forward(read_h5(str(pref.path)), normalize64(wins.reshape(-1, 45, 45, 12), psub, pdiv, 3))
    np.testing.assert_allclose(grid.ravel(), r64, rtol=0, atol=1e-5)
