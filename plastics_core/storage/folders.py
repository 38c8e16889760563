"""Multi-file outputs in the store: a raster folder (``heatmaps``) and a run folder with its manifest
(``descartes_run``), on local disk or S3 (:class:`upath.UPath`), written atomically.

::

    <folder>/<tile>.tif ... + tiles.json + mosaic.vrt           write_raster_folder / read_raster_folder
    <run-hash>/<tile>.tif + <tile>.patchgrid.tif, <run-hash>.json   write_run / read_run (manifest last)

Readers take exactly the tiles ``tiles.json`` or the manifest lists, never every ``*.tif`` found.
Where these folders sit in the store is :mod:`plastics_core.storage.layout`'s business; the
Dagster IO managers (:mod:`plastics_dagster.io_manager`) call these functions.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
from upath import UPath

from plastics_core.geo.raster import Raster
from plastics_core.storage.layout import JSON_EXT
from plastics_core.storage.store import atomic_write, safe_name

MANIFEST_EXT = JSON_EXT


def read_gdf(data: bytes) -> gpd.GeoDataFrame:
    """GeoJSON bytes -> GeoDataFrame (EPSG:4326)."""
    from plastics_core.storage.outputs import read_geojson

    return read_geojson(data)


@dataclass
class DescartesRun:
    """What ``descartes_run`` produces for one quarter's spectrogram pair: the manifest and the
    per-tile outputs.

    ``heatmaps``: one Raster per tile (one band: the pair's pixel scores, float32, NaN nodata, tile
    CRS); ``patch_grids``: one Raster per tile (the pair's patch-score grid, NaN = not scored).
    """

    manifest: dict[str, Any]
    heatmaps: list[Raster] = field(default_factory=list)
    patch_grids: list[Raster] = field(default_factory=list)


def _tile_pad(name: str) -> int:
    """The pad of a DLTile key ``tilesize:pad:resolution:zone:ti:tj`` (0 for other names)."""
    parts = name.split(":")
    return int(parts[1]) if len(parts) == 6 and parts[1].isdigit() else 0


TILE_INDEX = "tiles.json"


def write_raster_folder(folder: UPath, rasters: list[Raster]) -> bool:
    """One COG per raster (``<name>.tif``), ``tiles.json`` (the raster names, the folder's content
    for readers), then ``mosaic.vrt`` (relative paths, pad cropped).

    Returns False when the tiles cannot be mosaicked in one VRT (e.g. two UTM zones)."""
    from plastics_core.errors import ParameterError
    from plastics_core.storage.outputs import cog_bytes, vrt_xml

    with tempfile.TemporaryDirectory() as tmp:
        local: list[Path] = []
        for raster in rasters:
            data = cog_bytes(raster)
            name = f"{safe_name(raster.name)}.tif"
            (Path(tmp) / name).write_bytes(data)
            local.append(Path(tmp) / name)
            atomic_write(folder / name, data)
        atomic_write(folder / TILE_INDEX, json.dumps([r.name for r in rasters]).encode())
        if not local:
            return False
        crop = _tile_pad(rasters[0].name)
        try:
            text = vrt_xml(local, relative_to=tmp, crop=crop)
        except ParameterError:
            return False
        atomic_write(folder / "mosaic.vrt", text.encode())
        return True


def read_raster_folder(
    folder: UPath, names: list[str] | None = None, invalidate: tuple[UPath, ...] | None = None
) -> list[Raster]:
    """The rasters ``names`` of ``folder`` (default: those its ``tiles.json`` lists). A file that
    cannot be parsed is moved aside with the markers vouching for it (``invalidate``; default the
    folder's ``tiles.json``) and raises :class:`~plastics_core.storage.corrupt.CorruptStoreFileError`."""
    from plastics_core.storage.corrupt import load_json, load_raster

    if names is None:
        names = [str(n) for n in load_json(folder / TILE_INDEX)]
    markers = (folder / TILE_INDEX,) if invalidate is None else invalidate
    return [load_raster(folder / f"{safe_name(n)}.tif", markers) for n in names]


def run_folder_of(manifest_path: UPath) -> UPath:
    """``<run-hash>/`` beside the manifest ``<run-hash>.json``: the per-tile files."""
    return manifest_path.with_name(manifest_path.name[: -len(MANIFEST_EXT)])


def write_run(manifest_path: UPath, run: DescartesRun) -> None:
    """Per-tile outputs into ``<run-hash>/``, then the manifest (its presence = complete)."""
    from plastics_core.storage.outputs import cog_bytes, json_bytes

    folder = run_folder_of(manifest_path)
    for raster in run.heatmaps:
        atomic_write(folder / f"{safe_name(raster.name)}.tif", cog_bytes(raster))
    for key, grid in zip(run.manifest.get("tiles", []), run.patch_grids, strict=False):
        atomic_write(folder / f"{safe_name(str(key))}.patchgrid.tif", cog_bytes(grid))
    atomic_write(manifest_path, json_bytes(run.manifest))


def read_run(manifest_path: UPath) -> DescartesRun:
    """The manifest and the tiles it lists (heatmap and patch grid of each). A file that cannot be
    parsed is moved aside, with the manifest and the tile's summary (so the rerun computes them
    again), and raises :class:`~plastics_core.storage.corrupt.CorruptStoreFileError`."""
    from plastics_core.storage.corrupt import load_json, load_raster
    from plastics_core.storage.store import tile_files

    manifest = load_json(manifest_path)
    folder = run_folder_of(manifest_path)
    keys = [str(k) for k in manifest.get("tiles", [])]
    heatmaps, grids = [], []
    for key in keys:
        files = tile_files(folder, key)
        markers = (files["summary"], manifest_path)
        heatmaps.append(load_raster(files["heatmap"], markers))
        grids.append(load_raster(files["patch_grid"], markers))
    return DescartesRun(manifest=manifest, heatmaps=heatmaps, patch_grids=grids)
