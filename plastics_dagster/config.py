"""The run parameters as a Dagster resource: :class:`DetectionParams` mirrors
:class:`plastics_core.params.DetectParams` (the one parameter model: defaults, presets, bounds
and the parameter table live there).

Every field is configurable at launch as run config under ``resources.params.config``. Dagster's
run-config validation (the Launchpad) checks each field's type and refuses a kind outside its
``Literal`` (e.g. ``preset``); the core model's bounds (``ge``/``le``/``gt``), carried by the
fields, and the cross-field checks (known model names, ``min_sigma <= max_sigma`` after the
preset) run when the resource is built at the start of the run, before any step does work, and
fail it with the core model's one-line message (:meth:`DetectionParams.core`). A test keeps the two classes' fields, types,
defaults and bounds identical.

``run_hash``: see :func:`plastics_core.params.run_hash` (resolved parameters, method version,
model checksums, imagery source name, ROI geometry hash).
"""

from __future__ import annotations

from typing import Any

from dagster import ConfigurableResource
from pydantic import Field, model_validator

from plastics_core import params as core
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

    @model_validator(mode="before")
    @classmethod
    def _check(cls, values: Any) -> Any:
        """Every check of the core model first, so a bad value is reported in its one line."""
        if isinstance(values, dict):
            core.make_params(values)
        return values

    def core(self) -> DetectParams:
        """The validated core model (one-line ParameterError / ModelError on bad values)."""
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
    """:class:`DetectionParams` from ``values``, validated like the core model (one-line errors)."""
    parsed = core.make_params(values)
    return DetectionParams(**{name: getattr(parsed, name) for name in _F})
