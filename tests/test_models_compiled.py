"""The compiled JAX path (exact and fast) on the real GPW models, on whatever backend JAX has.

Exact equals Keras ``predict`` within 1e-5 on every real model; the float64 reference read from
the .h5 files (the GPU worker's reference, where Keras is absent) equals Keras too; batch shapes
are bucketed (no recompiles within a bucket); fast precision gives the same blobs and candidates
as exact on the demo tile.
"""

from __future__ import annotations

import copy
import datetime as dt
from pathlib import Path

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from plastics_core.errors import ModelError
from plastics_core.geo.bands import UNIT_NORM_MEAN, UNIT_NORM_STD
from plastics_core.models import DEFAULT_ENSEMBLE, DEFAULT_MODEL, DEFAULT_PATCH_MODEL, SHA256, ModelStore
from plastics_core.models import compiled as C
from plastics_core.models.ensemble import EnsembleClassifier
from plastics_core.models.h5weights import read_h5
from plastics_core.models.infer import PixelClassifier, keras_predict
from plastics_core.models.patch_classifier import PatchClassifier
from plastics_core.models.pixel_fast import norm_vectors
from plastics_core.models.reference import forward as reference_forward
from plastics_core.models.reference import normalize64

PIXEL_MODELS = sorted(k for k in SHA256 if "patch" not in k)


def realistic_dn(rng: np.random.Generator, shape: tuple[int, ...], band_axis: int) -> np.ndarray:
    """Random whole-number L1C DN around the unit-norm mean/std per band, in 0..10000, float32."""
    bshape = [1] * len(shape)
    bshape[band_axis] = 12
    x = rng.normal(UNIT_NORM_MEAN.reshape(bshape), UNIT_NORM_STD.reshape(bshape), shape)
    return np.clip(np.round(x), 0, 10000).astype(np.float32)


@pytest.fixture(scope="module")
def store(models_dir: Path) -> ModelStore:
    return ModelStore(str(models_dir))


def _pixel_inputs(clf: PixelClassifier, seed: int) -> np.ndarray:
    pool = realistic_dn(np.random.default_rng(seed), (30_000, 12, 2), band_axis=1)
    top = np.argsort(clf.predict(pool))[-1000:]  # the model's most waste-like inputs too
    x = np.concatenate([pool[top], pool[:2000]])
    x[:10], x[10:20] = 0.0, 10000.0
    x[20:30] += 0.25  # fractional DN: the float32 transfer instead of uint16
    return x


@pytest.mark.parametrize("name", PIXEL_MODELS)
def test_compiled_pixel_exact_matches_keras_and_reference(store: ModelStore, name: str) -> None:
    ref = store.resolve(name)
    clf = PixelClassifier.from_ref(ref)
    x = _pixel_inputs(clf, 11)
    clf.device = "jax"
    exact = clf.predict(x)
    keras = keras_predict(ref, x, batch_size=1024)
    assert exact.dtype == np.float32 and exact.shape == (len(x),)
    np.testing.assert_allclose(exact, keras, rtol=0, atol=1e-5)
    assert keras.max() - keras.min() > 1e-3  # inputs exercise the model
    sub, div = norm_vectors(ref.normalization, 12, dates=2)
    xn = normalize64(x.reshape(len(x), 24), sub, div, band_axis=1).reshape(-1, 12, 2, 1)
    ref64 = reference_forward(read_h5(str(ref.path)), xn)
    np.testing.assert_allclose(ref64, keras, rtol=0, atol=1e-5)
    clf.precision = "fast"
    fast = clf.predict(x)
    assert 0 < np.abs(fast - exact).max() < 0.1  # bf16 operands: bounded, not exact (bench: measured)


def test_compiled_patch_grid_exact_matches_keras(store: ModelStore) -> None:
    ref = store.resolve(DEFAULT_PATCH_MODEL)
    clf = PatchClassifier.from_ref(ref)
    img = realistic_dn(np.random.default_rng(3), (101, 117, 12), band_axis=2)
    img[40:80, 20:70] = np.round(img[40:80, 20:70] * 0.3)  # structure
    wins = sliding_window_view(img, (45, 45), axis=(0, 1))[::8, ::8].transpose(0, 1, 3, 4, 2)
    rows, cols = wins.shape[:2]
    wins = np.ascontiguousarray(wins).reshape(-1, 45, 45, 12)
    keras = keras_predict(ref, wins, batch_size=64)
    clf.device = "jax"
    grid = clf.predict_grid(img, stride=8)
    assert grid.shape == (rows, cols) and grid.dtype == np.float32
    np.testing.assert_allclose(grid.ravel(), keras, rtol=0, atol=1e-5)
    sub, div = norm_vectors(ref.normalization, 12)
    ref64 = reference_forward(read_h5(str(ref.path)), normalize64(wins, sub, div, band_axis=3))
    np.testing.assert_allclose(ref64, keras, rtol=0, atol=1e-5)
    clf.precision = "fast"
    assert np.abs(clf.predict_grid(img, stride=8) - grid).max() < 0.25
    assert clf.predict_grid(img[:40], stride=8).shape == (0, 10)


