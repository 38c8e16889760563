"""Benchmark: sparse/windowed ``detect_blobs`` vs one whole-raster ``skimage`` blob_doh call.

``run()`` builds a seeded 10,000 x 10,000 heatmap (EPSG:32750, 10 m) with ``n_blobs``
scattered Gaussian sites, times :func:`plastics_core.method.blobs.detect_blobs` (target <= 10 s on
2 cores) and, when ``baseline`` is true, ``blob_doh`` on the whole thresholded raster
(float32, as a naive caller would run it; ~10 GB peak memory), and compares the blob sets.
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np
from affine import Affine
from skimage.feature import blob_doh

from plastics_core.geo.raster import Raster
from plastics_core.method.blobs import BlobParams, detect_blobs, threshold_heatmap


def synthetic_heatmap(size: int = 10_000, n_blobs: int = 200, seed: int = 0) -> np.ndarray:
    """(size, size) float32 heatmap: NaN-free background ~U(0, 0.3) with ``n_blobs`` Gaussian sites."""
    rng = np.random.default_rng(seed)
    img = (rng.random((size, size), dtype=np.float32) * np.float32(0.3)).astype(np.float32)
    for _ in range(n_blobs):
        r, c = rng.integers(64, size - 64, 2)
        s, peak = rng.uniform(3.0, 9.0), rng.uniform(0.7, 1.0)
        h = int(4 * s) + 1
        yy, xx = np.mgrid[-h : h + 1, -h : h + 1]
        g = (peak * np.exp(-(yy**2 + xx**2) / (2 * s * s))).astype(np.float32)
        sub = img[r - h : r + h + 1, c - h : c + h + 1]
        np.maximum(sub, g, out=sub)
    return img


def run(size: int = 10_000, n_blobs: int = 200, seed: int = 0, baseline: bool = True) -> dict[str, Any]:
    """Time sparse vs whole-raster blob detection; returns a JSON-able dict of numbers."""
    params = BlobParams()
    img = synthetic_heatmap(size, n_blobs, seed)
    raster = Raster(img[None], "EPSG:32750", Affine(10, 0, 300_000, 0, -10, 9_100_000), ("median",))
    t0 = time.perf_counter()
    blobs = detect_blobs(raster, params)
    sparse_s = time.perf_counter() - t0
    result: dict[str, Any] = {
        "size": size, "n_planted": n_blobs, "cpu_count": os.cpu_count(),
        "sparse_s": round(sparse_s, 3), "sparse_n_blobs": len(blobs), "target_s": 10.0,
        "sparse_within_target": sparse_s <= 10.0,
    }  # fmt: skip
    if baseline:
        t0 = time.perf_counter()
        whole = np.asarray(
            blob_doh(threshold_heatmap(img, params.pred_threshold), min_sigma=params.min_sigma,
                     max_sigma=params.max_sigma, threshold=params.area_threshold)
        )  # fmt: skip
        whole_s = time.perf_counter() - t0
        a = {(int(r), int(c)) for r, c in zip(blobs["row"], blobs["col"], strict=True)}
        b = {(int(r), int(c)) for r, c, _ in whole}
        result.update(
            whole_s=round(whole_s, 3), whole_n_blobs=len(whole), speedup=round(whole_s / sparse_s, 1),
            same_blobs=a == b, only_sparse=len(a - b), only_whole=len(b - a),
        )  # fmt: skip
    rows = [
        {
            "case": f"blobs {size}x{size}, {n_blobs} sites: sparse (s)",
            "rate": sparse_s,
            "unit": "s",
            **({"vs_baseline": result["speedup"]} if baseline else {}),
        }
    ]
    if baseline:
        rows.insert(
            0, {"case": "blobs: whole-raster skimage blob_doh (s)", "rate": result["whole_s"], "unit": "s"}
        )
    result["rows"] = rows
    return result


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))
