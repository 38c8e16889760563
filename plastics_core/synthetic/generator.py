"""Seeded synthetic Sentinel-2 L1C scenes with planted plastic-waste sites.

Background (:mod:`.background`): the real clear Sentinel-2 L1C scenes near Ljubljana
(``s2l1c_slovenia_2015``, read from ``<shared>/data``; never copied into the repo), mirrored and
tiled over the grid with a seeded offset; without them, smooth plausible land-cover spectra. Each acquisition
adds 1 % sensor noise, seeded clouds (bright, ``mask`` True) and thin haze (additive,
unmasked; a min composite removes it). Sites (:mod:`.sites`) are EPSG:4326 polygons rasterized
on the grid with fractional edge coverage and filled with a derived waste signature
(``plastics_core/data/waste_signatures.json``, from ``tests/data/signatures/derive.py``).

Signature phase: a site shows its ``t0`` spectrum in months whose 6-month block since
January (Jan-Jun) is even and ``t1`` in Jul-Dec, so every window starting January..April
pairs a t0 composite with a t1 composite ``mosaic_period * spectrogram_interval`` = 6 months
later. Everything is deterministic in ``seed``.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from pathlib import Path

import numpy as np
from affine import Affine

from plastics_core.errors import ImageryError
from plastics_core.geo.bands import BAND_NAMES
from plastics_core.geo.periods import Period
from plastics_core.geo.scenes import SceneStack
from plastics_core.synthetic.background import background, default_shared_dir, seeded_rng, smooth_field
from plastics_core.synthetic.sites import (
    PlantedSite,
    Signature,
    load_signatures,
    planted_pixels,
    signature_phase,
)

CLOUD_DN = np.array([5200, 5000, 4900, 5000, 5200, 5400, 5500, 5500, 5600, 2600, 3800, 2900], np.float32)
HAZE_SHAPE = np.array([1.0, 0.9, 0.7, 0.55, 0.45, 0.35, 0.3, 0.3, 0.25, 0.2, 0.1, 0.05], np.float32)


def acquisition_dates(period: Period, seed: int, scenes_per_month: int = 6) -> list[dt.date]:
    """Acquisitions within ``period``: every ``30 // scenes_per_month`` days from a seeded
    day offset counted from 2015-01-01 (so dates do not depend on how periods are cut)."""
    if scenes_per_month <= 0:
        return []
    step = max(1, 30 // scenes_per_month)
    epoch = dt.date(2015, 1, 1) + dt.timedelta(days=int(seeded_rng("dates", seed).integers(0, step)))
    first = max(0, -(-(period.start - epoch).days // step))
    out, day = [], epoch + dt.timedelta(days=first * step)
    while day < period.end:
        if day >= period.start:
            out.append(day)
        day += dt.timedelta(days=step)
    return out


def scene_cloud_cover(day: dt.date, seed: int, cloud_fraction: float) -> float:
    """Target cloud fraction (0..1) of the acquisition on ``day`` (independent of the tile)."""
    return float(np.clip(seeded_rng("cover", seed, day.toordinal()).uniform(0, 2 * cloud_fraction), 0, 1))


#: Extra pixels of the per-grid noise and smooth-field banks; each scene views them at a seeded offset.
_BANK_PAD = 64


@lru_cache(maxsize=4)
def _grid_banks(
    seed: int, shape: tuple[int, int], grid_key: tuple[object, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """Per grid, generated once: multiplicative noise (12, h + pad, w + pad) float32 (uniform, std
    1 %) and a smooth field (h + max(h, 384), w + max(w, 384)) in [0, 1] with ~60 px features;
    scenes take seeded views (offsets far apart relative to the features: nearly independent)."""
    h, w = shape
    rng = seeded_rng("banks", *grid_key)
    noise = rng.random((12, h + _BANK_PAD, w + _BANK_PAD), dtype=np.float32)
    noise -= 0.5
    noise *= 0.0346
    noise += 1.0
    field = smooth_field(rng, (h + max(h, 384), w + max(w, 384)), 60)
    return noise, field


def _view(bank: np.ndarray, shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A (..., h, w) view of ``bank`` at a seeded offset (no copy)."""
    h, w = shape
    oy = int(rng.integers(0, bank.shape[-2] - h + 1))
    ox = int(rng.integers(0, bank.shape[-1] - w + 1))
    return bank[..., oy : oy + h, ox : ox + w]


def _make_world(
    tile_crs: str,
    tile_transform: Affine,
    shape: tuple[int, int],
    seed: int,
    shared_dir: Path | None,
    sites: list[PlantedSite],
    texture: float,
    sigs: list[Signature],
) -> tuple[np.ndarray, tuple[tuple[slice, slice], np.ndarray] | None]:
    """The grid's clear base images (C-contiguous, >= 1 DN) and its planted site pixels."""
    grid_key = (seed, tile_crs, round(tile_transform.c, 2), round(tile_transform.f, 2), *shape)
    origin = (
        int(round(-tile_transform.f / abs(tile_transform.e))),
        int(round(tile_transform.c / tile_transform.a)),
    )
    base = np.ascontiguousarray(np.maximum(background(shape, seed, shared_dir, origin), np.float32(1.0)))
    planted = planted_pixels(base, sites, sigs, tile_crs, tile_transform, texture, grid_key)
    if planted is not None:
        np.clip(planted[1], 1.0, 20000.0, out=planted[1])
    return base, planted


