"""One compiled inference path (JAX, ``jax.jit``) for the pixel models, the ensemble and the
patch classifier's conv grid, built from the ``.h5`` files alone (no TensorFlow).

Shapes are bucketed so nothing recompiles per tile: pixel batches are padded to
:func:`bucket` (at least 4,096, multiples of 1,024, at most 1/8 above ``n`` past 8,192;
inputs over :data:`CALL_PIXELS` go in several calls); composites to :func:`shape_bucket`
(height and width up to multiples of 32 px). One compile per (bucket, input dtype, precision). Inside a call, pixels run through
the model in sequential chunks (:func:`device_chunk`: 2^18 on a GPU, 2^14 on the CPU) to
bound device memory.

Data movement: DN travel as uint16 when they are whole numbers in 0..65535 (:func:`to_dn`;
else float32) and are normalized on the device; spectrogram pairs are built on the device
from two uploaded composites (:meth:`CompiledPixel.predict_composites`), never as an
(n, 12, 2) float32 host array. Every batch is enqueued (copy + jitted call) before the first
result is read back; JAX dispatches asynchronously, so on a GPU the host-side padding and
host-to-device copy of batch k+1 can overlap the compute of batch k (a tile's composites are
uploaded once, then every pair and the patch grid run back to back before any read-back:
:func:`tile_span`). On the CPU backend there is nothing to overlap.

Precision: ``exact`` (default; fp32, HIGHEST) or ``fast`` (bf16 operands, fp32 accumulation),
chosen per call or by ``$PLASTICS_INFER_PRECISION`` read at call time (:func:`precision`).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from plastics_core.errors import ModelError
from plastics_core.models.device import precision
from plastics_core.models.h5weights import H5Model
from plastics_core.models.jax_nets import (
    ensemble_forward,
    map_chunks,
    pairs_from_composites,
    patch_features,
    patch_head,
    patch_params,
    pixel_params,
    stack_params,
)

MIN_BUCKET = 4096
#: Pixels per host call of :meth:`CompiledPixel.predict` (each call one bucketed shape).
CALL_PIXELS = 1 << 21
#: Shape quantum (px) of :func:`shape_bucket`.
SHAPE_QUANTUM = 32


def bucket(n: int) -> int:
    """Padded batch size for ``n`` pixels: a multiple of 2^max(10, ceil(log2 n) - 4), at least
    :data:`MIN_BUCKET` (16 buckets per octave: <= 12.5 % padding past 8,192)."""
    if n <= MIN_BUCKET:
        return MIN_BUCKET
    step = 1 << max(10, (n - 1).bit_length() - 4)
    return -(-n // step) * step


def shape_bucket(h: int, w: int, q: int = SHAPE_QUANTUM) -> tuple[int, int]:
    """(h, w) rounded up to multiples of ``q``."""
    return -(-h // q) * q, -(-w // q) * q


def on_gpu() -> bool:
    """Whether JAX's default backend is an accelerator (``gpu``/``cuda``/``rocm``/``tpu``)."""
    return jax.default_backend() != "cpu"


def device_chunk(n: int) -> int:
    """Pixels per sequential chunk inside one call of ``n`` (a power-of-two divisor of ``n`` when split)."""
    cap = 1 << (18 if on_gpu() else 14)
    return n if n <= cap else min(cap, n & -n)


def to_dn(x: np.ndarray) -> np.ndarray:
    """``x`` as uint16 when every value is a whole number in 0..65535 (half the bytes), else float32."""
    if x.dtype == np.uint16:
        return x
    x = np.asarray(x, np.float32)
    u = x.astype(np.uint16)
    return u if np.array_equal(u, x) else x


def upload(data: np.ndarray, mask: np.ndarray | None = None) -> tuple[Any, tuple[int, int]]:
    """A composite (c, h, w) DN -> (device array (c, hb, wb) zero-padded, uint16 when exact; (h, w)).

    Pixels where ``mask`` (h, w) is True are set to DN 0 (as :mod:`plastics_core.method.patches` does)."""
    dn = to_dn(np.asarray(data))
    c, h, w = dn.shape
    hb, wb = shape_bucket(h, w)
    buf = np.zeros((c, hb, wb), dn.dtype)
    buf[:, :h, :w] = dn
    if mask is not None:
        buf[:, :h, :w][:, mask] = 0
    return jax.device_put(buf), (h, w)


def cache_size(fn: Any) -> int:
    """Number of compiled specializations of a ``jax.jit`` function (0 if unknown)."""
    size = getattr(fn, "_cache_size", None)
    return int(size()) if callable(size) else 0


@partial(jax.jit, static_argnames=("fast", "chunk"))
def _pixels(p: Any, x: Any, fast: bool, chunk: int) -> Any:
    return map_chunks(lambda c: ensemble_forward(p, c, fast), x, chunk)


@partial(jax.jit, static_argnames=("fast", "chunk"))
def _pixel_pair(p: Any, a: Any, b: Any, fast: bool, chunk: int) -> Any:
    return map_chunks(lambda c: ensemble_forward(p, c, fast), pairs_from_composites(a, b), chunk)


