"""deploy/: Helm values for the official Dagster chart, the GPU step config, the celery config.

No cluster runs here. The values file is checked as valid YAML with the keys the chart expects,
and every key used is one the chart's values schema accepts (the chart validates with
``additionalProperties: false``; the allowed keys below are those of the chart's schema for
dagster 1.13). The `dagster-k8s/config` GPU tag is parsed with dagster-k8s's own parser, and
the celery config with dagster-celery's own validator.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
GPU = "nvidia.com/gpu"

# Keys of the chart's values schema (helm/dagster/schema) that this file may use.
TOP_KEYS = {
    "global",
    "generatePostgresqlPasswordSecret",
    "generateCeleryConfigSecret",
    "dagsterWebserver",
    "dagster-user-deployments",
    "postgresql",
    "rabbitmq",
    "redis",
    "flower",
    "ingress",
    "imagePullSecrets",
    "computeLogManager",
    "scheduler",
    "runLauncher",
    "pythonLogs",
    "dagsterDaemon",
    "busybox",
    "migrate",
    "telemetry",
    "serviceAccount",
    "retention",
    "additionalInstanceConfig",
    "concurrency",
    "nameOverride",
    "fullnameOverride",
    "rbacEnabled",
}
USER_DEPLOYMENT_KEYS = {
    "name",
    "image",
    "dagsterApiGrpcArgs",
    "codeServerArgs",
    "includeConfigInLaunchedRuns",
    "port",
    "env",
    "envConfigMaps",
    "envSecrets",
    "annotations",
    "nodeSelector",
    "affinity",
    "tolerations",
    "podSecurityContext",
    "securityContext",
    "resources",
    "livenessProbe",
    "readinessProbe",
    "startupProbe",
    "labels",
    "volumeMounts",
    "volumes",
    "schedulerName",
}
K8S_LAUNCHER_KEYS = {
    "image",
    "imagePullPolicy",
    "jobNamespace",
    "loadInclusterConfig",
    "kubeconfigFile",
    "envConfigMaps",
    "envSecrets",
    "envVars",
    "volumeMounts",
    "volumes",
    "labels",
    "failPodOnRunFailure",
    "resources",
    "schedulerName",
    "securityContext",
    "runK8sConfig",
}
RUN_K8S_CONFIG_KEYS = {
    "containerConfig",
    "podSpecConfig",
    "podTemplateSpecMetadata",
    "jobSpecConfig",
    "jobMetadata",
}
DAEMON_KEYS = {
    "enabled",
    "image",
    "runCoordinator",
    "heartbeatTolerance",
    "env",
    "envConfigMaps",
    "envSecrets",
    "deploymentLabels",
    "labels",
    "nodeSelector",
    "affinity",
    "tolerations",
    "podSecurityContext",
    "securityContext",
    "resources",
    "livenessProbe",
    "readinessProbe",
    "startupProbe",
    "annotations",
    "runMonitoring",
    "runRetries",
    "sensors",
    "schedules",
    "schedulerName",
    "volumeMounts",
    "volumes",
}
QUEUED_KEYS = {
    "maxConcurrentRuns",
    "tagConcurrencyLimits",
    "dequeueIntervalSeconds",
    "dequeueNumWorkers",
    "dequeueUseThreads",
}


@pytest.fixture(scope="module")
def values() -> dict[str, Any]:
    doc = yaml.safe_load((DEPLOY / "helm" / "values.yaml").read_text())
    assert isinstance(doc, dict)
    return doc


def test_values_use_only_chart_keys(values: dict[str, Any]) -> None:
    assert set(values) <= TOP_KEYS, set(values) - TOP_KEYS
    for dep in values["dagster-user-deployments"]["deployments"]:
        assert set(dep) <= USER_DEPLOYMENT_KEYS, set(dep) - USER_DEPLOYMENT_KEYS
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    assert set(launcher) <= K8S_LAUNCHER_KEYS, set(launcher) - K8S_LAUNCHER_KEYS
    assert set(launcher["runK8sConfig"]) <= RUN_K8S_CONFIG_KEYS
    assert set(values["dagsterDaemon"]) <= DAEMON_KEYS
    assert set(values["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]) <= QUEUED_KEYS


def test_user_code_deployment_serves_the_definitions(values: dict[str, Any]) -> None:
    ud = values["dagster-user-deployments"]
    assert ud["enabled"] is True and ud["enableSubchart"] is True
    (dep,) = ud["deployments"]
    assert dep["name"] == "plastics"
    assert {"repository", "tag", "pullPolicy"} <= set(dep["image"])
    assert dep["dagsterApiGrpcArgs"] == ["-m", "plastics_dagster.definitions_k8s"]
    assert importlib.util.find_spec("plastics_dagster.definitions_k8s") is not None
    assert isinstance(dep["port"], int)
    env = {e["name"]: e["value"] for e in dep["env"]}
    assert env["PLASTICS_STORE"].startswith("s3://")  # S3 IO manager
    assert env["PLASTICS_MODEL_STORE"].startswith("s3://")
    assert env["PLASTICS_STEP_STORE"].startswith("s3://")  # step pods share no disk
    # credentials (AWS, the site database URL) only from Secrets
    assert dep["envSecrets"] == [{"name": "plastics-aws"}, {"name": "plastics-sitedb"}]
    assert not any(k.startswith("AWS_") for k in env)
    assert dep["podSecurityContext"]["runAsNonRoot"] is True


def test_k8s_run_launcher_and_postgres_storage(values: dict[str, Any]) -> None:
    rl = values["runLauncher"]
    assert rl["type"] == "K8sRunLauncher"
    launcher = rl["config"]["k8sRunLauncher"]
    assert launcher["loadInclusterConfig"] is True
    env_vars = dict(v.split("=", 1) for v in launcher["envVars"])
    assert env_vars["PLASTICS_STORE"].startswith("s3://")
    pg = values["postgresql"]
    assert pg["enabled"] is True
    for key in ("postgresqlHost", "postgresqlUsername", "postgresqlPassword", "postgresqlDatabase"):
        assert key in pg
    assert pg["service"]["port"] == 5432
    assert values["global"]["postgresqlSecretName"]
    daemon = values["dagsterDaemon"]
    assert daemon["enabled"] is True
    assert daemon["runCoordinator"]["type"] == "QueuedRunCoordinator"
    assert values["computeLogManager"]["type"] == "S3ComputeLogManager"


def test_run_k8s_config_parses_with_dagster_k8s(values: dict[str, Any]) -> None:
    from dagster_k8s.job import USER_DEFINED_K8S_CONFIG_KEY, get_user_defined_k8s_config

    rc = values["runLauncher"]["config"]["k8sRunLauncher"]["runK8sConfig"]
    snake = {
        "container_config": rc["containerConfig"],
        "pod_spec_config": rc["podSpecConfig"],
        "job_spec_config": rc["jobSpecConfig"],
    }
    cfg = get_user_defined_k8s_config({USER_DEFINED_K8S_CONFIG_KEY: json.dumps(snake)})
    assert GPU not in json.dumps(cfg.container_config)  # CPU by default; only infer_tile asks for a GPU


def _gpu_tag_ok(tag_value: str) -> None:
    from dagster_k8s.job import USER_DEFINED_K8S_CONFIG_KEY, get_user_defined_k8s_config

    cfg = get_user_defined_k8s_config({USER_DEFINED_K8S_CONFIG_KEY: tag_value})
    resources = cfg.container_config["resources"]
    assert str(resources["limits"][GPU]) == "1"
    pod = {k.replace("_", "").lower(): v for k, v in cfg.pod_spec_config.items()}
    assert pod["nodeselector"], pod
    assert any(t.get("key") == GPU and t.get("effect") == "NoSchedule" for t in pod["tolerations"])


def test_gpu_step_config_parses_with_dagster_k8s() -> None:
    _gpu_tag_ok((DEPLOY / "helm" / "gpu-step-k8s-config.json").read_text())


def _find_op(name: str) -> Any:
    """The op ``name`` from the definitions' jobs, else from plastics_dagster.fanout; None if absent."""
    from plastics_dagster.definitions import defs

    for job in defs.resolve_all_job_defs():
        for op_def in job.graph.iterate_op_defs():
            if op_def.name == name:
                return op_def
    try:
        from plastics_dagster import fanout
    except ImportError:
        return None
    return getattr(fanout, name, None)


