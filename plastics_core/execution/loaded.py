"""The run's classifiers, loaded once per model file and process.

:func:`load_models` resolves (sha256-verified) the pixel model, the patch model and, for
contours, the pixel ensemble named by :class:`~plastics_core.params.DetectParams` from a
:class:`~plastics_core.models.store.ModelStore`; loaded classifiers are cached by (path, sha256).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from plastics_core.errors import ParameterError
from plastics_core.models.ensemble import EnsembleClassifier
from plastics_core.models.infer import PixelClassifier
from plastics_core.models.patch_classifier import PatchClassifier
from plastics_core.models.store import ModelStore
from plastics_core.params import DetectParams


@dataclass
class Models:
    """Loaded classifiers; ``ensemble`` only when contours are traced."""

    pixel: PixelClassifier
    patch: PatchClassifier
    ensemble: EnsembleClassifier | None = None


_MODEL_CACHE: dict[tuple[str, str], Any] = {}


def _cached(ref: Any, build: Callable[[Any], Any]) -> Any:
    key = (str(ref.path), str(ref.sha256))
    if key not in _MODEL_CACHE:
        _MODEL_CACHE[key] = build(ref)
    return _MODEL_CACHE[key]


def load_models(store: ModelStore, params: DetectParams, ensemble: bool = False) -> Models:
    """Resolve (sha256-verified) and load the run's models; loaded models are cached per file."""
    ens = None
    if ensemble:
        refs = store.resolve_ensemble(params.ensemble_model)
        ens = EnsembleClassifier([_cached(r, PixelClassifier.from_ref) for r in refs])
    return Models(
        _cached(store.resolve(params.model), PixelClassifier.from_ref),
        _cached(store.resolve(params.patch_model), PatchClassifier.from_ref),
        ens,
    )


def models_for(models: Models | ModelStore, params: DetectParams, ensemble: bool = False) -> Models:
    """``models`` when already loaded (with the ensemble if ``ensemble``), else loaded from the store."""
    if isinstance(models, Models) and (models.ensemble is not None or not ensemble):
        return models
    store = models if isinstance(models, ModelStore) else None
    if store is None:
        raise ParameterError("contours need the ensemble: pass a ModelStore or Models(ensemble=...)")
    return load_models(store, params, ensemble)
