"""Inference with the GPW Keras models (the ONLY module that imports TensorFlow/Keras, lazily).

Models: Global Plastic Watch, Earthrise Media, CC BY-NC 4.0. Inputs are Sentinel-2 L1C DN
(reflectance x 10000) float32 in :data:`plastics_core.bands.BAND_NAMES` order; normalization
comes from the :class:`ModelRef`. Outputs are float32 waste probabilities (softmax column 1).

Fast exact paths (equal to ``keras.Model.predict`` within 1e-5):

- pixel models (input (12, 2, 1)): the weights are read once and run as float32 numpy matrix
  products in a transposed ``(features, pixels)`` layout (:mod:`.pixel_fast`): conv1 as one
  (160 x 24) matrix, conv2 as 8 shared (32 x 48) products on contiguous row slices, then the
  dense layers; softmax column 1 = ``sigmoid(z1 - z0)``. An ensemble shares one normalization
  and one stacked conv1 product per chunk, in chunks of 2048 pixels on one thread per core.
  Where the Keras backend sees a GPU they run as direct Keras calls in batches of 262,144 on it
  instead (TF32 off; ``$PLASTICS_PIXEL_DEVICE`` = auto | cpu | keras, see :func:`use_keras_path`).
- patch models: :meth:`PatchClassifier.predict` runs windows through a ``tf.function`` (fixed
  signature, batches of 1024); :meth:`PatchClassifier.predict_grid` runs the conv/pool layers
  once over blocks of a composite and reads every stride-8 window from the shared feature map
  (:mod:`.patch_fast`; exact: three valid 2x2 poolings keep stride-8 windows aligned).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np

from plastics_core.bands import BAND_NAMES, UNIT_NORM_MEAN, UNIT_NORM_STD, normalize
from plastics_core.errors import ModelError
from plastics_core.models.patch_fast import PatchNet
from plastics_core.models.pixel_fast import PixelNet, check_pixels, run_chunked
from plastics_core.models.store import ModelRef
from plastics_core.threads import blas_single, usable_threads

NB = len(BAND_NAMES)


@lru_cache(maxsize=1)
def configure_devices() -> str:
    """TensorFlow's devices, once per process: every visible GPU with memory growth on (so
    several worker processes can share a GPU instead of the first one taking all its memory),
    else the CPU. Returns ``"GPU:<n>"`` or ``"CPU"``. :func:`load_keras` calls it first."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow":
        return _other_backend_device(os.environ["KERAS_BACKEND"])
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:  # exact float32 on Ampere+ GPUs too (TF32 would break the 1e-5 agreement)
        tf.config.experimental.enable_tensor_float_32_execution(False)
    for gpu in gpus:
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:  # devices already initialised in this process: growth cannot change now
            pass
    return f"GPU:{len(gpus)}" if gpus else "CPU"


def _other_backend_device(backend: str) -> str:
    """Device of a non-TensorFlow Keras backend (``KERAS_BACKEND=torch`` or ``jax``): only the
    Keras reference path (:func:`keras_predict`) uses it; the fast paths are numpy either way."""
    if backend == "torch":
        import torch

        n = torch.cuda.device_count()
        torch.backends.cuda.matmul.allow_tf32 = False  # exact float32 (see above)
        torch.backends.cudnn.allow_tf32 = False
    elif backend == "jax":
        import jax

        n = len([d for d in jax.devices() if d.platform == "gpu"])
    else:
        n = 0
    return f"GPU:{n}" if n else "CPU"


@lru_cache(maxsize=16)
def load_keras(path: str) -> Any:
    """``keras.models.load_model(path, compile=False)``, cached per path (devices configured first)."""
    configure_devices()
    import keras

    try:
        return keras.models.load_model(path, compile=False)
    except Exception as exc:  # unreadable / not a Keras model
        raise ModelError(f"cannot load model {path} ({exc.__class__.__name__}): re-pull it from the store") from exc


