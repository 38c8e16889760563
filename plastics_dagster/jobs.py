"""Jobs: ``detect_job`` materializes the whole detection graph for one (roi, window) partition;
``registry_job`` builds one ROI's ``site_registry`` from all its windows.

Executor (``PLASTICS_EXECUTOR``): ``in_process`` (default), ``multiprocess``, ``celery``
(dagster-celery on Redis, see :mod:`plastics_dagster.celery_job`: ``infer_tile`` -> queue ``gpu``,
everything else -> ``dagster``) or ``k8s`` (``dagster_k8s.k8s_job_executor``: one pod per step;
``infer_tile`` asks for a GPU through its ``dagster-k8s/config`` tag). :func:`celery_detect_job`
is the same selection with the celery executor whatever the variable says.
"""

from __future__ import annotations

import os
from typing import Any

from dagster import (
    AssetSelection,
    ExecutorDefinition,
    define_asset_job,
    in_process_executor,
    multiprocess_executor,
)

from plastics_dagster.partitions import detect_partitions, roi_partitions

DETECT_GROUPS = ("detection", "sites")
#: every (roi, window)-partitioned asset: the detection and sites groups plus the HTML ``preview``
DETECT_SELECTION = AssetSelection.groups(*DETECT_GROUPS) | AssetSelection.assets("preview")
#: the per-ROI ``site_registry`` (partitioned by roi only, merges every window)
REGISTRY_SELECTION = AssetSelection.assets("site_registry")


def default_executor() -> ExecutorDefinition:
    """The executor named by ``PLASTICS_EXECUTOR`` (in_process | multiprocess | celery | k8s)."""
    kind = os.environ.get("PLASTICS_EXECUTOR", "in_process")
    if kind == "multiprocess":
        return multiprocess_executor
    if kind == "celery":
        from plastics_dagster.celery_job import celery_executor_def

        return celery_executor_def()
    if kind == "k8s":
        from dagster_k8s import k8s_job_executor

        return k8s_job_executor
    return in_process_executor


def make_detect_job(name: str = "detect_job", executor_def: ExecutorDefinition | None = None,
                    selection: Any = DETECT_SELECTION) -> Any:
    """The detection job over ``selection`` with ``executor_def`` (default: :func:`default_executor`)."""
    return define_asset_job(
        name,
        selection=selection,
        partitions_def=detect_partitions,
        executor_def=executor_def or default_executor(),
        description="Materialize descartes_run -> heatmaps/patch_geojson -> blobs -> candidates -> contours -> enriched_sites",
        tags={"plastics/job": "detect"},
    )


detect_job = make_detect_job()
registry_job = define_asset_job("registry_job", selection=REGISTRY_SELECTION, partitions_def=roi_partitions,
                                executor_def=in_process_executor,
                                description="Merge every window of one ROI into its site registry")


def celery_detect_job() -> Any:
    """The detect job on dagster-celery (``infer_tile`` -> queue ``gpu``, the rest -> ``dagster``)."""
    from plastics_dagster.celery_job import make_celery_job

    return make_celery_job()
