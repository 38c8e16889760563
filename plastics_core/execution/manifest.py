"""The manifest of one quarter's spectrogram pair: one schema, built by one function.

Whichever step computed a pair (the ``descartes_run`` fan-out, or a detection window's step that
computed a missing quarter, :mod:`plastics_core.execution.pair_claim`), its manifest is
:func:`pair_manifest`'s JSON object, written last by
:func:`plastics_core.storage.folders.write_run` as
``<store>/descartes_run/<roi>/<quarter>/<run-hash>.json``::

    run_hash       12 hex chars (plastics_core.params.run_hash)
    roi, window    the partition: ROI name, the pair's first-period start (ISO date)
    periods        the pair's two period labels, oldest first
    params         every resolved run parameter (DetectParams.resolved())
    tiles          the DLTile keys (planned order): the tile files the readers load
    backend        local | earthone | in-window: where the tiles ran
    executor       in-process | multiprocess | celery | k8s: the Dagster executor of the steps
    models         {model file name: sha256} of the pixel and patch models
    imagery        {source: source name, scene_ids: sorted scene ids of every tile}
    timings        {total_s, tiles_s: {tile: s}, stages_s: {tile: {stage: s}}}
    empty_reasons  {tile: why it holds no valid pixel} (tiles with one only)
    earthone       {function_ids: [...], jobs: {tile: job id}} ({} and [] off EarthOne)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from plastics_core.geo.periods import pair_periods, parse_day
from plastics_core.params import DetectParams

#: The keys of every manifest (stored sorted, like every JSON document of the store).
MANIFEST_KEYS: tuple[str, ...] = (
    "run_hash",
    "roi",
    "window",
    "periods",
    "params",
    "tiles",
    "backend",
    "executor",
    "models",
    "imagery",
    "timings",
    "empty_reasons",
    "earthone",
)


@dataclass(frozen=True)
class RunRecord:
    """What a manifest records about the run besides its tiles.

    ``models``: ``{model file name: sha256}`` of the pixel and patch models; ``backend``:
    ``local`` / ``earthone`` / ``in-window``; ``executor``: the Dagster executor's short name."""

    run_hash: str
    roi: str
    params: DetectParams
    imagery_source: str
    models: Mapping[str, str]
    backend: str
    executor: str
    earthone: Mapping[str, Any] = field(default_factory=dict)


def pair_manifest(
    record: RunRecord, start: str, tiles: Sequence[str], summaries: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """The manifest (module docstring) of the pair starting ``start`` (ISO date): ``tiles`` (the
    planned keys, every one complete) and their ``summaries`` (the tile summary files' objects:
    ``key``, ``scene_ids``, ``seconds``, ``timings``, ``empty_reason``)."""
    params = record.params
    periods = pair_periods(parse_day(start), params.mosaic_period, params.spectrogram_interval)
    earthone = record.earthone
    return {
        "run_hash": record.run_hash,
        "roi": record.roi,
        "window": start,
        "periods": [p.label for p in periods],
        "params": params.resolved(),
        "tiles": [str(t) for t in tiles],
        "backend": record.backend,
        "executor": record.executor,
        "models": dict(record.models),
        "imagery": {
            "source": record.imagery_source,
            "scene_ids": sorted({str(i) for s in summaries for i in s.get("scene_ids", [])}),
        },
        "timings": {
            "total_s": round(sum(float(s.get("seconds", 0.0)) for s in summaries), 3),
            "tiles_s": {str(s["key"]): s.get("seconds") for s in summaries},
            "stages_s": {str(s["key"]): s.get("timings", {}) for s in summaries},
        },
        "empty_reasons": {str(s["key"]): s["empty_reason"] for s in summaries if s.get("empty_reason")},
        "earthone": {
            "function_ids": sorted(str(f) for f in earthone.get("function_ids", [])),
            "jobs": {str(k): str(v) for k, v in dict(earthone.get("jobs", {})).items()},
        },
    }
