"""plastics_core.method.composite: exact equality with numpy.ma on random and real (Slovenia) scenes."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest
from affine import Affine

from plastics_core.errors import ParameterError
from plastics_core.geo.bands import BAND_NAMES
from plastics_core.geo.periods import Period
from plastics_core.geo.scenes import SceneStack
from plastics_core.method.composite import Composite, composite, composites_for

YEAR = Period(dt.date(2015, 1, 1), dt.date(2016, 1, 1))
GRID = Affine(10, 0, 465180, 0, -10, 5080260)


def _stack(data: np.ndarray, mask: np.ndarray, start: dt.date = dt.date(2015, 7, 1)) -> SceneStack:
    dates = tuple(start + dt.timedelta(days=3 * i) for i in range(data.shape[0]))
    return SceneStack(data, mask, "EPSG:32633", GRID, dates)


def _ma(data: np.ndarray, mask: np.ndarray, how: str) -> np.ma.MaskedArray:
    marr = np.ma.masked_array(data, np.broadcast_to(mask[:, None], data.shape))
    return np.ma.min(marr, axis=0) if how == "min" else np.ma.median(marr, axis=0)


def _assert_equals_ma(c: Composite, data: np.ndarray, mask: np.ndarray, how: str) -> None:
    ref = _ma(data, mask, how)
    all_masked = mask.all(axis=0)
    np.testing.assert_array_equal(c.mask, all_masked)
    expected = np.where(np.ma.getmaskarray(ref), 0, ref.filled(0)).astype(np.float32)
    np.testing.assert_array_equal(c.data, expected)
    assert c.data.dtype == np.float32 and c.mask.dtype == bool


@pytest.mark.parametrize("how", ["min", "median"])
@pytest.mark.parametrize("dtype", [np.uint16, np.float32, np.int16])
@pytest.mark.parametrize("t", [1, 2, 3, 4, 5, 7, 12, 17])
def test_equals_numpy_ma_random(how: str, dtype: type, t: int) -> None:
    rng = np.random.default_rng(t)
    hi = 20 if t % 2 else 10_000  # small range: many ties
    data: np.ndarray = rng.integers(0, hi, (t, 12, 37, 41)).astype(dtype)
    if dtype == np.float32:
        data += rng.random(data.shape).astype(np.float32)
    mask = rng.random((t, 37, 41)) < 0.4
    mask[:, 0, :] = True  # a row masked everywhere
    _assert_equals_ma(composite(_stack(data, mask), YEAR, how), data, mask, how)


def test_uint16_max_values_are_kept() -> None:
    data = np.full((3, 12, 4, 4), 65535, dtype=np.uint16)
    data[1, :, 0, 0] = 5
    mask = np.zeros((3, 4, 4), dtype=bool)
    mask[1] = True
    for how in ("min", "median"):
        c = composite(_stack(data, mask), YEAR, how)
        assert (c.data == 65535).all() and not c.mask.any()


@pytest.mark.parametrize("how", ["min", "median"])
def test_chunked_threaded_path(how: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import plastics_core.method.composite as mod

    monkeypatch.setattr(mod, "CHUNK_PIXELS", 1000)
    monkeypatch.setattr(mod, "_threads", lambda: 2)
    rng = np.random.default_rng(7)
    data = rng.integers(0, 5000, (6, 12, 50, 61), dtype=np.uint16)
    mask = rng.random((6, 50, 61)) < 0.3
    _assert_equals_ma(composite(_stack(data, mask), YEAR, how), data, mask, how)


def _slovenia(shared_dir: Path) -> SceneStack:
    z = np.load(shared_dir / "data" / "s2l1c_slovenia_2015" / "s2l1c_ref5_12band_uint16.npz")
    assert tuple(z["band_names"]) == BAND_NAMES
    dates = tuple(dt.date.fromisoformat(str(d)[:10]) for d in z["dates"])
    left, bottom, right, top = (float(v) for v in z["bounds"])
    h, w = z["bands"].shape[2:]
    transform = Affine((right - left) / w, 0, left, 0, -(top - bottom) / h, top)
    mask = (z["clm"] > 0) | (z["bands"] == 0).any(axis=1)
    return SceneStack(z["bands"], mask, str(z["crs"]), transform, dates)


@pytest.mark.parametrize("how", ["min", "median"])
def test_slovenia_equals_numpy_ma(shared_dir: Path, how: str) -> None:
    stack = _slovenia(shared_dir)
    assert stack.mask.reshape(5, -1).all(axis=1).tolist() == [False, True, True, False, False]
    c = composite(stack, YEAR, how)
    _assert_equals_ma(c, stack.data, stack.mask, how)
    assert c.n_scenes == 5 and c.crs == "EPSG:32633" and c.transform == stack.transform
    # the fully cloudy dates contribute nothing: same result without them
    cloudy = np.asarray(stack.mask.reshape(5, -1).all(axis=1))
    clear = composite(stack.select(~cloudy), YEAR, how)
    np.testing.assert_array_equal(c.data, clear.data)
    assert not c.mask.any()


def test_slovenia_cloudy_period_is_all_masked(shared_dir: Path) -> None:
    stack = _slovenia(shared_dir)
    cloudy = Period(dt.date(2015, 7, 20), dt.date(2015, 8, 25))  # 07-31 and 08-20 only
    for how in ("min", "median", "min_masked"):
        c = composite(stack, cloudy, how)
        assert c.n_scenes == 2 and c.mask.all() and not c.data.any()


def test_period_selects_scenes(shared_dir: Path) -> None:
    stack = _slovenia(shared_dir)
    july = Period(dt.date(2015, 7, 1), dt.date(2015, 8, 1))  # 07-11 clear, 07-31 cloudy
    c = composite(stack, july, "median")
    np.testing.assert_array_equal(c.data, stack.data[0].astype(np.float32))
    assert c.n_scenes == 2 and c.period == july


def test_zero_scenes_all_masked() -> None:
    data = np.ones((2, 12, 5, 6), dtype=np.uint16)
    stack = _stack(data, np.zeros((2, 5, 6), dtype=bool))
    c = composite(stack, Period(dt.date(2020, 1, 1), dt.date(2020, 2, 1)))
    assert c.n_scenes == 0 and c.mask.all() and c.data.shape == (12, 5, 6) and not c.data.any()
    assert c.shape == (5, 6)


def test_min_masked_is_spectrally_consistent() -> None:
    rng = np.random.default_rng(3)
    data = rng.integers(1, 10_000, (5, 12, 20, 20), dtype=np.uint16)
    mask = rng.random((5, 20, 20)) < 0.5
    c = composite(_stack(data, mask), YEAR, "min_masked")
    bright = data[:, 1:4].astype(np.float64).sum(axis=1)
    bright[mask] = np.inf
    pick = bright.argmin(axis=0)
    for r in range(20):
        for col in range(20):
            if mask[:, r, col].all():
                assert c.mask[r, col] and not c.data[:, r, col].any()
            else:
                np.testing.assert_array_equal(c.data[:, r, col], data[pick[r, col], :, r, col])
    assert not np.array_equal(c.data, composite(_stack(data, mask), YEAR, "min").data)


def test_composites_for_and_bad_method() -> None:
    data = np.arange(2 * 12 * 3 * 3, dtype=np.uint16).reshape(2, 12, 3, 3)
    stack = _stack(data, np.zeros((2, 3, 3), dtype=bool), dt.date(2015, 1, 1))
    periods = [
        Period(dt.date(2015, 1, 1), dt.date(2015, 1, 2)),
        Period(dt.date(2015, 1, 4), dt.date(2015, 1, 5)),
    ]
    out = composites_for(stack, periods, "min")
    assert [c.period for c in out] == periods
    np.testing.assert_array_equal(out[1].data, data[1].astype(np.float32))
    with pytest.raises(ParameterError, match="method"):
        composite(stack, periods[0], "mean")


@pytest.mark.parametrize("how", ["min", "median", "min_masked"])
def test_input_untouched_and_unsorted_dates(how: str) -> None:
    rng = np.random.default_rng(11)
    data = rng.integers(0, 3000, (4, 12, 9, 8), dtype=np.uint16)
    mask = rng.random((4, 9, 8)) < 0.3
    dates = (dt.date(2015, 7, 1), dt.date(2016, 7, 1), dt.date(2015, 8, 1), dt.date(2015, 9, 1))
    stack = SceneStack(data.copy(), mask.copy(), "EPSG:32633", GRID, dates)
    c = composite(stack, YEAR, how)  # scenes 0, 2, 3: not a contiguous block
    np.testing.assert_array_equal(stack.data, data)
    np.testing.assert_array_equal(stack.mask, mask)
    assert c.n_scenes == 3
    if how != "min_masked":
        _assert_equals_ma(c, data[[0, 2, 3]], mask[[0, 2, 3]], how)
