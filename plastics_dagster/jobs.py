"""Jobs of the code location, each with its executor fixed here (never chosen by the environment):

- ``detect_job``: the whole detection graph for one (roi, window) partition, in one process
  (``plastics run``, the UI, the sensors);
- ``detect_job_celery``: the same selection on dagster-celery (``infer_tile`` -> queue ``gpu``,
  everything else -> ``dagster``; see :mod:`plastics_dagster.celery_job`);
- ``detect_job_k8s``: the same selection with ``dagster_k8s.k8s_job_executor`` (one pod per step;
  ``infer_tile`` asks for a GPU through its ``dagster-k8s/config`` tag; step outputs go to
  ``<store>/_steps``, see :mod:`plastics_dagster.step_io`);
- ``registry_job``: one ROI's ``site_registry`` from all its windows.
"""

from __future__ import annotations

from typing import Any

from dagster import AssetSelection, ExecutorDefinition, define_asset_job, in_process_executor

DETECT_GROUPS = ("detection", "sites")
#: every (roi, window)-partitioned asset: the detection and sites groups plus the HTML ``preview``
DETECT_SELECTION = AssetSelection.groups(*DETECT_GROUPS) | AssetSelection.assets("preview")
#: the per-ROI ``site_registry`` (partitioned by roi only, merges every window) and its publication
#: to the site database (``published_sites``)
REGISTRY_SELECTION = AssetSelection.assets("site_registry", "published_sites")
CELERY_JOB_NAME = "detect_job_celery"
K8S_JOB_NAME = "detect_job_k8s"
#: Celery app settings: default queue ``dagster``, one task prefetched per worker process, acks
#: after the task (a killed worker's step is redelivered).
APP_CONFIG: dict[str, Any] = {
    "task_default_queue": "dagster",
    "worker_prefetch_multiplier": 1,
    "task_acks_late": True,
}


def make_detect_job(
    name: str = "detect_job",
    executor_def: ExecutorDefinition = in_process_executor,
    selection: Any = DETECT_SELECTION,
) -> Any:
    """The detection job over ``selection`` with ``executor_def``."""
    return define_asset_job(
        name,
        selection=selection,  # partitioned like its assets (roi x window)
        executor_def=executor_def,
        description="Materialize descartes_run -> heatmaps/patch_geojson -> blobs -> candidates -> contours -> enriched_sites",
        tags={"plastics/job": "detect"},
    )


def celery_executor_def() -> ExecutorDefinition:
    """dagster-celery's ``celery_executor`` (name ``celery``); broker and backend come from
    ``$PLASTICS_CELERY_BROKER`` / ``$PLASTICS_CELERY_BACKEND`` when a run starts (``{"env": ...}``)."""
    from dagster_celery import celery_executor

    config = {
        "broker": {"env": "PLASTICS_CELERY_BROKER"},
        "backend": {"env": "PLASTICS_CELERY_BACKEND"},
        "config_source": dict(APP_CONFIG),
    }
    return celery_executor.configured(config, name="celery")


def k8s_executor_def() -> ExecutorDefinition:
    """dagster-k8s's ``k8s_job_executor`` (one pod per step)."""
    from dagster_k8s import k8s_job_executor

    return k8s_job_executor


detect_job = make_detect_job()
detect_job_celery = make_detect_job(CELERY_JOB_NAME, executor_def=celery_executor_def())
detect_job_k8s = make_detect_job(K8S_JOB_NAME, executor_def=k8s_executor_def())
registry_job = define_asset_job(
    "registry_job",
    selection=REGISTRY_SELECTION,  # partitioned by roi, as its asset
    executor_def=in_process_executor,
    description="Merge every window of one ROI into its site registry",
)
