"""Resume a killed or failed fan-out run: re-execute only the tiles that did not finish.

Dagster's ``ReexecutionOptions.from_failure`` retries failed and interrupted steps, but after a
hard kill (SIGKILL of the run worker) it does not retry mapped steps that had never *started*:
for the dynamic ``infer_tile`` step it only looks at the mapping keys present in the event log
(dagster 1.13, ``_derive_state_of_past_run``). :func:`resume_steps` adds them back: every
``infer_tile[<tile>]`` whose tile ``plan_tiles`` emitted in the parent run and that did not
succeed there. :func:`resume` re-executes those steps (plus Dagster's own from-failure set: the
interrupted/failed steps and everything downstream) with the parent's run config and tags, using
the parent's stored outputs for everything else. Tiles whose files were written before the kill
are skipped by ``infer_tile`` itself (idempotent writes under the run-hash folder).

A run killed with SIGKILL stays STARTED until Dagster's run monitoring (daemon) marks it failed;
``mark_failed=True`` does that here for a run you know is dead.
"""

from __future__ import annotations

from typing import Any

from dagster import (
    DagsterEventType,
    DagsterInstance,
    DagsterRunStatus,
    ReexecutionOptions,
    execute_job,
    reconstructable,
)
from dagster._core.execution.plan.state import KnownExecutionState

from plastics_core.errors import ParameterError

PLAN_STEP = "descartes_run.plan_tiles"
INFER_STEP = "descartes_run.infer_tile"


def resume_steps(instance: DagsterInstance, run_id: str) -> list[str]:
    """Step keys to re-execute for ``run_id``: Dagster's from-failure set plus every planned tile
    (``plan_tiles`` output) whose ``infer_tile`` step did not succeed. Sorted."""
    run = instance.get_run_by_id(run_id)
    if run is None:
        raise ParameterError(f"run {run_id} not found in this instance: check DAGSTER_HOME and the run id")
    steps, _ = KnownExecutionState.build_resume_retry_reexecution(instance, run)
    planned: set[str] = set()
    for rec in instance.get_records_for_run(run_id, of_type=DagsterEventType.STEP_OUTPUT).records:
        data = rec.event_log_entry.dagster_event.step_output_data  # type: ignore[union-attr]
        if rec.event_log_entry.step_key == PLAN_STEP and data.mapping_key:
            planned.add(data.mapping_key)
    done = {rec.event_log_entry.step_key
            for rec in instance.get_records_for_run(run_id, of_type=DagsterEventType.STEP_SUCCESS).records}
    missing = {f"{INFER_STEP}[{mk}]" for mk in planned} - done
    return sorted(set(steps) | missing)


def resume(instance: DagsterInstance, run_id: str, job_fn: Any, mark_failed: bool = False,
           raise_on_error: bool = False) -> Any:
    """Re-execute the unfinished part of run ``run_id`` of the reconstructable job ``job_fn``
    (a module-level function returning the job). Returns the JobExecutionResult."""
    run = instance.get_run_by_id(run_id)
    if run is None:
        raise ParameterError(f"run {run_id} not found in this instance: check DAGSTER_HOME and the run id")
    if run.status in (DagsterRunStatus.STARTED, DagsterRunStatus.STARTING) and mark_failed:
        instance.report_run_failed(run)
        run = instance.get_run_by_id(run_id)
    if run is None or run.status not in (DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED):
        status = run.status.value if run else "missing"
        raise ParameterError(f"run {run_id} is {status}, not failed: resume only failed runs (or mark_failed=True "
                             "for a run whose worker is dead)")
    tags = {k: v for k, v in run.tags.items() if k.startswith("dagster/partition")}
    options = ReexecutionOptions(parent_run_id=run_id, step_selection=resume_steps(instance, run_id))
    return execute_job(reconstructable(job_fn), instance, run_config=run.run_config, tags=tags,
                       reexecution_options=options, raise_on_error=raise_on_error)
