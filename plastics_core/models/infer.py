"""Inference with the GPW Keras models (the only module that uses TensorFlow/Keras, imported lazily and
without start-up lines on stderr through :mod:`.tf_quiet`).

Models: Global Plastic Watch, Earthrise Media, CC BY-NC 4.0, read from the ``.h5`` files with
h5py (:mod:`.h5weights`): Keras is loaded only for the Keras paths. Inputs are Sentinel-2 L1C
DN (reflectance x 10000) in :data:`plastics_core.geo.bands.BAND_NAMES` order; normalization comes
from the :class:`ModelRef`. Outputs are float32 waste probabilities (softmax column 1).

Paths (:mod:`.device`, ``$PLASTICS_INFER_DEVICE``), all equal to ``keras.Model.predict`` within
1e-5 in exact precision: the numpy CPU path (pixel models as float32 matrix products,
:mod:`.pixel_fast`; the patch grid as one shared conv stack, :mod:`.patch_fast`, exact because
three valid 2x2 poolings keep stride-8 windows aligned); the compiled JAX path (:mod:`.compiled`:
the default where JAX sees a GPU; exact or fast precision); direct Keras calls in batches of
262,144 (pixel models, TF32 off). :meth:`PatchClassifier.predict` runs explicit windows through
a ``tf.function``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np

from plastics_core.errors import ModelError
from plastics_core.geo.bands import BAND_NAMES, normalize
from plastics_core.models import device as devsel
from plastics_core.models.h5weights import read_h5
from plastics_core.models.pixel_fast import PixelNet, check_pixels, norm_vectors, run_chunked
from plastics_core.models.store import ModelRef
from plastics_core.models.tf_quiet import import_keras, import_tensorflow
from plastics_core.threads import blas_single, usable_threads

if TYPE_CHECKING:  # the compiled path imports JAX: only when chosen
    from plastics_core.models.compiled import CompiledPixel

NB = len(BAND_NAMES)


@lru_cache(maxsize=1)
def configure_devices() -> str:
    """TensorFlow's devices, once per process: every visible GPU with memory growth on (so
    several worker processes can share a GPU instead of the first one taking all its memory),
    else the CPU. Returns ``"GPU:<n>"`` or ``"CPU"``. :func:`load_keras` calls it first."""
    if os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow":
        return _other_backend_device(os.environ["KERAS_BACKEND"])
    tf = import_tensorflow()

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
    keras = import_keras()
    try:
        return keras.models.load_model(path, compile=False)
    except Exception as exc:  # unreadable / not a Keras model
        raise ModelError(
            f"cannot load model {path} ({exc.__class__.__name__}): re-pull it from the store"
        ) from exc


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
    return configure_devices().startswith("GPU")  # imports TensorFlow: only asked when JAX has no GPU


def inference_device(device: str | None = None) -> str:
    """Where the pixel models of this process run, for run metadata: ``numpy:CPU``,
    ``jax:<backend>`` (e.g. ``jax:gpu``) or ``keras:<TensorFlow device>``. TensorFlow is imported
    only when the Keras path is chosen, so a worker without TensorFlow can answer."""
    path = devsel.choose(device, _keras_gpu)
    if path == "jax":
        import jax

        return f"jax:{jax.default_backend()}"
    return f"keras:{configure_devices()}" if path == "keras" else "numpy:CPU"


def use_keras_path(device: str | None = None) -> bool:
    """Whether pixel models run as Keras calls (see :mod:`.device`)."""
    return devsel.choose(device, _keras_gpu) == "keras"


def keras_forward(models: Sequence[Any], xn: np.ndarray, batch: int | None = None) -> np.ndarray:
    """(n_models, n) class-1 probabilities of ``models`` (sharing one normalization) on normalized
    inputs, by direct calls in large batches (no ``predict`` loop): on a GPU each batch is copied to
    the device once and every model runs on it."""
    keras = import_keras()

    batch = batch or keras_batch()
    out = np.empty((len(models), len(xn)), np.float32)
    for s in range(0, len(xn), batch):
        t = keras.ops.convert_to_tensor(xn[s : s + batch])
        for i, model in enumerate(models):
            out[i, s : s + batch] = keras.ops.convert_to_numpy(model(t, training=False)[:, 1])
    return out


def _compiled_pixel(members: Sequence[PixelClassifier]) -> CompiledPixel:
    devsel.prepare_jax()
    from plastics_core.models.compiled import CompiledPixel

    norms = [norm_vectors(m.ref.normalization, NB, dates=2) for m in members]
    return CompiledPixel([read_h5(str(m.ref.path)) for m in members], norms)


class PixelClassifier:
    """One pixel spectrogram model; ``predict(x (n, 12, 2) DN float32) -> (n,) float32``.

    ``device`` / ``precision``: None = from the environment at call time (:mod:`.device`)."""

    def __init__(
        self,
        ref: ModelRef,
        net: PixelNet,
        chunk: int = 2048,
        model: Any = None,
        device: str | None = None,
        precision: str | None = None,
    ):
        self.ref, self.net, self.chunk, self._model, self.device = ref, net, chunk, model, device
        self.precision = precision
        self._compiled: CompiledPixel | None = None

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

    def compiled(self) -> CompiledPixel:
        if self._compiled is None:
            self._compiled = _compiled_pixel([self])
        return self._compiled

    def predict(self, x: np.ndarray) -> np.ndarray:
        x = check_pixels(x, f"pixel model {self.ref.name}")
        path = self.path()
        probs: np.ndarray
        if path == "jax":
            probs = self.compiled().predict(x, self.precision)[0]
            return probs
        if path == "keras":
            probs = keras_forward([self.model], normalize(x, self.ref.normalization, band_axis=1)[..., None])[
                0
            ]
            return probs
        with blas_single():
            return run_chunked([self.net], x.reshape(len(x), 2 * NB), self.chunk, usable_threads())[0]

    def predict_composites(self, a: np.ndarray, b: np.ndarray) -> np.ndarray | None:
        """Every pixel of two composites (12, h, w) DN -> (h, w) float32, pairs built on the device;
        None when this call's path is not the JAX one (the caller then gathers pixel pairs)."""
        if self.path() != "jax":
            return None
        probs: np.ndarray = self.compiled().predict_composites(a, b, self.precision)[0]
        return probs


def feature_fn(model: Any, channels: int) -> Any:
    """The Keras model's Conv2D/MaxPooling2D stack as a function of a normalized (1, h, w, c) block:
    a ``tf.function`` compiled once for any size (TensorFlow backend), else the layers run eagerly."""
    layers = [la for la in model.layers if type(la).__name__ in ("Conv2D", "MaxPooling2D")]
    if os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow":
        keras = import_keras()  # another Keras backend (torch, jax): the same layers, run eagerly

        def eager(block: np.ndarray) -> Any:
            t = keras.ops.convert_to_tensor(block)
            for layer in layers:
                t = layer(t)
            return keras.ops.convert_to_numpy(t)

        return eager
    tf = import_tensorflow()

    def stack(t: Any) -> Any:
        for layer in layers:
            t = layer(t)
        return t

    return tf.function(stack, input_signature=[tf.TensorSpec((1, None, None, channels), tf.float32)])


def window_fn(model: Any, window: int, channels: int) -> Any:
    """``model`` on normalized windows (n, window, window, channels) as a ``tf.function``."""
    tf = import_tensorflow()

    spec = tf.TensorSpec((None, window, window, channels), tf.float32)
    return tf.function(lambda t: model(t, training=False), input_signature=[spec])
