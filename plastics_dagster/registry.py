"""The ROI registry: ROIs live in ``<store>/rois/<name>.geojson`` AND as dynamic ``roi`` partitions.

The default ROI ``test_patch`` is read from ``$PLASTICS_SHARED/data/gpw/test_patch.geojson``
whenever it is not registered in the store; an ROI found by ``roi_sensor`` in the watched folder
is read from there (the sensor writes nothing) until it is registered in the store.

A name keeps its geometry: registering a different geometry under a registered name is refused
unless ``replace=True`` (``plastics roi add --replace``); the ROI geometry hash is part of every
run hash (:func:`roi_hash`), so runs of the new geometry never reuse tiles of the old one.
Registering the same geometry again is a no-op.
"""

from __future__ import annotations

import json
import shlex
import tempfile
from pathlib import Path
from typing import Any, Literal

import shapely
from dagster import DagsterInstance
from upath import UPath

from plastics_core.errors import RoiError
from plastics_core.geo.roi import read_roi, roi_name_ok, validate_roi_name
from plastics_core.params import geometry_hash
from plastics_core.storage.store import atomic_write
from plastics_dagster.partitions import ROI_PARTITIONS_NAME

DEFAULT_ROI = "test_patch"


def shared_dir() -> Path:
    """The shared data folder, absolute: ``$PLASTICS_SHARED`` (read now) or ``../shared`` relative
    to the working directory (:func:`plastics_core.synthetic.background.default_shared_dir`)."""
    from plastics_core.synthetic.background import default_shared_dir

    return default_shared_dir().resolve()


def roi_key(store: UPath, name: str) -> UPath:
    return store / "rois" / f"{validate_roi_name(name)}.geojson"


def roi_geojson_bytes(name: str, geom: Any) -> bytes:
    """A one-feature FeatureCollection (RFC 7946, EPSG:4326) for a registered ROI."""
    doc = {
        "type": "FeatureCollection",
        "features": [
            {"type": "Feature", "properties": {"name": name}, "geometry": shapely.geometry.mapping(geom)}
        ],
    }
    return json.dumps(doc, sort_keys=True).encode()


def read_roi_any(path: str | Path | UPath) -> Any:
    """:func:`plastics_core.geo.roi.read_roi` for a local path or any UPath (e.g. ``s3://``)."""
    upath = path if isinstance(path, UPath) else UPath(str(path))
    if getattr(upath, "protocol", "") in ("", "file", "local"):
        return read_roi(Path(upath.path))
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / upath.name
        local.write_bytes(upath.read_bytes())
        return read_roi(local)


def store_roi(store: UPath, name: str, geom: Any) -> UPath:
    """Write the ROI into the store (atomic) and return its path."""
    target = roi_key(store, name)
    atomic_write(target, roi_geojson_bytes(name, geom))
    return target


def register_roi(
    instance: DagsterInstance, store: UPath, name: str, path: str | Path | UPath, replace: bool = False
) -> Any:
    """Validate ``path`` (ROI GeoJSON) and ``name``; store it; add the dynamic partition.

    Returns the ROI geometry (EPSG:4326). Raises RoiError (one line) on bad input, and when
    ``name`` is registered with a different geometry unless ``replace``. The same geometry
    again changes nothing.
    """
    name = validate_roi_name(name)
    geom = read_roi_any(path)
    try:
        current = load_roi(store, name)
    except RoiError:
        current = None
    if current is None or not roi_key(store, name).exists() or geometry_hash(current) != geometry_hash(geom):
        if current is not None and geometry_hash(current) != geometry_hash(geom) and not replace:
            raise RoiError(
                f"ROI {name!r} is already registered with a different geometry: pass --replace to "
                "replace it (its runs then get a new run hash) or choose another name"
            )
        store_roi(store, name, geom)
    if not instance.has_dynamic_partition(ROI_PARTITIONS_NAME, name):
        instance.add_dynamic_partitions(ROI_PARTITIONS_NAME, [name])
    return geom


def default_roi_file() -> Path:
    return shared_dir() / "data" / "gpw" / f"{DEFAULT_ROI}.geojson"


def load_roi(store: UPath, name: str, roi_dir: UPath | None = None) -> Any:
    """The ROI geometry of ``name``: from the store, else ``<roi_dir>/<name>.geojson`` (the folder
    ``roi_sensor`` watches), else (``test_patch`` only) the shared file."""
    target = roi_key(store, name)
    if target.exists():
        return read_roi_any(target)
    if roi_dir is not None and (roi_dir / f"{name}.geojson").exists():
        return read_roi_any(roi_dir / f"{name}.geojson")
    if name == DEFAULT_ROI and default_roi_file().exists():
        return read_roi(default_roi_file())
    raise RoiError(
        f"ROI {name!r} is not registered in {store}: add it with `plastics roi add {name} FILE.geojson`"
    )


def roi_hash(store: UPath, name: str, roi_dir: UPath | None = None) -> str:
    """sha256 of the ROI's canonical geometry (:func:`plastics_core.params.geometry_hash`)."""
    return geometry_hash(load_roi(store, name, roi_dir))


