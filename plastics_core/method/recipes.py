"""Named method recipes: ``paper`` (the default) and ``gpw-2021`` (the 2021 code as it ran).

``paper`` follows Kruse et al. (PLOS ONE 2023) where the paper is explicit and the project's
documented choices elsewhere. ``gpw-2021`` reproduces ``earthrise-media/plastics`` at commit
``f3e03ce`` (``detect/workflows/detect_luigi.py``, ``detect/scripts/dl_utils.py``, and for the tiles
and patch stride the deployment script ``detect/for_reference/descartes_spectrogram_run.py``, whose
grid GPW's published patches lie on) wherever this project's inputs allow; docs/FIDELITY.md cites
the line behind every value below.

A recipe is chosen by the ``recipe`` run parameter (:class:`plastics_core.params.DetectParams`).
It sets the run parameters of :data:`RECIPE_PARAMS` that a run leaves at their default (so they
enter the run hash like any parameter), and selects the candidate merge
(:func:`merge_method`) and the contour recipe (:func:`contour_recipe`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from plastics_core.errors import ParameterError

Recipe = Literal["paper", "gpw-2021"]
RECIPE_NAMES: tuple[str, ...] = ("paper", "gpw-2021")

#: Width in pixels of the patch model this project ships (``v1.1.0_4-23-21_patch_classifier_45px_patch.h5``).
PATCH_MODEL_WIDTH = 45


def gpw_patch_tiling(width: int, stride: int = 8, target: int = 900) -> tuple[int, int]:
    """(tilesize, pad) in pixels of GPW's 2021 deployment for a patch model ``width`` px wide
    at ``stride`` px: pad ``width - stride``, tilesize ``(target // width) * width - pad``.

    >>> gpw_patch_tiling(28)  # GPW's 28 px model: the grid of its published patch products
    (876, 20)
    >>> gpw_patch_tiling(PATCH_MODEL_WIDTH)
    (863, 37)
    """
    pad = width - stride
    return (target // width) * width - pad, pad


_GPW_TILESIZE, _GPW_PAD = gpw_patch_tiling(PATCH_MODEL_WIDTH)

#: Run parameters each recipe sets where a run leaves them at their default.
RECIPE_PARAMS: dict[str, dict[str, Any]] = {
    "paper": {},
    "gpw-2021": {
        # the deployment script's tiles, sized from the patch model (863 px + 37 px pad here)
        "tilesize": _GPW_TILESIZE,
        "pad": _GPW_PAD,
        # Detect's default range 2019-01-01 .. 2021-06-01 holds 7 pairs
        "pairs": 7,
        # --patch_stride 8, as the deployment script passes it and GPW's published patches show
        "stride": 8,
        # BlobDetect / DetectBlobsTiled defaults, ComparePatchClassifier's threshold
        "pred_threshold": 0.75,
        "min_sigma": 3.5,
        "max_sigma": 100.0,
        "area_threshold": 0.0025,
        "patch_threshold": 0.3,
    },
}


@dataclass(frozen=True)
class ContourRecipe:
    """How contour frames are built and masked.

    - ``composite_months``: months per composite; composites start every month.
    - ``lag_months``: months from a frame's first composite to its partner.
    - ``composite_method``: ``min`` / ``median`` / ``min_masked``
      (:func:`plastics_core.method.composite.composite`).
    - ``mask_align``: ``following`` or ``trailing`` 8-frame median mask
      (:func:`plastics_core.method.contours.rolling_masks`).
    - ``blur_sigma``: Gaussian sigma, upsampled px.
    - ``max_masked``: frames at least this masked are skipped; ``None`` skips none.
    """

    composite_months: int
    lag_months: int
    composite_method: str
    mask_align: Literal["following", "trailing"]
    blur_sigma: float
    max_masked: float | None


def check_recipe(name: str) -> str:
    """``name`` when it is a recipe; ParameterError naming the recipes otherwise."""
    if name not in RECIPE_NAMES:
        raise ParameterError(f"unknown recipe {name!r}: use one of {', '.join(RECIPE_NAMES)}")
    return name


def contour_recipe(
    recipe: str, mosaic_period: int = 3, spectrogram_interval: int = 2, composite_method: str = "min"
) -> ContourRecipe:
    """The contour recipe of ``recipe``.

    ``paper``: composites "as previously described" (``mosaic_period``-month composites of
    ``composite_method``), extracted every month, paired ``mosaic_period * spectrogram_interval``
    months apart; the mask from the eight following predictions; GPW's blur (sigma 4); frames
    10 % masked or more skipped. ``gpw-2021``: the code's 1-month median mosaics paired with the
    next month (``dl_utils.pair(mosaics, mosaic_period)`` with ``mosaic_period`` 1), the trailing
    mask, sigma 4, and no skip (the ensemble's ``np.median`` dropped the masks it would test).
    """
    from plastics_core.method.contours import GPW_BLUR_SIGMA

    if check_recipe(recipe) == "gpw-2021":
        return ContourRecipe(1, 1, "median", "trailing", GPW_BLUR_SIGMA, None)
    return ContourRecipe(
        mosaic_period,
        mosaic_period * spectrogram_interval,
        composite_method,
        "following",
        GPW_BLUR_SIGMA,
        0.1,
    )


def merge_method(recipe: str) -> str:
    """The candidate merge of ``recipe`` (:data:`plastics_core.method.candidates.MERGES`):
    ``chain`` for ``paper`` (the paper does not describe a merge), ``gpw`` for ``gpw-2021``."""
    return "gpw" if check_recipe(recipe) == "gpw-2021" else "chain"


def apply_recipe(values: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """``values`` with the recipe's parameters (``values["recipe"]``, default ``paper``) filled in
    where a value is absent or equal to its default (``defaults``: field name -> default)."""
    name = check_recipe(str(values.get("recipe", "paper")))
    out = dict(values)
    for key, value in RECIPE_PARAMS[name].items():
        if key not in out or out[key] is None or out[key] == defaults.get(key):
            out[key] = value
    return out
