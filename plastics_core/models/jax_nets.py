"""JAX forward passes of the GPW models, built from the ``.h5`` layers (:mod:`.h5weights`).

Pure functions of (params, inputs); :mod:`.compiled` jits them with fixed shapes. Inputs are
DN (uint16 or float32; cast to float32 on the device) and normalized on the device with the
same float32 ops as :func:`plastics_core.geo.bands.normalize` (``(x - sub) / div``).

Precision (static argument ``fast``):

- exact (``fast=False``): float32 operands, ``precision=HIGHEST`` (true fp32 products also on
  GPUs whose default would be TF32); agrees with Keras ``predict`` within 1e-5;
- fast (``fast=True``): bfloat16 operands with float32 accumulation
  (``preferred_element_type=float32``) for the heavy products only: the pixel model's conv2 and
  first dense layer (87 % of its FLOPs) and the patch model's convolutions. The small layers
  (pixel conv1, the later dense layers, every head) stay fp32 at HIGHEST: on 100,000 bench
  pixels this cut the worst |fast - exact| of the 7 pixel models from 0.146 to 0.047.
  Normalization, biases, relu and the softmax are fp32 throughout.

Pixel model, per pixel (layout (n, features)): x (12 bands, 2 dates) -> conv1 (3 x 2 kernel,
16 filters) as one (24, 160) matrix -> relu -> conv2 (3 x 1, 32 filters) as a product of the
(n, 8 positions, 48) windows with the (48, 32) kernel -> relu -> Flatten (position, filter) ->
Dense relu x3 -> Dense(2) -> softmax column 1 = ``sigmoid(z1 - z0)``. 47,104 FLOP per pixel.

Patch model: Conv2D(valid) / MaxPooling2D layers over a whole image (NHWC), then every
window's final (fh, fw, F) block flattened (row, col, channel) through the dense head.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from plastics_core.errors import ModelError
from plastics_core.models.h5weights import H5Model

F32 = jnp.float32
BF16 = jnp.bfloat16
HIGHEST = lax.Precision.HIGHEST
Params = dict[str, Any]


def _dot(a: Any, w: Any, fast: bool, spec: str | None = None) -> Any:
    """``a @ w`` (or einsum ``spec``) in the chosen precision, float32 result."""
    if fast:
        a, w = a.astype(BF16), w.astype(BF16)
        prec = None
    else:
        prec = HIGHEST
    if spec is None:
        return jnp.matmul(a, w, precision=prec, preferred_element_type=F32)
    return jnp.einsum(spec, a, w, precision=prec, preferred_element_type=F32)


def pixel_params(model: H5Model, sub: np.ndarray, div: np.ndarray) -> Params:
    """Arrays of one pixel model (float32): normalization (12, 2) and the layer weights."""
    conv = [la for la in model.layers if la.kind == "Conv2D"]
    dense = [la for la in model.layers if la.kind == "Dense"]
    if (
        model.input_shape != (12, 2, 1)
        or len(conv) != 2
        or len(dense) < 2
        or dense[-1].weights[0].shape[1] != 2
    ):
        raise ModelError(
            f"pixel model input {model.input_shape} / layers {[la.kind for la in model.layers]}: "
            "not a GPW spectrogram model (Conv2D x2, Dense..., Dense(2))"
        )
    (k1, b1), (k2, b2) = (la.weights for la in conv)
    kh1, nt, _, f1 = k1.shape
    kh2, _, _, f2 = k2.shape
    p1 = 12 - kh1 + 1
    w1 = np.zeros((12, nt, p1, f1), np.float32)  # input index (band, date) -> (position, filter)
    for p in range(p1):
        w1[p : p + kh1, :, p, :] = k1[:, :, 0, :]
    return {
        "sub": np.asarray(sub, np.float32).reshape(12, 2),
        "div": np.asarray(div, np.float32).reshape(12, 2),
        "w1": w1.reshape(12 * nt, p1 * f1),
        "b1": np.tile(b1, p1).astype(np.float32),
        "k2": k2[:, 0].reshape(kh2 * f1, f2).astype(np.float32),
        "b2": b2.astype(np.float32),
        "dense": [(w.astype(np.float32), b.astype(np.float32)) for w, b in (la.weights for la in dense)],
    }


def stack_params(params: list[Params]) -> Params:
    """Several pixel models' params stacked on a leading model axis (for :func:`ensemble_forward`)."""
    stacked: Params = jax.tree_util.tree_map(lambda *a: np.stack(a), *params)
    return stacked


def pixel_forward(p: Params, x: Any, fast: bool) -> Any:
    """``x`` (n, 12, 2) DN -> (n,) float32 class-1 probability of one pixel model."""
    n = x.shape[0]
    xn = (x.astype(F32) - p["sub"]) / p["div"]
    g = jax.nn.relu(_dot(xn.reshape(n, 24), p["w1"], False) + p["b1"])  # fp32 in fast too (4 % of FLOPs)
    f1 = p["k2"].shape[0] // 3
    g = g.reshape(n, -1, f1)
    p2 = g.shape[1] - 2
    win = jnp.concatenate([g[:, k : k + p2] for k in range(3)], axis=2)  # (n, P2, 3 * F1), (k, filter)
    g = jax.nn.relu(_dot(win, p["k2"], fast, "npk,kf->npf") + p["b2"]).reshape(n, -1)
    *hidden, (wl, bl) = p["dense"]
    for i, (w, b) in enumerate(hidden):  # fast: bf16 for the first (256 x 32) dense layer only
        g = jax.nn.relu(_dot(g, w, fast and i == 0) + b)
    z = _dot(g, wl, False) + bl
    return jax.nn.sigmoid(z[:, 1] - z[:, 0])


