"""Shared fixtures: where ../shared lives, the model store pointed at ../shared/models, and the
session's one materialized graph run (``graph_run``) that read-only tests share."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._graph_run import FAKE_IDS, FAKE_SECRETS, GRAPH_RUN_PARAMS, GRAPH_RUN_WINDOW, GraphRun

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("PLASTICS_SHARED", REPO.parent / "shared")).resolve()
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("PLASTICS_SHARED", str(SHARED))  # the package's default is ../shared of the working dir
os.environ.setdefault("PLASTICS_MODEL_STORE", str(SHARED / "models"))
os.environ.setdefault("PLASTICS_IMAGERY", "synthetic")  # tests use the synthetic world explicitly


#: The test files that take a minute or more (``--durations``: real outages and retry waits, a real
#: browser, signals, parallel runs, Celery, the shared demo run), longest first. They run first so
#: that the worker processes of ``make test`` (pytest-xdist, one file per worker at a time, in
#: collection order) finish together instead of one of them ending with a five-minute file.
LONGEST_FIRST = (
    "test_reliability_outage.py",
    "test_ui_browser.py",
    "test_ui_hostile_key.py",
    "test_reliability_signals.py",
    "test_reliability_concurrency.py",
    "test_backfill.py",
    "test_celery.py",
    "test_resume.py",
    "test_cli.py",
    "test_cli_sites.py",
    "test_browser.py",
    "test_materialize.py",
    "test_runner_requests.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the :data:`LONGEST_FIRST` files first; every file's own order is kept."""
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.fail(
            f"../shared not found at {SHARED}: clone the project beside shared/ or set PLASTICS_SHARED"
        )
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
    from tests._env import user_env

    # as a user runs it (no TF_* variable of the test session): the CLI itself keeps TensorFlow quiet
    env = user_env(DAGSTER_HOME=str(tmp / "home"), PLASTICS_STORE=str(tmp / "store"), PLASTICS_PROGRESS="0")
    proc = subprocess.run(
        [sys.executable, "-m", "plastics_dagster.cli", "demo"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp,
    )
    return proc, tmp


@pytest.fixture(scope="session")
def graph_run(tmp_path_factory: pytest.TempPathFactory, shared_dir: Path) -> Iterator[GraphRun]:
    """The whole graph (every detection asset, its checks, then the ROI's site registry) materialized
    ONCE per session into a temporary store and a persistent temporary Dagster instance, with fake
    credentials in the environment (removed again afterwards)."""
    from dagster import DagsterInstance

    from plastics_dagster.runner import materialize_partition

    mp = pytest.MonkeyPatch()
    for key, value in {**FAKE_SECRETS, **FAKE_IDS}.items():
        mp.setenv(key, value)
    root = tmp_path_factory.mktemp("graph_run")
    home, store = root / "dagster_home", root / "store"
    home.mkdir()
    try:
        with DagsterInstance.local_temp(str(home)) as instance:
            summary = materialize_partition(
                "test_patch",
                GRAPH_RUN_WINDOW,
                overrides=dict(GRAPH_RUN_PARAMS),
                store=str(store),
                imagery="synthetic",
                instance=instance,
            )
            runs = list(instance.get_runs())
            records = [(run.run_id, entry) for run in runs for entry in instance.all_logs(run.run_id)]
            mp.undo()
            yield GraphRun(summary=summary, store=store, home=home, runs=runs, records=records)
    finally:
        mp.undo()


@pytest.fixture
def short_step_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process runs wait 0.01 s instead of their retry policy's delay before a step retry.

    Only the wait is shortened (time is the boundary): the policies, their retry counts and the
    retried code are the real ones; the policies' delays themselves are checked in
    tests/test_reliability_retries.py::test_network_bound_assets_have_a_retry_policy.
    """
    from dagster import RetryPolicy

    monkeypatch.setattr(RetryPolicy, "calculate_delay", lambda self, attempt_num: 0.01)


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh Dagster home and store for CLI tests (``$DAGSTER_HOME``, ``$PLASTICS_STORE``); the tmp folder."""
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PLASTICS_STORE", str(tmp_path / "store"))
    monkeypatch.setenv("PLASTICS_PROGRESS", "0")
    return tmp_path


@pytest.fixture(params=["sqlite", "postgis"])
def sitedb_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of an empty site database, once per backend (tests/_sitedb.py; postgis skips
    when $PLASTICS_TEST_DATABASE_URL is not set)."""
    from tests._sitedb import database_url

    yield from database_url(str(request.param), tmp_path)
