"""Planted waste sites: their outlines, the derived waste signatures, and their pixels.

Sites are EPSG:4326 polygons rasterized on the grid with fractional edge coverage and filled
with a derived waste signature (``plastics_core/data/waste_signatures.json``, from
``tests/data/signatures/derive.py``). Signature phase: a site shows its ``t0`` spectrum in
January..June and ``t1`` in July..December.
"""

from __future__ import annotations

import datetime as dt
import json
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio.features
from affine import Affine
from pyproj import Transformer
from shapely.geometry import box as shapely_box
from shapely.geometry.base import BaseGeometry
from shapely.ops import transform as shp_transform

from plastics_core.synthetic.background import seeded_rng

SIGNATURES_PATH = Path(__file__).parents[1] / "data" / "waste_signatures.json"


@dataclass(frozen=True)
class PlantedSite:
    """A synthetic waste site: ``geometry_4326`` (Multi)Polygon in EPSG:4326, ``signature``
    index into :func:`load_signatures` (default 0: the signature the patch classifier scores
    highest on the real Bali TPA outlines; None: chosen from the name, deterministic)."""

    name: str
    geometry_4326: BaseGeometry
    signature: int | None = 0


@dataclass(frozen=True)
class Signature:
    """A waste pixel spectrogram: ``t0``/``t1`` (12,) float32 L1C DN in model band order;
    scores from the derivation (7 pixel models; patch model on random / TPA-shaped sites)."""

    id: str
    t0: np.ndarray
    t1: np.ndarray
    pixel_scores: tuple[float, ...]
    patch_score: float
    tpa_patch_score: float = float("nan")


def load_signatures(path: Path | None = None) -> list[Signature]:
    """The derived waste signatures (default: the committed ``waste_signatures.json``)."""
    doc = json.loads((path or SIGNATURES_PATH).read_text())
    return [
        Signature(
            s["id"],
            np.asarray(s["t0"], np.float32),
            np.asarray(s["t1"], np.float32),
            tuple(s["pixel_scores"]),
            float(s["patch_score"]),
            float(s.get("tpa_patch_score", "nan")),
        )
        for s in doc["signatures"]
    ]


def site_coverage(
    sites: list[PlantedSite], crs: str, transform: Affine, shape: tuple[int, int], supersample: int = 4
) -> np.ndarray:
    """Per-site fractional pixel coverage on the grid: (n_sites, y, x) float32 in [0, 1]."""
    to_grid = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    fine = transform @ Affine.scale(1 / supersample)
    out = np.zeros((len(sites), *shape), np.float32)
    left, top = transform.c, transform.f
    right, bottom = transform @ (shape[1], shape[0])
    grid = shapely_box(min(left, right), min(top, bottom), max(left, right), max(top, bottom))
    for i, site in enumerate(sites):
        geom = shp_transform(to_grid.transform, site.geometry_4326)
        if not geom.intersects(grid):
            continue
        hi = rasterio.features.rasterize(
            [(geom, 1)],
            out_shape=(shape[0] * supersample, shape[1] * supersample),
            transform=fine,
            fill=0,
            dtype="uint8",
        )
        out[i] = hi.reshape(shape[0], supersample, shape[1], supersample).mean(axis=(1, 3))
    return out


def signature_phase(day: dt.date) -> int:
    """0 (site shows ``t0``) in January..June, 1 (``t1``) in July..December."""
    return 0 if day.month <= 6 else 1


def planted_pixels(
    base: np.ndarray,
    sites: list[PlantedSite],
    sigs: list[Signature],
    crs: str,
    transform: Affine,
    texture: float,
    grid_key: tuple[object, ...],
) -> tuple[tuple[slice, slice], np.ndarray] | None:
    """Site pixels blended into each base image, within the sites' bounding box:
    ((rows, cols), (2 phases, n_base, 12, bh, bw) float32), or None without sites."""
    if not sites:
        return None
    cover = site_coverage(sites, crs, transform, base.shape[2:])
    rr, cc = np.nonzero(cover.sum(axis=0))
    if not len(rr):
        return None
    box = (slice(int(rr.min()), int(rr.max()) + 1), slice(int(cc.min()), int(cc.max()) + 1))
    cov = cover[:, box[0], box[1]]
    tex = seeded_rng("texture", *grid_key).normal(1.0, texture, (12, *cov.shape[1:])).astype(np.float32)
    out = np.repeat(base[None, :, :, box[0], box[1]], 2, axis=0)
    for i, site in enumerate(sites):
        k = site.signature if site.signature is not None else zlib.crc32(site.name.encode()) % len(sigs)
        f = cov[i][None, None]
        for phase, spec in enumerate((sigs[k].t0, sigs[k].t1)):
            out[phase] = out[phase] * (1 - f) + (spec[:, None, None] * tex)[None] * f
    return box, out
