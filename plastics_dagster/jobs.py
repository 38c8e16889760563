"""Jobs: ``detect_job`` materializes the whole detection graph for one (roi, window) partition;
``registry_job`` builds one ROI's ``site_registry`` from all its windows.

Executor: in-process by default (``PLASTICS_EXECUTOR=multiprocess`` for the multiprocess one).
Hook for the scale-out issue: :func:`celery_detect_job` builds the same selection with a
dagster-celery executor (``infer_tile`` -> queue ``gpu``, everything else -> ``dagster``).
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
    return multiprocess_executor if os.environ.get("PLASTICS_EXECUTOR") == "multiprocess" else in_process_executor


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
    """Scale-out hook: the detect job on dagster-celery (queues configured by the scale-out issue)."""
    from dagster_celery import celery_executor

    return make_detect_job("detect_job_celery", executor_def=celery_executor)
