"""Pixel heatmaps: run a pixel spectrogram model over every pair of composites of a tile.

Input: ``composites`` (each ``data`` (12, y, x) float32 L1C DN in model band order, ``mask``
(y, x) bool True = masked, ``period``, ``crs``, ``transform``, all on one grid) and ``pairs``
of indices into them ``(first, second)``. Output: a :class:`~plastics_core.geo.raster.Raster`
(band, y, x) float32 on the same grid with one waste-probability band per pair, described
``"<first.period.label>|<second.period.label>"``, then a ``median`` band (nanmedian over the
pair bands). A pixel masked in either composite of a pair is NaN in that band and is never
passed to the model; a pixel NaN in every pair band is NaN in ``median``. No pairs: one
all-NaN ``median`` band. Models: Global Plastic Watch (Earthrise Media), CC BY-NC 4.0.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, Protocol

import numpy as np

from plastics_core.errors import ParameterError
from plastics_core.geo.raster import Raster
from plastics_core.method.spectrogram import pixel_pairs

Progress = Callable[[int, int], None]
#: Pixels per block of rows (bounds the (n, 12, 2) input copy; progress is reported per block).
CHUNK = 1 << 20


class PixelModel(Protocol):
    """``predict(x (n, 12, 2) float32 DN) -> (n,)`` (PixelClassifier) or ``(n_models, n)``
    (EnsembleClassifier: the heatmap then holds the per-pixel median over the members).

    A model may also offer ``predict_composites(a, b)`` (two composites' data (12, h, w) ->
    (h, w) probabilities of every pixel, or None to decline): the heatmap then uses it per pair
    instead of gathering pixel pairs on the host (the compiled path builds them on the device)."""

    def predict(self, x: np.ndarray) -> np.ndarray: ...


def check_pairs(composites: Sequence[Any], pairs: Sequence[tuple[int, int]]) -> None:
    """Raise ParameterError unless every pair indexes two distinct composites on one grid."""
    n = len(composites)
    for a, b in pairs:
        if not (0 <= a < n and 0 <= b < n) or a == b:
            raise ParameterError(f"pair ({a}, {b}) does not index two of the {n} composites: fix the pairs")
    if composites:
        c0 = composites[0]
        for c in composites[1:]:
            if c.crs != c0.crs or c.transform != c0.transform or c.data.shape != c0.data.shape:
                raise ParameterError(
                    "composites are on different grids: composite every period on the same tile"
                )


def _model_tags(model: Any) -> dict[str, str]:
    refs = getattr(model, "refs", None) or ([model.ref] if getattr(model, "ref", None) is not None else [])
    if not refs:
        return {}
    return {
        "model": ",".join(str(r.name) for r in refs),
        "model_sha256": ",".join(str(r.sha256) for r in refs),
        "model_license": "CC BY-NC 4.0 (Global Plastic Watch, Earthrise Media)",
    }


def pixel_heatmap(
    composites: Sequence[Any],
    pairs: Sequence[tuple[int, int]],
    model: PixelModel,
    progress: Progress | None = None,
) -> Raster:
    """Heatmap Raster (len(pairs) + 1 bands, float32, NaN nodata) on the composites' grid.

    ``progress(done, total)`` is called with counts of predicted pixels over all pairs.
    """
    if not composites:
        raise ParameterError("no composites given: composite at least two periods of the tile")
    check_pairs(composites, pairs)
    first = composites[0]
    h, w = first.mask.shape
    out = np.full((len(pairs) + 1, h, w), np.nan, dtype=np.float32)
    valids = [~(composites[a].mask | composites[b].mask) for a, b in pairs]
    total = int(sum(int(v.sum()) for v in valids))
    done = 0
    if progress is not None:
        progress(0, total)
    step = max(1, CHUNK // max(1, w))  # rows per block: bounds the (n, 12, 2) copy
    direct = getattr(model, "predict_composites", None)  # pairs built on the device (compiled path)
    for k, (a, b) in enumerate(pairs):
        whole = direct(composites[a].data, composites[b].data) if direct is not None else None
        if whole is not None:
            out[k][valids[k]] = whole[valids[k]]
            done += int(valids[k].sum())
            if progress is not None:
                progress(done, total)
            continue
        for r0 in range(0, h, step):
            c0, c1 = (
                replace(
                    composites[i],
                    data=composites[i].data[:, r0 : r0 + step],
                    mask=composites[i].mask[r0 : r0 + step],
                )
                for i in (a, b)
            )
            x, valid = pixel_pairs(c0, c1)
            if len(x) == 0:
                continue
            p = np.asarray(model.predict(x))
            out[k, r0 : r0 + step][valid] = np.median(p, axis=0) if p.ndim == 2 else p
            done += len(x)
            if progress is not None:
                progress(done, total)
    if pairs:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN pixels stay NaN
            out[-1] = np.nanmedian(out[:-1], axis=0)
    labels = tuple(f"{composites[a].period.label}|{composites[b].period.label}" for a, b in pairs)
    return Raster(
        data=out,
        crs=first.crs,
        transform=first.transform,
        band_descriptions=(*labels, "median"),
        tags=_model_tags(model),
    )
