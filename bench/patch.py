"""Patch classifier at stride 8: keras ``predict`` (batch 32) on explicit windows vs the project paths."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from bench.common import LAST_CPU, best_time, composite_image, model_store


def run(size: int = 517, stride: int = 8) -> dict[str, Any]:
    """Windows/s: keras b32, ``PatchClassifier.predict`` (tf.function), ``predict_grid`` (shared convs)."""
    from plastics_core.models import DEFAULT_PATCH_MODEL
    from plastics_core.models.infer import keras_predict
    from plastics_core.models.patch_classifier import PatchClassifier

    ref = model_store().resolve(DEFAULT_PATCH_MODEL)
    clf = PatchClassifier.from_ref(ref)
    img = composite_image(size)
    view = sliding_window_view(img, (clf.window, clf.window), axis=(0, 1))[::stride, ::stride]
    rows, cols = view.shape[:2]
    wins = np.ascontiguousarray(view.transpose(0, 1, 3, 4, 2)).reshape(
        -1, clf.window, clf.window, clf.channels
    )
    n = len(wins)
    keras_predict(ref, wins[:64])
    t_k, ref_out = best_time(lambda: keras_predict(ref, wins, batch_size=32), repeat=1)
    c_k = LAST_CPU[0]
    with_tf = (
        os.environ.get("KERAS_BACKEND", "tensorflow") == "tensorflow"
    )  # the window path is a tf.function
    if with_tf:
        clf.predict(wins[:64])
        t_w, out_w = best_time(lambda: clf.predict(wins), repeat=2)
        c_w = LAST_CPU[0]
    clf.predict_grid(img[:100, :100], stride)
    t_g, out_g = best_time(lambda: clf.predict_grid(img, stride), repeat=3)
    c_g = LAST_CPU[0]
    t_j, out_j = {}, {}
    for prec in ("exact", "fast"):  # compiled JAX grid on JAX's default backend
        clf.device, clf.precision = "jax", prec
        clf.predict_grid(img[:100, :100], stride)
        t_j[prec], out_j[prec] = best_time(lambda: clf.predict_grid(img, stride), repeat=3)
        t_j[prec + "_cpu"] = LAST_CPU[0]
    clf.device = clf.precision = None
    k = n / t_k
    table = [
        {
            "case": f"patch keras predict b32 ({rows}x{cols} windows)",
            "rate": k,
            "unit": "win/s",
            "per_cpu_s": n / c_k,
        }
    ]
    if with_tf:
        table.append(
            {
                "case": "patch tf.function windows b1024",
                "rate": n / t_w,
                "unit": "win/s",
                "vs_keras": n / t_w / k,
                "per_cpu_s": n / c_w,
            }
        )
    table.append(
        {
            "case": "patch shared-conv grid (stride 8)",
            "rate": n / t_g,
            "unit": "win/s",
            "vs_keras": n / t_g / k,
            "per_cpu_s": n / c_g,
        }
    )
    import jax

    for prec in ("exact", "fast"):
        table.append(
            {
                "case": f"patch grid compiled JAX {jax.default_backend().upper()} {prec}",
                "rate": n / t_j[prec],
                "unit": "win/s",
                "vs_keras": n / t_j[prec] / k,
                "per_cpu_s": n / t_j[prec + "_cpu"],
            }
        )
    return {
        "rows": table,
        "max_abs_diff_jax_exact_vs_keras": float(np.abs(out_j["exact"].ravel() - ref_out).max()),
        "max_abs_diff_jax_fast_vs_exact": float(np.abs(out_j["fast"] - out_j["exact"]).max()),
        "max_abs_diff_windows": float(np.abs(out_w - ref_out).max()) if with_tf else None,
        "max_abs_diff_grid": float(np.abs(out_g.ravel() - ref_out).max()),
        "image_px": size * size,
    }
