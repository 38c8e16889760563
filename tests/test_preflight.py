"""Checks before the first tile: every model file (the ensemble's too), the store's writability and
the S3 endpoint; each failure one line, found by ``plan_tiles`` before any ``infer_tile`` step."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from dagster import DagsterInstance, materialize

from plastics_core.errors import ChecksumError
from plastics_dagster.config import DetectionParams
from plastics_dagster.preflight import StoreError, check_models, check_store, preflight
from plastics_dagster.resources import ImagerySourceResource, ModelStoreResource, StoreResource

MEMBER = "v0.0.11_ensemble-8-25-21/spectrogram_v0.0.11_unit_norm_d_2021-08-25.h5"


def _corrupt_member(models_dir: Path, tmp_path: Path) -> Path:
    bad = tmp_path / "models"
    shutil.copytree(models_dir, bad, ignore=shutil.ignore_patterns("*.md"))
    target = bad / MEMBER
    target.chmod(0o644)
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    return bad


def test_every_model_is_verified_the_ensemble_included(models_dir: Path, tmp_path: Path) -> None:
    sums = check_models(DetectionParams(), ModelStoreResource(location=str(models_dir)))
    assert MEMBER in sums and len(sums) == 8
    bad = _corrupt_member(models_dir, tmp_path)
    with pytest.raises(ChecksumError, match="unit_norm_d"):
        check_models(DetectionParams(), ModelStoreResource(location=str(bad)))


def test_store_probe_writes_and_deletes(tmp_path: Path) -> None:
    check_store(StoreResource(location=str(tmp_path / "store")))
    assert not list((tmp_path / "store").iterdir())  # the probe is gone
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(StoreError) as info:
        check_store(StoreResource(location=str(blocker / "store")))
    assert "is not writable" in str(info.value) and "\n" not in str(info.value)


def test_unreachable_s3_endpoint_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("PLASTICS_STORE_RETRY_SECONDS", "0")  # no outage to ride out here
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "y")
    from plastics_core.storage.store import StoreUnreachableError

    with pytest.raises(StoreUnreachableError) as info:
        check_store(StoreResource(location="s3://bucket/store"))
    msg = str(info.value)
    assert "http://127.0.0.1:9" in msg and "AWS_ENDPOINT_URL" in msg and "\n" not in msg, msg


def test_plan_tiles_fails_before_any_tile(models_dir: Path, tmp_path: Path) -> None:
    """A corrupt ensemble member fails the run in plan_tiles: no infer_tile step, nothing stored."""
    from plastics_dagster.definitions import ALL_ASSETS, default_resources
    from plastics_dagster.partitions import partition_key

    bad = _corrupt_member(models_dir, tmp_path)
    store = tmp_path / "store"
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("roi", ["test_patch"])
    res = default_resources(params=DetectionParams(tilesize=256, pad=16), imagery=ImagerySourceResource(kind="synthetic"),
                            models=ModelStoreResource(location=str(bad)), store=StoreResource(location=str(store)))
    result = materialize(ALL_ASSETS, selection=["descartes_run"], partition_key=partition_key("test_patch", "2021-01-01"),
                         instance=instance, resources=res, raise_on_error=False)
    assert not result.success
    (failed,) = result.get_step_failure_events()
    assert failed.step_key == "descartes_run.plan_tiles"
    assert "unit_norm_d" in failed.event_specific_data.error.message
    assert not any("infer_tile" in (e.step_key or "") for e in result.get_step_success_events())
    assert not [p for p in store.rglob("*") if p.is_file()]


def test_preflight_passes_on_good_inputs(models_dir: Path, tmp_path: Path) -> None:
    preflight(DetectionParams(), ImagerySourceResource(kind="synthetic"), ModelStoreResource(location=str(models_dir)),
              StoreResource(location=str(tmp_path / "store")))


@pytest.mark.parametrize(("geocoder", "match"), [
    ({"kind": "nominatium"}, "unknown geocoder 'nominatium'"),
    ({"kind": "fixture", "fixture": "/nonexistent/answers.json"}, "geocoder fixture /nonexistent/answers.json cannot be read"),
])
def test_geocoder_typos_fail_before_any_tile(models_dir: Path, tmp_path: Path, geocoder: dict[str, str],
                                             match: str) -> None:
    """A geocoder the enriched_sites step could not build is found by the preflight (one line),
    not after every tile was computed."""
    from plastics_core.errors import ParameterError
    from plastics_dagster.resources import GeocoderResource

    with pytest.raises(ParameterError, match=match) as info:
        preflight(DetectionParams(), ImagerySourceResource(kind="synthetic"), ModelStoreResource(location=str(models_dir)),
                  StoreResource(location=str(tmp_path / "store")), GeocoderResource(**geocoder))
    assert "\n" not in str(info.value)
    assert not (tmp_path / "store").exists() or not any((tmp_path / "store").rglob("*.json"))
