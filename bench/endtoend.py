"""Benchmark: end-to-end seconds and peak RSS per 1000 x 1000 px tile pair.

One tile pair = two stacks of ``scenes`` L1C scenes (12 bands, uint16 DN, 30 % of pixels
cloud-masked per scene, EPSG:32750, 10 m) -> two ``min`` composites -> the pixel heatmap (one
pair + median band) -> patch-classifier scores at stride 8. Imagery reads are not included (the
stacks are generated in memory first). ``run()`` measures in a fresh subprocess so that peak RSS
(``VmHWM``: models, TensorFlow and arrays together) belongs to this work alone; target <= 2 GB.
"""

from __future__ import annotations

import datetime as dt
import json
import resource
import subprocess
import sys
import time
from typing import Any

import numpy as np
from affine import Affine

from bench.common import model_store, realistic_dn


def _stack(size: int, scenes: int, start: dt.date, seed: int) -> Any:
    from plastics_core.geo.scenes import SceneStack

    rng = np.random.default_rng(seed)
    base = realistic_dn((12, size, size), band_axis=0, seed=seed)
    data = np.empty((scenes, 12, size, size), dtype=np.uint16)
    for t in range(scenes):
        noise = rng.normal(0.0, 60.0, (12, size, size)).astype(np.float32)
        np.clip(base + noise, 1, 10000, out=noise)
        data[t] = noise
    mask = rng.random((scenes, size, size)) < 0.3
    dates = tuple(start + dt.timedelta(days=5 * t) for t in range(scenes))
    return SceneStack(data, mask, "EPSG:32750", Affine(10, 0, 500_000, 0, -10, 9_100_000), dates)


def measure(size: int = 1000, scenes: int = 6) -> dict[str, Any]:
    """In this process: build inputs, load models, time one tile pair; returns seconds + peak RSS."""
    from plastics_core.geo.periods import Period
    from plastics_core.method.composite import composite
    from plastics_core.method.heatmap import pixel_heatmap
    from plastics_core.method.patches import patch_scores
    from plastics_core.models import DEFAULT_MODEL, DEFAULT_PATCH_MODEL
    from plastics_core.models.infer import PixelClassifier
    from plastics_core.models.patch_classifier import PatchClassifier

    periods = (
        Period(dt.date(2021, 1, 1), dt.date(2021, 4, 1)),
        Period(dt.date(2021, 7, 1), dt.date(2021, 10, 1)),
    )
    stacks = [_stack(size, scenes, p.start, 11 + k) for k, p in enumerate(periods)]
    store = model_store()
    t0 = time.perf_counter()
    pixel = PixelClassifier.from_ref(store.resolve(DEFAULT_MODEL))
    patch = PatchClassifier.from_ref(store.resolve(DEFAULT_PATCH_MODEL))
    load_s = time.perf_counter() - t0
    out: dict[str, Any] = {"size": size, "scenes_per_period": scenes, "model_load_s": round(load_s, 3)}
    for run in ("warm-up", "timed"):
        t = {"start": time.perf_counter()}
        comps = [composite(s, p, "min") for s, p in zip(stacks, periods, strict=True)]
        t["composites"] = time.perf_counter()
        heat = pixel_heatmap(comps, [(0, 1)], pixel)
        t["heatmap"] = time.perf_counter()
        patches = patch_scores(comps, [(0, 1)], patch, 8, 0.1)
        t["patches"] = time.perf_counter()
        if run == "timed":
            out.update(
                composites_s=round(t["composites"] - t["start"], 3),
                heatmap_s=round(t["heatmap"] - t["composites"], 3),
                patches_s=round(t["patches"] - t["heatmap"], 3),
                total_s=round(t["patches"] - t["start"], 3),
                heatmap_valid_px=int(np.isfinite(heat.data[0]).sum()), patch_windows=len(patches),
            )  # fmt: skip
    out["peak_rss_mb"] = round(peak_rss_kb() / 1024, 1)
    return out


def peak_rss_kb() -> int:
    """This process's peak resident set size in KiB: ``VmHWM`` of /proc/self/status (it belongs to
    the current address space; ``ru_maxrss`` can carry a parent's peak across fork + exec)."""
    try:
        for line in open("/proc/self/status", encoding="ascii"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def run(size: int = 1000, scenes: int = 6) -> dict[str, Any]:
    """Run :func:`measure` in a fresh interpreter; adds a table row (seconds per tile pair)."""
    code = f"import json, bench.endtoend as e; print(json.dumps(e.measure({size}, {scenes})))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    result["within_2gb"] = result["peak_rss_mb"] <= 2048
    result["rows"] = [
        {
            "case": f"end-to-end {size}x{size} tile pair (s; peak {result['peak_rss_mb']:.0f} MB)",
            "rate": result["total_s"],
            "unit": "s",
        }
    ]
    return result


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
