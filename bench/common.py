"""Shared benchmark helpers: realistic random inputs (one seed for every section), timing, roofline."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from plastics_core.geo.bands import UNIT_NORM_MEAN, UNIT_NORM_STD

SEED = 20210713
#: Useful FLOPs per pixel of the GPW pixel model: conv1 10*16*6 + conv2 8*32*48 + dense
#: 256*32 + 2*32*32 + 32*2 multiply-adds, x 2.
PIXEL_MODEL_FLOPS = 2 * (10 * 16 * 6 + 8 * 32 * 48 + 256 * 32 + 2 * 32 * 32 + 32 * 2)


def realistic_dn(shape: tuple[int, ...], band_axis: int, seed: int = SEED) -> np.ndarray:
    """float32 L1C DN drawn per band around the unit-norm mean/std, clipped to 0..10000."""
    bshape = [1] * len(shape)
    bshape[band_axis] = 12
    rng = np.random.default_rng(seed)
    x = rng.normal(UNIT_NORM_MEAN.reshape(bshape), UNIT_NORM_STD.reshape(bshape), shape)
    return np.clip(x, 0, 10000).astype(np.float32)


@lru_cache(maxsize=4)
def pixels(n: int) -> np.ndarray:
    """(n, 12, 2) realistic DN; cached so every section uses the same array."""
    return realistic_dn((n, 12, 2), band_axis=1)


@lru_cache(maxsize=2)
def composite_image(size: int) -> np.ndarray:
    """(size, size, 12) realistic DN image (channels last)."""
    return realistic_dn((size, size, 12), band_axis=2, seed=SEED + 1)


#: CPU seconds (all threads of this process) of the best call of the latest :func:`best_time`.
LAST_CPU: list[float] = [float("nan")]


def best_time(fn: Callable[[], Any], repeat: int = 3) -> tuple[float, Any]:
    """Best wall time of ``repeat`` calls (no warm-up: call once before if needed).

    The CPU time of that call goes to ``LAST_CPU[0]``: on a shared machine ``n / cpu`` (work
    per CPU-second) x cores estimates the idle-machine rate.
    """
    best, out = float("inf"), None
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        if wall < best:
            best, LAST_CPU[0] = wall, cpu
    return best, out


def matmul_gflops(size: int = 2048) -> float:
    """Large float32 matmul GFLOP/s on all cores, measured now (sections call it right after
    their own timing so that both see the same machine load)."""
    rng = np.random.default_rng(0)
    a = rng.random((size, size), dtype=np.float32)
    a @ a
    t, _ = best_time(lambda: a @ a, repeat=3)
    return 2 * size**3 / t / 1e9


def machine() -> dict[str, Any]:
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return {"cpu_count": os.cpu_count(), "loadavg_1_5_15": [round(v, 2) for v in load]}


def devices() -> dict[str, Any]:
    """The CPU model, the Keras backend and its device (GPU names from nvidia-smi when present)."""
    import platform

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            cpu = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), cpu)
    except OSError:
        pass
    from plastics_core.models.infer import configure_devices

    tf_device = configure_devices()
    gpus: list[str] = []
    if tf_device.startswith("GPU"):
        import subprocess

        try:
            out = subprocess.run(
                ["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
                capture_output=True,
                text=True,
                timeout=30,
                check=True,
            ).stdout
            gpus = [ln.strip() for ln in out.splitlines() if ln.strip()]
        except (OSError, subprocess.SubprocessError):
            gpus = [tf_device]
    return {
        "cpu_model": cpu,
        "keras_backend": os.environ.get("KERAS_BACKEND", "tensorflow"),
        "tensorflow_device": tf_device,
        "gpus": gpus,
    }


def model_store() -> Any:
    """``$PLASTICS_MODEL_STORE``, else ``<repo>/../shared/models``."""
    from pathlib import Path

    from plastics_core.models import ModelStore

    default = Path(__file__).resolve().parents[1].parent / "shared" / "models"
    return ModelStore(os.environ.get("PLASTICS_MODEL_STORE") or str(default))


def write_results(results: dict[str, Any], out: Path) -> None:
    """Write ``results`` as sorted, indented JSON to ``out`` atomically (a temporary file beside
    it, then a rename), creating its folder; print the path."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=2, sort_keys=True, default=float) + "\n")
    os.replace(tmp, out)
    print(f"wrote {out}")
