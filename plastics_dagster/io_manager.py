"""The IO managers of the assets: one small class per format, the same layout on local disk and on S3.

Each asset names its format with ``io_manager_key`` (the ``*_IO`` constants below);
:func:`io_managers` gives the resource dict that registers them: one
``dagster.ConfigurableIOManagerFactory`` per format (:class:`GeoJsonIO`, :class:`DescartesRunIO`,
:class:`RasterFolderIO`) whose nested resources are the run's ``params``, ``imagery`` and ``store``. Every manager writes
``<store>/<asset>/<roi>/<window>/<run-hash><ext>`` (:func:`plastics_core.storage.layout.asset_path`;
``<store>`` = a folder, default ``./.plastics/store`` or ``$PLASTICS_STORE``, or
``s3://bucket/prefix``; ``<run-hash>`` from :mod:`plastics_dagster.config`)::

    GEOJSON_IO        <store>/<asset>/<roi>/<window>/<run-hash>.geojson   patch_geojson, blobs, candidates,
                                                                           contours, enriched_sites
                      <store>/site_registry/<roi>/<run-hash>.geojson       (partitioned by ROI only)
    DESCARTES_RUN_IO  <store>/descartes_run/<roi>/<window>/<run-hash>.json manifest (written last)
                      <store>/descartes_run/<roi>/<window>/<run-hash>/<tile>.tif + <tile>.patchgrid.tif
    RASTER_FOLDER_IO  <store>/heatmaps/<roi>/<window>/<run-hash>/<tile>.tif + tiles.json + mosaic.vrt

The formats' readers and writers are Dagster-free (:mod:`plastics_core.storage.folders`,
:mod:`plastics_core.storage.outputs`). Writes are atomic (:func:`plastics_core.storage.store.atomic_write`): local files go to
a temp file in the same folder and are moved into place with ``os.replace``; S3 objects are
written with one PUT of the full bytes (never partial).
A different run hash writes different files; other runs are never touched. The run hash is
computed per partition (it covers the ROI's geometry). Readers take exactly the tiles a manifest
(``descartes_run``) or a folder's ``tiles.json`` (``heatmaps``) lists, never every ``*.tif`` found.
"""

from collections.abc import Callable
from typing import Any, ClassVar

import geopandas as gpd
from dagster import (
    ConfigurableIOManagerFactory,
    Failure,
    InitResourceContext,
    InputContext,
    MetadataValue,
    OutputContext,
    ResourceDependency,
    UPathIOManager,
)
from upath import UPath

from plastics_core.geo.raster import Raster
from plastics_core.storage.corrupt import CorruptStoreFileError, parse_store_file
from plastics_core.storage.folders import (
    MANIFEST_EXT,
    DescartesRun,
    read_gdf,
    read_raster_folder,
    read_run,
    write_raster_folder,
    write_run,
)
from plastics_core.storage.layout import GEOJSON_EXT, asset_path
from plastics_core.storage.store import atomic_write, is_local
from plastics_dagster.config import DetectionParams
from plastics_dagster.resources import ImagerySourceResource, StoreResource

#: ``io_manager_key`` of each format (the resource keys :func:`io_managers` registers)
GEOJSON_IO = "geojson_io_manager"
DESCARTES_RUN_IO = "descartes_run_io_manager"
RASTER_FOLDER_IO = "raster_folder_io_manager"


class StoreIOManager(UPathIOManager):
    """The layout every format shares: ``<store>/<asset>/<roi>[/<window>]/<run-hash><extension>``.

    Subclasses set ``extension`` and implement ``dump_to_path`` / ``load_from_path``. A missing
    upstream partition fails the step with one sentence naming the fix; each output's metadata
    holds ``path`` and ``run_hash``."""

    def __init__(self, base_path: UPath, run_hash: Callable[[str], str]) -> None:
        """``base_path``: the store root; ``run_hash``: ROI name -> the run hash of this run's
        parameters for that ROI (computed once per ROI)."""
        super().__init__(base_path=base_path)
        self.store = base_path
        self._hash_of = run_hash
        self._hashes: dict[str, str] = {}

    def run_hash(self, roi: str) -> str:
        if roi not in self._hashes:
            self._hashes[roi] = self._hash_of(roi)
        return self._hashes[roi]

    @staticmethod
    def asset_name(context: InputContext | OutputContext) -> str:
        return context.asset_key.path[-1] if context.has_asset_key else ""

    def get_path_for_partition(
        self, context: InputContext | OutputContext, path: UPath, partition: str
    ) -> UPath:
        """``partition``: ``<roi>/<window>`` (Dagster's form of the multi-partition key) or ``<roi>``;
        the extension is added by UPathIOManager."""
        roi, _, window = partition.partition("/")
        return asset_path(self.store, self.asset_name(context), roi, window or None, self.run_hash(roi))

    def make_directory(self, path: UPath) -> None:
        if is_local(path):
            path.mkdir(parents=True, exist_ok=True)

    def load_input(self, context: InputContext) -> Any:
        """As UPathIOManager's; a missing upstream partition fails the step with one sentence naming the fix."""
        try:
            return super().load_input(context)
        except (
            CorruptStoreFileError
        ) as exc:  # moved aside: the rerun recomputes it; a retry reads the same bytes
            raise Failure(
                description=str(exc), metadata={"error": type(exc).__name__}, allow_retries=False
            ) from None
        except FileNotFoundError:
            name = self.asset_name(context)
            keys = [str(k) for k in context.asset_partition_keys] if context.has_asset_partitions else []
            from plastics_dagster.partitions import split_key

            run_hash = self.run_hash(split_key(keys[0])[0]) if keys else "-"
            raise Failure(
                description=f"{name} is not materialized for partition {', '.join(keys) or '-'} with these parameters "
                f"(run hash {run_hash}): materialize {name} first (select it too, or launch detect_job for this "
                "partition)",
                metadata={"error": "MissingUpstreamError"},
                allow_retries=False,
            ) from None

    def get_metadata(self, context: OutputContext, obj: Any) -> dict[str, Any]:
        from plastics_dagster.partitions import split_key

        if not context.has_partition_key:
            return {}
        return {"run_hash": MetadataValue.text(self.run_hash(split_key(context.partition_key)[0]))}


