"""Every forward path of the GPW models timed in one run on the same inputs, against the numpy path.

``python -m bench.forward [--repeat N] [--out FILE]`` (also the ``forward`` section of
``python -m bench``); writes ``bench/results/forward.json``.

Cases (real models from the model store, seeded realistic DN from :mod:`bench.common`):

- the default pixel model on ``n_pixels`` pixels (n, 12, 2);
- the 6-model ensemble on ``n_ensemble`` pixels;
- the patch classifier's stride-8 grid over a ``grid`` x ``grid`` px composite (h, w, 12).

Paths per case: the numpy path (the CPU default, baseline of every ratio), the compiled JAX
path (exact precision), Keras on TensorFlow (direct calls in large batches for the pixel
models; for the patch grid the default numpy grid already runs its convs through TensorFlow,
so the extra row is explicit windows through a ``tf.function``), Keras 3 on its JAX backend
(a child process with ``KERAS_BACKEND=jax``, as the backend is fixed at import: its pixel rows
are timed beside the numpy pixel path, its patch rows beside the compiled JAX grid), and the
float64 reference of :mod:`plastics_core.models.reference` (on the first ``n_ref`` pixels /
``n_ref_windows`` windows only: it is slow). Every output is compared with that reference; those
first pixels and a band of the composite are blended towards the synthetic waste signatures
so that the compared outputs span 0..1.

Timing: one warm-up call per path (compiles), then ``repeat`` rounds; each round times every
path once, in turn, so that a change of machine load hits all paths alike. Reported: the
median seconds and rate per path, the median of the per-round rate ratios path / baseline
(> 1: faster than the baseline), and the load average before and after each case.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from bench.common import SEED, composite_image, machine, model_store, pixels, write_results

RESULTS = Path(__file__).resolve().parent / "results" / "forward.json"
STRIDE = 8


def rounds(paths: dict[str, Callable[[], Any]], repeat: int) -> tuple[dict[str, list[float]], dict[str, Any]]:
    """Warm every path up, then ``repeat`` rounds timing each path once in turn.

    Returns (seconds per path per round, last output per path)."""
    outs = {name: fn() for name, fn in paths.items()}
    times: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(repeat):
        for name, fn in paths.items():
            t0 = time.perf_counter()
            outs[name] = fn()
            times[name].append(time.perf_counter() - t0)
    return times, outs


def summarize(
    times: dict[str, list[float]], work: dict[str, int], unit: str, baseline: str
) -> list[dict[str, Any]]:
    """One row per path: median rate and the median per-round rate ratio against ``baseline``
    (``work`` units per second of the path / of the baseline in the same round)."""
    rows = []
    for name, ts in times.items():
        ratios = [(work[name] / t) / (work[baseline] / b) for b, t in zip(times[baseline], ts, strict=True)]
        rows.append(
            {
                "case": name,
                "rate": work[name] / statistics.median(ts),
                "unit": unit,
                "median_s": statistics.median(ts),
                "seconds": ts,
                "vs_baseline": statistics.median(ratios),
            }
        )
    return rows


def _quantiles(ref: np.ndarray) -> list[float]:
    """Quantiles 0, 0.1, 0.5, 0.9, 1 of reference outputs (do they span 0..1?)."""
    return [float(q) for q in np.quantile(ref, [0, 0.1, 0.5, 0.9, 1])]


def _max_diff(out: np.ndarray, ref: np.ndarray) -> float:
    return float(np.abs(np.asarray(out, np.float64).ravel()[: ref.size] - ref.ravel()).max())


def reference_pixels(ref: Any, x: np.ndarray) -> np.ndarray:
    """Float64 reference of a pixel model on ``x`` (n, 12, 2) DN -> (n,) float64."""
    from plastics_core.models.h5weights import read_h5
    from plastics_core.models.pixel_fast import norm_vectors
    from plastics_core.models.reference import forward, normalize64

    sub, div = norm_vectors(ref.normalization, 12, dates=2)
    xn = normalize64(x.reshape(len(x), 24), sub, div, 1).reshape(-1, 12, 2, 1)
    out: np.ndarray = forward(read_h5(str(ref.path)), xn)
    return out


def grid_windows(img: np.ndarray, window: int, stride: int, n: int | None = None) -> np.ndarray:
    """Explicit windows (rows * cols, window, window, c) of ``img`` (h, w, c), row-major, first ``n``."""
    view = sliding_window_view(img, (window, window), axis=(0, 1))[::stride, ::stride]
    wins = view.transpose(0, 1, 3, 4, 2).reshape(-1, window, window, img.shape[2])
    return np.ascontiguousarray(wins[:n])


def reference_windows(ref: Any, wins: np.ndarray) -> np.ndarray:
    """Float64 reference of a patch model on explicit windows (n, window, window, c) DN -> (n,)."""
    from plastics_core.models.h5weights import read_h5
    from plastics_core.models.pixel_fast import norm_vectors
    from plastics_core.models.reference import forward, normalize64

    sub, div = norm_vectors(ref.normalization, wins.shape[-1])
    out: np.ndarray = forward(read_h5(str(ref.path)), normalize64(wins, sub, div, 3))
    return out


def exactness_pixels(n: int, n_ref: int) -> np.ndarray:
    """(n, 12, 2) float32 DN: :func:`bench.common.pixels` with the first ``n_ref`` pixels blended
    towards the committed synthetic waste signatures (random weights in 0..1, seeded), so that
    the reference subset spans probabilities from 0 to 1 (realistic DN alone score ~0)."""
    from plastics_core.synthetic.sites import load_signatures

    sigs = np.stack([np.stack([s.t0, s.t1], axis=-1) for s in load_signatures()])  # (k, 12, 2)
    rng = np.random.default_rng(SEED)
    x = pixels(n).copy()
    bg, pick = x[:n_ref], sigs[rng.integers(0, len(sigs), n_ref)]
    x[:n_ref] = bg + rng.uniform(0, 1, (n_ref, 1, 1)).astype(np.float32) * (pick - bg)
    return x


def exactness_image(size: int, window: int) -> np.ndarray:
    """(size, size, 12) float32 DN: :func:`bench.common.composite_image` with squares of 8-40 px
    blended towards the synthetic waste signatures (first composite) along the top rows of
    windows, so that the reference windows span scores from 0 to 1."""
    from plastics_core.synthetic.sites import load_signatures

    sigs = [s.t0 for s in load_signatures()]
    rng = np.random.default_rng(SEED)
    img = composite_image(size).copy()
    for _ in range(size // 4):
        side = int(rng.integers(8, 41))
        r, c = int(rng.integers(0, 2 * window)), int(rng.integers(0, size - side))
        a = np.float32(rng.uniform(0.3, 1.0))
        blk = img[r : r + side, c : c + side]
        blk += a * (sigs[int(rng.integers(0, len(sigs)))] - blk)
    return img


def _devices(objs: list[Any], device: str | None) -> None:
    for o in objs:
        o.device = device


def pixel_case(n: int, n_ref: int, repeat: int) -> tuple[dict[str, Any], np.ndarray]:
    """The default pixel model: numpy, compiled JAX, Keras on TensorFlow, float64 reference.

    Returns (results, the float64 reference on the first ``n_ref`` pixels)."""
    from plastics_core.models import DEFAULT_MODEL
    from plastics_core.models.infer import PixelClassifier

    ref = model_store().resolve(DEFAULT_MODEL)
    x = exactness_pixels(n, n_ref)
    numpy_clf, jax_clf, keras_clf = (PixelClassifier.from_ref(ref) for _ in range(3))
    numpy_clf.device, jax_clf.device, keras_clf.device = "cpu", "jax", "keras"
    paths = {
        "pixel numpy (CPU default)": lambda: numpy_clf.predict(x),
        "pixel compiled JAX CPU exact": lambda: jax_clf.predict(x),
        "pixel Keras/TensorFlow direct calls": lambda: keras_clf.predict(x),
        "pixel float64 reference": lambda: reference_pixels(ref, x[:n_ref]),
    }
    load0 = machine()["loadavg_1_5_15"]
    times, outs = rounds(paths, repeat)
    work = dict.fromkeys(paths, n) | {"pixel float64 reference": n_ref}
    r64 = outs["pixel float64 reference"]
    rows = summarize(times, work, "px/s", "pixel numpy (CPU default)")
    for row in rows:
        row["max_abs_diff_vs_reference"] = _max_diff(outs[row["case"]], r64)
    res = {"rows": rows, "n": n, "n_ref": n_ref, "reference_quantiles": _quantiles(r64)}
    return res | {"loadavg_before": load0, "loadavg_after": _load()}, r64


def ensemble_case(n: int, n_ref: int, repeat: int) -> dict[str, Any]:
    """The 6-model ensemble: numpy (fused conv1), compiled JAX (one vmapped call), Keras, reference."""
    from plastics_core.models import DEFAULT_ENSEMBLE
    from plastics_core.models.ensemble import EnsembleClassifier

    refs = model_store().resolve_ensemble(DEFAULT_ENSEMBLE)
    x = exactness_pixels(n, n_ref)
    ens = {d: EnsembleClassifier.from_refs(refs) for d in ("cpu", "jax", "keras")}
    for d, e in ens.items():
        _devices(e.members, d)
    k = len(refs)
    paths = {
        f"ensemble x{k} numpy (CPU default)": lambda: ens["cpu"].predict(x),
        f"ensemble x{k} compiled JAX CPU exact": lambda: ens["jax"].predict(x),
        f"ensemble x{k} Keras/TensorFlow direct calls": lambda: ens["keras"].predict(x),
        f"ensemble x{k} float64 reference": lambda: np.stack([reference_pixels(r, x[:n_ref]) for r in refs]),
    }
    load0 = machine()["loadavg_1_5_15"]
    times, outs = rounds(paths, repeat)
    ref_name = f"ensemble x{k} float64 reference"
    work = dict.fromkeys(paths, n) | {ref_name: n_ref}
    r64 = outs[ref_name]
    rows = summarize(times, work, "px/s", f"ensemble x{k} numpy (CPU default)")
    for row in rows:
        row["max_abs_diff_vs_reference"] = float(
            np.abs(np.asarray(outs[row["case"]], np.float64)[:, :n_ref] - r64).max()
        )
    res = {"rows": rows, "n": n, "n_ref": n_ref, "reference_quantiles": _quantiles(r64)}
    return res | {"loadavg_before": load0, "loadavg_after": _load()}


def patch_case(size: int, n_ref: int, repeat: int) -> tuple[dict[str, Any], np.ndarray]:
    """The patch grid at stride 8: numpy + TensorFlow convs, compiled JAX, windows
    through a ``tf.function``, float64 reference on the first ``n_ref`` windows.

    Returns (results, the float64 reference of those windows)."""
    from plastics_core.models import DEFAULT_PATCH_MODEL
    from plastics_core.models.patch_classifier import PatchClassifier

    ref = model_store().resolve(DEFAULT_PATCH_MODEL)
    default, jax_clf = PatchClassifier.from_ref(ref), PatchClassifier.from_ref(ref)
    default.device, jax_clf.device = "cpu", "jax"
    img = exactness_image(size, default.window)
    net = default.net
    assert net is not None and net.total_stride == STRIDE
    rows_n, cols_n = (size - default.window) // STRIDE + 1, (size - default.window) // STRIDE + 1
    wins = grid_windows(img, default.window, STRIDE)

    paths = {
        "patch grid numpy + TensorFlow convs (CPU default)": lambda: default.predict_grid(img, STRIDE),
        "patch grid compiled JAX CPU exact": lambda: jax_clf.predict_grid(img, STRIDE),
        "patch windows tf.function b1024": lambda: default.predict(wins),
        "patch float64 reference": lambda: reference_windows(ref, wins[:n_ref]),
    }
    load0 = machine()["loadavg_1_5_15"]
    times, outs = rounds(paths, repeat)
    n = rows_n * cols_n
    work = dict.fromkeys(paths, n) | {"patch float64 reference": n_ref}
    r64 = outs["patch float64 reference"]
    rows = summarize(times, work, "win/s", "patch grid numpy + TensorFlow convs (CPU default)")
    for row in rows:
        row["max_abs_diff_vs_reference"] = _max_diff(outs[row["case"]], r64)
    res = {
        "rows": rows,
        "image_px": size * size,
        "windows": n,
        "n_ref": n_ref,
        "reference_quantiles": _quantiles(r64),
        "loadavg_before": load0,
        "loadavg_after": _load(),
    }
    return res, r64


def weights_load() -> dict[str, Any]:
    """Seconds to get the weights: the h5py parser (:mod:`.h5weights`) vs TensorFlow's import and
    ``keras.models.load_model`` (the pixel model and the patch model, cold caches)."""
    from plastics_core.models import DEFAULT_MODEL, DEFAULT_PATCH_MODEL
    from plastics_core.models.h5weights import read_h5

    paths = [str(model_store().resolve(m).path) for m in (DEFAULT_MODEL, DEFAULT_PATCH_MODEL)]
    read_h5.cache_clear()
    t0 = time.perf_counter()
    for p in paths:
        read_h5(p)
    h5 = time.perf_counter() - t0
    code = (
        "import time, sys\n"
        "t0 = time.perf_counter()\n"
        "from plastics_core.models.tf_quiet import import_keras\n"
        "keras = import_keras()\n"
        "t1 = time.perf_counter()\n"
        "for p in sys.argv[1:]:\n"
        "    keras.models.load_model(p, compile=False)\n"
        "print(t1 - t0, time.perf_counter() - t1)\n"
    )
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run(
        [sys.executable, "-c", code, *paths], capture_output=True, text=True, env=env, check=True
    ).stdout.split()
    return {
        "h5weights_read_s": h5,
        "tensorflow_keras_import_s": float(out[-2]),
        "keras_load_model_s": float(out[-1]),
        "models": 2,
    }


def _load() -> list[float]:
    loadavg: list[float] = machine()["loadavg_1_5_15"]
    return loadavg


def keras_jax_child(
    n: int, size: int, n_ref: int, n_ref_windows: int, repeat: int, out_npz: str
) -> dict[str, Any]:
    """In a process with ``KERAS_BACKEND=jax``: Keras 3 on JAX against the numpy path (pixel
    model; for the patch grid, against the compiled JAX grid, as TensorFlow is not loaded
    here). Outputs on the reference subsets go to ``out_npz``."""
    from plastics_core.models import DEFAULT_MODEL, DEFAULT_PATCH_MODEL
    from plastics_core.models.infer import PixelClassifier, keras_predict
    from plastics_core.models.patch_classifier import PatchClassifier

    pref = model_store().resolve(DEFAULT_MODEL)
    x = exactness_pixels(n, n_ref)
    numpy_clf, keras_clf = PixelClassifier.from_ref(pref), PixelClassifier.from_ref(pref)
    numpy_clf.device, keras_clf.device = "cpu", "keras"
    base = "pixel numpy (CPU default), beside Keras on JAX"
    ppaths = {
        base: lambda: numpy_clf.predict(x),
        "pixel Keras 3 on JAX, direct calls": lambda: keras_clf.predict(x),
        "pixel Keras 3 on JAX, predict b8192 (jit)": lambda: keras_predict(pref, x, batch_size=8192),
    }
    load0 = _load()
    ptimes, pouts = rounds(ppaths, repeat)
    prow = summarize(ptimes, dict.fromkeys(ppaths, n), "px/s", base)

    cref = model_store().resolve(DEFAULT_PATCH_MODEL)
    clf, jax_clf = PatchClassifier.from_ref(cref), PatchClassifier.from_ref(cref)
    clf.device, jax_clf.device = "cpu", "jax"
    img = exactness_image(size, clf.window)
    r = (size - clf.window) // STRIDE + 1
    wins = grid_windows(img, clf.window, STRIDE)
    gbase = "patch grid compiled JAX CPU exact, beside Keras on JAX"
    gpaths = {
        gbase: lambda: jax_clf.predict_grid(img, STRIDE),
        "patch grid numpy + Keras 3 on JAX convs (eager)": lambda: clf.predict_grid(img, STRIDE),
        "patch windows Keras 3 on JAX predict b1024 (jit)": lambda: keras_predict(cref, wins, 1024),
    }
    gtimes, gouts = rounds(gpaths, repeat)
    grow = summarize(gtimes, dict.fromkeys(gpaths, r * r), "win/s", gbase)
    np.savez(
        out_npz,
        pixel=np.stack([np.asarray(pouts[row["case"]])[:n_ref] for row in prow]),
        patch=np.stack([np.asarray(gouts[row["case"]]).ravel()[:n_ref_windows] for row in grow]),
    )
    return {"pixel_rows": prow, "patch_rows": grow, "loadavg_before": load0, "loadavg_after": _load()}


def keras_jax_case(
    n: int, size: int, repeat: int, pixel_ref: np.ndarray, patch_ref: np.ndarray
) -> dict[str, Any]:
    """Run :func:`keras_jax_child` in a child process and compare its outputs with the reference."""
    with tempfile.TemporaryDirectory() as tmp:
        npz = str(Path(tmp) / "out.npz")
        env = {**os.environ, "KERAS_BACKEND": "jax", "PLASTICS_INFER_DEVICE": "cpu"}
        args = [sys.executable, "-m", "bench.forward", "--keras-jax-child", npz, "--repeat", str(repeat)]
        args += ["--n-pixels", str(n), "--grid", str(size), "--n-ref", str(len(pixel_ref))]
        args += ["--n-ref-windows", str(len(patch_ref))]
        done = subprocess.run(args, capture_output=True, text=True, env=env, check=False)
        if done.returncode != 0:
            return {"rows": [], "error": done.stderr.strip().splitlines()[-1:]}
        res = json.loads(done.stdout.strip().splitlines()[-1])
        outs = np.load(npz)
        for i, row in enumerate(res["pixel_rows"]):
            row["max_abs_diff_vs_reference"] = _max_diff(outs["pixel"][i], pixel_ref)
        for i, row in enumerate(res["patch_rows"]):
            row["max_abs_diff_vs_reference"] = _max_diff(outs["patch"][i], patch_ref)
    return {
        "rows": res["pixel_rows"] + res["patch_rows"],
        "loadavg_before": res["loadavg_before"],
        "loadavg_after": res["loadavg_after"],
    }


def run(
    n_pixels: int = 200_000,
    n_ensemble: int = 50_000,
    grid: int = 517,
    n_ref: int = 2048,
    n_ref_windows: int = 512,
    repeat: int = 5,
) -> dict[str, Any]:
    """All cases; the Keras-on-JAX rows from a child process (see module docstring)."""
    import jax

    res: dict[str, Any] = {
        "repeat": repeat,
        "jax_backend": jax.default_backend(),
        "weights_load": weights_load(),
    }
    res["pixel"], pixel_ref = pixel_case(n_pixels, n_ref, repeat)
    res["ensemble"] = ensemble_case(n_ensemble, n_ref, repeat)
    res["patch"], patch_ref = patch_case(grid, n_ref_windows, repeat)
    res["keras_jax"] = keras_jax_case(n_pixels, grid, repeat, pixel_ref, patch_ref)
    res["rows"] = [row for k in ("pixel", "ensemble", "patch", "keras_jax") for row in res[k]["rows"]]
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.forward", description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--n-pixels", type=int, default=200_000)
    ap.add_argument("--n-ensemble", type=int, default=50_000)
    ap.add_argument("--grid", type=int, default=517)
    ap.add_argument("--n-ref", type=int, default=2048, help="pixels checked against the float64 reference")
    ap.add_argument("--n-ref-windows", type=int, default=512, help="windows checked against it")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--keras-jax-child", metavar="NPZ", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if args.keras_jax_child:
        res = keras_jax_child(
            args.n_pixels, args.grid, args.n_ref, args.n_ref_windows, args.repeat, args.keras_jax_child
        )
        print(json.dumps(res, default=float))
        return 0
    from bench.__main__ import table
    from bench.common import devices, matmul_gflops

    results: dict[str, Any] = {"machine": {**machine(), **devices(), "matmul_gflops": matmul_gflops()}}
    t0 = time.perf_counter()
    results["forward"] = run(
        args.n_pixels, args.n_ensemble, args.grid, args.n_ref, args.n_ref_windows, args.repeat
    )
    results["forward"]["section_seconds"] = time.perf_counter() - t0
    results["machine"]["loadavg_after"] = _load()
    print(table({"forward": results["forward"]}))
    for row in results["forward"]["rows"]:
        print(f"{row['case']:<56} max |d| vs float64 reference {row['max_abs_diff_vs_reference']:.2e}")
    m = results["machine"]
    print(f"machine: {m['cpu_model']} x{m['cpu_count']}; load {m['loadavg_1_5_15']} -> {m['loadavg_after']}")
    write_results(results, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
