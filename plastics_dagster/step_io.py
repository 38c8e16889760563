"""IO manager of the fan-out ops' step outputs (tile keys, submissions, tile summaries): Dagster's own
pickling IO managers behind one :class:`StepIOManager` resource.

Where: the resource's ``location`` (a folder or ``s3://bucket/prefix``); empty, the Dagster
instance's storage folder (``$DAGSTER_HOME/storage``: shared by the run, its step processes and
the Celery workers of one machine). The Kubernetes deployment
(:mod:`plastics_dagster.definitions_k8s`, step pods share no disk) binds it to
``EnvVar("PLASTICS_STEP_STORE")``, e.g. ``s3://bucket/store/_steps``. A folder gets
:class:`dagster.FilesystemIOManager`, an ``s3://`` location
:class:`dagster_aws.s3.S3PickleIOManager` (endpoint from ``$AWS_ENDPOINT_URL``, credentials from
the environment). They write ``<steps>/<run_id>/<step key>/<output>[/<mapping key>]`` (on S3
``<steps>/storage/<run_id>/...``), so a re-execution from failure reads the parent run's step
outputs. Assets never go here.
"""

from __future__ import annotations

import os

from dagster import ConfigurableIOManagerFactory, FilesystemIOManager, InitResourceContext, IOManager
from pydantic import Field

STEP_IO_MANAGER_KEY = "plastics_step_io_manager"
#: the environment variable the Kubernetes deployment binds :attr:`StepIOManager.location` to
STEP_STORE_ENV = "PLASTICS_STEP_STORE"


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


class StepIOManager(ConfigurableIOManagerFactory):  # type: ignore[type-arg]
    """Fan-out step outputs (tile keys, tile summaries), pickled by Dagster's own IO managers,
    kept out of the output store."""

    location: str = Field(
        default="",
        description="folder or s3:// URL of the step outputs; '' = the Dagster instance's storage "
        "folder (one machine); step pods that share no disk need a shared location",
    )

    def create_io_manager(self, context: InitResourceContext) -> IOManager:
        return pickle_io_manager(self.location or None, context)
