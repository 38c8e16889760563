"""The run parameters of one detection (the seed's ``Detect`` task) and the run hash.

Every parameter is configurable at launch as run config under ``resources.params.config``.

======================  ==============================================  =========================
parameter               default                                         meaning
======================  ==============================================  =========================
model                   ``spectrogram_v0.0.11_2021-07-13.h5``           pixel (spectrogram) model
patch_model             ``v1.1.0_4-23-21_patch_classifier_45px_patch.h5``  patch classifier
ensemble_model          ``v0.0.11_ensemble-8-25-21``                    ensemble folder (contours)
rect_width              0.008                                           candidate box width, degrees
mosaic_period           3                                               months per composite
spectrogram_interval    2                                               periods between a pair
pairs                   8                                               pairs a window aggregates [1, 24]
preset                  ``high``                                        blob sensitivity low|medium|high
pred_threshold          preset                                          heatmap threshold [0, 1]
min_sigma / max_sigma   preset                                          blob scale, pixels (> 0)
area_threshold          preset                                          min blob area [0, 1]
patch_threshold         preset                                          candidate patch score [0, 1]
tilesize / pad          planner default                                 tile size / pad, pixels
======================  ==============================================  =========================

The default preset ``high`` is the seed's blob setting (pred_threshold 0.6, min_sigma 3.5).
The ROI (seed default ``test_patch``) and the window are the partition, not parameters.
``run_hash = sha256(canonical JSON of the resolved parameters + imagery source name)[:12]``:
a changed parameter gives a new hash and therefore new output files; other runs stay untouched.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

from dagster import ConfigurableResource
from pydantic import Field

from plastics_core.errors import ParameterError

DEFAULT_MODEL = "spectrogram_v0.0.11_2021-07-13.h5"
DEFAULT_PATCH_MODEL = "v1.1.0_4-23-21_patch_classifier_45px_patch.h5"
DEFAULT_ENSEMBLE = "v0.0.11_ensemble-8-25-21"
DEFAULT_ROI = "test_patch"
PRESET_NAMES = ("low", "medium", "high")
_BLOB_FIELDS = ("pred_threshold", "min_sigma", "max_sigma", "area_threshold", "patch_threshold")


class DetectionParams(ConfigurableResource):
    """Parameters of one detection run (see the module table); resolved values feed the run hash."""

    model: str = Field(default=DEFAULT_MODEL, description="pixel (spectrogram) model file")
    patch_model: str = Field(default=DEFAULT_PATCH_MODEL, description="patch classifier file")
    ensemble_model: str = Field(default=DEFAULT_ENSEMBLE, description="ensemble folder (contours)")
    rect_width: float = Field(default=0.008, description="candidate box width in degrees")
    mosaic_period: int = Field(default=3, description="months per composite")
    spectrogram_interval: int = Field(default=2, description="mosaic periods between the two of a pair")
    pairs: int = Field(default=8, description="spectrogram pairs a detection window aggregates (median), 1..24")
    preset: str = Field(default="high", description="blob sensitivity preset: low | medium | high")
    pred_threshold: float | None = Field(default=None, description="heatmap threshold; None = preset")
    min_sigma: float | None = Field(default=None, description="min blob sigma (px); None = preset")
    max_sigma: float | None = Field(default=None, description="max blob sigma (px); None = preset")
    area_threshold: float | None = Field(default=None, description="blob area threshold; None = preset")
    patch_threshold: float | None = Field(default=None, description="candidate patch score; None = preset")
    tilesize: int | None = Field(default=None, description="tile size in pixels; None = planner default")
    pad: int | None = Field(default=None, description="tile pad in pixels; None = planner default")

    def blob_params(self) -> Any:
        """The resolved :class:`plastics_core.blobs.BlobParams` (preset + explicit overrides)."""
        from plastics_core.blobs import PRESETS

        if self.preset not in PRESETS:
            raise ParameterError(f"unknown preset {self.preset!r}: use one of {', '.join(sorted(PRESETS))}")
        overrides = {k: getattr(self, k) for k in _BLOB_FIELDS if getattr(self, k) is not None}
        base = PRESETS[self.preset]
        names = {f.name for f in dataclasses.fields(base)}
        return dataclasses.replace(base, **{k: v for k, v in overrides.items() if k in names})

    def check_values(self) -> None:
        """Raise ParameterError for out-of-range values (one line naming the fix)."""
        if self.preset not in PRESET_NAMES:
            raise ParameterError(f"unknown preset {self.preset!r}: use one of {', '.join(PRESET_NAMES)}")
        for name in ("pred_threshold", "area_threshold", "patch_threshold"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise ParameterError(f"{name} {value} is outside [0, 1]: give a value between 0 and 1")
        for name in ("min_sigma", "max_sigma", "rect_width"):
            value = getattr(self, name)
            if value is not None and not 0 < value < float("inf"):  # also NaN and inf
                raise ParameterError(f"{name} {value} is not positive: give a finite value > 0")
        if self.min_sigma and self.max_sigma and self.min_sigma > self.max_sigma:
            raise ParameterError(f"min_sigma {self.min_sigma} exceeds max_sigma {self.max_sigma}: swap them")
        if not 1 <= self.pairs <= 24:
            raise ParameterError(f"pairs {self.pairs} is outside [1, 24]: give a whole number of pairs in that range")
        if self.mosaic_period < 1 or self.spectrogram_interval < 1:
            raise ParameterError("mosaic_period and spectrogram_interval must be >= 1")
        if (self.tilesize is not None and self.tilesize < 1) or (self.pad is not None and self.pad < 0):
            raise ParameterError(f"tilesize {self.tilesize} / pad {self.pad}: use tilesize >= 1 and pad >= 0 pixels")
        from plastics_core.params import check_model_names

        check_model_names(self.model, self.patch_model, self.ensemble_model)  # unknown / wrong-role models

    def resolved(self) -> dict[str, Any]:
        """Every parameter with preset values filled in (JSON-safe, stable key order)."""
        self.check_values()
        out: dict[str, Any] = {
            "model": self.model,
            "patch_model": self.patch_model,
            "ensemble_model": self.ensemble_model,
            "rect_width": self.rect_width,
            "mosaic_period": self.mosaic_period,
            "spectrogram_interval": self.spectrogram_interval,
            "pairs": self.pairs,
            "preset": self.preset,
            "tilesize": self.tilesize,
            "pad": self.pad,
        }
        blob = dataclasses.asdict(self.blob_params())
        for key in _BLOB_FIELDS:
            out[key] = blob.get(key, getattr(self, key))
        return dict(sorted(out.items()))

    def run_hash(self, imagery_name: str) -> str:
        """12 hex chars identifying these parameters + imagery source (the seed's run_id)."""
        return run_hash(self.resolved(), imagery_name)


def run_hash(resolved_params: dict[str, Any], imagery_name: str) -> str:
    """``sha256(canonical JSON of params + imagery source name)[:12]``."""
    payload = {"params": resolved_params, "imagery": imagery_name}
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]
