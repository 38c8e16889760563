"""Resume a killed or failed fan-out run: re-execute only the tiles that did not finish.

Dagster's ``ReexecutionOptions.from_failure`` retries failed and interrupted steps, but after a
hard kill (SIGKILL of the run worker) it does not retry mapped steps that had never *started*:
for the dynamic ``infer_tile`` step it only looks at the mapping keys present in the event log
(dagster 1.13), and Dagster offers no public API that returns its step set. :func:`resume_steps`
computes it from the run's public records: every step of the parent's plan that did not succeed
(the from-failure set, everything downstream of a failure included) plus every
``infer_tile[<tile>]`` whose tile ``plan_tiles`` emitted in the parent run and that did not
succeed there. :func:`resume` re-executes those steps with the parent's run config and tags, using
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

from plastics_core.errors import ParameterError

PLAN_STEP = "descartes_run.plan_tiles"
INFER_STEP = "descartes_run.infer_tile"


def resume_steps(instance: DagsterInstance, run_id: str) -> list[str]:
    """Step keys to re-execute for ``run_id``, sorted: every step of the parent's plan that did not
    succeed there (failed, interrupted, skipped or never started: Dagster's from-failure set, which
    holds everything downstream of a failure), the mapped steps it started without finishing, and
    every planned tile (``plan_tiles`` output) whose ``infer_tile`` step did not succeed."""
    run = instance.get_run_by_id(run_id)
    if run is None:
        raise ParameterError(f"run {run_id} not found in this instance: check DAGSTER_HOME and the run id")

    def steps_with(event: DagsterEventType) -> set[str]:
        return {
            str(rec.event_log_entry.step_key)
            for rec in instance.get_records_for_run(run_id, of_type=event).records
            if rec.event_log_entry.step_key
        }

    plan: set[str] = set()
    if run.execution_plan_snapshot_id:
        snap = instance.get_execution_plan_snapshot(run.execution_plan_snapshot_id)
        plan = {
            k for k in snap.step_keys_to_execute if not k.endswith("[?]")
        }  # "[?]": unresolved mapped step
    planned: set[str] = set()
    for rec in instance.get_records_for_run(run_id, of_type=DagsterEventType.STEP_OUTPUT).records:
        data = rec.event_log_entry.dagster_event.step_output_data  # type: ignore[union-attr]
        if rec.event_log_entry.step_key == PLAN_STEP and data.mapping_key:
            planned.add(f"{INFER_STEP}[{data.mapping_key}]")
    started = steps_with(DagsterEventType.STEP_START)
    return sorted((plan | started | planned) - steps_with(DagsterEventType.STEP_SUCCESS))


def resume(
    instance: DagsterInstance,
    run_id: str,
    job_fn: Any,
    mark_failed: bool = False,
    raise_on_error: bool = False,
) -> Any:
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
        raise ParameterError(
            f"run {run_id} is {status}, not failed: resume only failed runs (or mark_failed=True "
            "for a run whose worker is dead)"
        )
    tags = {k: v for k, v in run.tags.items() if k.startswith("dagster/partition")}
    options = ReexecutionOptions(parent_run_id=run_id, step_selection=resume_steps(instance, run_id))
    return execute_job(
        reconstructable(job_fn),
        instance,
        run_config=run.run_config,
        tags=tags,
        reexecution_options=options,
        raise_on_error=raise_on_error,
    )
