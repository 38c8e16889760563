"""The patch classifier: windows of a composite (or of a pair) scored by a GPW patch model.

Paths (:mod:`.device`): the compiled JAX grid (:class:`.compiled.CompiledPatch`, exact or fast),
or the numpy shared conv grid (:mod:`.patch_fast`) with the conv stack through TensorFlow
(:func:`.infer.feature_fn`); explicit windows (strides other than the model's pooling stride)
through a ``tf.function`` (:func:`.infer.window_fn`). Models: Global Plastic Watch, Earthrise
Media, CC BY-NC 4.0.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from plastics_core.errors import ModelError
from plastics_core.models import device as devsel
from plastics_core.models.h5weights import read_h5
from plastics_core.models.infer import NB, _normalize_channels_last, feature_fn, load_keras, window_fn
from plastics_core.models.patch_fast import PatchNet
from plastics_core.models.pixel_fast import norm_vectors
from plastics_core.models.store import ModelRef

if TYPE_CHECKING:  # the compiled path imports JAX: only when chosen
    from plastics_core.models.compiled import CompiledPatch


class PatchClassifier:
    """A window classifier; ``window`` / ``channels`` come from the model's input shape.

    ``channels`` 12 = one composite; 24 = a pair concatenated on the channel axis.
    """

    def __init__(
        self,
        ref: ModelRef,
        input_shape: tuple[int, ...],
        net: PatchNet | None,
        device: str | None = None,
        precision: str | None = None,
    ):
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
        self._compiled: CompiledPatch | None = None

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

    def compiled(self) -> CompiledPatch:
        if self._compiled is None:
            devsel.prepare_jax()
            from plastics_core.models.compiled import CompiledPatch

            self._compiled = CompiledPatch(
                read_h5(str(self.ref.path)), *norm_vectors(self.ref.normalization, self.channels)
            )
        return self._compiled

    def _check(self, x: np.ndarray, spatial: tuple[int, ...], what: str) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        if x.shape[-1] != self.channels or (spatial and x.shape[-3:-1] != spatial):
            raise ModelError(
                f"patch model {self.ref.name} expects {what} with {self.channels} channels "
                f"({self.channels // NB} composite(s) x 12 L1C bands), got shape {x.shape}"
            )
        return x

    def _features(self, xn: np.ndarray) -> np.ndarray:
        """Conv/pool stack of the model over a normalized (h, w, c) block (compiled once, any size)."""
        if self._feat is None:
            self._feat = feature_fn(self.model, self.channels)
        feats: np.ndarray = np.asarray(self._feat(xn[None]))[0]
        return feats

    def predict(self, windows: np.ndarray, batch_size: int = 1024) -> np.ndarray:
        """``windows`` (n, window, window, channels) DN float32 -> (n,) float32."""
        windows = np.asarray(windows, dtype=np.float32)
        if windows.ndim != 4:
            raise ModelError(f"patch model {self.ref.name} expects windows (n, h, w, c), got {windows.shape}")
        self._check(windows, (self.window, self.window), "windows (n, window, window, channels)")
        if self._fn is None:
            self._fn = window_fn(self.model, self.window, self.channels)
        out = np.empty(len(windows), np.float32)
        for s in range(0, len(windows), batch_size):
            xn = _normalize_channels_last(self.ref, windows[s : s + batch_size])
            out[s : s + batch_size] = np.asarray(self._fn(xn))[:, 1]
        return out

    def predict_grid(self, image: np.ndarray, stride: int = 8) -> np.ndarray:
        """Score every window of ``image`` (h, w, channels) DN at ``stride`` -> (rows, cols) float32.

        Window (r, c) covers pixels ``[r*stride, r*stride + window)`` x ``[c*stride, ...)``.
        Stride 8 shares the conv stack over the image (numpy + TensorFlow convs, or one JAX call
        on the JAX path); other strides batch explicit windows.
        """
        image = np.asarray(image, dtype=np.float32)
        if image.ndim != 3:
            raise ModelError(
                f"patch model {self.ref.name} expects an image (h, w, channels), got {image.shape}"
            )
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
        wins = (
            view[:rows, :cols].transpose(0, 1, 3, 4, 2).reshape(-1, self.window, self.window, self.channels)
        )
        return self.predict(wins).reshape(rows, cols)
