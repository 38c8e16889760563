"""``plastics roi add|list|split|remove``: register regions of interest.

A registered ROI is stored as ``<store>/rois/<name>.geojson`` and added as a dynamic ``roi``
partition of the Dagster instance (see :mod:`plastics_dagster.registry`). ROI names match
``^[a-z0-9][a-z0-9_-]{0,63}$`` (safe for paths, S3 keys and partition keys).
"""

from __future__ import annotations

import contextlib
import shlex
from collections.abc import Sequence
from typing import Any

import click

from plastics_dagster.cli._base import progress
from plastics_dagster.cli._instance import dagster_home, open_instance, open_store

#: defaults of `roi split --max-cells / --max-tiles` (:data:`plastics_core.geo.roi_split.MAX_CELLS`, ``MAX_TILES``;
#: equality tested)
MAX_CELLS, MAX_TILES = 5_000, 50_000

_STORE_HELP = "Output store: folder or s3://bucket/prefix [default: $PLASTICS_STORE or ./.plastics/store]"


@click.group("roi")
def roi() -> None:
    """Register and list regions of interest (dynamic `roi` partitions)."""


@roi.command("add")
@click.argument("name")
@click.argument("file", metavar="FILE.geojson")
@click.option("--store", help=_STORE_HELP)
@click.option(
    "--replace",
    is_flag=True,
    help="Replace the geometry of an ROI already registered under NAME (its runs get a new run hash).",
)
@click.option(
    "--reference",
    "reference",
    metavar="FILE",
    help="GeoJSON points of known sites in the ROI (EPSG:4326), stored beside it; the published "
    "sites' recall of them is an asset check.",
)
def add(name: str, file: str, store: str | None, replace: bool, reference: str | None) -> None:
    """Validate FILE.geojson (EPSG:4326 polygons) and register it as ROI NAME.

    FILE may be a local path or an s3:// URL. A NAME registered with another geometry is refused
    unless --replace; the same geometry again changes nothing.
    """
    from plastics_core.geo.roi import roi_area_km2
    from plastics_dagster.registry import read_roi_any, register_roi

    refs = None
    if reference is not None:  # validated before anything is registered
        from plastics_core.evaluation import read_reference_sites, sites_in_roi

        refs = sites_in_roi(read_reference_sites(reference), read_roi_any(file), reference)
    root = open_store(store)
    geom = register_roi(open_instance(), root, name, file, replace=replace)
    click.echo(f"registered ROI {name}: {roi_area_km2(geom):.2f} km2, stored in {root}/rois/{name}.geojson")
    if refs is not None:
        from plastics_core.evaluation import store_reference_sites

        kept, dropped = refs
        path = store_reference_sites(root, name, kept)
        outside = f" ({dropped} outside the ROI left out)" if dropped else ""
        click.echo(f"reference sites: {len(kept)} stored in {path}{outside}")


@roi.command("list")
@click.option("--store", help=_STORE_HELP)
def list_rois(store: str | None) -> None:
    """Registered ROIs (dynamic partitions of the instance) and where each one's geometry is read from.

    An ROI without geometry (a partition added in the UI) is listed as such: its runs fail until
    `plastics roi add NAME FILE.geojson` registers one. A partition whose name no run can use is
    listed with the command that removes it."""
    from plastics_dagster.registry import DEFAULT_ROI, list_rois, roi_geometry_source, unusable_rois
    from plastics_dagster.resources import StoreResource

    root = open_store(store)
    instance = open_instance()
    names, unusable = list_rois(instance), unusable_rois(instance)
    watched = StoreResource().roi_folder()
    click.echo(f"instance: {dagster_home()}  store: {root}")
    if not names and not unusable:
        click.echo(
            f"no ROI registered yet; `plastics run` registers {DEFAULT_ROI} on first use, "
            "or add one with `plastics roi add NAME FILE.geojson`"
        )
    for name in names:
        source, path = roi_geometry_source(root, name, watched)
        if source == "store":
            click.echo(f"{name}\t{path}")
        elif source == "none":
            click.echo(
                f"{name}\tNO GEOMETRY: its runs fail; register one with `plastics roi add {name} FILE.geojson` "
                f"or remove it with `plastics roi remove {name}`"
            )
        else:
            click.echo(f"{name}\t{path} ({source}, not in the store)")
    for name in unusable:
        click.echo(
            f"{name!r}\tUNUSABLE NAME: no run can use it; remove it with "
            f"`plastics roi remove {shlex.quote(name)}`"
        )


