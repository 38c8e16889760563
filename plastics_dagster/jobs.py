"""Jobs of the code location: one detection job, its executor chosen by the deployment.

- ``detect_job``: the whole detection graph for one (roi, window) partition (``plastics run``, the
  UI, the sensors). It names no executor: it runs on the executor of the code location's
  ``Definitions``, which each deployment's entry module fixes (never the environment):

  ========================================  =================================================
  module (``workspace.yaml`` / Helm values)  executor
  ========================================  =================================================
  ``plastics_dagster.definitions``          in-process (default; ``dagster dev``, tests)
  ``plastics_dagster.definitions_celery``   dagster-celery (``infer_tile`` -> queue ``gpu``,
                                            everything else -> ``dagster``;
                                            :mod:`plastics_dagster.celery_job`)
  ``plastics_dagster.definitions_k8s``      ``dagster_k8s.k8s_job_executor`` (one pod per step;
                                            ``infer_tile`` asks for a GPU through its
                                            ``dagster-k8s/config`` tag)
  ========================================  =================================================

- ``registry_job``: one ROI's ``site_registry`` from all its windows (always in-process).
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
DETECT_JOB_NAME = "detect_job"
#: Celery app settings: default queue ``dagster``, one task prefetched per worker process, acks
#: after the task (a killed worker's step is redelivered).
APP_CONFIG: dict[str, Any] = {
    "task_default_queue": "dagster",
    "worker_prefetch_multiplier": 1,
    "task_acks_late": True,
}


def make_detect_job(
    name: str = DETECT_JOB_NAME,
    executor_def: ExecutorDefinition | None = None,
    selection: Any = DETECT_SELECTION,
) -> Any:
    """The detection job over ``selection``; ``executor_def`` None: the executor of the
    ``Definitions`` that holds the job (the deployment's)."""
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
registry_job = define_asset_job(
    "registry_job",
    selection=REGISTRY_SELECTION,  # partitioned by roi, as its asset
    executor_def=in_process_executor,
    description="Merge every window of one ROI into its site registry",
)
