"""Shared fixtures: where ../shared lives, and the model store pointed at ../shared/models."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("PLASTICS_SHARED", REPO.parent / "shared")).resolve()
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("PLASTICS_MODEL_STORE", str(SHARED / "models"))
os.environ.setdefault("PLASTICS_IMAGERY", "synthetic")  # tests use the synthetic world explicitly


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.fail(f"../shared not found at {SHARED}: clone the project beside shared/ or set PLASTICS_SHARED")
    return SHARED


@pytest.fixture(scope="session")
def models_dir(shared_dir: Path) -> Path:
    return shared_dir / "models"


@pytest.fixture(scope="session")
def gpw_dir(shared_dir: Path) -> Path:
    return shared_dir / "data" / "gpw"


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory, shared_dir: Path) -> tuple[object, Path]:
    """`plastics demo` run once per session as a subprocess: (CompletedProcess, its folder).

    Shared by the CLI test (what it prints) and the browser test (its preview HTML).
    """
    import subprocess
    import sys

    tmp = tmp_path_factory.mktemp("demo")
    env = {**os.environ, "DAGSTER_HOME": str(tmp / "home"), "PLASTICS_STORE": str(tmp / "store"),
           "PLASTICS_PROGRESS": "0"}
    proc = subprocess.run([sys.executable, "-m", "plastics_dagster.cli", "demo"], env=env, capture_output=True,
                          text=True, timeout=600, cwd=tmp)
    return proc, tmp