@roi.command("remove")
@click.argument("name")
@click.option("--purge", is_flag=True, help="Also delete the ROI's outputs in the store (every window).")
@click.option("--store", help=_STORE_HELP)
def remove(name: str, purge: bool, store: str | None) -> None:
    """Delete ROI NAME: its `roi` partition and its stored GeoJSON. Outputs are kept unless --purge."""
    from plastics_core.geo.roi import roi_name_ok
    from plastics_dagster.registry import remove_roi

    root = open_store(store)
    removed = remove_roi(open_instance(), root, name, purge=purge)
    if not roi_name_ok(name):  # a partition only: no store path can hold this name
        click.echo(f"removed the roi partition {name!r} (a name no run can use; nothing was stored under it)")
        return
    kept = "" if purge else f"; its outputs stay in {root} (--purge deletes them)"
    click.echo(
        f"removed ROI {name} ({len(removed)} stored path{'' if len(removed) == 1 else 's'} deleted){kept}"
    )


@roi.command("split")
@click.argument("name")
@click.argument("file", metavar="FILE.geojson")
@click.option("--cell", type=float, required=True, help="Grid cell size in degrees (e.g. 0.25).")
@click.option(
    "--tilesize", type=int, default=None, help="Tile size (px) the runs will use [planner default]."
)
@click.option("--pad", type=int, default=None, help="Tile pad (px) the runs will use [planner default].")
@click.option(
    "--max-cells",
    type=click.IntRange(min=1),
    default=MAX_CELLS,
    show_default=True,
    help="Refuse a split into more cell ROIs than this (before anything is written).",
)
@click.option(
    "--max-tiles",
    type=click.IntRange(min=1),
    default=MAX_TILES,
    show_default=True,
    help="Refuse an ROI of more tiles than this (planning needs memory per tile).",
)
@click.option("--store", help=_STORE_HELP)
def split(
    name: str,
    file: str,
    cell: float,
    tilesize: int | None,
    pad: int | None,
    max_cells: int,
    max_tiles: int,
    store: str | None,
) -> None:
    """Split a large ROI into grid-cell ROIs NAME-rRRRcCCC (clipped to the polygon) and register each.

    A backfill across the cells and windows then covers the whole area with runs of a few
    hundred tiles each. Cells are tile-aligned (each tile belongs to one cell, so no tile runs
    twice): give the --tilesize/--pad the runs use. FILE is a local path; the area limit of
    `roi add` does not apply. The split is bounded (--max-cells, --max-tiles: checked before any
    file is written) and all-or-nothing: every cell ROI file and partition is registered, or none.
    """
    from plastics_core.geo.roi import read_roi, roi_area_km2
    from plastics_core.geo.roi_split import split_roi
    from plastics_core.params import make_params

    sizes = {k: v for k, v in (("tilesize", tilesize), ("pad", pad)) if v is not None}
    make_params(dict(sizes))  # the bounds every run checks: a cell grid no run could use is refused here
    root = open_store(store)
    cells = split_roi(
        name, read_roi(file, force=True), cell, max_cells=max_cells, max_tiles=max_tiles, **sizes
    )  # large areas are why we split
    new = register_cells(root, open_instance(), cells)
    total = sum(roi_area_km2(c.geometry) for c in cells)
    tiles = [len(c.tile_keys) for c in cells]
    click.echo(
        f"split {name} into {len(cells)} cell ROI(s) of {cell} deg ({total:.0f} km2, {sum(tiles)} tiles, "
        f"at most {max(tiles, default=0)} per cell), "
        f"{len(new)} newly registered; e.g. {cells[0].name if cells else '-'}"
    )


def register_cells(root: Any, instance: Any, cells: Sequence[Any]) -> list[str]:
    """Store every cell's ROI file, then add the new partitions in one call: all or nothing. On any
    failure (or interrupt) the files written are removed and files that were there before are put
    back, and the error propagates. Returns the names of the newly added partitions."""
    from plastics_core.storage.store import atomic_write, read_bytes
    from plastics_dagster.partitions import ROI_PARTITIONS_NAME
    from plastics_dagster.registry import roi_key, store_roi

    before: dict[str, bytes | None] = {}
    try:
        for c in progress(cells, "storing cells", total=len(cells)):
            path = roi_key(root, c.name)
            before[c.name] = read_bytes(path) if path.exists() else None
            store_roi(root, c.name, c.geometry)
        new = [c.name for c in cells if not instance.has_dynamic_partition(ROI_PARTITIONS_NAME, c.name)]
        if new:
            instance.add_dynamic_partitions(ROI_PARTITIONS_NAME, new)
        return new
    except BaseException:
        for cell_name, old in before.items():
            path = roi_key(root, cell_name)
            with contextlib.suppress(Exception):
                if old is None:
                    path.unlink(missing_ok=True)
                else:
                    atomic_write(path, old)
        raise
