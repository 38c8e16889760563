"""``plastics roi add|list|split|remove``: register regions of interest.

A registered ROI is stored as ``<store>/rois/<name>.geojson`` and added as a dynamic ``roi``
partition of the Dagster instance (see :mod:`plastics_dagster.registry`). ROI names match
``^[a-z0-9][a-z0-9_-]{0,63}$`` (safe for paths, S3 keys and partition keys).
"""

from __future__ import annotations

import click

from plastics_dagster.cli._base import progress
from plastics_dagster.cli._instance import dagster_home, open_instance, open_store

_STORE_HELP = "Output store: folder or s3://bucket/prefix [default: $PLASTICS_STORE or ./.plastics/store]"


@click.group("roi")
def roi() -> None:
    """Register and list regions of interest (dynamic `roi` partitions)."""


@roi.command("add")
@click.argument("name")
@click.argument("file", metavar="FILE.geojson")
@click.option("--store", help=_STORE_HELP)
@click.option("--replace", is_flag=True,
              help="Replace the geometry of an ROI already registered under NAME (its runs get a new run hash).")
def add(name: str, file: str, store: str | None, replace: bool) -> None:
    """Validate FILE.geojson (EPSG:4326 polygons) and register it as ROI NAME.

    FILE may be a local path or an s3:// URL. A NAME registered with another geometry is refused
    unless --replace; the same geometry again changes nothing.
    """
    from plastics_core.geo.roi import roi_area_km2
    from plastics_dagster.registry import register_roi

    root = open_store(store)
    geom = register_roi(open_instance(), root, name, file, replace=replace)
    click.echo(f"registered ROI {name}: {roi_area_km2(geom):.2f} km2, stored in {root}/rois/{name}.geojson")


@roi.command("list")
@click.option("--store", help=_STORE_HELP)
def list_rois(store: str | None) -> None:
    """Registered ROIs (dynamic partitions of the instance) and their stored files."""
    from plastics_dagster.registry import DEFAULT_ROI, list_rois, roi_key

    root = open_store(store)
    names = list_rois(open_instance())
    click.echo(f"instance: {dagster_home()}  store: {root}")
    if not names:
        click.echo(f"no ROI registered yet; `plastics run` registers {DEFAULT_ROI} on first use, "
                   "or add one with `plastics roi add NAME FILE.geojson`")
    for name in names:
        path = roi_key(root, name)
        click.echo(f"{name}\t{path if path.exists() else '(shared default)'}")


@roi.command("remove")
@click.argument("name")
@click.option("--purge", is_flag=True, help="Also delete the ROI's outputs in the store (every window).")
@click.option("--store", help=_STORE_HELP)
def remove(name: str, purge: bool, store: str | None) -> None:
    """Delete ROI NAME: its `roi` partition and its stored GeoJSON. Outputs are kept unless --purge."""
    from plastics_dagster.registry import remove_roi

    root = open_store(store)
    removed = remove_roi(open_instance(), root, name, purge=purge)
    kept = "" if purge else f"; its outputs stay in {root} (--purge deletes them)"
    click.echo(f"removed ROI {name} ({len(removed)} stored path{'' if len(removed) == 1 else 's'} deleted){kept}")


@roi.command("split")
@click.argument("name")
@click.argument("file", metavar="FILE.geojson")
@click.option("--cell", type=float, required=True, help="Grid cell size in degrees (e.g. 0.25).")
@click.option("--tilesize", type=int, default=None, help="Tile size (px) the runs will use [planner default].")
@click.option("--pad", type=int, default=None, help="Tile pad (px) the runs will use [planner default].")
@click.option("--store", help=_STORE_HELP)
def split(name: str, file: str, cell: float, tilesize: int | None, pad: int | None, store: str | None) -> None:
    """Split a large ROI into grid-cell ROIs NAME-rRRRcCCC (clipped to the polygon) and register each.

    A backfill across the cells and windows then covers the whole area with runs of a few
    hundred tiles each. Cells are tile-aligned (each tile belongs to one cell, so no tile runs
    twice): give the --tilesize/--pad the runs use. FILE is a local path; the area limit of
    `roi add` does not apply.
    """
    from plastics_core.geo.roi import read_roi, roi_area_km2
    from plastics_core.geo.roi_split import split_roi
    from plastics_core.params import make_params
    from plastics_dagster.partitions import ROI_PARTITIONS_NAME
    from plastics_dagster.registry import store_roi

    sizes = {k: v for k, v in (("tilesize", tilesize), ("pad", pad)) if v is not None}
    make_params(dict(sizes))  # the bounds every run checks: a cell grid no run could use is refused here
    root = open_store(store)
    cells = split_roi(name, read_roi(file, force=True), cell, **sizes)  # large areas are why we split
    for c in progress(cells, "storing cells", total=len(cells)):
        store_roi(root, c.name, c.geometry)
    instance = open_instance()
    new = [c.name for c in cells if not instance.has_dynamic_partition(ROI_PARTITIONS_NAME, c.name)]
    if new:
        instance.add_dynamic_partitions(ROI_PARTITIONS_NAME, new)
    total = sum(roi_area_km2(c.geometry) for c in cells)
    tiles = [len(c.tile_keys) for c in cells]
    click.echo(f"split {name} into {len(cells)} cell ROI(s) of {cell} deg ({total:.0f} km2, {sum(tiles)} tiles, "
               f"at most {max(tiles, default=0)} per cell), "
               f"{len(new)} newly registered; e.g. {cells[0].name if cells else '-'}")
