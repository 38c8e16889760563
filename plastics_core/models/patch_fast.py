"""Shared-grid geometry and dense head of a GPW patch classifier over a whole composite.

Supported layouts: [Conv2D(valid, stride 1, relu) | MaxPooling2D(p x p, stride p, valid)]* ->
Flatten -> Dense(relu)* -> Dense(2, softmax); Dropout is inactive at inference. With total
pooling stride S (8 for the 45 px model: three 2x2 pools), windows placed every S pixels line
up exactly with every pooled grid, so the conv stack is computed ONCE over the image and the
window at (r, c) reads the final feature map at ``[r : r + fh, c : c + fw]`` (fh x fw = the
window's own final map, 3 x 3 for 45 px). Exact: same sums as the per-window model.

The conv stack itself is the caller's (:meth:`PatchNet.grid`'s ``features``): TensorFlow's
convs on the CPU path (2x numpy im2col convs on 2 cores), the compiled JAX grid
(:mod:`.compiled`) elsewhere. The head (dense layers) runs here in float32 numpy.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy.special import expit

from plastics_core.errors import ModelError

F32 = np.float32
#: Input pixels per block of window rows in :meth:`PatchNet.grid`.
BLOCK_PIXELS = 2_000_000


@dataclass(frozen=True)
class PatchNet:
    """Conv/pool stack + dense head read from a Keras patch model."""

    stack: tuple[tuple[str, Any, Any], ...]  # ("conv", k, b) | ("pool", p, None)
    dense: tuple[tuple[np.ndarray, np.ndarray], ...]  # hidden (W (in, out), b), relu
    head: tuple[np.ndarray, float]  # (w1 - w0 (in,), b1 - b0)
    total_stride: int
    final_hw: tuple[int, int]

    @classmethod
    def from_h5(cls, model: Any) -> PatchNet:
        """From an :class:`~plastics_core.models.h5weights.H5Model` (no TensorFlow)."""
        return cls.from_layers(
            [(la.kind, la.config, la.weights) for la in model.layers], model.input_shape[:2]
        )

    @classmethod
    def from_layers(
        cls, layers: Sequence[tuple[str, dict[str, Any], Sequence[np.ndarray]]], input_hw: tuple[int, int]
    ) -> PatchNet:
        """From ``(class name, config, weights)`` per layer and the input (height, width)."""
        stack: list[tuple[str, Any, Any]] = []
        dense: list[tuple[np.ndarray, np.ndarray]] = []
        stride = 1
        for kind, cfg, weights in layers:
            if kind in ("InputLayer", "Dropout", "Flatten"):
                continue
            if (
                kind == "Conv2D"
                and cfg["padding"] == "valid"
                and tuple(cfg["strides"]) == (1, 1)
                and tuple(cfg["dilation_rate"]) == (1, 1)
                and cfg["activation"] == "relu"
                and not dense
            ):
                k, b = weights
                stack.append(("conv", np.asarray(k, F32), np.asarray(b, F32)))
            elif (
                kind == "MaxPooling2D"
                and cfg["padding"] == "valid"
                and tuple(cfg["pool_size"]) == tuple(cfg["strides"] or cfg["pool_size"])
                and cfg["pool_size"][0] == cfg["pool_size"][1]
            ):
                p = int(cfg["pool_size"][0])
                stack.append(("pool", p, None))
                stride *= p
            elif kind == "Dense":
                wd, bd = weights
                dense.append((np.asarray(wd, F32), np.asarray(bd, F32)))
            else:
                raise ModelError(
                    f"patch model layer {cfg.get('name', kind)} ({kind}) is not supported by the fast path"
                )
        if not dense or dense[-1][0].shape[1] != 2:
            raise ModelError("patch model must end in a 2-class softmax Dense layer")
        h, w = int(input_hw[0]), int(input_hw[1])
        for op, a, _ in stack:
            h, w = (h - a.shape[0] + 1, w - a.shape[1] + 1) if op == "conv" else (h // a, w // a)
        wl, bl = dense[-1]
        head = ((wl[:, 1] - wl[:, 0]).astype(F32), float(bl[1] - bl[0]))
        return cls(tuple(stack), tuple(dense[:-1]), head, stride, (h, w))

    def head_predict(self, feats: np.ndarray) -> np.ndarray:
        """(n, fh*fw*F) flattened (row, col, channel) features -> (n,) float32 probabilities."""
        g = feats
        for w, b in self.dense:
            g = g @ w
            g += b
            np.maximum(g, np.zeros_like(b), out=g)
        probs: np.ndarray = expit(g @ self.head[0] + F32(self.head[1])).astype(F32)
        return probs

    def grid(
        self,
        xn: np.ndarray,
        rows: int,
        cols: int,
        window: int,
        features: Callable[[np.ndarray], np.ndarray],
    ) -> np.ndarray:
        """(rows, cols) scores of windows placed every ``total_stride`` px over normalized ``xn``.

        ``features`` computes the model's conv stack (final feature map (h', w', F)) of a
        normalized (h, w, c) block (the classifier passes a compiled TensorFlow one). Blocks of
        window rows bound memory to about ``BLOCK_PIXELS`` input pixels.
        """
        s = self.total_stride
        fh, fw = self.final_hw
        out = np.empty((rows, cols), F32)
        width = s * (cols - 1) + window
        band = max(1, (BLOCK_PIXELS // width - window) // s + 1)
        for r0 in range(0, rows, band):
            r1 = min(rows, r0 + band)
            sub = xn[s * r0 : s * (r1 - 1) + window, :width]
            fmap = features(sub)
            win = sliding_window_view(fmap, (fh, fw), axis=(0, 1))[: r1 - r0, :cols]
            flat = win.transpose(0, 1, 3, 4, 2).reshape((r1 - r0) * cols, -1)
            out[r0:r1] = self.head_predict(np.ascontiguousarray(flat)).reshape(r1 - r0, cols)
        return out
