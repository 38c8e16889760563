"""Pixel spectrogram model and 6-model ensemble: keras ``predict`` (batch 32) vs the project path."""

from __future__ import annotations

from typing import Any

import numpy as np

from bench.common import LAST_CPU, PIXEL_MODEL_FLOPS, best_time, matmul_gflops, model_store, pixels


def _set_device(models: list[Any], device: str | None) -> None:
    for m in models:
        m.device = device


def _gpu_row(
    case: str, fn: Any, models: list[Any], n: int, keras_rate: float, out_cpu: np.ndarray
) -> list[dict[str, Any]]:
    """On a machine whose Keras backend sees a GPU: the project's Keras-on-GPU path too (what
    ``auto`` picks there), checked against the numpy output."""
    from plastics_core.models.infer import use_keras_path

    if not use_keras_path("auto"):
        return []
    _set_device(models, "keras")
    fn()
    t, out = best_time(fn, repeat=3)
    _set_device(models, None)
    diff = float(np.abs(np.asarray(out) - out_cpu).max())
    return [
        {
            "case": f"{case} project path, Keras on GPU",
            "rate": n / t,
            "unit": "px/s",
            "vs_keras": n / t / keras_rate,
            "max_abs_diff_vs_numpy": diff,
        }
    ]


def _jax_rows(
    case: str, models: list[Any], fn: Any, n: int, keras_rate: float, ceiling: float, out_numpy: np.ndarray
) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """The compiled JAX path (``device = "jax"``, on JAX's default backend) in exact and fast
    precision: rows, and max |exact - numpy| and |fast - exact|."""
    import jax

    rows, dev, outs = [], {}, {}
    for prec in ("exact", "fast"):
        for m in models:
            m.device, m.precision = "jax", prec
        fn()
        t, outs[prec] = best_time(fn, repeat=3)
        rows.append(
            {
                "case": f"{case} compiled JAX {jax.default_backend().upper()} {prec}",
                "rate": n / t,
                "unit": "px/s",
                "vs_keras": n / t / keras_rate,
                "roofline_fraction": n / t / ceiling,
                "per_cpu_s": n / LAST_CPU[0],
            }
        )
    for m in models:
        m.device = m.precision = None
    dev["max_abs_diff_jax_exact_vs_numpy"] = float(np.abs(np.asarray(outs["exact"]) - out_numpy).max())
    dev["max_abs_diff_jax_fast_vs_exact"] = float(
        np.abs(np.asarray(outs["fast"]) - np.asarray(outs["exact"])).max()
    )
    return rows, dev


def run(n: int = 400_000, n_keras: int = 20_000) -> dict[str, Any]:
    """Single default model: px/s of keras predict (b32, b8192) and the project paths, ratio,
    fraction of the CPU matmul roofline (numpy path)."""
    from plastics_core.models import DEFAULT_MODEL
    from plastics_core.models.infer import PixelClassifier, keras_predict

    ref = model_store().resolve(DEFAULT_MODEL)
    x = pixels(n)
    clf = PixelClassifier.from_ref(ref)
    keras_predict(ref, x[:64])
    t_k, ref_out = best_time(lambda: keras_predict(ref, x[:n_keras], batch_size=32), repeat=1)
    c_k = LAST_CPU[0]
    keras_predict(ref, x[:8192], batch_size=8192)
    t_kb, _ = best_time(lambda: keras_predict(ref, x, batch_size=8192), repeat=1)
    _set_device([clf], "cpu")
    clf.predict(x[:4096])
    t_p, out = best_time(lambda: clf.predict(x), repeat=3)
    c_p = LAST_CPU[0]
    _set_device([clf], None)
    gflops = matmul_gflops()
    ceiling = gflops * 1e9 / PIXEL_MODEL_FLOPS
    keras_rate, rate = n_keras / t_k, n / t_p
    jrows, jdev = _jax_rows("pixel", [clf], lambda: clf.predict(x), n, keras_rate, ceiling, out)
    return {
        "rows": [
            {
                "case": "pixel keras predict b32",
                "rate": keras_rate,
                "unit": "px/s",
                "per_cpu_s": n_keras / c_k,
            },
            {
                "case": "pixel keras predict b8192",
                "rate": n / t_kb,
                "unit": "px/s",
                "vs_keras": n / t_kb / keras_rate,
            },
            {
                "case": "pixel project path, numpy CPU",
                "rate": rate,
                "unit": "px/s",
                "vs_keras": rate / keras_rate,
                "roofline_fraction": rate / ceiling,
                "per_cpu_s": n / c_p,
            },
            *jrows,
            *_gpu_row("pixel", lambda: clf.predict(x), [clf], n, keras_rate, out),
        ],
        "max_abs_diff": float(np.abs(out[:n_keras] - ref_out).max()),
        **jdev,
        "matmul_gflops": gflops,
        "model_flops_per_px": PIXEL_MODEL_FLOPS,
        "executed_flops_per_px": clf.net.flops_per_pixel,
        "roofline_px_s": ceiling,
    }


