"""The 6-model pixel ensemble (site contours): every member on the same pixels, one path per call.

Paths as for :class:`~plastics_core.models.infer.PixelClassifier` (:mod:`.device`): on the JAX
path all members run in ONE compiled call (weights stacked on a model axis, ``vmap``); on the
numpy path they share one normalization and one stacked conv1 product per chunk.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from plastics_core.errors import ModelError
from plastics_core.geo.bands import normalize
from plastics_core.models.infer import NB, PixelClassifier, _compiled_pixel, keras_forward
from plastics_core.models.pixel_fast import check_pixels, run_chunked
from plastics_core.models.store import ModelRef
from plastics_core.threads import blas_single, usable_threads

if TYPE_CHECKING:  # the compiled path imports JAX: only when chosen
    from plastics_core.models.compiled import CompiledPixel


class EnsembleClassifier:
    """Several pixel models run together; ``predict -> (n_models, n)``, ``predict_median -> (n,)``."""

    def __init__(self, members: Sequence[PixelClassifier], chunk: int = 2048):
        if not members:
            raise ModelError("empty ensemble: resolve an ensemble folder that holds models")
        self.members = list(members)
        self.refs = [m.ref for m in self.members]
        self.chunk = chunk
        self._compiled: CompiledPixel | None = None

    @classmethod
    def from_refs(cls, refs: Sequence[ModelRef]) -> EnsembleClassifier:
        return cls([PixelClassifier.from_ref(r) for r in refs])

    def predict(self, x: np.ndarray) -> np.ndarray:
        x = check_pixels(x, "ensemble")
        paths = {m.path() for m in self.members}
        if paths == {"jax"}:  # one compiled call for all members (vmap over stacked weights)
            if self._compiled is None:
                self._compiled = _compiled_pixel(self.members)
            return self._compiled.predict(x, self.members[0].precision)
        if paths == {"keras"}:
            probs = np.empty((len(self.members), len(x)), np.float32)
            for norm in {m.ref.normalization for m in self.members}:  # one device copy per normalization
                idx = [i for i, m in enumerate(self.members) if m.ref.normalization == norm]
                probs[idx] = keras_forward(
                    [self.members[i].model for i in idx], normalize(x, norm, band_axis=1)[..., None]
                )
            return probs
        with blas_single():
            out = run_chunked(
                [m.net for m in self.members], x.reshape(len(x), 2 * NB), self.chunk, usable_threads()
            )
        return np.stack(out) if out else np.zeros((0, len(x)), np.float32)

    def predict_median(self, x: np.ndarray) -> np.ndarray:
        median: np.ndarray = np.median(self.predict(x), axis=0).astype(np.float32)
        return median
