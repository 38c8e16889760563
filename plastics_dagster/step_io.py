"""IO manager of the fan-out ops' step outputs (tile keys, submissions, tile summaries): Dagster's own
pickling IO managers, chosen when a run's resources are built.

Where: ``$PLASTICS_STEP_STORE`` (a folder or ``s3://bucket/prefix``, read when the run starts) if
set; else, in a run of ``detect_job_k8s`` (step pods share no disk), ``<store>/_steps`` beside the
outputs; else the Dagster instance's storage folder (``$DAGSTER_HOME/storage``: shared by the run,
its step processes and the Celery workers of one machine). A folder gets
:class:`dagster.FilesystemIOManager`, an ``s3://`` location
:class:`dagster_aws.s3.S3PickleIOManager` (endpoint from ``$AWS_ENDPOINT_URL``, credentials from
the environment). They write ``<steps>/<run_id>/<step key>/<output>[/<mapping key>]`` (on S3
``<steps>/storage/<run_id>/...``), so a re-execution from failure reads the parent run's step
outputs. Assets never go here.
"""

from __future__ import annotations

import os

from dagster import FilesystemIOManager, InitResourceContext, IOManager, io_manager

STEP_IO_MANAGER_KEY = "plastics_step_io_manager"
STEP_STORE_ENV = "PLASTICS_STEP_STORE"


def step_store(store: str, job_name: str = "") -> str | None:
    """Where step outputs go (see the module docstring): a folder, an ``s3://`` URL, or None for
    the instance's storage folder. ``store``: the output store location; ``job_name``: the run's job."""
    from plastics_dagster.jobs import K8S_JOB_NAME

    if os.environ.get(STEP_STORE_ENV):
        return os.environ[STEP_STORE_ENV]
    if job_name == K8S_JOB_NAME:
        return store.rstrip("/") + "/_steps" if store.startswith("s3://") else os.path.join(store, "_steps")
    return None


def pickle_io_manager(location: str | None, context: InitResourceContext) -> IOManager:
    """Dagster's pickling IO manager for ``location`` (None: the instance's storage folder)."""
    if location is not None and location.startswith("s3://"):
        from dagster_aws.s3 import S3PickleIOManager, S3Resource

        bucket, _, prefix = location[len("s3://") :].partition("/")
        endpoint = os.environ.get("AWS_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT_URL_S3")
        return S3PickleIOManager(
            s3_resource=S3Resource(endpoint_url=endpoint),
            s3_bucket=bucket,
            s3_prefix=prefix.strip("/") or "dagster",
        ).create_io_manager(context)
    base = os.path.abspath(os.path.expanduser(location)) if location else None
    return FilesystemIOManager(base_dir=base).create_io_manager(context)


@io_manager(
    required_resource_keys={"store"},
    description="Fan-out step outputs (tile keys, tile summaries), pickled by Dagster's own IO managers, "
    "kept out of the output store.",
)
def step_io_manager(init_context: InitResourceContext) -> IOManager:
    run = init_context.dagster_run
    location = step_store(init_context.resources.store.resolved(), run.job_name if run is not None else "")
    return pickle_io_manager(location, init_context)
