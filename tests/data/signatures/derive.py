"""Derive the synthetic waste signatures from the real GPW models (seeded, reproducible).

A *signature* is one pixel spectrogram: 12 L1C bands (model order, DN = reflectance x 10000)
at two times (t0 = first composite, t1 = the partner composite 6 months later). Signatures
are found by gradient ascent on the waste logit margin of all 7 pixel models at once (the
default ``spectrogram_v0.0.11`` with x/3000 and the six unit-norm ensemble members with
per-band (x - mean)/std), with inputs kept in 100..6000 DN by a sigmoid reparametrisation,
plus a term asking the 45 px patch classifier (t0 composite, x/3000) to score as waste a
window showing a small site filled with the t0 spectrum (3 % texture): half the time a real
Bali TPA outline (``gpw/tpa_polygons.geojson``, north up, as the synthetic world plants
them), half a random irregular blob of 100..600 px, near the window centre, on real
Sentinel-2 background (the clear Slovenia 2015 scenes, mirrored and tiled as in
:mod:`plastics_core.synthetic.background`, random rotations / flips). Augmentation: 4 % multiplicative
noise on the spectra each step, so scores survive the texture and compositing.

``--candidates`` spectra are optimised jointly; the ``-n`` kept are those above ``--target``
on all 7 pixel models, ordered by ``tpa_patch_score`` (mean patch score over the 10 TPA
outlines, centred, on 4 backgrounds): ``sig0`` (the default planted signature) is the one
the patch model likes best on real landfill shapes. ``patch_score``: the random-shape proxy.
Deterministic: the same arguments on the same code and libraries give a byte-identical file
(TF CPU). The committed file was written with the default arguments by an earlier revision of
this script and of the synthetic-world modules it imports; the present revision, with the same
arguments, derives another set of 8 of the same quality (all 7 pixel models above 0.98, TPA
patch scores 0.68 to 0.69). The committed file is therefore checked by what it must satisfy
(``tests/test_synthetic.py``: its recorded scores against the real models), not byte for byte,
and is kept: every synthetic scene, and the figures measured on them, derive from it.

Usage: ``python tests/data/signatures/derive.py --out plastics_core/data/waste_signatures.json``
(``--steps`` caps the budget; after ``--min-steps`` it stops early once ``-n`` candidates are
> ``--target`` on all 7 pixel models and > ``--patch-target`` on the proxy patch score). This is a fixture generator: it
imports TensorFlow directly. Models: CC BY-NC 4.0, Earthrise Media (Global Plastic Watch).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
from affine import Affine

REPO = Path(__file__).resolve().parents[3]
if str(REPO) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(REPO))
from plastics_core.geo.bands import BAND_NAMES, UNIT_NORM_MEAN, UNIT_NORM_STD  # noqa: E402 - needs REPO on sys.path

PIXEL_MODEL = "spectrogram_v0.0.11_2021-07-13.h5"
ENSEMBLE = "v0.0.11_ensemble-8-25-21"
PATCH_MODEL = "v1.1.0_4-23-21_patch_classifier_45px_patch.h5"
LO, HI, WIN = 100.0, 6000.0, 45


def pixel_model_paths(models: Path) -> list[Path]:
    return [models / PIXEL_MODEL, *sorted((models / ENSEMBLE).glob("*unit_norm_*.h5"))]


def background(shared: Path, seeds: int = 4, size: int = 256) -> np.ndarray:
    """Background bank (seeds, size, size, 12) float32 DN: the min over the clear Slovenia
    dates of :func:`plastics_core.synthetic.background.background` (the mirrored tiling the synthetic
    scenes use, seams included) for a few seeds."""
    from plastics_core.synthetic.background import background as synth_background

    return np.stack(
        [np.transpose(synth_background((size, size), s, shared).min(axis=0), (1, 2, 0)) for s in range(seeds)]
    )


def _orient(img: np.ndarray, k: int) -> np.ndarray:
    """One of the 8 rotations / flips of a (y, x, c) window."""
    img = np.rot90(img, k % 4)
    return img[:, ::-1] if k >= 4 else img


def tpa_shapes(shared: Path) -> list[np.ndarray]:
    """The 10 known Bali landfill outlines (``gpw/tpa_polygons.geojson``) as fractional
    coverage masks at 10 m (UTM 50S), each cropped to its bounding box."""
    from pyproj import Transformer
    from shapely.geometry import shape

    from plastics_core.synthetic.sites import PlantedSite, site_coverage

    feats = json.loads((shared / "data" / "gpw" / "tpa_polygons.geojson").read_text())["features"]
    to_utm = Transformer.from_crs("EPSG:4326", "EPSG:32750", always_xy=True)
    out = []
    for f in feats:
        geom = shape(f["geometry"])
        x0, y0, x1, y1 = geom.bounds
        ux, uy = to_utm.transform(x0, y1)
        transform = Affine(10.0, 0.0, ux - 50.0, 0.0, -10.0, uy + 50.0)
        cov = site_coverage([PlantedSite("tpa", geom)], "EPSG:32750", transform, (WIN, WIN))[0]
        rr, cc = np.nonzero(cov)
        out.append(cov[rr.min() : rr.max() + 1, cc.min() : cc.max() + 1])
    return out


def site_masks(rng: np.random.Generator, n: int, tpa: list[np.ndarray]) -> np.ndarray:
    """``n`` random site masks (n, 45, 45) float32, centred within 6 px of the window centre
    (with stride-8 patches one window always lies that close to a site's centre): half are
    the real TPA outlines (as planted, north up), half unions of 1-3 ellipses (irregular,
    up to 2.5:1 elongated, 100..600 px)."""
    yy, xx = np.mgrid[0:WIN, 0:WIN].astype(np.float32)
    out = np.zeros((n, WIN, WIN), np.float32)
    i = 0
    while i < n:
        if tpa and rng.random() < 0.5:
            shp = tpa[int(rng.integers(0, len(tpa)))]  # as planted: real orientation
            oy, ox = (np.array([WIN, WIN]) - shp.shape) // 2 + rng.integers(-6, 7, 2)
            oy, ox = int(np.clip(oy, 0, WIN - shp.shape[0])), int(np.clip(ox, 0, WIN - shp.shape[1]))
            out[i, oy : oy + shp.shape[0], ox : ox + shp.shape[1]] = shp
            i += 1
            continue
        m = np.zeros((WIN, WIN), bool)
        c = WIN // 2 + rng.uniform(-6, 6, 2)
        for _ in range(int(rng.integers(1, 4))):
            area, ratio, ang = rng.uniform(60, 350), rng.uniform(0.4, 2.5), rng.uniform(0, np.pi)
            a = np.sqrt(area / np.pi * ratio)
            b = area / np.pi / a
            cy, cx = c + rng.uniform(-5, 5, 2)
            u = (xx - cx) * np.cos(ang) + (yy - cy) * np.sin(ang)
            v = -(xx - cx) * np.sin(ang) + (yy - cy) * np.cos(ang)
            m |= (u / a) ** 2 + (v / b) ** 2 <= 1.0
        if 100 <= m.sum() <= 600:
            out[i] = m
            i += 1
    return out


def derive(
    shared: Path,
    n: int,
    steps: int,
    seed: int,
    target: float,
    patch_target: float,
    candidates: int = 16,
    min_steps: int = 300,
    log_every: int = 50,
) -> dict:
    """Optimise ``candidates`` spectra jointly; return the ``n`` with the best patch score."""
    import keras
    import tensorflow as tf

    tf.random.set_seed(seed)
    rng = np.random.default_rng(seed)
    models_dir = shared / "models"
    paths = pixel_model_paths(models_dir)
    pix = [keras.models.load_model(p, compile=False) for p in paths]
    patch = keras.models.load_model(models_dir / PATCH_MODEL, compile=False)
    unit = ["unit_norm" in p.name for p in paths]
    bg = background(shared)
    tpa = tpa_shapes(shared)

    # init: real background pixels at both times, jittered (diverse, plausible starting points)
    nb, h, w, _ = bg.shape
    n_keep, n = n, max(n, candidates)
    x0 = np.stack([bg[0, rng.integers(0, h, n), rng.integers(0, w, n)] for _ in range(2)], -1)  # (n,12,2)
    x0 = np.clip(x0 * rng.uniform(0.8, 1.2, x0.shape), LO + 1, HI - 1)
    p0 = (x0 - LO) / (HI - LO)
    u = tf.Variable(np.log(p0 / (1 - p0)).astype(np.float32))
    opt = keras.optimizers.Adam(learning_rate=0.05)
    margin_target = float(np.log(0.97 / 0.03))
    n_aug, n_patch = 8, 4

    def spectra() -> tf.Tensor:
        return LO + (HI - LO) * tf.sigmoid(u)

    def log_odds(model, z: tf.Tensor) -> tf.Tensor:
        """Waste logit margin (pre-softmax): softmax saturates, logits keep a gradient."""
        for layer in model.layers[:-1]:
            z = layer(z, training=False)
        last = model.layers[-1]
        k, b = last.kernel, last.bias
        return tf.linalg.matvec(z, k[:, 1] - k[:, 0]) + (b[1] - b[0])

    def margins(x: tf.Tensor) -> tf.Tensor:  # x (m,12,2) DN -> (7, m) log-odds
        rows = []
        for model, is_unit in zip(pix, unit, strict=True):
            z = (x - UNIT_NORM_MEAN[:, None]) / UNIT_NORM_STD[:, None] if is_unit else x / 3000.0
            rows.append(log_odds(model, z[..., None]))
        return tf.stack(rows)

    def patch_windows(s0: tf.Tensor, masks: np.ndarray, bgs: np.ndarray, tex: np.ndarray) -> tf.Tensor:
        m = masks[..., None]
        site = s0[:, None, None, None, :] * tex  # (n, k, 45, 45, 12)
        return tf.reshape(bgs * (1 - m) + site * m, (-1, WIN, WIN, 12)) / 3000.0

    @tf.function
    def step(noise, masks, bgs, tex):
        with tf.GradientTape() as tape:
            x = spectra()
            xa = tf.reshape(x[None] * noise, (-1, 12, 2))
            mg = margins(xa)
            loss_pix = tf.reduce_mean(tf.nn.softplus(margin_target - mg))
            pm = log_odds(patch, patch_windows(x[:, :, 0], masks, bgs, tex))
            loss_patch = tf.reduce_mean(tf.nn.softplus(margin_target - pm))
            loss = loss_pix + 0.5 * loss_patch
        opt.apply_gradients([(tape.gradient(loss, u), u)])
        return loss_pix, loss_patch

    def batch() -> tuple[np.ndarray, ...]:
        noise = rng.normal(1.0, 0.04, (n_aug, n, 12, 2)).astype(np.float32)
        masks = site_masks(rng, n * n_patch, tpa).reshape(n, n_patch, WIN, WIN)
        oy, ox = rng.integers(0, h - WIN, n * n_patch), rng.integers(0, w - WIN, n * n_patch)
        ks, flips = rng.integers(0, nb, n * n_patch), rng.integers(0, 8, n * n_patch)
        bgs = np.stack(
            [
                _orient(bg[k, a : a + WIN, b : b + WIN], f)
                for k, a, b, f in zip(ks, oy, ox, flips, strict=True)
            ]
        )
        bgs = bgs.reshape(n, n_patch, WIN, WIN, 12)
        tex = rng.normal(1.0, 0.03, (n, n_patch, WIN, WIN, 12)).astype(np.float32)
        return noise, masks, bgs, tex

    eval_batch = batch()  # fixed held-out windows for the reported patch score
    tpa_windows = np.zeros((len(tpa), WIN, WIN), np.float32)  # each outline centred
    for j, shp in enumerate(tpa):
        oy, ox = (WIN - shp.shape[0]) // 2, (WIN - shp.shape[1]) // 2
        tpa_windows[j, oy : oy + shp.shape[0], ox : ox + shp.shape[1]] = shp
    tpa_bgs = bg[:, 100 : 100 + WIN, 100 : 100 + WIN]  # (nb, 45, 45, 12)

    def tpa_scores(sig0: np.ndarray) -> np.ndarray:
        """(n,) mean patch score over the 10 TPA outlines x the background bank."""
        m = np.repeat(tpa_windows, len(tpa_bgs), axis=0)[None, ..., None]
        b = np.tile(tpa_bgs, (len(tpa), 1, 1, 1))[None]
        wins = b * (1 - m) + sig0[:, None, None, None, :] * m
        p = patch(tf.constant(wins.reshape(-1, WIN, WIN, 12) / 3000.0, tf.float32), training=False)
        return p.numpy()[:, 1].reshape(len(sig0), -1).mean(axis=1)

    done_at = steps
    for i in range(steps):
        lp, lq = step(*(tf.constant(a) for a in batch()))
        if i % 10 == 0 or i == steps - 1:
            sig = np.rint(spectra().numpy())
            pix_scores = 1 / (1 + np.exp(-np.clip(margins(tf.constant(sig, tf.float32)).numpy(), -50, 50)))
            _, masks, bgs, tex = eval_batch
            pw = patch_windows(tf.constant(sig[:, :, 0], tf.float32), masks, bgs, tex)
            pscore = patch(pw, training=False).numpy()[:, 1].reshape(n, n_patch).mean(1)
            if log_every and i % log_every == 0:
                top = np.sort(pscore)[::-1][:n_keep]
                print(
                    f"step {i}: loss {float(lp):.3f}/{float(lq):.3f} min pixel "
                    f"{pix_scores.min():.3f} top-{n_keep} patch {np.round(top, 2)}",
                    flush=True,
                )
            pix_ok = pix_scores.min(axis=0) > target
            ok = pix_ok & (pscore > patch_target)
            if ok.sum() >= n_keep and i >= min_steps:
                done_at = i + 1
                break
    tscore = tpa_scores(sig[:, :, 0])
    order = np.lexsort((-tscore, ~pix_ok))  # last key sorts first
    keep = order[:n_keep].tolist()  # sig0 = best on the real TPA outlines
    return {
        "description": "Synthetic plastic-waste pixel spectrograms derived from the GPW models "
        "(tests/data/signatures/derive.py). t0/t1: 12-band L1C DN at the first and "
        "partner composite. Not real spectra: they are what the models call waste.",
        "band_names": BAND_NAMES,
        "seed": seed,
        "candidates": n,
        "steps": done_at,
        "pixel_models": [p.relative_to(models_dir).as_posix() for p in paths],
        "patch_model": PATCH_MODEL,
        "signatures": [
            {
                "id": f"sig{j}",
                "t0": [int(v) for v in sig[k, :, 0]],
                "t1": [int(v) for v in sig[k, :, 1]],
                "pixel_scores": [round(float(s), 4) for s in pix_scores[:, k]],
                "patch_score": round(float(pscore[k]), 4),
                "tpa_patch_score": round(float(tscore[k]), 4),
            }
            for j, k in enumerate(keep)
        ],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument(
        "--shared", type=Path, default=Path(os.environ.get("PLASTICS_SHARED", REPO.parent / "shared"))
    )
    ap.add_argument("-n", type=int, default=8, help="number of signatures")
    ap.add_argument("--candidates", type=int, default=24, help="spectra optimised jointly")
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--min-steps", type=int, default=300, help="keep improving margins this long")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--target", type=float, default=0.99, help="min pixel-model score")
    ap.add_argument("--patch-target", type=float, default=0.85, help="min mean patch score")
    a = ap.parse_args()
    t0 = time.time()
    res = derive(a.shared, a.n, a.steps, a.seed, a.target, a.patch_target, a.candidates, a.min_steps)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(res, indent=1) + "\n")
    print(
        f"wrote {a.out}: {len(res['signatures'])} signatures after {res['steps']} steps "
        f"({time.time() - t0:.0f} s)"
    )


if __name__ == "__main__":
    main()