def run_ensemble(n: int = 200_000, n_keras: int = 5_000) -> dict[str, Any]:
    """The 6-model ensemble (all members per pixel): px/s both ways."""
    from plastics_core.models import DEFAULT_ENSEMBLE
    from plastics_core.models.ensemble import EnsembleClassifier
    from plastics_core.models.infer import keras_predict

    refs = model_store().resolve_ensemble(DEFAULT_ENSEMBLE)
    x = pixels(400_000)[:n]
    ens = EnsembleClassifier.from_refs(refs)
    for r in refs:
        keras_predict(r, x[:64])
    t_k, ref_out = best_time(lambda: np.stack([keras_predict(r, x[:n_keras], 32) for r in refs]), repeat=1)
    c_k = LAST_CPU[0]
    _set_device(ens.members, "cpu")
    ens.predict(x[:4096])
    t_p, out = best_time(lambda: ens.predict(x), repeat=3)
    c_p = LAST_CPU[0]
    _set_device(ens.members, None)
    keras_rate, rate = n_keras / t_k, n / t_p
    gflops = matmul_gflops()
    ceiling = gflops * 1e9 / (len(refs) * PIXEL_MODEL_FLOPS)
    jrows, jdev = _jax_rows(
        f"ensemble x{len(refs)}", ens.members, lambda: ens.predict(x), n, keras_rate, ceiling, out
    )
    return {
        "rows": [
            {
                "case": f"ensemble x{len(refs)} keras predict b32",
                "rate": keras_rate,
                "unit": "px/s",
                "per_cpu_s": n_keras / c_k,
            },
            {
                "case": f"ensemble x{len(refs)} project path, numpy CPU",
                "rate": rate,
                "unit": "px/s",
                "vs_keras": rate / keras_rate,
                "roofline_fraction": rate / ceiling,
                "per_cpu_s": n / c_p,
            },
            *jrows,
            *_gpu_row(f"ensemble x{len(refs)}", lambda: ens.predict(x), ens.members, n, keras_rate, out),
        ],
        "max_abs_diff": float(np.abs(out[:, :n_keras] - ref_out).max()),
        "matmul_gflops": gflops,
        **jdev,
    }


def run_heatmap(size: int = 1000, n_pairs: int = 2) -> dict[str, Any]:
    """``pixel_heatmap`` end to end on (size x size) composites, 20 % masked: px/s per pair."""
    import datetime as dt

    from affine import Affine

    from bench.common import composite_image
    from plastics_core.geo.periods import Period
    from plastics_core.method.composite import Composite
    from plastics_core.method.heatmap import pixel_heatmap
    from plastics_core.models import DEFAULT_MODEL
    from plastics_core.models.infer import PixelClassifier

    rng = np.random.default_rng(7)
    img = np.moveaxis(composite_image(size), -1, 0)
    comps = []
    for k in range(n_pairs + 1):
        mask = rng.random((size, size)) < 0.2
        data = np.roll(img, 37 * k, axis=2).copy()
        data[:, mask] = 0
        period = Period(dt.date(2021, 1 + 3 * k, 1), dt.date(2021, 4 + 3 * k, 1))
        comps.append(Composite(data, mask, period, "EPSG:32750", Affine(10, 0, 0, 0, -10, 0), 1))
    clf = PixelClassifier.from_ref(model_store().resolve(DEFAULT_MODEL))
    pairs = [(k, k + 1) for k in range(n_pairs)]
    t, _ = best_time(lambda: pixel_heatmap(comps, pairs, clf), repeat=2)
    rate = n_pairs * size * size / t
    rows = [
        {
            "case": f"pixel_heatmap {size}x{size} x{n_pairs} pairs (20% masked)",
            "rate": rate,
            "unit": "px/s",
            "per_cpu_s": n_pairs * size * size / LAST_CPU[0],
        }
    ]
    heats = {}
    for prec in ("exact", "fast"):  # compiled path: pairs built on the device from the composites
        clf.device, clf.precision = "jax", prec
        pixel_heatmap(comps[:2], pairs[:1], clf)
        t_j, heats[prec] = best_time(lambda: pixel_heatmap(comps, pairs, clf), repeat=2)
        rows.append(
            {
                "case": f"pixel_heatmap {size}x{size} x{n_pairs} pairs, compiled JAX {prec}",
                "rate": n_pairs * size * size / t_j,
                "unit": "px/s",
                "per_cpu_s": n_pairs * size * size / LAST_CPU[0],
            }
        )
    clf.device = clf.precision = None
    from plastics_core.method.blobs import PRESETS, detect_blobs

    cols = ["lon", "lat", "sigma", "row", "col"]
    blobs = {p: detect_blobs(h, PRESETS["high"])[cols] for p, h in heats.items()}
    dev = float(np.nanmax(np.abs(heats["fast"].data - heats["exact"].data)))
    return {
        "rows": rows,
        "seconds": t,
        "fast_vs_exact_max_abs_diff": dev,
        "blobs_exact": len(blobs["exact"]),
        "fast_same_blobs_as_exact": bool(
            blobs["fast"].reset_index(drop=True).equals(blobs["exact"].reset_index(drop=True))
        ),
    }
