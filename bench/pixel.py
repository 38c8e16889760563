"""Pixel spectrogram model and 6-model ensemble: keras ``predict`` (batch 32) vs the project path."""

from __future__ import annotations

from typing import Any

import numpy as np

from bench.common import PIXEL_MODEL_FLOPS, best_time, matmul_gflops, model_store, pixels


def run(n: int = 400_000, n_keras: int = 20_000) -> dict[str, Any]:
    """Single default model: px/s both ways, ratio, fraction of the matmul roofline."""
    from plastics_core.models import DEFAULT_MODEL
    from plastics_core.models.infer import PixelClassifier, keras_predict

    ref = model_store().resolve(DEFAULT_MODEL)
    x = pixels(n)
    clf = PixelClassifier.from_ref(ref)
    keras_predict(ref, x[:64])
    t_k, ref_out = best_time(lambda: keras_predict(ref, x[:n_keras], batch_size=32), repeat=1)
    clf.predict(x[:4096])
    t_p, out = best_time(lambda: clf.predict(x), repeat=3)
    gflops = matmul_gflops()
    ceiling = gflops * 1e9 / PIXEL_MODEL_FLOPS
    keras_rate, rate = n_keras / t_k, n / t_p
    return {
        "rows": [
            {"case": "pixel keras predict b32", "rate": keras_rate, "unit": "px/s"},
            {"case": "pixel project path", "rate": rate, "unit": "px/s", "vs_keras": rate / keras_rate,
             "roofline_fraction": rate / ceiling},
        ],
        "max_abs_diff": float(np.abs(out[:n_keras] - ref_out).max()),
        "matmul_gflops": gflops, "model_flops_per_px": PIXEL_MODEL_FLOPS,
        "executed_flops_per_px": clf.net.flops_per_pixel, "roofline_px_s": ceiling,
    }


def run_ensemble(n: int = 200_000, n_keras: int = 5_000) -> dict[str, Any]:
    """The 6-model ensemble (all members per pixel): px/s both ways."""
    from plastics_core.models import DEFAULT_ENSEMBLE
    from plastics_core.models.infer import EnsembleClassifier, keras_predict

    refs = model_store().resolve_ensemble(DEFAULT_ENSEMBLE)
    x = pixels(400_000)[:n]
    ens = EnsembleClassifier.from_refs(refs)
    for r in refs:
        keras_predict(r, x[:64])
    t_k, ref_out = best_time(lambda: np.stack([keras_predict(r, x[:n_keras], 32) for r in refs]), repeat=1)
    ens.predict(x[:4096])
    t_p, out = best_time(lambda: ens.predict(x), repeat=3)
    keras_rate, rate = n_keras / t_k, n / t_p
    ceiling = matmul_gflops() * 1e9 / (len(refs) * PIXEL_MODEL_FLOPS)
    return {
        "rows": [
            {"case": f"ensemble x{len(refs)} keras predict b32", "rate": keras_rate, "unit": "px/s"},
            {"case": f"ensemble x{len(refs)} project path", "rate": rate, "unit": "px/s",
             "vs_keras": rate / keras_rate, "roofline_fraction": rate / ceiling},
        ],
        "max_abs_diff": float(np.abs(out[:, :n_keras] - ref_out).max()),
    }
