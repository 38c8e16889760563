"""The output store's layout, defined once: where an asset's partition lives for a run hash.

::

    <store>/<asset>/<roi>/<window>/<run-hash><ext>     partitioned by ROI and window
    <store>/<asset>/<roi>/<run-hash><ext>              partitioned by ROI only (site_registry)

``<ext>`` is the format's extension (:data:`GEOJSON_EXT`, :data:`JSON_EXT`, ``.html``, ``.csv``)
or ``""`` for a folder (``heatmaps``, the per-tile files of ``descartes_run``). The Dagster IO
managers (:mod:`plastics_dagster.io_manager`), the assets that write files beside their output
(``preview``, ``site_registry``'s CSV), the tile job and the CLI all build paths through
:func:`asset_path`; :func:`stored_run_hashes` lists what a folder of it holds.
"""

from __future__ import annotations

import re

from upath import UPath

from plastics_core.errors import ParameterError

GEOJSON_EXT = ".geojson"
JSON_EXT = ".json"
HTML_EXT = ".html"
CSV_EXT = ".csv"

_RUN_HASH = re.compile(r"[0-9a-f]{12}")


def _segment(value: str, what: str) -> str:
    """``value`` as one path segment; ParameterError when it would leave its folder."""
    if value in ("", ".", "..") or "/" in value or "\\" in value:
        raise ParameterError(
            f"{what} {value!r} cannot name a folder of the store: use letters, digits, '_' or '-'"
        )
    return value


def asset_folder(store: UPath, asset: str, roi: str, window: str | None = None) -> UPath:
    """``<store>/<asset>/<roi>[/<window>]``: the folder holding one partition's run hashes."""
    folder = store / _segment(asset, "asset") / _segment(roi, "ROI")
    return folder / _segment(window, "window") if window is not None else folder


def asset_path(store: UPath, asset: str, roi: str, window: str | None, run_hash: str, ext: str = "") -> UPath:
    """``<store>/<asset>/<roi>[/<window>]/<run-hash><ext>``; ``window`` None for ROI-only assets."""
    return asset_folder(store, asset, roi, window) / f"{_segment(run_hash, 'run hash')}{ext}"


def stored_run_hashes(folder: UPath, ext: str) -> list[str]:
    """The run hashes (12 hex digits) with a ``<run-hash><ext>`` file in ``folder``, sorted; [] when
    the folder does not exist."""
    if not folder.exists():
        return []
    names = (p.name[: -len(ext)] for p in folder.iterdir() if p.name.endswith(ext))
    return sorted(h for h in names if _RUN_HASH.fullmatch(h))
