"""Synthetic scenes, SyntheticSource and the derived waste signatures."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from affine import Affine
from shapely.geometry import box

from plastics_core.geo.periods import Period
from plastics_core.imagery.base import ImagerySource
from plastics_core.imagery.synthetic import SyntheticSource
from plastics_core.method.composite import composite
from plastics_core.synthetic.generator import make_scene_stack
from plastics_core.synthetic.sites import SIGNATURES_PATH, PlantedSite, load_signatures, site_coverage

REPO = Path(__file__).resolve().parents[1]
CRS = "EPSG:32750"
TRANSFORM = Affine(10.0, 0.0, 318000.0, 0.0, -10.0, 9053400.0)  # near TPA Temesi, Bali
SHAPE = (96, 96)
JAN = Period(dt.date(2021, 1, 1), dt.date(2021, 2, 1))
JUL = Period(dt.date(2021, 7, 1), dt.date(2021, 8, 1))


def _site() -> PlantedSite:
    """A 200 x 200 m square in the middle of the grid, as a lon/lat polygon."""
    from pyproj import Transformer

    to4326 = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True)
    (x0, x1), (y0, y1) = to4326.transform([318380.0, 318580.0], [9052720.0, 9052920.0])
    return PlantedSite("square", box(x0, y0, x1, y1), signature=0)


def _stack(shared_dir: Path, period: Period = JAN, seed: int = 0, **kw: object):  # type: ignore[no-untyped-def]
    return make_scene_stack(CRS, TRANSFORM, SHAPE, period, seed, [_site()], shared_dir=shared_dir, **kw)  # type: ignore[arg-type]


def test_stack_layout_and_determinism(shared_dir: Path) -> None:
    a, b = _stack(shared_dir), _stack(shared_dir)
    assert a.data.dtype == np.uint16 and a.data.shape == (len(a.dates), 12, *SHAPE)
    assert a.mask.shape == (len(a.dates), *SHAPE) and a.mask.dtype == bool
    assert len(a.dates) == 6 and all(JAN.contains(d) for d in a.dates) and list(a.dates) == sorted(a.dates)
    assert len(set(a.scene_ids)) == len(a.dates)
    np.testing.assert_array_equal(a.data, b.data)
    np.testing.assert_array_equal(a.mask, b.mask)
    assert not np.array_equal(a.data, _stack(shared_dir, seed=1).data)


def test_clouds_are_bright_and_masked(shared_dir: Path) -> None:
    s = _stack(shared_dir, cloud_fraction=0.4)
    assert 0.05 < s.mask.mean() < 0.8
    blue = s.data[:, 1].astype(float)
    assert blue[s.mask].mean() > 3000 > blue[~s.mask].mean()


def test_min_composite_removes_haze(shared_dir: Path) -> None:
    hazy = composite(_stack(shared_dir, cloud_fraction=0.0, haze=400.0), JAN, "min")
    clear = composite(_stack(shared_dir, cloud_fraction=0.0, haze=0.0), JAN, "min")
    diff = np.abs(hazy.data[1] - clear.data[1])  # blue: the band haze affects most
    # haze covers about half of each scene: ~1 % of pixels are hazy in all 6 and keep some of it
    assert np.median(diff) < 5 and np.percentile(diff, 98) < 60 and np.percentile(diff, 99) < 100


def test_site_shows_t0_then_t1(shared_dir: Path) -> None:
    sig = load_signatures()[0]
    cover = site_coverage([_site()], CRS, TRANSFORM, SHAPE)[0]
    inside = cover == 1.0
    assert inside.sum() == 400  # 20 x 20 px
    for period, spec in ((JAN, sig.t0), (JUL, sig.t1)):
        c = composite(_stack(shared_dir, period), period, "min")
        site = np.median(c.data[:, inside], axis=1)
        np.testing.assert_allclose(site, spec, rtol=0.05)
        outside = np.median(c.data[:, cover == 0], axis=1)
        assert np.abs(outside - spec).max() > 200  # background is not the signature


def test_background_fallback_without_shared(tmp_path: Path) -> None:
    s = make_scene_stack(CRS, TRANSFORM, SHAPE, JAN, 0, [], shared_dir=tmp_path, cloud_fraction=0.0)
    c = composite(s, JAN, "min")
    assert 100 < float(np.median(c.data[7])) < 4000  # NIR of plausible land cover


def test_source_search_load_and_empty_periods(shared_dir: Path) -> None:
    q1 = Period(dt.date(2021, 1, 1), dt.date(2021, 4, 1))
    src = SyntheticSource(
        [_site()],
        seed=3,
        shared_dir=shared_dir,
        empty_periods=[JUL],
        cloudy_periods=[Period(dt.date(2021, 10, 1), dt.date(2022, 1, 1))],
    )
    assert isinstance(src, ImagerySource) and src.name == "synthetic"
    infos = src.search(box(115, -9, 116, -8), q1)
    assert len(infos) == 9 and infos == src.search(box(115, -9, 116, -8), q1)
    assert all(0 <= (i.cloud_cover or 0) <= 100 for i in infos)

    class _Grid:
        key, crs, transform, shape = "t", CRS, TRANSFORM, SHAPE

    stack = src.load(_Grid(), q1)  # type: ignore[arg-type]
    assert stack.scene_ids == tuple(i.id for i in infos)
    assert src.search(box(115, -9, 116, -8), JUL) == []
    assert len(src.load(_Grid(), JUL).dates) == 0  # type: ignore[arg-type]
    cloudy = src.load(_Grid(), Period(dt.date(2021, 10, 1), dt.date(2021, 11, 1)))  # type: ignore[arg-type]
    assert len(cloudy.dates) > 0 and cloudy.mask.all()
    # a period straddling an empty part keeps the rest
    half = src.load(_Grid(), Period(dt.date(2021, 6, 1), dt.date(2021, 8, 1)))  # type: ignore[arg-type]
    assert len(half.dates) == 3 and all(d.month == 6 for d in half.dates)


def test_committed_signatures_file() -> None:
    doc = json.loads(SIGNATURES_PATH.read_text())
    sigs = load_signatures()
    assert len(sigs) == len(doc["signatures"]) >= 4
    for s in sigs:
        assert s.t0.shape == s.t1.shape == (12,)
        assert 100 <= s.t0.min() and s.t0.max() <= 6000 and 100 <= s.t1.min() and s.t1.max() <= 6000
        assert len(s.pixel_scores) == 7 and min(s.pixel_scores) > 0.9
    assert SIGNATURES_PATH.stat().st_size < 20_000
    assert sigs[0].tpa_patch_score > 0.6  # the default planted signature: patch model sees TPA outlines


def _pixel_scores(models_dir: Path, x: np.ndarray) -> np.ndarray:
    """(7, n) waste scores of the default pixel model and the 6 ensemble members."""
    from plastics_core.models.ensemble import EnsembleClassifier
    from plastics_core.models.infer import PixelClassifier
    from plastics_core.models.store import ModelStore

    store = ModelStore(str(models_dir))
    main = PixelClassifier.from_ref(store.resolve("spectrogram_v0.0.11_2021-07-13.h5")).predict(x)
    ens = EnsembleClassifier.from_refs(store.resolve_ensemble("v0.0.11_ensemble-8-25-21")).predict(x)
    return np.vstack([main[None], ens])


def test_committed_signatures_score_high_with_real_models(models_dir: Path) -> None:
    sigs = load_signatures()
    x = np.stack([np.stack([s.t0, s.t1], axis=-1) for s in sigs]).astype(np.float32)  # (n, 12, 2)
    scores = _pixel_scores(models_dir, x)
    assert scores.shape == (7, len(sigs))
    assert scores.min() > 0.9, scores.round(3)
    np.testing.assert_allclose(scores, np.array([s.pixel_scores for s in sigs]).T, atol=2e-3)


@pytest.mark.slow
def test_derivation_script_reproduces_high_scoring_signatures(
    tmp_path: Path, shared_dir: Path, models_dir: Path
) -> None:
    out = tmp_path / "sig.json"
    cmd = [
        sys.executable,
        str(REPO / "tests" / "data" / "signatures" / "derive.py"),
        "--out",
        str(out),
        "--shared",
        str(shared_dir),
        "-n",
        "2",
        "--candidates",
        "4",
        "--steps",
        "400",
        "--min-steps",
        "0",
        "--target",
        "0.95",
        "--patch-target",
        "0",
    ]
    subprocess.run(cmd, check=True, capture_output=True, timeout=600)
    sigs = load_signatures(out)
    assert len(sigs) == 2
    x = np.stack([np.stack([s.t0, s.t1], axis=-1) for s in sigs]).astype(np.float32)
    assert _pixel_scores(models_dir, x).min() > 0.9