def test_compiled_ensemble_one_call(store: ModelStore) -> None:
    ens = EnsembleClassifier.from_refs(store.resolve_ensemble(DEFAULT_ENSEMBLE))
    x = realistic_dn(np.random.default_rng(2), (3000, 12, 2), band_axis=1)
    numpy_out = ens.predict(x)  # the numpy path, itself equal to Keras (test_models_infer)
    for m in ens.members:
        m.device = "jax"
    out = ens.predict(x)
    assert out.shape == (6, 3000) and out.dtype == np.float32
    np.testing.assert_allclose(out, numpy_out, rtol=0, atol=1e-5)
    assert ens.predict(np.zeros((0, 12, 2), np.float32)).shape == (6, 0)


def test_buckets_do_not_recompile(store: ModelStore) -> None:
    assert C.bucket(1) == C.bucket(4096) == 4096 and C.bucket(5000) == C.bucket(5120) == 5120
    for n in (8193, 70_000, 885_481, 3_000_001):
        assert n <= C.bucket(n) <= n * 1.125 and C.bucket(n) % 1024 == 0
    cpx = PixelClassifier.from_ref(store.resolve(DEFAULT_MODEL)).compiled()
    x = realistic_dn(np.random.default_rng(5), (5100, 12, 2), band_axis=1)
    first = cpx.predict(x[:5000])
    size = C.cache_size(C.CompiledPixel.pixels_fn)
    assert size >= 1
    second = cpx.predict(x)  # n = 5100: same bucket (5120), same dtype -> no new compile
    assert C.cache_size(C.CompiledPixel.pixels_fn) == size
    np.testing.assert_allclose(second[:, :5000], first, rtol=0, atol=1e-6)
    a, b = (realistic_dn(np.random.default_rng(s), (12, 45, 61), band_axis=0) for s in (6, 7))
    cpx.predict_composites(a, b)
    size = C.cache_size(C.CompiledPixel.pair_fn)
    cpx.predict_composites(a[:, :40, :50], b[:, :40, :50])  # (40, 50) -> the same (64, 64) bucket
    assert C.cache_size(C.CompiledPixel.pair_fn) == size


def test_pairs_on_device_equal_host_pairs(store: ModelStore) -> None:
    """Heatmap through ``predict_composites`` (pairs built on the device) == the host-gathered path."""
    from affine import Affine

    from plastics_core.geo.periods import Period
    from plastics_core.method.composite import Composite
    from plastics_core.method.heatmap import pixel_heatmap

    rng = np.random.default_rng(8)
    comps = []
    for k in range(2):
        data = realistic_dn(rng, (12, 70, 90), band_axis=0)
        mask = rng.random((70, 90)) < 0.2
        data[:, mask] = 0
        period = Period(dt.date(2021, 1 + 6 * k, 1), dt.date(2021, 4 + 6 * k, 1))
        comps.append(Composite(data, mask, period, "EPSG:32750", Affine(10, 0, 0, 0, -10, 0), 1))
    clf = PixelClassifier.from_ref(store.resolve(DEFAULT_MODEL))
    clf.device = "cpu"
    host = pixel_heatmap(comps, [(0, 1)], clf)
    clf.device = "jax"
    dev = pixel_heatmap(comps, [(0, 1)], clf)
    assert np.array_equal(np.isnan(host.data), np.isnan(dev.data))
    np.testing.assert_allclose(dev.data, host.data, rtol=0, atol=1e-5)