@lru_cache(maxsize=4)
def _world(
    tile_crs: str,
    transform: tuple[float, ...],
    shape: tuple[int, int],
    seed: int,
    shared_dir: str,
    sites: tuple[PlantedSite, ...],
    texture: float,
) -> tuple[np.ndarray, tuple[tuple[slice, slice], np.ndarray] | None]:
    """:func:`_make_world` with the committed signatures, cached per grid (read-only arrays)."""
    base, planted = _make_world(
        tile_crs,
        Affine(*transform[:6]),
        shape,
        seed,
        Path(shared_dir),
        list(sites),
        texture,
        load_signatures(),
    )
    base.flags.writeable = False
    if planted is not None:
        planted[1].flags.writeable = False
    return base, planted


def make_scene_stack(
    tile_crs: str,
    tile_transform: Affine,
    shape: tuple[int, int],
    period: Period,
    seed: int,
    sites: list[PlantedSite],
    *,
    shared_dir: Path | None = None,
    scenes_per_month: int = 6,
    cloud_fraction: float = 0.25,
    haze: float = 250.0,
    texture: float = 0.03,
    cloudy: bool = False,
    signatures: list[Signature] | None = None,
) -> SceneStack:
    """Synthetic scenes of ``period`` on a grid -> SceneStack (t, 12, y, x) uint16 DN + mask.

    ``cloudy=True``: every acquisition is fully clouded (mask all True). ``haze``: peak DN
    of the additive blue-weighted haze. ``texture``: per-pixel multiplicative spread of the
    site spectrum (fixed in time; 1 % per-acquisition noise is added on top).
    Speed: the background, the planted sites, a noise bank and a smooth-field bank are made
    once per grid (cached); each acquisition takes seeded views of the banks for its noise,
    haze and clouds, so a scene costs a few passes over its pixels.
    """
    h, w = shape
    if h <= 0 or w <= 0:
        raise ImageryError(f"grid shape {shape} is empty: pass a positive (rows, cols)")
    dates = acquisition_dates(period, seed, scenes_per_month)
    ids = tuple(synthetic_scene_id(d, seed) for d in dates)
    if not dates:
        return SceneStack(
            np.zeros((0, 12, h, w), np.uint16),
            np.zeros((0, h, w), bool),
            tile_crs,
            tile_transform,
            (),
            (),
            BAND_NAMES,
        )
    sigs = signatures if signatures is not None else []
    grid_key = (seed, tile_crs, round(tile_transform.c, 2), round(tile_transform.f, 2), h, w)
    if signatures is None:
        base, planted = _world(
            tile_crs,
            tuple(tile_transform),
            shape,
            seed,
            str(shared_dir or default_shared_dir()),
            tuple(sites),
            texture,
        )
    else:
        base, planted = _make_world(
            tile_crs, tile_transform, shape, seed, shared_dir, list(sites), texture, sigs
        )
    noise_bank, field_bank = _grid_banks(seed, shape, grid_key)
    data = np.empty((len(dates), 12, h, w), np.uint16)
    mask = np.zeros((len(dates), h, w), bool)
    img = np.empty((12, h, w), np.float32)  # work buffer, reused (no per-scene allocation)
    for t, day in enumerate(dates):
        rng = seeded_rng("scene", *grid_key, day.toordinal())
        k = int(seeded_rng("base", seed, day.toordinal()).integers(0, len(base)))  # same on every tile
        np.multiply(base[k], _view(noise_bank, shape, rng), out=img)
        if planted is not None:
            (ys, xs), patches = planted
            img[:, ys, xs] = patches[signature_phase(day)][k] * _view(noise_bank, shape, rng)[:, ys, xs]
        hv = _view(field_bank, shape, rng)
        lo, hi = float(hv.min()), float(hv.max())
        hz = np.clip((hv - lo) * np.float32(2.0 / max(hi - lo, 1e-6)) - 1, 0, 1) * np.float32(haze)
        for band in range(12):
            img[band] += HAZE_SHAPE[band] * hz
        frac = 1.0 if cloudy else scene_cloud_cover(day, seed, cloud_fraction)
        if frac >= 1:
            mask[t] = True
        elif frac > 0:
            cf = _view(field_bank, shape, rng)
            mask[t] = cf >= np.quantile(cf[::4, ::4], 1 - frac)
        if frac > 0:
            bright = np.float32(rng.uniform(0.8, 1.2))
            cloud = np.flatnonzero(mask[t])
            for band in range(12):
                img[band].reshape(-1)[cloud] = CLOUD_DN[band] * bright
        # no clip needed: base >= 1 DN and noise >= 0.98 keep img >= 0.98, and clouds / sites stay far below 65535
        img += 0.5  # the uint16 cast truncates: round half up
        data[t] = img
    return SceneStack(
        data=data,
        mask=mask,
        crs=tile_crs,
        transform=tile_transform,
        dates=tuple(dates),
        scene_ids=ids,
        band_names=BAND_NAMES,
    )


def synthetic_scene_id(day: dt.date, seed: int) -> str:
    """Deterministic scene id, e.g. ``SYN_20210105_s0``."""
    return f"SYN_{day:%Y%m%d}_s{seed}"
