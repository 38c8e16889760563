"""Cloud masks vs the Slovenia fixture's reference masks (Sentinel Hub CLM / s2cloudless)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from plastics_core.errors import ImageryError, ParameterError
from plastics_core.imagery.cloudmask import (
    CloudMaskConfig,
    cloud_mask,
    cloud_probability,
    dilate,
    esa_l1c_mask,
    s2cloudless_input,
)

CLOUDY = (1, 2)  # 2015-07-31, 2015-08-20
CLEAR = (0, 3, 4)


@pytest.fixture(scope="module")
def ref(shared_dir: Path) -> dict[str, np.ndarray]:
    z = np.load(shared_dir / "data" / "s2l1c_slovenia_2015" / "s2l1c_ref5_12band_uint16.npz")
    return {k: z[k] for k in z.files}


def test_s2cloudless_flags_cloudy_dates(ref: dict[str, np.ndarray]) -> None:
    mask = cloud_mask(ref["bands"], ref["b10_cirrus"])
    assert mask.shape == (5, 101, 100) and mask.dtype == bool
    frac = mask.mean(axis=(1, 2))
    for i in CLOUDY:
        assert frac[i] > 0.95, (ref["dates"][i], frac[i])
    for i in CLEAR:
        assert frac[i] < 0.01, (ref["dates"][i], frac[i])
    # agreement with the reference masks (measured: 100% vs clm_s2c, >= 99.8% vs clm)
    assert (mask == ref["clm_s2c"].astype(bool)).mean() > 0.999
    assert (mask == ref["clm"].astype(bool)).mean() > 0.995


def test_probability_matches_reference(ref: dict[str, np.ndarray]) -> None:
    prob = cloud_probability(ref["bands"], ref["b10_cirrus"])
    assert prob.dtype == np.float32
    np.testing.assert_allclose(prob, ref["clp_s2c"], atol=1e-3)


def test_threshold_and_dilation_are_configurable(ref: dict[str, np.ndarray]) -> None:
    raw = cloud_mask(ref["bands"][1:2], ref["b10_cirrus"][1:2], CloudMaskConfig(average_over=0, dilation_size=0))
    grown = cloud_mask(ref["bands"][1:2], ref["b10_cirrus"][1:2], CloudMaskConfig(average_over=0, dilation_size=3))
    strict = cloud_mask(ref["bands"][1:2], ref["b10_cirrus"][1:2], CloudMaskConfig(threshold=0.9))
    assert raw.sum() < grown.sum() and (grown | raw).sum() == grown.sum()
    assert strict.sum() < raw.sum()
    assert not cloud_mask(ref["bands"], ref["b10_cirrus"], CloudMaskConfig(method="none")).any()
    with pytest.raises(ParameterError):
        CloudMaskConfig(threshold=1.5)


def test_input_band_order_and_errors(ref: dict[str, np.ndarray]) -> None:
    x = s2cloudless_input(ref["bands"][:1], ref["b10_cirrus"][:1])
    assert x.shape == (1, 101, 100, 10)
    assert x[0, 0, 0, 2] == pytest.approx(ref["bands"][0, 3, 0, 0] / 10000)  # B04 third
    assert x[0, 0, 0, 7] == pytest.approx(ref["b10_cirrus"][0, 0, 0] / 10000)  # B10 eighth
    with pytest.raises(ImageryError, match="cirrus"):
        s2cloudless_input(ref["bands"][:1], ref["b10_cirrus"][:2])
    with pytest.raises(ImageryError, match="12"):
        s2cloudless_input(ref["bands"][:1, :10], ref["b10_cirrus"][:1])


def test_esa_l1c_mask_and_dilate() -> None:
    classi = np.zeros((3, 20, 20), np.uint8)
    classi[0, 5, 5] = 1  # opaque
    classi[1, 15, 15] = 1  # cirrus
    classi[2, 10, 10] = 1  # snow: never cloud
    m = esa_l1c_mask(classi)
    assert m.sum() == 2 and m[5, 5] and m[15, 15] and not m[10, 10]
    assert esa_l1c_mask(classi, include_cirrus=False).sum() == 1
    assert esa_l1c_mask(classi, dilation_size=1).sum() == 10
    assert esa_l1c_mask(classi[0]).sum() == 1
    assert dilate(np.zeros((2, 4, 4), bool), 2).shape == (2, 4, 4)
