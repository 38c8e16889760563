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
  Device paths (:mod:`.device`, ``$PLASTICS_INFER_DEVICE``): the compiled JAX path
  (:mod:`.compiled`, exact or fast precision) where JAX sees a GPU, or direct Keras calls in
  batches of 262,144 (TF32 off).
- patch models: :meth:`PatchClassifier.predict` runs windows through a ``tf.function`` (fixed
  signature, batches of 1024); :meth:`PatchClassifier.predict_grid` runs the conv/pool layers
  once over blocks of a composite and reads every stride-8 window from the shared feature map
  (:mod:`.patch_fast`; exact: three valid 2x2 poolings keep stride-8 windows aligned); on the
  JAX path the whole grid is one compiled call (:class:`.compiled.CompiledPatch`).

Models are read from the ``.h5`` files with h5py (:mod:`.h5weights`); Keras is loaded only for
the Keras paths, so a worker without TensorFlow runs the numpy and JAX paths.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np

from plastics_core.bands import BAND_NAMES, normalize
from plastics_core.errors import ModelError
from plastics_core.models import device as devsel
from plastics_core.models.h5weights import read_h5
from plastics_core.models.patch_fast import PatchNet
from plastics_core.models.pixel_fast import PixelNet, check_pixels, norm_vectors, run_chunked
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


def keras_batch() -> int:
    """Pixels per Keras call on the accelerator (``$PLASTICS_KERAS_BATCH``, default 262,144)."""
    return int(os.environ.get("PLASTICS_KERAS_BATCH") or 262144)


def _keras_gpu() -> bool:
    return configure_devices().startswith("GPU")


def use_keras_path(device: str | None = None) -> bool:
    """Whether pixel models run as Keras calls (see :mod:`.device`)."""
    return devsel.choose(device, _keras_gpu) == "keras"


def keras_forward(models: Sequence[Any], xn: np.ndarray, batch: int | None = None) -> np.ndarray:
    """(n_models, n) class-1 probabilities of ``models`` (sharing one normalization) on normalized
    inputs, by direct calls in large batches (no ``predict`` loop): on a GPU each batch is copied to
    the device once and every model runs on it."""
    import keras

    batch = batch or keras_batch()
    out = np.empty((len(models), len(xn)), np.float32)
    for s in range(0, len(xn), batch):
        t = keras.ops.convert_to_tensor(xn[s:s + batch])
        for i, model in enumerate(models):
            out[i, s:s + batch] = keras.ops.convert_to_numpy(model(t, training=False)[:, 1])
    return out


def _compiled_pixel(members: Sequence[PixelClassifier]) -> Any:
    from plastics_core.models.compiled import CompiledPixel

    norms = [norm_vectors(m.ref.normalization, NB, dates=2) for m in members]
    return CompiledPixel([read_h5(str(m.ref.path)) for m in members], norms)


class PixelClassifier:
    """One pixel spectrogram model; ``predict(x (n, 12, 2) DN float32) -> (n,) float32``.

    ``device`` / ``precision``: None = from the environment at call time (:mod:`.device`)."""

    def __init__(self, ref: ModelRef, net: PixelNet, chunk: int = 2048, model: Any = None,
                 device: str | None = None, precision: str | None = None):
        self.ref, self.net, self.chunk, self._model, self.device = ref, net, chunk, model, device
        self.precision = precision
        self._compiled: Any = None

    @classmethod
    def from_ref(cls, ref: ModelRef) -> PixelClassifier:
        if ref.kind != "pixel":
            raise ModelError(f"{ref.name} is a {ref.kind} model, not a pixel model: pick a spectrogram model")
        h5 = read_h5(str(ref.path))
        if h5.input_shape != (NB, 2, 1):
            raise ModelError(f"{ref.name} input {h5.input_shape} is not (12, 2, 1): not a pixel model")
        sub, div = norm_vectors(ref.normalization, NB, dates=2)
        return cls(ref, PixelNet.from_keras([la.weights for la in h5.weighted()], sub, div))

    @property
    def model(self) -> Any:
        """The Keras model (loaded on first use: only the Keras paths need TensorFlow)."""
        if self._model is None:
            self._model = load_keras(str(self.ref.path))
        return self._model

    def path(self) -> str:
        """``"numpy"``, ``"jax"`` or ``"keras"`` for this call (see :mod:`.device`)."""
        return devsel.choose(self.device, _keras_gpu)

    def compiled(self) -> Any:
        if self._compiled is None:
            self._compiled = _compiled_pixel([self])
        return self._compiled

    def predict(self, x: np.ndarray) -> np.ndarray:
        x = check_pixels(x, f"pixel model {self.ref.name}")
        path = self.path()
        if path == "jax":
            return self.compiled().predict(x, self.precision)[0]
        if path == "keras":
            return keras_forward([self.model], normalize(x, self.ref.normalization, band_axis=1)[..., None])[0]
        with blas_single():
            return run_chunked([self.net], x.reshape(len(x), 2 * NB), self.chunk, usable_threads())[0]

    def predict_composites(self, a: np.ndarray, b: np.ndarray) -> np.ndarray | None:
        """Every pixel of two composites (12, h, w) DN -> (h, w) float32, pairs built on the device;
        None when this call's path is not the JAX one (the caller then gathers pixel pairs)."""
        if self.path() != "jax":
            return None
        return self.compiled().predict_composites(a, b, self.precision)[0]


