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

    from plastics_dagster.definitions import defs

    return create_execution_plan(defs.resolve_job_def("detect_job_k8s"))


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


def test_helm_values_select_the_k8s_executor() -> None:
    values = yaml.safe_load((DEPLOY / "helm" / "values.yaml").read_text())
    (dep,) = values["dagster-user-deployments"]["deployments"]
    env = {e["name"]: e["value"] for e in dep["env"]}
    assert env["PLASTICS_DETECT_JOB"] == "detect_job_k8s"
    assert values["runLauncher"]["type"] == "K8sRunLauncher"


def test_sensors_launch_the_job_the_launch_resource_names(monkeypatch: pytest.MonkeyPatch) -> None:
    from plastics_core.errors import ParameterError
    from plastics_dagster.resources import LaunchResource

    monkeypatch.setenv("PLASTICS_DETECT_JOB", "detect_job_k8s")
    assert LaunchResource().job_name() == "detect_job_k8s"
    assert LaunchResource(job="detect_job_celery").job_name() == "detect_job_celery"
    monkeypatch.delenv("PLASTICS_DETECT_JOB")
    assert LaunchResource().job_name() == "detect_job"
    with pytest.raises(ParameterError, match="PLASTICS_DETECT_JOB"):
        LaunchResource(job="k8s").job_name()


def test_step_outputs_go_beside_the_store_on_k8s(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from plastics_dagster.step_io import step_store

    monkeypatch.delenv("PLASTICS_STEP_STORE", raising=False)
    # step pods share no disk: the (S3) store holds them
    assert step_store("s3://bucket/store/", "detect_job_k8s") == "s3://bucket/store/_steps"
    assert step_store(str(tmp_path), "detect_job_k8s") == str(tmp_path / "_steps")
    assert step_store(str(tmp_path), "detect_job") is None  # the instance's storage folder
    monkeypatch.setenv("PLASTICS_STEP_STORE", str(tmp_path / "steps"))
    assert step_store("s3://bucket/store", "detect_job_k8s") == str(tmp_path / "steps")
