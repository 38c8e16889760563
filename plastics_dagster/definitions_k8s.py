"""The code location of the Kubernetes deployment (``deploy/helm``): the same Definitions as
:mod:`plastics_dagster.definitions`, with ``detect_job`` on ``dagster_k8s.k8s_job_executor``.

Every step is its own pod (``infer_tile`` asks for a GPU through its ``dagster-k8s/config`` tag).
Step pods share no disk, so the fan-out steps' outputs go to ``$PLASTICS_STEP_STORE`` (a folder
all pods mount, or ``s3://bucket/prefix``), resolved when a run starts; a run without it fails at
start naming the variable.
"""

from __future__ import annotations

from dagster import EnvVar

from plastics_dagster.definitions import make_definitions
from plastics_dagster.jobs import k8s_executor_def
from plastics_dagster.step_io import STEP_IO_MANAGER_KEY, STEP_STORE_ENV, StepIOManager

defs = make_definitions(
    k8s_executor_def(), **{STEP_IO_MANAGER_KEY: StepIOManager(location=EnvVar(STEP_STORE_ENV))}
)
