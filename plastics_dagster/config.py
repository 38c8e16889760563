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

Validated once: building the resource (Dagster does it from the run config when a run's process
starts) converts the values into the frozen :class:`~plastics_core.params.DetectParams` once;
:meth:`DetectionParams.core` returns that object. Code reads parameters from it, never from the
resource's fields (they hold the defaults when the values were refused; a test keeps it so).

``run_hash``: see :func:`plastics_core.params.run_hash` (resolved parameters, method version,
model checksums, imagery source name, ROI geometry hash). :meth:`DetectionParams.run_hash_for`
computes it once per run and ROI (in each process the run executes in) and every step, IO manager
and asset of the run reads it from there.
"""

from __future__ import annotations

from collections import OrderedDict
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from dagster import ConfigurableResource, InitResourceContext
from pydantic import PrivateAttr, model_validator

from plastics_core import params as core
from plastics_core.errors import ParameterError, PlasticsError
from plastics_core.method.blob_params import BlobParams
from plastics_core.method.recipes import Recipe
from plastics_core.params import CompositeMethod, DetectParams, Preset, field_like

if TYPE_CHECKING:
    from plastics_dagster.resources import ImagerySourceResource, StoreResource

_F = DetectParams.model_fields
#: A model already validated at an edge (:func:`detection_params`), adopted without a second pass.
_VALIDATED: ContextVar[DetectParams | None] = ContextVar("validated_detect_params", default=None)
#: Run hashes of the runs this process executes, shared by every instance a run builds of the
#: resource (a nested copy in an IO manager too): (run id, parameters, ROI, imagery source, store).
_RUN_HASHES: OrderedDict[tuple[str, DetectParams, str, str, str], str] = OrderedDict()
_MAX_RUN_HASHES = 256


def _field(name: str) -> Any:
    """A Field with the core model's default, bounds and description for ``name``."""
    return field_like(_F[name])


class DetectionParams(ConfigurableResource):  # type: ignore[type-arg]
    """Parameters of one detection run (fields, defaults and bounds of
    :class:`plastics_core.params.DetectParams`); read them from :meth:`core`."""

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

    #: the frozen core model, built once from the values (None when they were refused)
    _core: DetectParams | None = PrivateAttr(default=None)
    #: the one-line error of values refused by the core model (see :meth:`_check`); '' when valid
    _refused: str = PrivateAttr(default="")
    _refused_kind: type[PlasticsError] = PrivateAttr(default=ParameterError)
    #: the Dagster run this instance serves ('' outside a run), set by :meth:`setup_for_execution`
    _run_id: str = PrivateAttr(default="")
    #: (ROI, imagery source name, store) -> run hash of an instance used outside a Dagster run
    _run_hashes: dict[tuple[str, str, str], str] = PrivateAttr(default_factory=dict)

    @model_validator(mode="wrap")
    @classmethod
    def _check(cls, values: Any, handler: Any) -> Any:
        """The values through the core model once; the result is kept for :meth:`core`.

        Values the core model refuses do not fail the construction: Dagster builds this resource
        from run config when a run starts, and a failure there is reported as a resource
        initialisation error (a pydantic dump in every step). The resource is built with every
        field at its default instead, remembering the one-line error, which :meth:`core` (hence
        :meth:`resolved`, :meth:`run_hash`, and the run's first step) raises. Accepted values stay
        in the fields as given (the run config); :meth:`core` holds them resolved (a recipe's
        values filled in): read parameters from there."""
        if not isinstance(values, dict):
            return handler(values)
        trusted = _VALIDATED.get()
        if trusted is not None and values == {name: getattr(trusted, name) for name in _F}:
            built = handler(values)
            built._core = trusted
            return built
        try:
            parsed = core.make_params(values)
        except PlasticsError as exc:
            built = handler({})
            built._refused = f"run config resources.params.config: {exc}"
            built._refused_kind = type(exc)
            return built
        built = handler(values)
        built._core = parsed
        return built

    def refused(self) -> str:
        """The one-line error of the values this resource was given ('' when they are valid)."""
        return self._refused

    def core(self) -> DetectParams:
        """The validated, frozen core model (one-line ParameterError / ModelError on refused values)."""
        if self._refused:
            raise self._refused_kind(self._refused)
        if self._core is None:  # built without validation (pydantic's model_construct)
            self._core = core.make_params({name: getattr(self, name) for name in _F})
        return self._core

    def resolved(self) -> dict[str, Any]:
        """Every parameter with preset values filled in (JSON-safe, sorted keys)."""
        return self.core().resolved()

    def blob_params(self) -> BlobParams:
        """The resolved :class:`plastics_core.method.blobs.BlobParams`."""
        return self.core().blob_params()

    def run_hash(self, imagery_name: str, roi_hash: str) -> str:
        """12 hex chars identifying this run's outputs (:func:`plastics_core.params.run_hash`)."""
        return core.run_hash(self.core(), imagery_name, roi_hash)

    def setup_for_execution(self, context: InitResourceContext) -> None:
        """Remember the run this instance serves (its run hashes are kept per run)."""
        self._run_id = context.run_id or ""

    def run_hash_for(self, roi: str, imagery: ImagerySourceResource, store: StoreResource) -> str:
        """The run hash of ROI ``roi`` with this run's imagery source and store, computed on the
        first call (reading the ROI's geometry) and kept for the run: every step, asset and IO
        manager of a Dagster run executing in this process (all of them in-process; those of one
        step process with a multi-process executor) reads the one value, whichever instance of
        the resource it holds. Outside a run the value is kept on this instance."""
        key = (roi, imagery.source_name(), str(store.resolved()))
        if not self._run_id:
            if key not in self._run_hashes:
                self._run_hashes[key] = self.run_hash(key[1], store.roi_hash(roi))
            return self._run_hashes[key]
        run_key = (self._run_id, self.core(), *key)
        if run_key not in _RUN_HASHES:
            _RUN_HASHES[run_key] = self.run_hash(key[1], store.roi_hash(roi))
            while len(_RUN_HASHES) > _MAX_RUN_HASHES:  # runs long finished
                _RUN_HASHES.popitem(last=False)
        return _RUN_HASHES[run_key]


def detection_params(values: dict[str, Any] | DetectParams | None = None) -> DetectionParams:
    """:class:`DetectionParams` from ``values``: a dict, validated like the core model (one-line
    errors raised here), or a :class:`DetectParams` an edge already validated (adopted as the
    resource's core model, not validated again)."""
    parsed = values if isinstance(values, DetectParams) else core.make_params(values)
    token = _VALIDATED.set(parsed)
    try:
        return DetectionParams(**{name: getattr(parsed, name) for name in _F})
    finally:
        _VALIDATED.reset(token)
