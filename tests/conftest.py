"""Shared fixtures: where ../shared lives, and the model store pointed at ../shared/models."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("PLASTICS_SHARED", REPO.parent / "shared")).resolve()
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("PLASTICS_MODEL_STORE", str(SHARED / "models"))


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
