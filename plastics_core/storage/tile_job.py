"""One tile -> its files in the store: the job the ``descartes_run`` backends run, without Dagster.

:func:`compute_tile` runs :func:`plastics_core.method.pipeline.run_tile` for one tile and writes the
tile's heatmap COG, kept patches and JSON summary (:mod:`plastics_core.storage.store` layout, atomic
writes, summary last). The in-process ``infer_tile`` step calls it directly; the ``earthone``
backend submits :func:`infer_tile_remote` (:data:`REMOTE_FUNCTION`) as one EarthOne compute job
per tile, which rebuilds the tile, imagery source and model store from JSON arguments and calls
the same :func:`compute_tile` - so both backends write identical tile files for the same tile.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from collections.abc import Sequence
from typing import Any

from upath import UPath

from plastics_core.errors import ModelError

#: The EarthOne compute function (``compute.Function`` accepts a ``"module.function"`` name).
REMOTE_FUNCTION = "plastics_core.storage.tile_job.infer_tile_remote"
#: Distributions the tile job imports on a worker (pinned from this package's own requirements).
REMOTE_PACKAGES = ("numpy", "scipy", "affine", "rasterio", "pyproj", "shapely", "geopandas", "scikit-image", "h3",
                   "earthdaily-earthone", "tensorflow-cpu", "tensorflow", "keras", "h5py", "universal-pathlib",
                   "s3fs", "s2cloudless", "threadpoolctl", "requests")


def detect_params(values: dict[str, Any]) -> Any:
    """Resolved run parameters (a job's JSON argument) as :class:`plastics_core.params.DetectParams`;
    an unknown key or a bad value is one ParameterError line, never silently dropped."""
    from plastics_core.params import make_params

    return make_params(values)


def compute_tile(tile_key: str, source: Any, models: Any, params: Any, window: dt.date, folder: UPath,
                 log: Any = None) -> dict[str, Any]:
    """Run one tile's pair and write its files into ``folder`` (heatmap, patch grid, then the summary).
    Composites come from / go to the store's composite cache (:mod:`plastics_core.storage.composite_cache`);
    ``log(line)`` is told each phase (see :func:`plastics_core.method.pipeline.run_tile`).

    Returns the summary ``{key, scene_ids, empty_reason, seconds, pairs_computed (1),
    composites_computed, timings}`` (what the summary file holds)."""
    from plastics_core.geo.tiles import tile_from_key
    from plastics_core.method.pipeline import run_tile
    from plastics_core.storage.composite_cache import CompositeCache, cache_folder
    from plastics_core.storage.outputs import cog_bytes, json_bytes
    from plastics_core.storage.store import atomic_write, tile_files

    start = time.perf_counter()
    # folder = <store>/descartes_run/<roi>/<window>/<run-hash>: composites go to <store>/composites/<roi>/<run-hash>
    store, roi = folder.parent.parent.parent.parent, folder.parent.parent.name
    cache = CompositeCache(cache_folder(store, roi, folder.name, tile_key), source, params.composite_method)
    result = run_tile(tile_from_key(tile_key), source, models, params, window, composites=cache, log=log)
    seconds = time.perf_counter() - start
    files = tile_files(folder, tile_key)
    atomic_write(files["heatmap"], cog_bytes(result.heatmap))
    atomic_write(files["patch_grid"], cog_bytes(result.patch_grid))
    summary = {"key": tile_key, "scene_ids": sorted(str(s) for s in result.scene_ids),
               "empty_reason": result.empty_reason, "seconds": round(seconds, 3),
               "pairs_computed": 1, "composites_computed": result.composites_computed,
               "timings": {k: round(v, 3) for k, v in result.timings.items()}}
    atomic_write(files["summary"], json_bytes(summary))
    return summary


def infer_tile_remote(tile_key: str, window: str, params: dict[str, Any], store: str, imagery: dict[str, Any],
                      roi: str, run_hash: str, model_store: str = "") -> dict[str, Any]:
    """One EarthOne compute job: tile ``tile_key`` of (``roi``, ``window``) into
    ``<store>/descartes_run/<roi>/<window>/<run_hash>/`` and its summary as the job result.

    ``params``: resolved run parameters; ``store``: folder or ``s3://`` URL the worker can write
    (S3 credentials / endpoint from the worker's environment); ``imagery``: a
    :func:`plastics_core.imagery.factory.make_source` spec (``earthone`` on EarthOne workers);
    ``model_store``: folder, ``s3://`` or ``https://`` location ('' = ``$PLASTICS_MODEL_STORE``).
    A tile whose summary exists (a re-run job) is not recomputed: its stored summary is returned.
    All arguments and the result are JSON; no credentials pass through them."""
    from plastics_core.imagery.factory import make_source
    from plastics_core.models.store import ModelStore
    from plastics_core.storage.store import read_bytes, run_folder, store_path, tile_files

    folder = run_folder(store_path(store), roi, window, run_hash)
    marker = tile_files(folder, tile_key)["summary"]
    if marker.exists():
        return dict(json.loads(read_bytes(marker)))
    location = model_store or os.environ.get("PLASTICS_MODEL_STORE", "")
    if not location:
        raise ModelError("no model store for the remote tile job: pass model_store or set PLASTICS_MODEL_STORE")
    return compute_tile(tile_key, make_source(**imagery), ModelStore(location), detect_params(params),
                        dt.date.fromisoformat(window), folder)


def remote_requirements() -> list[str]:
    """Pinned requirements of the tile job (:data:`REMOTE_PACKAGES` from this package's metadata)."""
    import importlib.metadata
    import re

    try:
        reqs = importlib.metadata.requires("plastics") or []
    except importlib.metadata.PackageNotFoundError:
        return []
    wanted = {p.lower() for p in REMOTE_PACKAGES}
    return [r for r in reqs if "extra ==" not in r and re.split(r"[\s<>=!~;\[]", r, maxsplit=1)[0].lower() in wanted]


def compute_missing_pairs(store: UPath, roi: str, starts: Sequence[dt.date | str], run_hash: str,
                          tiles: Sequence[str], source: object, models: object, params: object,
                          extra: dict[str, object] | None = None) -> list[str]:
    """Compute and store the pairs of ``starts`` the store lacks (every tile of ``tiles``, one after
    the other, :func:`compute_tile`), each with a manifest as ``descartes_run``
    writes it. For a window materialized alone (a job backfill, one partition from the UI): the
    fan-out over tiles and GPUs is ``descartes_run``'s; this keeps such a window correct.
    Returns the starts computed (ISO dates)."""
    from plastics_core.geo.periods import pair_periods
    from plastics_core.method.window import manifest_path, missing_starts
    from plastics_core.storage.outputs import json_bytes
    from plastics_core.storage.store import atomic_write, read_bytes, run_folder, tile_files

    done = []
    for start in missing_starts(store, roi, starts, run_hash):
        folder = run_folder(store, roi, start, run_hash)
        day = dt.date.fromisoformat(start)
        summaries = []
        for key in tiles:
            marker = tile_files(folder, key)["summary"]
            summaries.append(json.loads(read_bytes(marker)) if marker.exists()
                             else compute_tile(key, source, models, params, day, folder))
        periods = pair_periods(day, params.mosaic_period, params.spectrogram_interval)  # type: ignore[attr-defined]
        manifest = {
            "run_hash": run_hash, "roi": roi, "window": start, "periods": [p.label for p in periods],
            "tiles": list(tiles), "backend": "in-window", **(extra or {}),
            "imagery": {**dict((extra or {}).get("imagery", {})),  # type: ignore[call-overload]
                        "scene_ids": sorted({str(i) for s in summaries for i in s.get("scene_ids", [])})},
            "timings": {"total_s": round(sum(float(s.get("seconds", 0.0)) for s in summaries), 3),
                        "stages_s": {s["key"]: s.get("timings", {}) for s in summaries}},
            "empty_reasons": {s["key"]: s["empty_reason"] for s in summaries if s.get("empty_reason")},
        }
        atomic_write(manifest_path(store, roi, start, run_hash), json_bytes(manifest))
        done.append(start)
    return done
