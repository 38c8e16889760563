"""One IO manager for every asset: the same layout on local disk and on S3.

Layout (``<store>`` = a folder, default ``./.plastics/store`` or ``$PLASTICS_STORE``, or
``s3://bucket/prefix``; ``<run-hash>`` from :mod:`plastics_dagster.config`)::

    <store>/descartes_run/<roi>/<window>/<run-hash>.json          manifest (written last)
    <store>/descartes_run/<roi>/<window>/<run-hash>/<tile>.tif    per-tile pair heatmap COG
    <store>/descartes_run/<roi>/<window>/<run-hash>/<tile>.patchgrid.tif
    <store>/heatmaps/<roi>/<window>/<run-hash>/<tile>.tif + mosaic.vrt + tiles.json (the tile list)
    <store>/<asset>/<roi>/<window>/<run-hash>.geojson             patch_geojson, blobs, ... enriched_sites
    <store>/rois/<name>.geojson                                   registered ROIs

Writes are atomic (:func:`plastics_core.storage.store.atomic_write`, re-exported here): local files go to
a temp file in the same folder and are moved into place with ``os.replace``; S3 objects are
written with one PUT of the full bytes (never partial).
A different run hash writes different files; other runs are never touched. The run hash is
computed per partition (it covers the ROI's geometry). Readers take exactly the tiles a manifest
(``descartes_run``) or a folder's ``tiles.json`` (``heatmaps``) lists, never every ``*.tif`` found.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
from dagster import Failure, InputContext, IOManager, MetadataValue, OutputContext, UPathIOManager, io_manager
from upath import UPath

from plastics_core.geo.raster import Raster

# re-exported: the store functions are Dagster-free (plastics_core.storage.store)
from plastics_core.storage.store import atomic_write as atomic_write
from plastics_core.storage.store import is_local as _is_local
from plastics_core.storage.store import read_bytes as read_bytes
from plastics_core.storage.store import s3_call as s3_call
from plastics_core.storage.store import safe_name as safe_name
from plastics_core.storage.store import store_path as store_path

MANIFEST_EXT = ".json"
GEOJSON_EXT = ".geojson"
FOLDER_ASSETS = frozenset({"heatmaps"})
JSON_ASSETS = frozenset({"descartes_run"})


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


def read_gdf(data: bytes) -> gpd.GeoDataFrame:
    from plastics_core.storage.outputs import read_geojson

    return read_geojson(data)


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


def read_raster_folder(folder: UPath, names: list[str] | None = None) -> list[Raster]:
    from plastics_core.storage.outputs import read_raster

    """The rasters ``names`` of ``folder`` (default: those its ``tiles.json`` lists)."""
    if names is None:
        names = [str(n) for n in json.loads(read_bytes(folder / TILE_INDEX))]
    return [read_raster(read_bytes(folder / f"{safe_name(n)}.tif")) for n in names]


class PlasticsIOManager(UPathIOManager):
    """UPathIOManager writing ``<store>/<asset>/<roi>/<window>/<run-hash>.<ext>``."""

    extension = None

    def __init__(self, base_path: UPath, run_hash: Callable[[str], str]) -> None:
        """``run_hash``: ROI name -> the run hash of this run's parameters for that ROI."""
        super().__init__(base_path=base_path)
        self._hash_of = run_hash
        self._hashes: dict[str, str] = {}

    def run_hash(self, roi: str) -> str:
        if roi not in self._hashes:
            self._hashes[roi] = self._hash_of(roi)
        return self._hashes[roi]

    def make_safe_partition_path(self, base_path: UPath, partition: str) -> UPath:
        parts = [p for p in partition.split("/") if p not in ("", ".", "..")]
        return base_path.joinpath(*parts)

    @staticmethod
    def _asset_name(context: InputContext | OutputContext) -> str:
        return context.asset_key.path[-1] if context.has_asset_key else ""

    def _ext(self, name: str) -> str:
        if name in FOLDER_ASSETS:
            return ""
        return MANIFEST_EXT if name in JSON_ASSETS else GEOJSON_EXT

    def get_path_for_partition(self, context: InputContext | OutputContext, path: UPath, partition: str) -> UPath:
        folder = self.make_safe_partition_path(path, partition)
        roi = partition.split("/", 1)[0]  # "<roi>/<window>" or "<roi>" (site_registry)
        return folder / f"{self.run_hash(roi)}{self._ext(self._asset_name(context))}"

    def _get_path(self, context: InputContext | OutputContext) -> UPath:
        path = self._get_path_without_extension(context)
        return path.with_name(path.name + self._ext(self._asset_name(context)))

    def make_directory(self, path: UPath) -> None:
        if _is_local(path):
            path.mkdir(parents=True, exist_ok=True)

    def dump_to_path(self, context: OutputContext, obj: Any, path: UPath) -> None:
        if isinstance(obj, DescartesRun):
            self.dump_run(path, obj)
        elif isinstance(obj, list) and all(isinstance(r, Raster) for r in obj):
            write_raster_folder(path, obj)
        elif isinstance(obj, gpd.GeoDataFrame):
            from plastics_core.storage.outputs import geojson_bytes

            atomic_write(path, geojson_bytes(obj))
        else:
            from plastics_core.storage.outputs import json_bytes

            atomic_write(path, json_bytes(obj))

    def dump_run(self, manifest_path: UPath, run: DescartesRun) -> None:
        """Per-tile outputs into ``<run-hash>/``, then the manifest (its presence = complete)."""
        from plastics_core.storage.outputs import cog_bytes, json_bytes

        folder = manifest_path.with_name(manifest_path.name[: -len(MANIFEST_EXT)])
        for raster in run.heatmaps:
            atomic_write(folder / f"{safe_name(raster.name)}.tif", cog_bytes(raster))
        for key, grid in zip(run.manifest.get("tiles", []), run.patch_grids, strict=False):
            atomic_write(folder / f"{safe_name(str(key))}.patchgrid.tif", cog_bytes(grid))
        atomic_write(manifest_path, json_bytes(run.manifest))

    def load_input(self, context: InputContext) -> Any:
        """As UPathIOManager's; a missing upstream partition fails the step with one sentence naming the fix."""
        try:
            return super().load_input(context)
        except FileNotFoundError:
            name = self._asset_name(context)
            keys = [str(k) for k in context.asset_partition_keys] if context.has_asset_partitions else []
            from plastics_dagster.partitions import split_key

            run_hash = self.run_hash(split_key(keys[0])[0]) if keys else "-"
            raise Failure(
                description=f"{name} is not materialized for partition {', '.join(keys) or '-'} with these parameters "
                f"(run hash {run_hash}): materialize {name} first (select it too, or launch detect_job for this "
                "partition)",
                metadata={"error": "MissingUpstreamError"}, allow_retries=False) from None

    def load_from_path(self, context: InputContext, path: UPath) -> Any:
        name = self._asset_name(context)
        if name in FOLDER_ASSETS:
            return read_raster_folder(path)
        data = read_bytes(path)
        if name in JSON_ASSETS:
            return self.load_run(path, json.loads(data))
        if path.name.endswith(GEOJSON_EXT):
            return read_gdf(data)
        return json.loads(data)

    def load_run(self, manifest_path: UPath, manifest: dict[str, Any]) -> DescartesRun:
        folder = manifest_path.with_name(manifest_path.name[: -len(MANIFEST_EXT)])
        keys = [str(k) for k in manifest.get("tiles", [])]
        heatmaps = read_raster_folder(folder, keys)
        from plastics_core.storage.outputs import read_raster

        grids = [read_raster(read_bytes(folder / f"{safe_name(k)}.patchgrid.tif")) for k in keys]
        return DescartesRun(manifest=manifest, heatmaps=heatmaps, patch_grids=grids)

    def get_metadata(self, context: OutputContext, obj: Any) -> dict[str, Any]:
        from plastics_dagster.partitions import split_key

        if not context.has_partition_key:
            return {}
        return {"run_hash": MetadataValue.text(self.run_hash(split_key(context.partition_key)[0]))}


@io_manager(
    required_resource_keys={"params", "imagery", "store"},
    description="Plastics store: <store>/<asset>/<roi>/<window>/<run-hash>.<ext>, local or S3, atomic writes.",
)
def plastics_io_manager(init_context: Any) -> IOManager:
    """The IO manager of the graph; run hashes from the ``params``, ``imagery`` and ``store`` (ROI) resources."""
    res = init_context.resources
    source = res.imagery.source_name()
    return PlasticsIOManager(res.store.path(), lambda roi: res.params.run_hash(source, res.store.roi_hash(roi)))


