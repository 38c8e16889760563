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
    res = default_resources(
        params=DetectionParams(tilesize=256, pad=16),
        imagery=ImagerySourceResource(kind="synthetic"),
        models=ModelStoreResource(location=str(bad)),
        store=StoreResource(location=str(store)),
    )
    result = materialize(
        ALL_ASSETS,
        selection=["descartes_run"],
        partition_key=partition_key("test_patch", "2021-01-01"),
        instance=instance,
        resources=res,
        raise_on_error=False,
    )
    assert not result.success
    (failed,) = result.get_step_failure_events()
    assert failed.step_key == "descartes_run.plan_tiles"
    assert "unit_norm_d" in failed.event_specific_data.error.message
    assert not any("infer_tile" in (e.step_key or "") for e in result.get_step_success_events())
    assert not [p for p in store.rglob("*") if p.is_file()]


def test_preflight_passes_on_good_inputs(models_dir: Path, tmp_path: Path) -> None:
    preflight(
        DetectionParams(),
        ImagerySourceResource(kind="synthetic"),
        ModelStoreResource(location=str(models_dir)),
        StoreResource(location=str(tmp_path / "store")),
    )


@pytest.mark.parametrize(
    ("geocoder", "env", "match"),
    [
        ({}, "nominatium", "unknown geocoder 'nominatium'"),  # a kind in config is a Literal: refused earlier
        (
            {"kind": "fixture", "fixture": "/nonexistent/answers.json"},
            "",
            "geocoder fixture /nonexistent/answers.json cannot be read",
        ),
    ],
)
def test_geocoder_typos_fail_before_any_tile(
    models_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    geocoder: dict[str, str],
    env: str,
    match: str,
) -> None:
    """A geocoder the enriched_sites step could not build (a typo in $PLASTICS_GEOCODER, a fixture
    file that cannot be read) is found by the preflight (one line), not after every tile was computed."""
    from plastics_core.errors import ParameterError
    from plastics_dagster.resources import GeocoderResource

    monkeypatch.setenv("PLASTICS_GEOCODER", env)

    with pytest.raises(ParameterError, match=match) as info:
        preflight(
            DetectionParams(),
            ImagerySourceResource(kind="synthetic"),
            ModelStoreResource(location=str(models_dir)),
            StoreResource(location=str(tmp_path / "store")),
            GeocoderResource(**geocoder),
        )
    assert "\n" not in str(info.value)
    assert not (tmp_path / "store").exists() or not any((tmp_path / "store").rglob("*.json"))


def _closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_endpoints_fail_at_preflight_in_seconds(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Connection refused at start is one line within seconds (the store's 120 s outage budget is for the run)."""
    import time

    from plastics_core.errors import ImageryError, ModelError
    from plastics_core.storage.store import StoreUnreachableError
    from plastics_dagster.preflight import PROBE_TIMEOUT_S, check_endpoints

    port = _closed_port()
    monkeypatch.delenv("PLASTICS_STORE_RETRY_SECONDS", raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "y")
    cases = [
        (lambda: check_store(StoreResource(location="s3://bucket/store")), StoreUnreachableError, "store"),
        (
            lambda: check_endpoints(
                DetectionParams(),
                ImagerySourceResource(
                    kind="stac", path=f"http://user:pw-canary@127.0.0.1:{port}/v1?token=tok-canary"
                ),
                ModelStoreResource(),
            ),
            ImageryError,
            "STAC catalog",
        ),
        (
            lambda: check_endpoints(
                DetectionParams(),
                ImagerySourceResource(kind="synthetic"),
                ModelStoreResource(
                    location=f"https://127.0.0.1:{port}/models", cache_dir=str(tmp_path / "cache")
                ),
            ),
            ModelError,
            "model store",
        ),
    ]
    for call, error, what in cases:
        start = time.perf_counter()
        with pytest.raises(error) as info:
            call()
        assert time.perf_counter() - start < 2 * PROBE_TIMEOUT_S
        msg = str(info.value)
        assert f"cannot reach the {what} at " in msg and f"127.0.0.1:{port} (connection refused)" in msg, msg
        assert "canary" not in msg and "\n" not in msg, msg


def test_a_listening_endpoint_passes_and_the_run_keeps_its_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    from plastics_core.storage.store import STORE_RETRY_SECONDS, retry_budget_cap, store_retry_seconds
    from plastics_dagster.preflight import PREFLIGHT_RETRY_S, check_endpoint

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        check_endpoint(f"http://127.0.0.1:{server.getsockname()[1]}/v1", "STAC catalog", StoreError, "fix")
    monkeypatch.delenv("PLASTICS_STORE_RETRY_SECONDS", raising=False)
    assert store_retry_seconds() == STORE_RETRY_SECONDS
    with retry_budget_cap(PREFLIGHT_RETRY_S):
        assert store_retry_seconds() == PREFLIGHT_RETRY_S
    assert store_retry_seconds() == STORE_RETRY_SECONDS  # outages during the run: the full budget
