"""IO manager of the fan-out ops' step outputs (tile keys, tile summaries: small JSON).

Path: ``<steps>/<run_id>/<step key>/<output>[/<mapping key>].json`` where ``<steps>`` is
``$PLASTICS_STEP_STORE`` (a folder or ``s3://bucket/prefix``, read when a run starts) if set; else,
in a run of ``detect_job_k8s`` (step pods share no disk), ``<store>/_steps`` beside the outputs; else
``<instance storage>/plastics_steps`` (``$DAGSTER_HOME/storage``: shared by the run, its step
processes and the celery workers of one machine). A re-execution
from failure reads the parent run's step outputs from there. Assets never go here: the output
store holds assets only.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any

from dagster import InputContext, IOManager, OutputContext, UPathIOManager, io_manager
from upath import UPath

from plastics_dagster.io_manager import atomic_write, store_path

STEP_IO_MANAGER_KEY = "plastics_step_io_manager"
STEP_STORE_ENV = "PLASTICS_STEP_STORE"


class StepIOManager(UPathIOManager):
    """JSON step outputs of the fan-out ops: ``<steps>/<run_id>/<step>/<output>[/<mapping>].json``."""

    extension = ".json"

    def dump_to_path(self, context: OutputContext, obj: Any, path: UPath) -> None:
        atomic_write(path, json.dumps(obj, sort_keys=True, default=str).encode())

    def load_from_path(self, context: InputContext, path: UPath) -> Any:
        return json.loads(path.read_bytes())

    def make_directory(self, path: UPath) -> None:
        pass  # atomic_write creates local folders; S3 has none


def step_store(instance: Any, store: str, job_name: str = "") -> UPath:
    """Where step outputs go (see the module docstring); ``store``: the output store location;
    ``job_name``: the run's job."""
    from plastics_dagster.jobs import K8S_JOB_NAME

    if os.environ.get(STEP_STORE_ENV):
        return store_path(os.environ[STEP_STORE_ENV])
    if job_name == K8S_JOB_NAME:
        return store_path(store) / "_steps"
    root = instance.storage_directory() if instance is not None else tempfile.gettempdir()
    return store_path(os.path.join(root, "plastics_steps"))


@io_manager(required_resource_keys={"store"},
            description="Fan-out step outputs (tile keys, tile summaries) as JSON, kept out of the output store.")
def step_io_manager(init_context: Any) -> IOManager:
    run = getattr(init_context, "dagster_run", None)
    return StepIOManager(base_path=step_store(init_context.instance, init_context.resources.store.resolved(),
                                              run.job_name if run is not None else ""))
