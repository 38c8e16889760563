"""Cloud masks vs the Slovenia fixture's reference masks (Sentinel Hub CLM / s2cloudless)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest
from affine import Affine

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
    raw = cloud_mask(
        ref["bands"][1:2], ref["b10_cirrus"][1:2], CloudMaskConfig(average_over=0, dilation_size=0)
    )
    grown = cloud_mask(
        ref["bands"][1:2], ref["b10_cirrus"][1:2], CloudMaskConfig(average_over=0, dilation_size=3)
    )
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


# --- cloud shadows -------------------------------------------------------------------------------

SLOVENIA = "data/s2l1c_slovenia_2015/s2l1c_ref5_12band_uint16.npz"


def _slovenia(shared_dir):  # type: ignore[no-untyped-def]
    with np.load(shared_dir / SLOVENIA) as z:
        return z["bands"].astype(np.uint16), z["clm"].astype(bool)


def test_shadow_projection_points_away_from_the_sun() -> None:
    from plastics_core.imagery.cloudmask import ShadowConfig, shadow_projection

    cloud = np.zeros((60, 60), bool)
    cloud[28:32, 28:32] = True
    cfg = ShadowConfig(
        min_height_m=100, max_height_m=100, height_step_m=100
    )  # one height: 100 m * tan(45) = 10 px
    south = shadow_projection(cloud, sun_azimuth_deg=0.0, sun_zenith_deg=45.0, config=cfg)  # sun in the north
    assert south[38:42, 28:32].all() and south.sum() == 16
    west = shadow_projection(cloud, sun_azimuth_deg=90.0, sun_zenith_deg=45.0, config=cfg)  # sun in the east
    assert west[28:32, 18:22].all() and west.sum() == 16


def test_no_shadow_on_real_clear_scenes(shared_dir) -> None:  # type: ignore[no-untyped-def]
    """Real L1C pixels near Ljubljana: with the reference cloud masks (clear scenes: no cloud), no
    pixel is called shadow, dark water and forest included; a fully cloudy scene stays all cloud."""
    from plastics_core.imagery.cloudmask import cloud_and_shadow_mask

    bands, clm = _slovenia(shared_dir)
    out = cloud_and_shadow_mask(bands, clm, 150.0, 35.0)
    np.testing.assert_array_equal(out, clm)
    assert (bands[[0, 3, 4], 7] < 1500).any()  # there are dark-NIR pixels the shadow test must not take


def test_min_composite_picks_a_shadow_only_without_the_mask(shared_dir) -> None:  # type: ignore[no-untyped-def]
    """Constructed on the real clear scenes: one scene gets a bright cloud and its shadow (darkened
    pixels where the sun at azimuth 150 deg, zenith 35 deg projects a 1 km high cloud). A min
    composite picks the shadow without the shadow mask, and the true ground with it."""
    from plastics_core.geo.periods import Period
    from plastics_core.geo.scenes import SceneStack
    from plastics_core.imagery.cloudmask import cloud_and_shadow_mask
    from plastics_core.method.composite import composite

    bands, _ = _slovenia(shared_dir)
    clear = bands[[0, 3, 4]].copy()
    cloud = np.zeros((3, *clear.shape[2:]), bool)
    cloud[1, 70:90, 50:70] = True
    clear[1][:, cloud[1]] = 5000
    d = 1000.0 * np.tan(np.radians(35.0)) / 10.0  # 70 px away from the sun (towards north-west)
    az = np.radians(150.0 + 180.0)
    dr, dc = int(round(-d * np.cos(az))), int(round(d * np.sin(az)))
    shadow = np.zeros_like(cloud[1])
    rows, cols = np.nonzero(cloud[1])
    keep = (rows + dr >= 0) & (rows + dr < shadow.shape[0]) & (cols + dc >= 0) & (cols + dc < shadow.shape[1])
    shadow[rows[keep] + dr, cols[keep] + dc] = True
    assert shadow.sum() > 50
    clear[1][:, shadow] = (clear[1][:, shadow] * 0.3).astype(np.uint16)  # a shadow: every band much darker

    period = Period(dt.date(2015, 7, 1), dt.date(2015, 10, 1))
    dates = (dt.date(2015, 7, 11), dt.date(2015, 8, 30), dt.date(2015, 9, 9))

    def min_nir(mask: np.ndarray) -> np.ndarray:
        stack = SceneStack(
            clear, mask, "EPSG:32633", Affine(10, 0, 465180, 0, -10, 5080250), dates, ("a", "b", "c")
        )
        return composite(stack, period, "min").data[7]

    truth = np.minimum(clear[0, 7], clear[2, 7]).astype(np.float32)
    without = min_nir(cloud)
    with_shadows = min_nir(cloud_and_shadow_mask(clear, cloud, [150.0] * 3, [35.0] * 3))
    assert (without[shadow] < 0.5 * truth[shadow]).mean() > 0.9  # the shadow wins the minimum
    assert (with_shadows[shadow] >= truth[shadow] * 0.99).mean() > 0.9  # masked: the ground wins


def test_sun_position_matches_the_spa_reference() -> None:
    """NREL's Solar Position Algorithm report (Reda & Andreas 2004, table A4.1): 2003-10-17
    12:30:30 local (UTC-7) at 39.742476 N, 105.1786 W: azimuth 194.34024, zenith 50.11162 deg.
    The computed position leaves out refraction (about 0.02 deg there) and the site's altitude."""
    from plastics_core.imagery.sun import parse_datetime, solar_angles

    when = parse_datetime("2003-10-17T12:30:30-07:00")
    assert when == dt.datetime(2003, 10, 17, 19, 30, 30, tzinfo=dt.UTC)
    az, zen = solar_angles(when, -105.1786, 39.742476)
    assert abs(az - 194.34024) < 0.02 and abs(zen - 50.11162) < 0.02
    assert solar_angles(when.replace(tzinfo=None), -105.1786, 39.742476) == (az, zen)  # naive = UTC
    assert parse_datetime("2015:07:11 10:00:08") is None  # a TIFFTAG_DATETIME-style stamp is not taken


def test_sun_from_geotiff_tags() -> None:
    from plastics_core.imagery.sun import geotiff_sun_angles

    assert geotiff_sun_angles({"sun_azimuth": "-10", "sun_zenith": "20"}, 14.5, 46.0, "x") == (
        350.0,
        20.0,
        "SUN_* tags",
    )
    assert geotiff_sun_angles({"TIFFTAG_DATETIME": "2015:07:11 10:00:08"}, 14.5, 46.0, "x") is None
    with pytest.raises(ImageryError, match="SUN_ZENITH 'high' is not a number"):
        geotiff_sun_angles({"SUN_AZIMUTH": "150", "SUN_ZENITH": "high"}, 14.5, 46.0, "x")
    with pytest.raises(ImageryError, match="not a daytime sun position"):  # 22:00 UTC in Slovenia: night
        geotiff_sun_angles({"DATETIME": "2015-07-11T22:00:00"}, 14.5, 46.0, "x", dt.date(2015, 7, 11))
