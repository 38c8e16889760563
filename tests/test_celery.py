"""dagster-celery + Redis: a 4-tile partition where every infer_tile step runs on the gpu-queue worker.

Needs what ``.ci/with-services`` starts (PLASTICS_CI_CELERY=1): redis-server on 127.0.0.1 and two
dagster-celery workers named ``plastics-dagster`` (queue ``dagster``) and ``plastics-gpu`` (queue
``gpu``) whose DAGSTER_HOME is $PLASTICS_TEST_DAGSTER_HOME (else $DAGSTER_HOME): the run is
launched against that persistent instance. Without them the tests skip, unless PLASTICS_TEST_CELERY=1 (set
by the script when it started them): then a missing service is a failure, never a silent skip.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from dagster import DagsterEventType, DagsterInstance, materialize

from tests import _fanout_util as fu

pytestmark = [pytest.mark.services, pytest.mark.slow]
EXPECTED = os.environ.get("PLASTICS_TEST_CELERY") == "1"
GPU_WORKER, CPU_WORKER = "plastics-gpu@", "plastics-dagster@"
ASSETS = ("patch_geojson", "blobs", "candidates", "contours", "enriched_sites")


def _unavailable(reason: str) -> None:
    if EXPECTED:
        pytest.fail(f"{reason} (PLASTICS_TEST_CELERY=1: .ci/with-services was to start it)")
    pytest.skip(f"{reason}: run through .ci/with-services with PLASTICS_CI_CELERY=1")


@pytest.fixture(scope="module")
def celery_app() -> Any:
    from dagster_celery.executor import CeleryExecutor
    from dagster_celery.make_app import make_app

    from plastics_dagster.celery_job import celery_config

    cfg = celery_config()
    try:
        import redis

        redis.Redis.from_url(cfg["broker"], socket_connect_timeout=2).ping()
    except Exception as exc:  # noqa: BLE001 - any connection problem means "no Redis"
        _unavailable(f"no Redis at {cfg['broker']} ({exc.__class__.__name__})")
    app = make_app(CeleryExecutor.for_cli(broker=cfg["broker"], backend=cfg["backend"]).app_args())
    queues = app.control.inspect(timeout=5).active_queues() or {}
    names = {w.split("@")[0] + "@": {q["name"] for q in qs} for w, qs in queues.items()}
    if names.get(GPU_WORKER) != {"gpu"} or names.get(CPU_WORKER) != {"dagster"}:
        _unavailable(
            f"celery workers {GPU_WORKER} (queue gpu) and {CPU_WORKER} (queue dagster) not both up: {names}"
        )
    if not _home():
        _unavailable("PLASTICS_TEST_DAGSTER_HOME / DAGSTER_HOME (the workers' instance) is not set")
    return app


def _home() -> str:
    return os.environ.get("PLASTICS_TEST_DAGSTER_HOME") or os.environ.get("DAGSTER_HOME") or ""


@pytest.fixture(scope="module")
def runs(celery_app: Any, tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> dict[str, Any]:
    from plastics_dagster.celery_job import launch
    from plastics_dagster.checks import ALL_CHECKS
    from plastics_dagster.definitions import ALL_ASSETS
    from plastics_dagster.jobs import DETECT_SELECTION

    store, reference = tmp_path_factory.mktemp("celery_store"), tmp_path_factory.mktemp("inprocess_store")
    instance = DagsterInstance.from_config(_home())
    fu.register(instance, store)
    result = launch(instance, fu.partition(), run_config=fu.run_config(store, models_dir))
    local = DagsterInstance.ephemeral()
    fu.register(local, reference)
    ref = materialize(
        [*ALL_ASSETS, *ALL_CHECKS],
        selection=DETECT_SELECTION,
        partition_key=fu.partition(),
        instance=local,
        resources=fu.resources(reference),
    )
    return {"instance": instance, "result": result, "store": store, "reference": reference, "ref": ref}


def _celery_workers(instance: DagsterInstance, run_id: str) -> dict[str, str]:
    """step key -> the celery worker that executed it (dagster-celery's own engine event)."""
    out = {}
    for entry in instance.all_logs(run_id, of_type=DagsterEventType.ENGINE_EVENT):
        meta = entry.dagster_event.engine_event_data.metadata if entry.dagster_event else {}
        if entry.step_key and "Celery worker" in meta:
            out[entry.step_key] = str(meta["Celery worker"].value)
    return out


def test_celery_run_succeeds(runs: dict[str, Any]) -> None:
    assert runs["result"].success and runs["ref"].success
    assert fu.manifest(runs["store"])["executor"] == "celery"


def test_infer_tile_on_gpu_worker_everything_else_on_dagster(runs: dict[str, Any]) -> None:
    workers = _celery_workers(runs["instance"], runs["result"].run_id)
    infer = {k: w for k, w in workers.items() if ".infer_tile[" in k}
    assert len(infer) == 4 and all(w.startswith(GPU_WORKER) for w in infer.values()), infer
    others = {k: w for k, w in workers.items() if k not in infer}
    assert {"descartes_run.plan_tiles", "descartes_run.collect_tiles", "heatmaps", "candidates"} <= set(
        others
    )
    assert all(w.startswith(CPU_WORKER) for w in others.values()), others
    # the op's own record (celery request seen inside the step) agrees: node name and queue
    for entry in runs["instance"].all_logs(runs["result"].run_id, of_type=DagsterEventType.STEP_OUTPUT):
        if entry.step_key and ".infer_tile[" in entry.step_key:
            meta = entry.dagster_event.event_specific_data.metadata
            assert str(meta["worker"].value).startswith(GPU_WORKER) and meta["queue"].value == "gpu"


def test_outputs_equal_in_process_run(runs: dict[str, Any]) -> None:
    assert fu.manifest(runs["reference"])["executor"] == "in-process"
    fu.assert_same_outputs(runs["store"], runs["reference"], ASSETS)