class CompiledPixel:
    """One pixel model or an ensemble (models sharing nothing but the input) on the JAX path."""

    pixels_fn = _pixels
    pair_fn = _pixel_pair

    def __init__(self, models: Sequence[H5Model], norms: Sequence[tuple[np.ndarray, np.ndarray]]):
        if not models:
            raise ModelError("no pixel models given to the compiled path")
        self.n_models = len(models)
        self.params = jax.device_put(
            stack_params([pixel_params(m, s, d) for m, (s, d) in zip(models, norms, strict=True)])
        )

    def predict(self, x: np.ndarray, prec: str | None = None) -> np.ndarray:
        """``x`` (n, 12, 2) DN -> (n_models, n) float32 probabilities."""
        fast = precision(prec) == "fast"
        n = len(x)
        if n == 0:
            return np.zeros((self.n_models, 0), np.float32)
        pending = []
        for s in range(0, n, CALL_PIXELS):
            part = to_dn(x[s : s + CALL_PIXELS])
            k = len(part)
            nb = bucket(k)
            buf = np.zeros((nb, *part.shape[1:]), part.dtype)
            buf[:k] = part
            pending.append((_pixels(self.params, buf, fast=fast, chunk=device_chunk(nb)), k))
        return np.concatenate([np.asarray(o)[:, :k] for o, k in pending], axis=1)

    def predict_uploaded(self, a: Any, b: Any, prec: str | None = None) -> Any:
        """Device composites (12, hb, wb) x2 (:func:`upload`) -> device (n_models, hb * wb) (not awaited)."""
        n = a.shape[1] * a.shape[2]
        return _pixel_pair(self.params, a, b, fast=precision(prec) == "fast", chunk=device_chunk(n))

    def predict_composites(self, a: np.ndarray, b: np.ndarray, prec: str | None = None) -> np.ndarray:
        """Composites ``a``, ``b`` (12, h, w) DN -> (n_models, h, w) float32 (every pixel, masked too)."""
        (da, (h, w)), (db, _) = upload(a), upload(b)
        out = np.asarray(self.predict_uploaded(da, db, prec))
        return out.reshape(self.n_models, da.shape[1], da.shape[2])[:, :h, :w]


@partial(jax.jit, static_argnames=("layout", "window", "stride", "final", "fast"))
def _patch_grid(
    p: Any, img: Any, layout: tuple[Any, ...], window: int, stride: int, final: tuple[int, int], fast: bool
) -> Any:
    fmap = patch_features(p, layout, img, fast)
    rows, cols = (img.shape[1] - window) // stride + 1, (img.shape[2] - window) // stride + 1
    return patch_head(p, fmap, rows, cols, final[0], final[1], fast)


class CompiledPatch:
    """The patch classifier's conv grid: every window at the model's total pooling stride."""

    grid_fn = _patch_grid

    def __init__(self, model: H5Model, sub: np.ndarray, div: np.ndarray):
        self.window, _, self.channels = model.input_shape
        p, self.layout = patch_params(model, sub, div)
        self.params = jax.device_put(p)
        h = self.window
        self.stride = 1
        convs = iter(p["convs"])
        for op in self.layout:
            if op[0] == "conv":
                h -= next(convs)[0].shape[0] - 1
            else:
                h, self.stride = h // op[1], self.stride * op[1]
        self.final = (h, h)

    def grid_uploaded(self, img: Any, prec: str | None = None) -> Any:
        """Device image (channels, hb, wb) -> device (rows_b, cols_b) scores (not awaited)."""
        return _patch_grid(
            self.params, img, self.layout, self.window, self.stride, self.final, precision(prec) == "fast"
        )

    def grid(self, img: np.ndarray, prec: str | None = None) -> np.ndarray:
        """``img`` (channels, h, w) DN -> (rows, cols) float32 scores of windows every ``stride`` px."""
        _, h, w = img.shape
        rows, cols = (h - self.window) // self.stride + 1, (w - self.window) // self.stride + 1
        if rows <= 0 or cols <= 0:
            return np.zeros((max(rows, 0), max(cols, 0)), np.float32)
        dev, _ = upload(img)
        return np.asarray(self.grid_uploaded(dev, prec))[:rows, :cols]


def tile_span(
    composites: Sequence[tuple[np.ndarray, np.ndarray]],
    pairs: Sequence[tuple[int, int]],
    pixel: CompiledPixel,
    patch: CompiledPatch,
    prec: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """One tile on the device: composites ``(data (12, h, w) DN, mask (h, w) bool)`` uploaded once;
    per pair the pixel heatmap (model 0; NaN where either composite is masked) and the patch grid
    (12-channel model: the pair's first composite; 24: both, concatenated).

    Returns (heat (n_pairs, h, w), grids (n_pairs, rows, cols)) float32 on the host."""
    up = [upload(d, m)[0] for d, m in composites]
    h, w = composites[0][1].shape
    rows, cols = (h - patch.window) // patch.stride + 1, (w - patch.window) // patch.stride + 1
    heat_dev, grid_dev = [], []
    for a, b in pairs:
        heat_dev.append(pixel.predict_uploaded(up[a], up[b], prec)[0])
        img = up[a] if patch.channels == up[a].shape[0] else jnp.concatenate([up[a], up[b]], axis=0)
        if rows > 0 and cols > 0:
            grid_dev.append(patch.grid_uploaded(img, prec))
    hb, wb = up[0].shape[1:]
    heat = (
        np.stack([np.asarray(d).reshape(hb, wb)[:h, :w] for d in heat_dev])
        if pairs
        else np.zeros((0, h, w), np.float32)
    )
    for k, (a, b) in enumerate(pairs):
        heat[k][composites[a][1] | composites[b][1]] = np.nan
    grids = (
        np.stack([np.asarray(g)[:rows, :cols] for g in grid_dev])
        if grid_dev
        else np.zeros((len(pairs), max(rows, 0), max(cols, 0)), np.float32)
    )
    return heat, grids
