"""The detect job on dagster-celery: ``infer_tile`` -> queue ``gpu``, every other step -> ``dagster``.

Routing: dagster-celery sends a step to the queue named by its ``dagster-celery/queue`` tag
(``infer_tile`` carries ``gpu``, see :mod:`plastics_dagster.fanout`) and every untagged step to
``task_default_queue`` (``dagster``). Broker and result backend are Redis, read from the
environment when a run of the job starts (``{"env": ...}`` config, never when the module loads):

- ``PLASTICS_CELERY_BROKER``  (e.g. ``redis://127.0.0.1:6379/0``)
- ``PLASTICS_CELERY_BACKEND`` (e.g. ``redis://127.0.0.1:6379/1``)

Workers (same DAGSTER_HOME, i.e. the same persistent instance, and the same PLASTICS_* env as
the process that launches the run; ``deploy/celery/celery.yaml`` holds the same config)::

    dagster-celery worker start -A dagster_celery.app -y deploy/celery/celery.yaml -q dagster -n plastics-dagster
    dagster-celery worker start -A dagster_celery.app -y deploy/celery/celery.yaml -q gpu -n plastics-gpu

The code location of this deployment is :mod:`plastics_dagster.definitions_celery` (its
``detect_job`` runs on dagster-celery). Launch a run: :func:`launch` (``dagster.execute_job`` of
that ``detect_job``), or from the UI / ``dagster job launch -m plastics_dagster.definitions_celery -j detect_job``.
"""

from __future__ import annotations

import os
from typing import Any

from dagster import DagsterInstance, JobDefinition, execute_job, reconstructable

from plastics_dagster.jobs import APP_CONFIG, DETECT_JOB_NAME

DEFAULT_BROKER = "redis://127.0.0.1:6379/0"
DEFAULT_BACKEND = "redis://127.0.0.1:6379/1"


def celery_config(broker: str | None = None, backend: str | None = None) -> dict[str, Any]:
    """The ``celery_executor`` config with resolved URLs (arguments, else the environment read now,
    else the local defaults): default queue ``dagster``, one task prefetched per worker process,
    acks after the task (a killed worker's step is redelivered)."""
    return {
        "broker": broker or os.environ.get("PLASTICS_CELERY_BROKER", DEFAULT_BROKER),
        "backend": backend or os.environ.get("PLASTICS_CELERY_BACKEND", DEFAULT_BACKEND),
        "config_source": dict(APP_CONFIG),
    }


def celery_detect_job() -> JobDefinition:
    """The Celery deployment's resolved ``detect_job`` (a module-level function: ``reconstructable``
    points workers at it)."""
    from plastics_dagster.definitions_celery import defs

    return defs.resolve_job_def(DETECT_JOB_NAME)


def launch(
    instance: DagsterInstance,
    partition_key: Any,
    run_config: dict[str, Any] | None = None,
    tags: dict[str, str] | None = None,
) -> Any:
    """Execute one (roi, window) partition of the Celery deployment's ``detect_job``; blocks until
    the run ends.

    ``instance`` must be persistent (``DagsterInstance.get()`` with DAGSTER_HOME shared with the
    workers). Returns the :class:`dagster.JobExecutionResult` (``raise_on_error=False``)."""
    from plastics_dagster.partitions import detect_partitions

    all_tags = {**detect_partitions.get_tags_for_partition_key(partition_key), **(tags or {})}
    return execute_job(
        reconstructable(celery_detect_job),
        instance,
        run_config=run_config or {},
        tags=all_tags,
        raise_on_error=False,
    )
