"""Float64 numpy reference forward passes read straight from the ``.h5`` layers (no TensorFlow).

The exactness reference where Keras is not installed (a GPU worker): layer by layer as Keras
defines them (valid Conv2D with stride 1, MaxPooling2D, Flatten in (row, col, channel) order,
Dense, relu / softmax), in float64. Slow: for checks on a few thousand pixels or windows.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from plastics_core.errors import ModelError
from plastics_core.models.h5weights import H5Model


def _conv(x: np.ndarray, k: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Valid conv: x (n, H, W, C), k (kh, kw, C, F) -> (n, H-kh+1, W-kw+1, F)."""
    kh, kw = k.shape[:2]
    win = sliding_window_view(x, (kh, kw), axis=(1, 2))  # (n, Ho, Wo, C, kh, kw)
    out: np.ndarray = np.einsum("nhwcij,ijcf->nhwf", win, k.astype(np.float64), optimize=True) + b
    return out


def forward(model: H5Model, xn: np.ndarray) -> np.ndarray:
    """Normalized input (n, *input_shape) -> (n,) float64 class-1 softmax probability."""
    x = np.asarray(xn, np.float64)
    for la in model.layers:
        c = la.config
        if la.kind == "Conv2D":
            if c.get("padding") != "valid" or tuple(c.get("strides", (1, 1))) != (1, 1):
                raise ModelError(f"reference: unsupported Conv2D config in {la.name}")
            x = _conv(x, la.weights[0], la.weights[1].astype(np.float64))
        elif la.kind == "MaxPooling2D":
            p = int(c["pool_size"][0])
            n, h, w, f = x.shape
            x = x[:, : h // p * p, : w // p * p].reshape(n, h // p, p, w // p, p, f).max(axis=(2, 4))
            continue
        elif la.kind == "Flatten":
            x = x.reshape(len(x), -1)
            continue
        elif la.kind == "Dense":
            x = x @ la.weights[0].astype(np.float64) + la.weights[1].astype(np.float64)
        elif la.kind == "Dropout":
            continue
        else:
            raise ModelError(f"reference: unsupported layer {la.name} ({la.kind})")
        act = c.get("activation")
        if act == "relu":
            x = np.maximum(x, 0.0)
        elif act == "softmax":
            e = np.exp(x - x.max(axis=-1, keepdims=True))
            x = e / e.sum(axis=-1, keepdims=True)
        elif act not in (None, "linear"):
            raise ModelError(f"reference: unsupported activation {act!r} in {la.name}")
    return x[:, 1]


def normalize64(x: np.ndarray, sub: np.ndarray, div: np.ndarray, band_axis: int) -> np.ndarray:
    """``(x - sub) / div`` per band in float64 (``sub``/``div`` (12,), broadcast along ``band_axis``)."""
    shape = [1] * x.ndim
    shape[band_axis] = -1
    return (np.asarray(x, np.float64) - np.asarray(sub, np.float64).reshape(shape)) / np.asarray(
        div, np.float64
    ).reshape(shape)