class GeoJsonIOManager(StoreIOManager):
    """A GeoDataFrame (EPSG:4326) as one deterministic RFC 7946 GeoJSON file."""

    extension = GEOJSON_EXT

    def dump_to_path(self, context: OutputContext, obj: gpd.GeoDataFrame, path: UPath) -> None:
        from plastics_core.storage.outputs import geojson_bytes

        atomic_write(path, geojson_bytes(obj))

    def load_from_path(self, context: InputContext, path: UPath) -> gpd.GeoDataFrame:
        return parse_store_file(path, read_gdf, "GeoJSON file")


class DescartesRunIOManager(StoreIOManager):
    """A :class:`DescartesRun`: per-tile COGs into ``<run-hash>/``, then the manifest ``<run-hash>.json``."""

    extension = MANIFEST_EXT

    def dump_to_path(self, context: OutputContext, obj: DescartesRun, path: UPath) -> None:
        write_run(path, obj)

    def load_from_path(self, context: InputContext, path: UPath) -> DescartesRun:
        return read_run(path)


class RasterFolderIOManager(StoreIOManager):
    """A list of Rasters as a folder ``<run-hash>/``: one COG per tile, ``tiles.json``, ``mosaic.vrt``."""

    extension = None

    def dump_to_path(self, context: OutputContext, obj: list[Raster], path: UPath) -> None:
        write_raster_folder(path, obj)

    def load_from_path(self, context: InputContext, path: UPath) -> list[Raster]:
        return read_raster_folder(path)


class StoreIOManagerFactory(ConfigurableIOManagerFactory):  # type: ignore[type-arg]
    """Builds a :class:`StoreIOManager` subclass (:attr:`manager`) when a run starts, from the run's
    ``params``, ``imagery`` and ``store`` resources (nested: pass the run's top-level resource
    objects, :func:`io_managers` does). The imagery source is named when a step first needs a run
    hash, not here: a setting missing or wrong fails that step with its one-line message instead of
    every step's resource set-up."""

    params: ResourceDependency[DetectionParams]
    imagery: ResourceDependency[ImagerySourceResource]
    store: ResourceDependency[StoreResource]

    manager: ClassVar[type[StoreIOManager]]

    def create_io_manager(self, context: InitResourceContext) -> StoreIOManager:
        params, imagery, store = self.params, self.imagery, self.store
        return self.manager(store.path(), lambda roi: params.run_hash_for(roi, imagery, store))


class GeoJsonIO(StoreIOManagerFactory):
    """GeoDataFrames as GeoJSON at <store>/<asset>/<roi>/<window>/<run-hash>.geojson, local or S3, atomic writes."""

    manager = GeoJsonIOManager


class DescartesRunIO(StoreIOManagerFactory):
    """descartes_run (manifest + per-tile COGs) at <store>/descartes_run/<roi>/<window>/<run-hash>, local or S3."""

    manager = DescartesRunIOManager


class RasterFolderIO(StoreIOManagerFactory):
    """Raster lists as a COG folder + mosaic.vrt at <store>/<asset>/<roi>/<window>/<run-hash>/, local or S3."""

    manager = RasterFolderIOManager


def io_managers(
    params: DetectionParams, imagery: ImagerySourceResource, store: StoreResource
) -> dict[str, StoreIOManagerFactory]:
    """Resource key -> IO manager, one per format, on the run's ``params``, ``imagery`` and
    ``store`` resources (the same objects as the Definitions' top-level resources of those keys;
    register them in the Definitions' resources)."""
    deps: dict[str, Any] = {"params": params, "imagery": imagery, "store": store}
    return {
        GEOJSON_IO: GeoJsonIO(**deps),
        DESCARTES_RUN_IO: DescartesRunIO(**deps),
        RASTER_FOLDER_IO: RasterFolderIO(**deps),
    }
