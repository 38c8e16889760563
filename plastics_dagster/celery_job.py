"""The detect job on dagster-celery: ``infer_tile`` -> queue ``gpu``, every other step -> ``dagster``.

Routing: dagster-celery sends a step to the queue named by its ``dagster-celery/queue`` tag
(``infer_tile`` carries ``gpu``, see :mod:`plastics_dagster.fanout`) and every untagged step to
``task_default_queue`` (``dagster``). Broker and result backend are Redis.

Environment (defaults in brackets):

- ``PLASTICS_CELERY_BROKER``  [``redis://127.0.0.1:6379/0``]
- ``PLASTICS_CELERY_BACKEND`` [``redis://127.0.0.1:6379/1``]

Workers (same DAGSTER_HOME, i.e. the same persistent instance, and the same PLASTICS_* env as
the process that launches the run; ``deploy/celery/celery.yaml`` holds the same config)::

    dagster-celery worker start -A dagster_celery.app -y deploy/celery/celery.yaml -q dagster -n plastics-dagster
    dagster-celery worker start -A dagster_celery.app -y deploy/celery/celery.yaml -q gpu -n plastics-gpu

Launch a run: ``execute_job(reconstructable(celery_detect_job), instance, run_config, tags)``
(see :func:`launch`), or from the UI / ``dagster job launch`` with ``detect_job_celery``.
"""

from __future__ import annotations

import os
from typing import Any

from dagster import DagsterInstance, Definitions, JobDefinition, reconstructable
from dagster._core.execution.api import execute_job

CELERY_JOB_NAME = "detect_job_celery"
DEFAULT_BROKER = "redis://127.0.0.1:6379/0"
DEFAULT_BACKEND = "redis://127.0.0.1:6379/1"
DEFAULT_QUEUE = "dagster"


def celery_config(broker: str | None = None, backend: str | None = None) -> dict[str, Any]:
    """The ``celery_executor`` config: Redis broker/backend, default queue ``dagster``, one task
    prefetched per worker process, acks after the task (a killed worker's step is redelivered)."""
    return {
        "broker": broker or os.environ.get("PLASTICS_CELERY_BROKER", DEFAULT_BROKER),
        "backend": backend or os.environ.get("PLASTICS_CELERY_BACKEND", DEFAULT_BACKEND),
        "config_source": {"task_default_queue": DEFAULT_QUEUE, "worker_prefetch_multiplier": 1,
                          "task_acks_late": True},
    }


def celery_executor_def() -> Any:
    """dagster-celery's ``celery_executor`` configured with :func:`celery_config` (name ``celery``)."""
    from dagster_celery import celery_executor

    return celery_executor.configured(celery_config(), name="celery")


def fanout_assets() -> list[Any]:
    """The graph's assets with ``descartes_run`` as the per-tile fan-out graph asset."""
    from plastics_dagster.definitions import ALL_ASSETS
    from plastics_dagster.fanout import descartes_run

    key = descartes_run.key
    return [descartes_run if key in getattr(a, "keys", ()) else a for a in ALL_ASSETS]


def make_celery_job(name: str = CELERY_JOB_NAME, selection: Any = None) -> Any:
    """The detection job (``selection``: default every (roi, window) asset) on dagster-celery."""
    from plastics_dagster.jobs import DETECT_SELECTION, make_detect_job

    return make_detect_job(name, executor_def=celery_executor_def(), selection=selection or DETECT_SELECTION)


def celery_definitions() -> Definitions:
    """Definitions holding the celery job (same assets, checks and resources as the main ones)."""
    from plastics_dagster.checks import ALL_CHECKS
    from plastics_dagster.definitions import default_resources

    return Definitions(assets=fanout_assets(), asset_checks=ALL_CHECKS, jobs=[make_celery_job()],
                       resources=default_resources())


def celery_detect_job() -> JobDefinition:
    """The resolved celery job (module-level, so ``reconstructable`` can point workers at it)."""
    return celery_definitions().resolve_job_def(CELERY_JOB_NAME)


def launch(instance: DagsterInstance, partition_key: Any, run_config: dict[str, Any] | None = None,
           tags: dict[str, str] | None = None) -> Any:
    """Execute one (roi, window) partition of the celery job; blocks until the run ends.

    ``instance`` must be persistent (``DagsterInstance.get()`` with DAGSTER_HOME shared with the
    workers). Returns the :class:`dagster.JobExecutionResult` (``raise_on_error=False``)."""
    from plastics_dagster.partitions import detect_partitions

    all_tags = {**detect_partitions.get_tags_for_partition_key(partition_key), **(tags or {})}
    return execute_job(reconstructable(celery_detect_job), instance, run_config=run_config or {},
                       tags=all_tags, raise_on_error=False)
