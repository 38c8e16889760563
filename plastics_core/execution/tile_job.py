"""One tile -> its files in the store: the job the ``descartes_run`` backends run, without Dagster.

:func:`compute_tile` runs :func:`plastics_core.execution.pipeline.run_tile` for one tile and writes the
tile's heatmap COG, kept patches and JSON summary (:mod:`plastics_core.storage.store` layout, atomic
writes, summary last). The in-process ``infer_tile`` step calls it directly; the ``earthone``
backend submits :func:`infer_tile_remote` (:data:`REMOTE_FUNCTION`) as one EarthOne compute job
per tile, which rebuilds the tile, imagery source and model store from JSON arguments and calls
the same :func:`compute_tile` - so both backends write identical tile files for the same tile.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from typing import TYPE_CHECKING, Any

from upath import UPath

from plastics_core.errors import ModelError
from plastics_core.geo.periods import parse_day

if TYPE_CHECKING:
    from collections.abc import Callable

    from plastics_core.execution.loaded import Models
    from plastics_core.imagery.base import ImagerySource
    from plastics_core.models.store import ModelStore
    from plastics_core.params import DetectParams

#: The EarthOne compute function (``compute.Function`` accepts a ``"module.function"`` name).
REMOTE_FUNCTION = "plastics_core.execution.tile_job.infer_tile_remote"
#: Distributions the tile job imports on a worker (pinned from this package's own requirements).
REMOTE_PACKAGES = (
    "numpy",
    "scipy",
    "affine",
    "rasterio",
    "pyproj",
    "shapely",
    "geopandas",
    "scikit-image",
    "h3",
    "earthdaily-earthone",
    "tensorflow-cpu",
    "tensorflow",
    "keras",
    "h5py",
    "universal-pathlib",
    "s3fs",
    "s2cloudless",
    "threadpoolctl",
    "requests",
)


def detect_params(values: dict[str, Any]) -> DetectParams:
    """Resolved run parameters (a job's JSON argument) as :class:`plastics_core.params.DetectParams`,
    validated once here, at the job's edge; an unknown key or a bad value is one ParameterError
    line, never silently dropped."""
    from plastics_core.params import make_params

    return make_params(values)


def compute_tile(
    tile_key: str,
    source: ImagerySource,
    models: Models | ModelStore,
    params: DetectParams,
    window: dt.date,
    folder: UPath,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run one tile's pair and write its files into ``folder`` (heatmap, patch grid, then the summary).
    Composites come from / go to the store's composite cache (:mod:`plastics_core.execution.composite_cache`);
    ``log(line)`` is told each phase (see :func:`plastics_core.execution.pipeline.run_tile`).

    Returns the summary ``{key, scene_ids, empty_reason, seconds, pairs_computed (1),
    composites_computed, timings}`` (what the summary file holds)."""
    from plastics_core.execution.composite_cache import CompositeCache, cache_folder
    from plastics_core.execution.pipeline import run_tile
    from plastics_core.geo.tiles import tile_from_key
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
    summary = {
        "key": tile_key,
        "scene_ids": sorted(str(s) for s in result.scene_ids),
        "empty_reason": result.empty_reason,
        "seconds": round(seconds, 3),
        "pairs_computed": 1,
        "composites_computed": result.composites_computed,
        "timings": {k: round(v, 3) for k, v in result.timings.items()},
    }
    atomic_write(files["summary"], json_bytes(summary))
    return summary


def infer_tile_remote(
    tile_key: str,
    window: str,
    params: dict[str, Any],
    store: str,
    imagery: dict[str, Any],
    roi: str,
    run_hash: str,
    model_store: str = "",
) -> dict[str, Any]:
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
    from plastics_core.storage.corrupt import load_json
    from plastics_core.storage.store import run_folder, store_path, tile_files

    folder = run_folder(store_path(store), roi, window, run_hash)
    marker = tile_files(folder, tile_key)["summary"]
    if marker.exists():
        return dict(load_json(marker))  # corrupt: moved aside (recomputed next time), one line
    location = model_store or os.environ.get("PLASTICS_MODEL_STORE", "")
    if not location:
        raise ModelError(
            "no model store for the remote tile job: pass model_store or set PLASTICS_MODEL_STORE"
        )
    return compute_tile(
        tile_key,
        make_source(**imagery),
        ModelStore(location),
        detect_params(params),
        parse_day(window),
        folder,
    )


def remote_requirements() -> list[str]:
    """Pinned requirements of the tile job (:data:`REMOTE_PACKAGES` from this package's metadata)."""
    import importlib.metadata
    import re

    try:
        reqs = importlib.metadata.requires("plastics") or []
    except importlib.metadata.PackageNotFoundError:
        return []
    wanted = {p.lower() for p in REMOTE_PACKAGES}
    return [
        r
        for r in reqs
        if "extra ==" not in r and re.split(r"[\s<>=!~;\[]", r, maxsplit=1)[0].lower() in wanted
    ]
