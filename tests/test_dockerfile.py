"""The Dockerfile, checked without a Docker engine (none runs here): parsed with dockerfile-parse.

Asserts the contract of the image: multi-stage; build arg BASE selecting the CPU base
(python:3.11-slim, default) or the CUDA TensorFlow base (tensorflow/tensorflow:2.21.0-gpu);
a non-root USER in the final stage; the default CMD serves the webserver; every COPY source
exists and is not excluded by .dockerignore; the requirements step really produces the
pinned requirements from pyproject.toml (run here exactly as the RUN line runs it).
"""

from __future__ import annotations

import fnmatch
import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from dockerfile_parse import DockerfileParser

REPO = Path(__file__).resolve().parents[1]
CPU_BASE = "python:3.11-slim"
GPU_BASE = "tensorflow/tensorflow:2.21.0-gpu"
WEBSERVER_CMD = ["dagster-webserver", "-h", "0.0.0.0", "-p", "3000", "-w", "workspace.yaml"]


@pytest.fixture(scope="module")
def parser() -> DockerfileParser:
    return DockerfileParser(str(REPO / "Dockerfile"))


def instructions(parser: DockerfileParser) -> list[tuple[str, str]]:
    return [(s["instruction"], s["value"]) for s in parser.structure if s["instruction"] != "COMMENT"]


def stages(parser: DockerfileParser) -> list[list[tuple[str, str]]]:
    out: list[list[tuple[str, str]]] = []
    for ins, val in instructions(parser):
        if ins == "FROM":
            out.append([])
        if out:
            out[-1].append((ins, val))
    return out


def test_multistage_with_base_build_arg(parser: DockerfileParser) -> None:
    assert parser.is_multistage
    froms = [v for i, v in instructions(parser) if i == "FROM"]
    assert len(froms) >= 2
    assert all(v.startswith("${BASE}") for v in froms), froms
    assert froms[0].endswith("AS build") and froms[-1].endswith("AS runtime")
    first = instructions(parser)[0]
    assert first == ("ARG", f"BASE={CPU_BASE}"), first  # global ARG before the first FROM
    text = (REPO / "Dockerfile").read_text()
    assert f"--build-arg BASE={GPU_BASE}" in text  # the documented GPU variant
    # the runtime stage installs from the build stage's wheels, not from the network
    runtime = stages(parser)[-1]
    run = " ".join(v for i, v in runtime if i == "RUN")
    assert "from=build" in run and "--no-index" in run


def test_final_stage_runs_as_non_root_and_serves_webserver(parser: DockerfileParser) -> None:
    runtime = stages(parser)[-1]
    users = [v for i, v in runtime if i == "USER"]
    assert users, "final stage has no USER"
    assert users[-1].split(":")[0] not in ("root", "0")
    names = [i for i, _ in runtime]
    assert names.index("USER") < names.index("CMD")
    assert json.loads(parser.cmd) == WEBSERVER_CMD
    assert not any(i == "ENTRYPOINT" for i, _ in runtime)  # roles are chosen by command


def _ignored(path: str, patterns: list[str]) -> bool:
    for pat in patterns:
        pat = pat.rstrip("/")
        if fnmatch.fnmatch(path, pat) or fnmatch.fnmatch(path, pat.replace("**/", "")):
            return True
        if path.startswith(pat + "/"):
            return True
    return False


def test_copy_sources_exist_and_are_not_dockerignored(parser: DockerfileParser) -> None:
    patterns = [
        ln.strip()
        for ln in (REPO / ".dockerignore").read_text().splitlines()
        if ln.strip() and not ln.startswith("#")
    ]
    for must in (".venv", ".git", "**/*.h5", ".plastics", ".dagster_home"):
        assert must in patterns, must
    for ins, val in instructions(parser):
        if ins != "COPY" or "--from" in val:
            continue
        parts = [p for p in val.split() if not p.startswith("--")]
        for src in parts[:-1]:
            assert (REPO / src).exists(), src
            assert not _ignored(src, patterns), src


def test_requirements_step_yields_pinned_deps_without_tensorflow(
    parser: DockerfileParser, tmp_path: Path
) -> None:
    run = next(v for i, v in stages(parser)[0] if i == "RUN" and "tomllib" in v)
    code = re.search(r'python3 -c "(.*?)" > requirements.txt', run, re.S)
    assert code, run
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    out = subprocess.run(
        [sys.executable, "-c", code.group(1)], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    reqs = out.stdout.splitlines()
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    assert not any(r.startswith("tensorflow") for r in reqs)
    assert {
        "dagster==1.13.27",
        "dagster-webserver==1.13.27",
        "dagster-celery==0.29.27",
        "s3fs==2026.9.0",
    } <= set(reqs)
    assert len(reqs) == len([d for d in deps if not d.startswith("tensorflow")])
    # the CPU default TF_REQUIREMENT is exactly the project's x86_64 pin
    tf_pin = next(d.split(";")[0].strip() for d in deps if d.startswith("tensorflow-cpu"))
    assert f'ARG TF_REQUIREMENT="{tf_pin}"' in (REPO / "Dockerfile").read_text()


def test_gpu_build_adds_the_jax_cuda_plugin_of_the_pinned_jax() -> None:
    """The documented GPU build installs JAX's CUDA plugin at the project's jax version."""
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    jax_version = next(d.split("==")[1] for d in deps if d.startswith("jax=="))
    text = (REPO / "Dockerfile").read_text()
    assert f'--build-arg GPU_REQUIREMENT="jax[cuda12]=={jax_version}"' in text
    assert 'echo "${GPU_REQUIREMENT}" >> requirements.txt' in text


def test_every_role_command_is_installed() -> None:
    """The webserver, daemon, celery worker, code server and CLI commands come with the deps."""
    bindir = Path(sys.executable).parent
    for exe in ("dagster-webserver", "dagster-daemon", "dagster-celery", "dagster", "plastics"):
        assert (bindir / exe).exists() or shutil.which(exe), exe