def _normalize_channels_last(ref: ModelRef, x: np.ndarray) -> np.ndarray:
    """Normalize (..., c) DN with c = k * 12 (k composites concatenated band-last), float32."""
    c = x.shape[-1]
    y = x.reshape(*x.shape[:-1], c // NB, NB)
    return normalize(y, ref.normalization, band_axis=y.ndim - 1).reshape(x.shape)


def keras_predict(ref: ModelRef, x: np.ndarray, batch_size: int = 32) -> np.ndarray:
    """Reference path: normalize and run ``model.predict``; pixel ``x`` (n, 12, 2), patch (n, h, w, c)."""
    model = load_keras(str(ref.path))
    x = np.asarray(x, dtype=np.float32)
    if ref.kind == "pixel":
        xn = normalize(x, ref.normalization, band_axis=1)[..., None]
    else:
        xn = _normalize_channels_last(ref, x)
    out = model.predict(xn, batch_size=batch_size, verbose=0)
    return np.asarray(out[:, 1], dtype=np.float32)


#: ``$PLASTICS_PIXEL_DEVICE``: ``auto`` (the Keras path when the backend sees a GPU, else numpy),
#: ``cpu`` (always numpy), ``keras`` (always the Keras path, also on a CPU).
PIXEL_DEVICES = ("auto", "cpu", "keras")
#: Pixels per Keras call on the accelerator (``$PLASTICS_KERAS_BATCH``); ~3 KB of activations each.
KERAS_BATCH = int(os.environ.get("PLASTICS_KERAS_BATCH", "262144"))


def use_keras_path(device: str | None = None) -> bool:
    """Whether pixel models run as Keras calls on the backend's device (see :data:`PIXEL_DEVICES`)."""
    mode = device or os.environ.get("PLASTICS_PIXEL_DEVICE", "auto")
    if mode not in PIXEL_DEVICES:
        raise ModelError(f"PLASTICS_PIXEL_DEVICE={mode!r}: use one of {', '.join(PIXEL_DEVICES)}")
    return mode == "keras" or (mode == "auto" and configure_devices().startswith("GPU"))


def keras_forward(models: Sequence[Any], xn: np.ndarray, batch: int = KERAS_BATCH) -> np.ndarray:
    """(n_models, n) class-1 probabilities of ``models`` (sharing one normalization) on normalized
    inputs, by direct calls in large batches (no ``predict`` loop): on a GPU each batch is copied to
    the device once and every model runs on it."""
    import keras

    out = np.empty((len(models), len(xn)), np.float32)
    for s in range(0, len(xn), batch):
        t = keras.ops.convert_to_tensor(xn[s:s + batch])
        for i, model in enumerate(models):
            out[i, s:s + batch] = keras.ops.convert_to_numpy(model(t, training=False)[:, 1])
    return out


class PixelClassifier:
    """One pixel spectrogram model; ``predict(x (n, 12, 2) DN float32) -> (n,) float32``."""

    def __init__(self, ref: ModelRef, net: PixelNet, chunk: int = 2048, model: Any = None,
                 device: str | None = None):
        self.ref, self.net, self.chunk, self.model, self.device = ref, net, chunk, model, device

    @classmethod
    def from_ref(cls, ref: ModelRef) -> PixelClassifier:
        if ref.kind != "pixel":
            raise ModelError(f"{ref.name} is a {ref.kind} model, not a pixel model: pick a spectrogram model")
        model = load_keras(str(ref.path))
        if tuple(model.input_shape[1:]) != (NB, 2, 1):
            raise ModelError(f"{ref.name} input {model.input_shape[1:]} is not (12, 2, 1): not a pixel model")
        if ref.normalization == "div3000":
            sub, div = np.zeros(2 * NB, np.float32), np.full(2 * NB, 3000.0, np.float32)
        else:  # index band * 2 + date
            sub, div = np.repeat(UNIT_NORM_MEAN, 2), np.repeat(UNIT_NORM_STD, 2)
        weights = [layer.get_weights() for layer in model.layers if layer.get_weights()]
        return cls(ref, PixelNet.from_keras(weights, sub, div), model=model)

    def predict(self, x: np.ndarray) -> np.ndarray:
        x = check_pixels(x, f"pixel model {self.ref.name}")
        if self.model is not None and use_keras_path(self.device):
            return keras_forward([self.model], normalize(x, self.ref.normalization, band_axis=1)[..., None])[0]
        with blas_single():
            return run_chunked([self.net], x.reshape(len(x), 2 * NB), self.chunk, usable_threads())[0]


class EnsembleClassifier:
    """Several pixel models run together; ``predict -> (n_models, n)``, ``predict_median -> (n,)``."""

    def __init__(self, members: Sequence[PixelClassifier], chunk: int = 2048):
        if not members:
            raise ModelError("empty ensemble: resolve an ensemble folder that holds models")
        self.members = list(members)
        self.refs = [m.ref for m in self.members]
        self.chunk = chunk

    @classmethod
    def from_refs(cls, refs: Sequence[ModelRef]) -> EnsembleClassifier:
        return cls([PixelClassifier.from_ref(r) for r in refs])

    def predict(self, x: np.ndarray) -> np.ndarray:
        x = check_pixels(x, "ensemble")
        if all(m.model is not None and use_keras_path(m.device) for m in self.members):
            probs = np.empty((len(self.members), len(x)), np.float32)
            for norm in {m.ref.normalization for m in self.members}:  # one device copy per normalization
                idx = [i for i, m in enumerate(self.members) if m.ref.normalization == norm]
                probs[idx] = keras_forward([self.members[i].model for i in idx],
                                           normalize(x, norm, band_axis=1)[..., None])
            return probs
        with blas_single():
            out = run_chunked([m.net for m in self.members], x.reshape(len(x), 2 * NB), self.chunk, usable_threads())
        return np.stack(out) if out else np.zeros((0, len(x)), np.float32)

    def predict_median(self, x: np.ndarray) -> np.ndarray:
        return np.median(self.predict(x), axis=0).astype(np.float32)


class PatchClassifier:
    """A window classifier; ``window`` / ``channels`` come from the model's input shape.

    ``channels`` 12 = one composite; 24 = a pair concatenated on the channel axis.
    """

    def __init__(self, ref: ModelRef, model: Any, net: PatchNet | None):
        self.ref, self.model, self.net = ref, model, net
        _, h, w, c = model.input_shape
        if h != w:
            raise ModelError(f"{ref.name} has a non-square input {h}x{w}: unsupported patch model")
        self.window, self.channels = int(h), int(c)
        if self.channels % NB:
            raise ModelError(f"{ref.name} takes {c} channels, not a multiple of {NB} L1C bands: unsupported")
        self._fn: Any = None
        self._feat: Any = None

    @classmethod
    def from_ref(cls, ref: ModelRef) -> PatchClassifier:
        if ref.kind != "patch":
            raise ModelError(f"{ref.name} is a {ref.kind} model, not a patch classifier")
        model = load_keras(str(ref.path))
        if len(model.input_shape) != 4:
            raise ModelError(f"{ref.name} input {model.input_shape} is not (h, w, channels)")
        try:
            net: PatchNet | None = PatchNet.from_keras(model)
        except ModelError:  # layout without the shared-grid fast path: windows via tf.function
            net = None
        return cls(ref, model, net)

    def _check(self, x: np.ndarray, spatial: tuple[int, ...], what: str) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        if x.shape[-1] != self.channels or (spatial and x.shape[-3:-1] != spatial):
            raise ModelError(f"patch model {self.ref.name} expects {what} with {self.channels} channels "
                             f"({self.channels // NB} composite(s) x 12 L1C bands), got shape {x.shape}")
        return x

    def _features(self, xn: np.ndarray) -> np.ndarray:
        """Conv/pool stack of the model over a normalized (h, w, c) block (compiled once, any size)."""
        if self._feat is None and os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow":
            import keras  # another Keras backend (torch, jax): the same layers, run eagerly

            convs = [la for la in self.model.layers if type(la).__name__ in ("Conv2D", "MaxPooling2D")]

            def eager(block: np.ndarray) -> Any:
                t = keras.ops.convert_to_tensor(block)
                for layer in convs:
                    t = layer(t)
                return keras.ops.convert_to_numpy(t)

            self._feat = eager
        if self._feat is None:
            import tensorflow as tf

            layers = [la for la in self.model.layers if type(la).__name__ in ("Conv2D", "MaxPooling2D")]
            spec = tf.TensorSpec((1, None, None, self.channels), tf.float32)

            def stack(t: Any) -> Any:
                for layer in layers:
                    t = layer(t)
                return t

            self._feat = tf.function(stack, input_signature=[spec])
        return np.asarray(self._feat(xn[None]))[0]

    def predict(self, windows: np.ndarray, batch_size: int = 1024) -> np.ndarray:
        """``windows`` (n, window, window, channels) DN float32 -> (n,) float32."""
        windows = np.asarray(windows, dtype=np.float32)
        if windows.ndim != 4:
            raise ModelError(f"patch model {self.ref.name} expects windows (n, h, w, c), got {windows.shape}")
        self._check(windows, (self.window, self.window), "windows (n, window, window, channels)")
        if self._fn is None:
            import tensorflow as tf

            model = self.model
            spec = tf.TensorSpec((None, self.window, self.window, self.channels), tf.float32)
            self._fn = tf.function(lambda t: model(t, training=False), input_signature=[spec])
        out = np.empty(len(windows), np.float32)
        for s in range(0, len(windows), batch_size):
            xn = _normalize_channels_last(self.ref, windows[s:s + batch_size])
            out[s:s + batch_size] = np.asarray(self._fn(xn))[:, 1]
        return out

    def predict_grid(self, image: np.ndarray, stride: int = 8) -> np.ndarray:
        """Score every window of ``image`` (h, w, channels) DN at ``stride`` -> (rows, cols) float32.

        Window (r, c) covers pixels ``[r*stride, r*stride + window)`` x ``[c*stride, ...)``.
        Stride 8 shares the conv stack over the image; other strides batch explicit windows.
        """
        image = np.asarray(image, dtype=np.float32)
        if image.ndim != 3:
            raise ModelError(f"patch model {self.ref.name} expects an image (h, w, channels), got {image.shape}")
        self._check(image, (), "an image (h, w, channels)")
        h, w, _ = image.shape
        rows, cols = (h - self.window) // stride + 1, (w - self.window) // stride + 1
        if rows <= 0 or cols <= 0:
            return np.zeros((max(rows, 0), max(cols, 0)), np.float32)
        xn = _normalize_channels_last(self.ref, image)
        if self.net is not None and stride == self.net.total_stride:
            return self.net.grid(xn, rows, cols, self.window, self._features)
        from numpy.lib.stride_tricks import sliding_window_view

        view = sliding_window_view(image, (self.window, self.window), axis=(0, 1))[::stride, ::stride]
        wins = view[:rows, :cols].transpose(0, 1, 3, 4, 2).reshape(-1, self.window, self.window, self.channels)
        return self.predict(wins).reshape(rows, cols)
