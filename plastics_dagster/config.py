"""The run parameters as a Dagster resource: :class:`DetectionParams` mirrors
:class:`plastics_core.params.DetectParams` (the one parameter model: defaults, presets, bounds
and the parameter table live there).

Every field is configurable at launch as run config under ``resources.params.config``. Dagster's
run-config validation (the Launchpad) checks each field's type and refuses a kind outside its
``Literal`` (e.g. ``preset``) before a run starts. Dagster's config schema has no numeric
ranges: the core model's bounds (``ge``/``le``/``gt``, declared on the fields too) and the
cross-field checks (known model names, ``min_sigma <= max_sigma`` after the preset) cannot refuse
a value in the Launchpad. A refused value does not fail the resource's construction (Dagster would
report it as a resource-initialisation dump in every step); the run's first step fails with the
core model's one line, naming the field, its value and the allowed range
(:meth:`DetectionParams.core`). A test keeps the two classes' fields, types, defaults and bounds
identical.

``run_hash``: see :func:`plastics_core.params.run_hash` (resolved parameters, method version,
model checksums, imagery source name, ROI geometry hash).
"""

from __future__ import annotations

from typing import Any

from dagster import ConfigurableResource
from pydantic import Field, PrivateAttr, model_validator

from plastics_core import params as core
from plastics_core.errors import ParameterError, PlasticsError
from plastics_core.method.recipes import Recipe
from plastics_core.params import CompositeMethod, DetectParams, Preset

_F = DetectParams.model_fields


def _field(name: str) -> Any:
    """A Field with the core model's default, bounds and description for ``name``."""
    info = _F[name]
    bounds: dict[str, Any] = {}
    for meta in info.metadata:
        for attr in ("ge", "gt", "le", "lt"):
            if getattr(meta, attr, None) is not None:
                bounds[attr] = getattr(meta, attr)
    return Field(default=info.default, description=info.description, **bounds)


class DetectionParams(ConfigurableResource):  # type: ignore[type-arg]
    """Parameters of one detection run (fields, defaults and bounds of
    :class:`plastics_core.params.DetectParams`)."""

    model: str = _field("model")
    patch_model: str = _field("patch_model")
    ensemble_model: str = _field("ensemble_model")
    rect_width: float = _field("rect_width")
    mosaic_period: int = _field("mosaic_period")
    spectrogram_interval: int = _field("spectrogram_interval")
    pairs: int = _field("pairs")
    composite_method: CompositeMethod = _field("composite_method")
    preset: Preset = _field("preset")
    pred_threshold: float | None = _field("pred_threshold")
    min_sigma: float | None = _field("min_sigma")
    max_sigma: float | None = _field("max_sigma")
    area_threshold: float | None = _field("area_threshold")
    patch_threshold: float | None = _field("patch_threshold")
    patch_keep_threshold: float = _field("patch_keep_threshold")
    merge_radius: float = _field("merge_radius")
    stride: int = _field("stride")
    max_masked: float = _field("max_masked")
    tilesize: int = _field("tilesize")
    pad: int = _field("pad")
    recipe: Recipe = _field("recipe")

    #: the one-line error of values refused by the core model (see :meth:`_check`); '' when valid
    _refused: str = PrivateAttr(default="")
    _refused_kind: type[PlasticsError] = PrivateAttr(default=ParameterError)

    @model_validator(mode="wrap")
    @classmethod
    def _check(cls, values: Any, handler: Any) -> Any:
        """Every check of the core model first, so a bad value is reported in its one line.

        Values the core model refuses do not fail the construction: Dagster builds this resource
        from run config when a run starts, and a failure there is reported as a resource
        initialisation error (a pydantic dump in every step). The resource is built with every
        field at its default instead, remembering the one-line error, which :meth:`core` (hence
        :meth:`resolved`, :meth:`run_hash`, and the run's first step) raises."""
        if not isinstance(values, dict):
            return handler(values)
        try:
            core.make_params(values)
        except PlasticsError as exc:
            built = handler({})
            built._refused = f"run config resources.params.config: {exc}"
            built._refused_kind = type(exc)
            return built
        return handler(values)

    def refused(self) -> str:
        """The one-line error of the values this resource was given ('' when they are valid)."""
        return self._refused

    def core(self) -> DetectParams:
        """The validated core model (one-line ParameterError / ModelError on bad values)."""
        if self._refused:
            raise self._refused_kind(self._refused)
        return core.make_params({name: getattr(self, name) for name in _F})

    def resolved(self) -> dict[str, Any]:
        """Every parameter with preset values filled in (JSON-safe, sorted keys)."""
        return self.core().resolved()

    def blob_params(self) -> Any:
        """The resolved :class:`plastics_core.method.blobs.BlobParams`."""
        return self.core().blob_params()

    def run_hash(self, imagery_name: str, roi_hash: str) -> str:
        """12 hex chars identifying this run's outputs (:func:`plastics_core.params.run_hash`)."""
        return core.run_hash(self.core(), imagery_name, roi_hash)


def detection_params(values: dict[str, Any] | None = None) -> DetectionParams:
    """:class:`DetectionParams` from ``values``, validated like the core model (one-line errors,
    raised here)."""
    parsed = core.make_params(values)
    return DetectionParams(**{name: getattr(parsed, name) for name in _F})
