"""An ROI name keeps its geometry: re-registering another geometry is refused unless --replace,
and the geometry is part of the run hash, so runs of a replaced ROI never reuse its old tiles;
readers take exactly the manifest's / tiles.json's tiles."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from dagster import DagsterInstance, materialize
from shapely import affinity

from plastics_core.errors import RoiError
from plastics_core.params import geometry_hash
from plastics_core.storage.store import store_path
from plastics_dagster.registry import load_roi, register_roi, roi_geojson_bytes, roi_hash, roi_key
from tests import _fanout_util as fu


@pytest.fixture()
def moved_file(tmp_path: Path, gpw_dir: Path) -> Path:
    from plastics_core.geo.roi import read_roi

    moved = affinity.translate(read_roi(gpw_dir / "test_patch.geojson"), xoff=-0.1)
    path = tmp_path / "moved.geojson"
    path.write_bytes(roi_geojson_bytes("moved", moved))
    return path


def test_reregistering_another_geometry_is_refused_unless_replace(
    tmp_path: Path, gpw_dir: Path, moved_file: Path
) -> None:
    store, instance = store_path(str(tmp_path / "store")), DagsterInstance.ephemeral()
    register_roi(instance, store, "temesi", gpw_dir / "test_patch.geojson")
    before = roi_key(store, "temesi").read_bytes()
    old_hash = roi_hash(store, "temesi")
    register_roi(instance, store, "temesi", gpw_dir / "test_patch.geojson")  # same geometry: no-op
    assert roi_key(store, "temesi").read_bytes() == before
    with pytest.raises(RoiError, match="already registered with a different geometry: pass --replace"):
        register_roi(instance, store, "temesi", moved_file)
    assert roi_key(store, "temesi").read_bytes() == before and roi_hash(store, "temesi") == old_hash
    register_roi(instance, store, "temesi", moved_file, replace=True)
    assert roi_hash(store, "temesi") != old_hash
    # test_patch's shared default counts as registered: moving it needs --replace too
    with pytest.raises(RoiError, match="--replace"):
        register_roi(instance, store, "test_patch", moved_file)


def test_cli_roi_add_refuses_then_replaces(
    tmp_path: Path, gpw_dir: Path, moved_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from plastics_dagster.cli import cli

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PLASTICS_STORE", str(tmp_path / "store"))
    runner = CliRunner()
    assert runner.invoke(cli, ["roi", "add", "temesi", str(gpw_dir / "test_patch.geojson")]).exit_code == 0
    again = runner.invoke(cli, ["roi", "add", "temesi", str(gpw_dir / "test_patch.geojson")])
    assert again.exit_code == 0, again.output
    refused = runner.invoke(cli, ["roi", "add", "temesi", str(moved_file)])
    assert refused.exit_code == 2 and "Traceback" not in refused.output
    lines = [ln for ln in refused.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "--replace" in lines[0], lines
    replaced = runner.invoke(cli, ["roi", "add", "--replace", "temesi", str(moved_file)])
    assert replaced.exit_code == 0, replaced.output
    store = store_path(str(tmp_path / "store"))
    assert geometry_hash(load_roi(store, "temesi")) == geometry_hash(json_geom(moved_file))


def json_geom(path: Path) -> Any:
    from plastics_core.geo.roi import read_roi

    return read_roi(path)


@pytest.mark.slow
def test_replaced_roi_never_reuses_old_tiles(tmp_path: Path) -> None:
    """Materialize the 4-tile partition, replace the ROI by the same box moved one tile east, rerun:
    a new run-hash folder, every tile computed afresh, the old run untouched; the heatmaps
    folder lists exactly its manifest's tiles."""
    from plastics_dagster.definitions import ALL_ASSETS

    store, instance = tmp_path / "store", DagsterInstance.ephemeral()
    fu.register(instance, store)
    selection = ["descartes_run", "heatmaps", "patch_geojson"]
    first = materialize(
        ALL_ASSETS,
        selection=selection,
        partition_key=fu.partition(),
        instance=instance,
        resources=fu.resources(store),
    )
    assert first.success
    old_dir = fu.run_dir(store)
    old = {p.name: p.read_bytes() for p in old_dir.iterdir()}
    root = store_path(str(store))
    moved = affinity.translate(load_roi(root, fu.ROI_NAME), xoff=0.0006)  # ~65 m: other tiles' corner
    src = tmp_path / "moved.geojson"
    src.write_bytes(roi_geojson_bytes(fu.ROI_NAME, moved))
    register_roi(instance, root, fu.ROI_NAME, src, replace=True)
    second = materialize(
        ALL_ASSETS,
        selection=selection,
        partition_key=fu.partition(),
        instance=instance,
        resources=fu.resources(store),
    )
    assert second.success
    hashes = [r.output_for_node("descartes_run").manifest["run_hash"] for r in (first, second)]
    assert hashes[0] == old_dir.name and hashes[1] != hashes[0]
    new_manifest = second.output_for_node("descartes_run").manifest
    infer = [e for e in second.all_events if e.is_successful_output and "infer_tile" in (e.step_key or "")]
    assert infer and all(not e.event_specific_data.metadata["skipped"].value for e in infer)
    assert {p.name: p.read_bytes() for p in old_dir.iterdir()} == old  # the old run is untouched
    heat = store / "heatmaps" / fu.ROI_NAME / fu.WINDOW / hashes[1]
    assert json.loads((heat / "tiles.json").read_text()) == new_manifest["tiles"]
    (heat / "stray.tif").write_bytes((heat / f"{sorted(p.name for p in heat.glob('*.tif'))[0]}").read_bytes())
    from plastics_core.storage.folders import read_raster_folder

    assert [r.name for r in read_raster_folder(store_path(str(heat)))] == new_manifest[
        "tiles"
    ]  # not the stray