def ensure_roi(instance: DagsterInstance, store: UPath, name: str) -> None:
    """Make ``name`` a dynamic partition; ``test_patch`` is registered from the shared file."""
    if instance.has_dynamic_partition(ROI_PARTITIONS_NAME, name):
        return
    if name == DEFAULT_ROI and not roi_key(store, name).exists():
        register_roi(instance, store, name, default_roi_file())
        return
    load_roi(store, name)  # raises RoiError when unknown
    instance.add_dynamic_partitions(ROI_PARTITIONS_NAME, [name])


#: store folders holding per-ROI outputs (``<store>/<asset>/<roi>/...``) and the ROI's cached
#: composites (``<store>/composites/<roi>/...``), removed by ``purge``
OUTPUT_FOLDERS = (
    "descartes_run",
    "heatmaps",
    "patch_geojson",
    "blobs",
    "candidates",
    "contours",
    "enriched_sites",
    "preview",
    "site_registry",
    "composites",
)


def remove_roi(instance: DagsterInstance, store: UPath, name: str, purge: bool = False) -> list[UPath]:
    """Delete the ``roi`` partition ``name`` and its stored geometry; with ``purge`` also its outputs.

    Returns the removed store paths. Raises RoiError when ``name`` is neither a partition nor stored.
    """
    holding = runs_holding_roi(instance, name)
    if holding:  # deleting its geometry or outputs under a run would fail it half-way (or half-purge)
        raise RoiError(
            f"ROI {name!r} is in use by {len(holding)} run(s) in flight ({', '.join(holding[:3])}): "
            "wait until they end (or stop them), then remove it"
        )
    known = instance.has_dynamic_partition(ROI_PARTITIONS_NAME, name)
    if not roi_name_ok(name):  # a partition added elsewhere (UI, API) under a name no store path can hold
        if not known:
            raise RoiError(f"ROI {name!r} is not registered: `plastics roi list` shows the registered ROIs")
        instance.delete_dynamic_partition(ROI_PARTITIONS_NAME, name)
        return []
    target = roi_key(store, name)
    if not known and not target.exists():
        raise RoiError(f"ROI {name!r} is not registered: `plastics roi list` shows the registered ROIs")
    removed: list[UPath] = []
    if known:
        instance.delete_dynamic_partition(ROI_PARTITIONS_NAME, name)
    if target.exists():
        target.unlink()
        removed.append(target)
    from plastics_core.storage.layout import asset_folder

    for folder in (asset_folder(store, sub, name) for sub in OUTPUT_FOLDERS) if purge else ():
        if folder.exists():
            folder.fs.rm(folder.path, recursive=True)
            removed.append(folder)
    return removed


def runs_holding_roi(instance: DagsterInstance, name: str) -> list[str]:
    """Ids of the runs queued or in progress on ROI ``name`` (tag ``plastics/roi``, or a partition
    key ``name`` / ``name|<window>``), oldest first."""
    from dagster import DagsterRunStatus, RunsFilter

    flight = [
        DagsterRunStatus.QUEUED,
        DagsterRunStatus.NOT_STARTED,
        DagsterRunStatus.STARTING,
        DagsterRunStatus.STARTED,
        DagsterRunStatus.CANCELING,
    ]
    runs = instance.get_runs(filters=RunsFilter(statuses=flight))
    return [
        r.run_id
        for r in reversed(runs)
        if r.tags.get("plastics/roi") == name
        or r.tags.get("dagster/partition", "").partition("|")[0] == name
        or r.tags.get("dagster/partition/roi") == name
    ]


def list_rois(instance: DagsterInstance) -> list[str]:
    """Registered ROI partition names the project can use, sorted (see :func:`unusable_rois`)."""
    return sorted(name for name in instance.get_dynamic_partitions(ROI_PARTITIONS_NAME) if roi_name_ok(name))


def unusable_rois(instance: DagsterInstance) -> list[str]:
    """``roi`` partition keys that are not valid ROI names, sorted: added outside the project's
    tools (the UI's *Add partition*, the GraphQL API, a sensor of another code location). No run
    of such a partition can work; ``plastics roi remove NAME`` deletes it."""
    return sorted(
        name for name in instance.get_dynamic_partitions(ROI_PARTITIONS_NAME) if not roi_name_ok(name)
    )


def unusable_rois_message(names: list[str]) -> str:
    """One line naming the unusable ``roi`` partitions and how to remove them ('' when none)."""
    if not names:
        return ""
    shown = ", ".join(repr(n) for n in names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    first = shlex.quote(names[0])
    return (
        f"the Dagster instance has {len(names)} roi partition(s) whose name no run can use ({shown}): "
        f"remove each with `plastics roi remove {first}`"
    )


GeometrySource = Literal["store", "watched folder", "shared default", "none"]


def roi_geometry_source(store: UPath, name: str, roi_dir: UPath | None = None) -> tuple[GeometrySource, str]:
    """Where :func:`load_roi` would read ``name``'s geometry from, and that path ('' when none).

    ``("none", "")``: the ROI has no geometry (e.g. a partition added in the UI); its runs fail
    until ``plastics roi add NAME FILE.geojson`` registers one."""
    if not roi_name_ok(name):
        return "none", ""
    target = roi_key(store, name)
    if target.exists():
        return "store", str(target)
    if roi_dir is not None and (roi_dir / f"{name}.geojson").exists():
        return "watched folder", str(roi_dir / f"{name}.geojson")
    if name == DEFAULT_ROI and default_roi_file().exists():
        return "shared default", str(default_roi_file())
    return "none", ""
