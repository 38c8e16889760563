"""Kubernetes: infer_tile's step tags parse with dagster-k8s's own parser (the one
``k8s_job_executor`` calls per step) and ask for one GPU on a GPU node; other steps ask for none.
The deploy/ GPU step config and the Helm values agree with the code. No cluster runs here."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
GPU = "nvidia.com/gpu"


@pytest.fixture(scope="module")
def k8s_plan() -> Any:
    from dagster._core.execution.api import create_execution_plan

    from plastics_dagster.definitions_k8s import defs

    with pytest.MonkeyPatch.context() as env:  # the k8s deployment's step store (required there)
        env.setenv("PLASTICS_STEP_STORE", "s3://bucket/store/_steps")
        return create_execution_plan(defs.resolve_job_def("detect_job"))


def _k8s(tags: dict[str, str]) -> Any:
    from dagster_k8s.job import get_user_defined_k8s_config

    return get_user_defined_k8s_config(tags)


def test_infer_tile_step_requests_one_gpu_on_gpu_nodes(k8s_plan: Any) -> None:
    step = k8s_plan.get_step_by_key("descartes_run.infer_tile[?]")
    cfg = _k8s(dict(step.tags))
    assert cfg.container_config["resources"]["limits"][GPU] == "1"
    assert cfg.container_config["resources"]["requests"][GPU] == "1"
    assert cfg.pod_spec_config["node_selector"] == {"nvidia.com/gpu.present": "true"}
    assert {"key": GPU, "operator": "Exists", "effect": "NoSchedule"} in cfg.pod_spec_config["tolerations"]
    assert step.tags["dagster-celery/queue"] == "gpu"


def test_other_steps_are_cpu_only(k8s_plan: Any) -> None:
    for step in k8s_plan.steps:
        if "infer_tile" in step.key:
            continue
        cfg = _k8s(dict(step.tags))
        assert GPU not in json.dumps(cfg.container_config), step.key
        assert "dagster-celery/queue" not in step.tags, step.key


def test_op_pool_and_deploy_file_match_code() -> None:
    from plastics_dagster.fanout import infer_tile
    from plastics_dagster.tile_steps import GPU_K8S_CONFIG

    assert infer_tile.pool == "gpu"
    assert json.loads((DEPLOY / "helm" / "gpu-step-k8s-config.json").read_text()) == GPU_K8S_CONFIG


def test_helm_values_serve_the_k8s_code_location() -> None:
    """The user-code deployment serves the module whose detect_job runs on k8s_job_executor, and
    gives its step pods the shared step store they need."""
    from plastics_dagster.definitions_k8s import defs

    values = yaml.safe_load((DEPLOY / "helm" / "values.yaml").read_text())
    (dep,) = values["dagster-user-deployments"]["deployments"]
    args = dep["dagsterApiGrpcArgs"]
    assert args[args.index("-m") + 1] == "plastics_dagster.definitions_k8s"
    assert defs.resolve_job_def("detect_job").executor_def.name == "k8s"
    env = {e["name"]: e["value"] for e in dep["env"]}
    assert env["PLASTICS_STEP_STORE"].startswith("s3://")
    assert "PLASTICS_DETECT_JOB" not in env
    assert values["runLauncher"]["type"] == "K8sRunLauncher"


def test_step_outputs_of_k8s_pods_go_to_the_step_store(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Step pods share no disk: the k8s code location binds the step IO manager to
    $PLASTICS_STEP_STORE, resolved when a run starts (unset: the run fails naming it); the default
    code location keeps step outputs in the instance's storage folder."""
    from dagster import DagsterInstance, In, Out, job, op

    from plastics_dagster.definitions import defs as default_defs
    from plastics_dagster.definitions_k8s import defs
    from plastics_dagster.step_io import STEP_IO_MANAGER_KEY, StepIOManager

    step_io = defs.resources[STEP_IO_MANAGER_KEY]
    assert default_defs.resources[STEP_IO_MANAGER_KEY] == StepIOManager()

    @op(out=Out(int, io_manager_key=STEP_IO_MANAGER_KEY))
    def one() -> int:
        return 1

    @op(ins={"x": In(int)})
    def use(x: int) -> None:
        assert x == 1

    @job(resource_defs={STEP_IO_MANAGER_KEY: step_io})
    def steps() -> None:
        use(one())

    monkeypatch.setenv("PLASTICS_STEP_STORE", str(tmp_path / "steps"))
    result = steps.execute_in_process(instance=DagsterInstance.ephemeral())
    assert result.success
    assert (tmp_path / "steps" / result.run_id / "one" / "result").is_file()
    monkeypatch.delenv("PLASTICS_STEP_STORE")
    with pytest.raises(Exception, match="PLASTICS_STEP_STORE"):
        steps.execute_in_process(instance=DagsterInstance.ephemeral())
