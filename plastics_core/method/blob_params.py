"""The blob-detection parameters, their allowed values and the paper's sensitivity presets.

:data:`BLOB_BOUNDS` is the one declaration of what each blob parameter may be: a
:class:`BlobParams` refuses values outside it, and the run parameter model
(:class:`plastics_core.params.DetectParams`) declares its blob fields with the same bounds and
derives its :class:`BlobParams` from its resolved values (:meth:`~plastics_core.params.DetectParams.blob_params`).
This module imports nothing heavy, so the parameter model can read it when it is defined.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from plastics_core.errors import ParameterError

#: The largest blob sigma, px (10 m S2 pixels: a 2 km radius).
MAX_SIGMA = 200
#: Allowed values of each blob parameter as pydantic ``Field`` bound keywords (``ge``/``gt``
#: inclusive/exclusive lower bound, ``le`` inclusive upper bound).
BLOB_BOUNDS: dict[str, dict[str, int]] = {
    "pred_threshold": {"ge": 0, "le": 1},
    "min_sigma": {"gt": 0, "le": MAX_SIGMA},
    "max_sigma": {"gt": 0, "le": MAX_SIGMA},
    "area_threshold": {"ge": 0, "le": 1},
    "patch_threshold": {"ge": 0, "le": 1},
}
BlobGrid = Literal["native", "wgs84"]


def interval(name: str) -> str:
    """``[0, 1]`` / ``(0, 200]``: the allowed values of blob parameter ``name``."""
    bounds = BLOB_BOUNDS[name]
    low = f"[{bounds['ge']}" if "ge" in bounds else f"({bounds['gt']}"
    return f"{low}, {bounds['le']}]"


def within(value: float, name: str) -> bool:
    """Whether ``value`` is inside :func:`interval` ``(name)`` (NaN never is)."""
    bounds = BLOB_BOUNDS[name]
    low = value >= bounds["ge"] if "ge" in bounds else value > bounds["gt"]
    return bool(low and value <= bounds["le"])


@dataclass(frozen=True)
class BlobParams:
    """Blob-detection parameters (bounds: :data:`BLOB_BOUNDS`).

    - ``pred_threshold``: heatmap pixels below this (probability, [0, 1]) are zeroed.
    - ``min_sigma`` / ``max_sigma``: DoH scale range in pixels (10 m S2 pixels). The blob radius
      is about ``sigma``. ``min_sigma`` 3.5 px is the smallest DoH can resolve (box filters);
      ``max_sigma`` 20 px (~200 m radius). GPW's ``BlobDetect`` used 100, but blob_doh samples
      10 scales evenly between the two sigmas: with 100 they are 10.7 px apart and a weak
      mid-sized site (peak 0.75, ~6 px) found at 20 is lost (tests/test_blobs.py); 20 also keeps
      the halo of sparse processing small. Bigger sites still fire, with sigma clipped at 20.
    - ``area_threshold``: the DoH ``threshold`` (absolute, on blob_doh's scale-normalised
      determinant). 0.008: the paper's worked example (pred threshold 0.6) holds only for a
      threshold between about 0.0071 and 0.0092 (a 3x3 blob at 0.7 is found at min_sigma 3.5
      but not 5.0; a 2x3 blob at 0.7 at neither; a 2x3 blob at 0.8 at 3.5), with max_sigma 20
      or 100 alike (tests/test_blobs.py). A lone speckle pixel gives ~4e-4 and is rejected.
    - ``patch_threshold``: patch-classifier mean a candidate's patch must exceed (used by
      :func:`plastics_core.method.candidates.select_candidates`).
    - ``grid``: ``native`` runs DoH on the heatmap's own (UTM) grid and places a blob at its
      pixel's centre; ``wgs84`` is GPW's: the band reprojected to EPSG:4326 (nearest
      neighbour, :func:`plastics_core.method.blobs.wgs84_band`) and the blob at its pixel's
      upper-left corner.
    """

    pred_threshold: float = 0.6
    min_sigma: float = 3.5
    max_sigma: float = 20.0
    area_threshold: float = 0.008
    patch_threshold: float = 0.3
    grid: BlobGrid = "native"

    def __post_init__(self) -> None:
        if self.grid not in ("native", "wgs84"):
            raise ParameterError(f"blob grid {self.grid!r} is unknown: use native or wgs84")
        for name in BLOB_BOUNDS:
            value = getattr(self, name)
            if not within(value, name):
                raise ParameterError(
                    f"{name}={value} is outside {interval(name)}: pass a value in {interval(name)}"
                )
        if self.min_sigma > self.max_sigma:
            raise ParameterError(
                f"min_sigma={self.min_sigma} > max_sigma={self.max_sigma}: pass min_sigma <= max_sigma"
            )


#: Sensitivity modes of the GPW paper: (pixel threshold, DoH min_sigma, patch threshold).
PRESETS: dict[str, BlobParams] = {
    "low": BlobParams(pred_threshold=0.9, min_sigma=5.0, patch_threshold=0.6),
    "medium": BlobParams(pred_threshold=0.6, min_sigma=5.0, patch_threshold=0.6),
    "high": BlobParams(pred_threshold=0.6, min_sigma=3.5, patch_threshold=0.3),
}


def preset(name: str) -> BlobParams:
    """The :data:`PRESETS` entry ``name``; unknown names raise ParameterError listing the choices."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ParameterError(
            f"unknown sensitivity preset {name!r}; choose one of {', '.join(sorted(PRESETS))}"
        ) from None