class PatchClassifier:
    """A window classifier; ``window`` / ``channels`` come from the model's input shape.

    ``channels`` 12 = one composite; 24 = a pair concatenated on the channel axis.
    """

    def __init__(self, ref: ModelRef, input_shape: tuple[int, ...], net: PatchNet | None,
                 device: str | None = None, precision: str | None = None):
        self.ref, self.net, self.device, self.precision = ref, net, device, precision
        h, w, c = input_shape
        if h != w:
            raise ModelError(f"{ref.name} has a non-square input {h}x{w}: unsupported patch model")
        self.window, self.channels = int(h), int(c)
        if self.channels % NB:
            raise ModelError(f"{ref.name} takes {c} channels, not a multiple of {NB} L1C bands: unsupported")
        self._fn: Any = None
        self._feat: Any = None
        self._model: Any = None
        self._compiled: Any = None

    @classmethod
    def from_ref(cls, ref: ModelRef) -> PatchClassifier:
        if ref.kind != "patch":
            raise ModelError(f"{ref.name} is a {ref.kind} model, not a patch classifier")
        h5 = read_h5(str(ref.path))
        if len(h5.input_shape) != 3:
            raise ModelError(f"{ref.name} input {h5.input_shape} is not (h, w, channels)")
        try:
            net: PatchNet | None = PatchNet.from_h5(h5)
        except ModelError:  # layout without the shared-grid fast path: windows via tf.function
            net = None
        return cls(ref, h5.input_shape, net)

    @property
    def model(self) -> Any:
        if self._model is None:
            self._model = load_keras(str(self.ref.path))
        return self._model

    def compiled(self) -> Any:
        if self._compiled is None:
            from plastics_core.models.compiled import CompiledPatch

            self._compiled = CompiledPatch(read_h5(str(self.ref.path)), *norm_vectors(self.ref.normalization, self.channels))
        return self._compiled

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
        Stride 8 shares the conv stack over the image (numpy + TensorFlow convs, or one JAX call
        on the JAX path); other strides batch explicit windows.
        """
        image = np.asarray(image, dtype=np.float32)
        if image.ndim != 3:
            raise ModelError(f"patch model {self.ref.name} expects an image (h, w, channels), got {image.shape}")
        self._check(image, (), "an image (h, w, channels)")
        h, w, _ = image.shape
        rows, cols = (h - self.window) // stride + 1, (w - self.window) // stride + 1
        if rows <= 0 or cols <= 0:
            return np.zeros((max(rows, 0), max(cols, 0)), np.float32)
        if self.net is not None and stride == self.net.total_stride:
            if devsel.choose(self.device, lambda: False) == "jax":  # one compiled call, DN normalized there
                return self.compiled().grid(np.moveaxis(image, -1, 0), self.precision)
            xn = _normalize_channels_last(self.ref, image)
            return self.net.grid(xn, rows, cols, self.window, self._features)
        from numpy.lib.stride_tricks import sliding_window_view

        view = sliding_window_view(image, (self.window, self.window), axis=(0, 1))[::stride, ::stride]
        wins = view[:rows, :cols].transpose(0, 1, 3, 4, 2).reshape(-1, self.window, self.window, self.channels)
        return self.predict(wins).reshape(rows, cols)


def __getattr__(name: str) -> Any:
    """``EnsembleClassifier`` lives in :mod:`.ensemble` (imported here lazily: no import cycle)."""
    if name == "EnsembleClassifier":
        from plastics_core.models.ensemble import EnsembleClassifier

        return EnsembleClassifier
    raise AttributeError(name)