def test_precision_and_device_settings(store: ModelStore, monkeypatch: pytest.MonkeyPatch) -> None:
    from plastics_core.models import device

    assert C.precision() == "exact"
    monkeypatch.setenv("PLASTICS_INFER_PRECISION", "fast")
    assert C.precision() == "fast" and C.precision("exact") == "exact"
    monkeypatch.setenv("PLASTICS_INFER_PRECISION", "fp8")
    with pytest.raises(ModelError, match="PLASTICS_INFER_PRECISION"):
        C.precision()
    monkeypatch.setenv("PLASTICS_INFER_DEVICE", "tpu")
    with pytest.raises(ModelError, match="PLASTICS_INFER_DEVICE"):
        device.requested()
    monkeypatch.setenv("PLASTICS_INFER_DEVICE", "jax")
    assert device.choose(None, lambda: False) == "jax"
    monkeypatch.setenv("PLASTICS_INFER_DEVICE", "auto")
    assert device.choose(None, lambda: False) == ("jax" if device.jax_gpu() else "numpy")


@pytest.mark.slow
def test_fast_precision_same_blobs_and_candidates_on_demo_tile(gpw_dir: Path, models_dir: Path) -> None:
    """The demo tile (test_patch, synthetic scenes with TPA Temesi planted) through the compiled
    path in exact and in fast precision: the same blobs and the same candidates."""
    import geopandas as gpd

    from plastics_core.execution import pipeline as P
    from plastics_core.execution.loaded import load_models
    from plastics_core.geo.periods import pair_periods
    from plastics_core.geo.roi import read_roi
    from plastics_core.geo.tiles import plan_tiles
    from plastics_core.imagery.synthetic import SyntheticSource
    from plastics_core.method.composite import composite
    from plastics_core.method.heatmap import pixel_heatmap
    from plastics_core.method.patches import patch_scores
    from plastics_core.synthetic.sites import PlantedSite

    g = gpd.read_file(gpw_dir / "tpa_polygons.geojson")
    row = g[g["Name"].str.contains("Temesi")].iloc[0]
    src = SyntheticSource([PlantedSite(str(row["Name"]), row.geometry)], seed=0)
    tiles = plan_tiles(read_roi(gpw_dir / "test_patch.geojson"))
    params = P.DetectParams()
    models = load_models(ModelStore(str(models_dir)), params)
    periods = pair_periods(dt.date(2021, 1, 1), params.mosaic_period, params.spectrogram_interval)
    comps = [[composite(src.load(t, p), p, params.composite_method) for p in periods] for t in tiles]
    runs = {}
    # copies: the loaded models are cached for the whole process, their settings must not leak
    pixel, patch = copy.copy(models.pixel), copy.copy(models.patch)
    for prec in ("exact", "fast"):  # run_tile's heatmap and patch steps, composites shared
        pixel.device = patch.device = "jax"
        pixel.precision = patch.precision = prec
        res = [
            (
                pixel_heatmap(c, [(0, 1)], pixel),
                patch_scores(c, [(0, 1)], patch, params.stride, params.max_masked),
            )
            for c in comps
        ]
        blobs = P.find_blobs([h for h, _ in res], params)
        patches = gpd.GeoDataFrame(gpd.pd.concat([p for _, p in res], ignore_index=True), crs="EPSG:4326")
        runs[prec] = ([h for h, _ in res], blobs, P.find_candidates(blobs, patches, params))
    (res_e, blobs_e, cands_e), (res_f, blobs_f, cands_f) = runs["exact"], runs["fast"]
    dev = max(float(np.nanmax(np.abs(a.data - b.data))) for a, b in zip(res_e, res_f, strict=True))
    assert 0 < dev < 0.1, dev  # fast differs from exact, by a bounded amount
    assert len(blobs_e) >= 1 and len(cands_e) >= 1  # the planted site is found
    cols = ["name", "lon", "lat", "sigma", "row", "col"]
    assert blobs_f[cols].equals(blobs_e[cols])
    assert cands_f["name"].tolist() == cands_e["name"].tolist()
    assert cands_f.geometry.geom_equals_exact(cands_e.geometry, 1e-9).all()


def test_inference_device_names_the_path_without_importing_tensorflow_on_cpu() -> None:
    """The run metadata's ``device``: a worker that runs the numpy or JAX path never imports
    TensorFlow to say so (a GPU worker image may have JAX without TensorFlow)."""
    import subprocess
    import sys

    code = (
        "import sys; from plastics_core.models.infer import inference_device; "
        "print(inference_device('cpu'), inference_device('jax'), 'tensorflow' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[1],
    ).stdout.split()
    import jax

    assert out == ["numpy:CPU", f"jax:{jax.default_backend()}", "False"]
