"""Compiled JAX path on JAX's default backend (an accelerator, or the CPU as a dry run).

``python -m bench.device [--out FILE]`` (also the ``device`` section of ``python -m bench``).
Needs numpy, h5py and JAX only (no TensorFlow): run by ``bench/device.sh`` on a GPU worker.
Rows: pixel model exact / fast (inputs resident on the device, and from host memory), the
6-model ensemble, the patch grid, and one tile span (two 941 x 941 composites in host memory ->
pixel heatmap of the pair + patch grid -> results in host memory), each with its achieved
FLOP/s as a fraction of the H200's fp32 (67 TFLOP/s) and bf16 tensor-core (790 TFLOP/s)
peaks, and the GPU hours projected for Indonesia's 163e9 pixel predictions at that rate.
Exactness: max |exact - float64 reference| and |fast - exact| on fresh random pixels.
Timing: warm-up call first (compiles), then the median of ``repeat`` calls, each awaited
(``block_until_ready`` or the copy back to the host).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import PIXEL_MODEL_FLOPS, model_store, realistic_dn

PEAK_FP32 = 67e12
PEAK_BF16 = 790e12
INDONESIA_PREDICTIONS = 163e9
RESULTS = Path(__file__).resolve().parent / "results" / "device.json"


def median_time(fn: Any, repeat: int) -> float:
    """Median wall seconds of ``fn()`` (its result awaited), after one warm-up call."""
    import jax

    jax.block_until_ready(fn())
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _row(case: str, rate: float, unit: str, flop_s: float, predictions_s: float = 0.0) -> dict[str, Any]:
    """A table row: ``flop_s`` achieved FLOP/s, ``predictions_s`` pixel predictions per second."""
    row = {
        "case": case,
        "rate": rate,
        "unit": unit,
        "tflops": flop_s / 1e12,
        "fraction_fp32_peak": flop_s / PEAK_FP32,
        "fraction_bf16_peak": flop_s / PEAK_BF16,
    }
    if predictions_s:
        row["indonesia_gpu_hours"] = INDONESIA_PREDICTIONS / predictions_s / 3600
    return row


def patch_grid_flops(patch: Any, h: int, w: int) -> float:
    """FLOPs of one compiled patch grid over an (h, w) image (conv stack once + every window's head)."""
    flops, convs = 0.0, iter(patch.params["convs"])
    for op in patch.layout:
        if op[0] == "conv":
            k = np.asarray(next(convs)[0])
            h, w = h - k.shape[0] + 1, w - k.shape[1] + 1
            flops += 2.0 * h * w * k.size
        else:
            h, w = h // op[1], w // op[1]
    fh, fw = patch.final
    windows = (h - fh + 1) * (w - fw + 1)
    flops += windows * 2.0 * sum(np.asarray(wt).size for wt, _ in patch.params["dense"])
    return flops


def _jaxlib_version() -> str:
    try:
        import jaxlib

        return str(jaxlib.__version__)
    except (ImportError, AttributeError):
        return "?"


def run(repeat: int = 5) -> dict[str, Any]:
    import jax

    from plastics_core.models import DEFAULT_ENSEMBLE, DEFAULT_MODEL, DEFAULT_PATCH_MODEL
    from plastics_core.models import compiled as C
    from plastics_core.models.ensemble import EnsembleClassifier
    from plastics_core.models.h5weights import read_h5
    from plastics_core.models.infer import PixelClassifier
    from plastics_core.models.patch_classifier import PatchClassifier
    from plastics_core.models.pixel_fast import norm_vectors
    from plastics_core.models.reference import forward, normalize64

    gpu = C.on_gpu()
    n, n_ens, img_px, tile = (1 << 24, 1 << 22, 2048, 941) if gpu else (1 << 16, 1 << 14, 256, 256)
    store = model_store()
    ref = store.resolve(DEFAULT_MODEL)
    cpx = PixelClassifier.from_ref(ref).compiled()
    x = realistic_dn((n, 12, 2), band_axis=1).round().astype(np.uint16)
    x_dev = jax.device_put(x)
    rows = []
    fast_dev: dict[str, float] = {}
    for prec in ("exact", "fast"):
        t = median_time(
            lambda p=prec: C._pixels(cpx.params, x_dev, fast=p == "fast", chunk=C.device_chunk(n)), repeat
        )
        rows.append(
            _row(f"pixel {prec}, input on device ({n:,} px)", n / t, "px/s", n / t * PIXEL_MODEL_FLOPS, n / t)
        )
        t = median_time(lambda p=prec: cpx.predict(x, p), max(1, repeat // 2))
        rows.append(
            _row(
                f"pixel {prec}, from host uint16 ({n:,} px)", n / t, "px/s", n / t * PIXEL_MODEL_FLOPS, n / t
            )
        )
    rng = np.random.default_rng(int(time.time()))
    probe = realistic_dn((4096, 12, 2), band_axis=1, seed=int(rng.integers(1 << 30))).round()
    sub, div = norm_vectors(ref.normalization, 12, dates=2)
    r64 = forward(
        read_h5(str(ref.path)), normalize64(probe.reshape(-1, 24), sub, div, 1).reshape(-1, 12, 2, 1)
    )
    exact = cpx.predict(probe, "exact")[0]
    fast_dev["pixel_exact_vs_float64"] = float(np.abs(exact - r64).max())
    fast_dev["pixel_fast_vs_exact"] = float(np.abs(cpx.predict(probe, "fast")[0] - exact).max())

    ens = EnsembleClassifier.from_refs(store.resolve_ensemble(DEFAULT_ENSEMBLE))
    for m in ens.members:
        m.device = "jax"
    ens.predict(probe[:16])
    cens = ens._compiled
    xe = jax.device_put(x[:n_ens])
    k = cens.n_models
    for prec in ("exact", "fast"):
        t = median_time(
            lambda p=prec: C._pixels(cens.params, xe, fast=p == "fast", chunk=C.device_chunk(n_ens)), repeat
        )
        rows.append(
            _row(
                f"ensemble x{k} {prec}, input on device ({n_ens:,} px)",
                n_ens / t,
                "px/s",
                n_ens / t * k * PIXEL_MODEL_FLOPS,
                n_ens / t,
            )
        )

    patch = PatchClassifier.from_ref(store.resolve(DEFAULT_PATCH_MODEL))
    cpt = patch.compiled()
    img = C.upload(realistic_dn((12, img_px, img_px), band_axis=0).round())[0]
    n_win = ((img_px - cpt.window) // cpt.stride + 1) ** 2
    gflops = patch_grid_flops(cpt, img_px, img_px)
    for prec in ("exact", "fast"):
        t = median_time(lambda p=prec: cpt.grid_uploaded(img, p), repeat)
        rows.append(
            _row(
                f"patch grid {prec} ({img_px}x{img_px} px, {n_win:,} windows)", n_win / t, "win/s", gflops / t
            )
        )

    comps = []
    for s in range(2):
        mask = np.random.default_rng(s).random((tile, tile)) < 0.2
        comps.append((realistic_dn((12, tile, tile), band_axis=0, seed=s).round(), mask))
    span_flops = tile * tile * PIXEL_MODEL_FLOPS + patch_grid_flops(cpt, tile, tile)
    for prec in ("exact", "fast"):
        t = median_time(lambda p=prec: C.tile_span(comps, [(0, 1)], cpx, cpt, p), repeat)
        rows.append(
            _row(
                f"tile span {tile}x{tile}, 1 pair, {prec} (ms)",
                t * 1e3,
                "ms",
                span_flops / t,
                tile * tile / t,
            )
        )
    dev = jax.devices()[0]
    return {
        "rows": rows,
        "deviation": fast_dev,
        "backend": jax.default_backend(),
        "device": getattr(dev, "device_kind", str(dev)),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "versions": {
            "jax": jax.__version__,
            "jaxlib": _jaxlib_version(),
            "numpy": np.__version__,
            "python": platform.python_version(),
        },
        "peaks_tflops": {"fp32": PEAK_FP32 / 1e12, "bf16": PEAK_BF16 / 1e12},
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.device", description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)
    res = run(args.repeat)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2, default=float) + "\n")
    print(f"{res['device']} ({res['backend']}), jax {res['versions']['jax']}; deviations {res['deviation']}")
    print(f"{'case':<58} {'rate':>14} {'unit':<6} {'fp32 peak':>9} {'bf16 peak':>9} {'IDN GPU-h':>10}")
    for r in res["rows"]:
        f32, b16 = r["fraction_fp32_peak"], r["fraction_bf16_peak"]
        hours = r.get("indonesia_gpu_hours")
        print(
            f"{r['case']:<58} {r['rate']:>14,.1f} {r['unit']:<6} {f32:>9.2%} {b16:>9.3%} "
            f"{'' if hours is None else f'{hours:,.2f}':>10}"
        )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