def ensemble_forward(p: Params, x: Any, fast: bool) -> Any:
    """Stacked params (:func:`stack_params`) on one ``x`` (n, 12, 2) -> (n_models, n)."""
    return jax.vmap(pixel_forward, in_axes=(0, None, None))(p, x, fast)


def pairs_from_composites(a: Any, b: Any) -> Any:
    """Two composites (12, h, w) -> (h * w, 12, 2) pixel spectra, row-major (on the device)."""
    x = jnp.stack([a, b], axis=-1)  # (12, h, w, 2)
    return jnp.moveaxis(x, 0, 2).reshape(-1, a.shape[0], 2)


def map_chunks(fn: Any, x: Any, chunk: int) -> Any:
    """``fn`` over ``x``'s leading axis in sequential chunks (bounds device memory); the last
    axis of ``fn``'s output is the pixel axis. ``len(x)`` must be a multiple of ``chunk``."""
    n = x.shape[0]
    if n <= chunk:
        return fn(x)
    out = lax.map(fn, x.reshape(n // chunk, chunk, *x.shape[1:]))  # (k, ..., chunk)
    return jnp.moveaxis(out, 0, -2).reshape(*out.shape[1:-1], n)


def patch_params(model: H5Model, sub: np.ndarray, div: np.ndarray) -> tuple[Params, tuple[Any, ...]]:
    """(arrays, static layout) of a patch model: ``layout`` = (("conv",) | ("pool", p), ...)."""
    stack: list[tuple[np.ndarray, np.ndarray]] = []
    layout: list[tuple[Any, ...]] = []
    dense: list[tuple[np.ndarray, np.ndarray]] = []
    for la in model.layers:
        c = la.config
        if la.kind in ("Dropout", "Flatten"):
            continue
        if (
            la.kind == "Conv2D"
            and c.get("padding") == "valid"
            and tuple(c.get("strides", (1, 1))) == (1, 1)
            and tuple(c.get("dilation_rate", (1, 1))) == (1, 1)
            and c.get("activation") == "relu"
            and not dense
        ):
            stack.append((la.weights[0].astype(np.float32), la.weights[1].astype(np.float32)))
            layout.append(("conv",))
        elif (
            la.kind == "MaxPooling2D"
            and c.get("padding") == "valid"
            and tuple(c["pool_size"]) == tuple(c.get("strides") or c["pool_size"])
            and c["pool_size"][0] == c["pool_size"][1]
        ):
            layout.append(("pool", int(c["pool_size"][0])))
        elif la.kind == "Dense" and c.get("activation") in ("relu", "softmax"):
            dense.append((la.weights[0].astype(np.float32), la.weights[1].astype(np.float32)))
        else:
            raise ModelError(f"patch model layer {la.name} ({la.kind}) is not supported by the compiled path")
    if not dense or dense[-1][0].shape[1] != 2:
        raise ModelError("patch model must end in a 2-class softmax Dense layer")
    p = {
        "sub": np.asarray(sub, np.float32),
        "div": np.asarray(div, np.float32),
        "convs": stack,
        "dense": dense,
    }
    return p, tuple(layout)


def patch_features(p: Params, layout: tuple[Any, ...], img: Any, fast: bool) -> Any:
    """``img`` (12 * k, h, w) DN (channels first, as composites) -> final feature map (H', W', F)."""
    x = jnp.moveaxis(img.astype(F32), 0, -1)
    x = ((x - p["sub"]) / p["div"])[None]
    convs = iter(p["convs"])
    for op in layout:
        if op[0] == "conv":
            k, b = next(convs)
            lhs, rhs = (x.astype(BF16), k.astype(BF16)) if fast else (x, k)
            x = lax.conv_general_dilated(
                lhs,
                rhs,
                (1, 1),
                "VALID",
                dimension_numbers=("NHWC", "HWIO", "NHWC"),
                precision=None if fast else HIGHEST,
                preferred_element_type=F32,
            )
            x = jax.nn.relu(x + b)
        else:
            q = op[1]
            x = lax.reduce_window(x, -jnp.inf, lax.max, (1, q, q, 1), (1, q, q, 1), "VALID")
    return x[0]


def patch_head(p: Params, fmap: Any, rows: int, cols: int, fh: int, fw: int, fast: bool) -> Any:
    """Window (r, c) reads ``fmap[r:r+fh, c:c+fw]`` (flattened row, col, channel) -> (rows, cols)."""
    g = jnp.concatenate([fmap[i : i + rows, j : j + cols] for i in range(fh) for j in range(fw)], axis=-1)
    *hidden, (wl, bl) = p["dense"]
    for w, b in hidden:  # the head is fp32 in both precisions (a small share of the grid's FLOPs)
        g = jax.nn.relu(_dot(g, w, False) + b)
    z = _dot(g, wl, False) + bl
    return jax.nn.sigmoid(z[..., 1] - z[..., 0])