def test_infer_tile_op_tag_requests_a_gpu() -> None:
    op = _find_op("infer_tile")
    if op is None:
        pytest.skip("no infer_tile op yet (per-tile fan-out: scale-out issue)")
    value = op.tags["dagster-k8s/config"]
    tag = value if isinstance(value, str) else json.dumps(value)
    _gpu_tag_ok(tag)
    # the documented deploy file is the same config as the op's tag
    assert json.loads(tag) == json.loads((DEPLOY / "helm" / "gpu-step-k8s-config.json").read_text())


def test_celery_config_validates_with_dagster_celery() -> None:
    from dagster_celery.cli import get_validated_config

    cfg = get_validated_config(str(DEPLOY / "celery" / "celery.yaml"))
    assert cfg["broker"].startswith("redis://127.0.0.1:")
    assert cfg["backend"].startswith("redis://127.0.0.1:")


def test_celery_compose_serves_the_celery_code_location_with_a_run_queue(tmp_path: Path) -> None:
    """compose.yaml's webserver and daemon load deploy/celery/workspace.yaml, whose module runs
    detect_job on dagster-celery; the instance file it mounts limits runs at once (the run queue,
    not the sensors, decides how many run)."""
    import shutil

    from dagster import DagsterInstance

    compose = yaml.safe_load((DEPLOY / "celery" / "compose.yaml").read_text())
    for service in ("webserver", "daemon"):
        command = compose["services"][service]["command"]
        assert command[command.index("-w") + 1] == "deploy/celery/workspace.yaml"
    workspace = yaml.safe_load((DEPLOY / "celery" / "workspace.yaml").read_text())
    (entry,) = workspace["load_from"]
    module = entry["python_module"]["module_name"]
    assert module == "plastics_dagster.definitions_celery"
    defs = importlib.import_module(module).defs
    assert defs.resolve_job_def("detect_job").executor_def.name == "celery"
    assert "PLASTICS_DETECT_JOB" not in compose["x-plastics"]["environment"]
    mounts = compose["x-plastics"]["volumes"]
    assert "./dagster.yaml:/opt/dagster/dagster_home/dagster.yaml:ro" in mounts
    shutil.copy(DEPLOY / "celery" / "dagster.yaml", tmp_path / "dagster.yaml")
    instance = DagsterInstance.from_config(str(tmp_path))
    queue = instance.get_concurrency_config().run_queue_config
    assert queue is not None and queue.max_concurrent_runs == 4
    assert [(t["key"], t["value"], t["limit"]) for t in queue.tag_concurrency_limits] == [
        ("plastics/job", "detect", 4)
    ]
    assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
