"""A ``roi`` partition key the project cannot use, added the way the UI's *Add a partition* adds it
(the webserver's ``addDynamicPartition`` GraphQL mutation), seen in a real browser and removed
with the documented CLI (``plastics roi list`` names it in one line, ``plastics roi remove``
deletes it). Debian chromium + chromium-driver through Selenium against ``dagster dev`` on
127.0.0.1, as tests/test_ui_browser.py; screenshots in ``test-artifacts/ui/``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tests.test_ui_browser import (
    ARTIFACTS,
    LOCATION,
    REPO,
    _free_port,
    _need,
    _wait,
    graphql,
    open_page,
    shot,
    text_appears,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

HOSTILE = "bad|name"
ADD_PARTITION = """mutation($repo: RepositorySelector!, $key: String!) {
  addDynamicPartition(repositorySelector: $repo, partitionsDefName: "roi", partitionKey: $key) { __typename } }"""


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> Iterator[dict[str, Any]]:
    """``dagster dev`` on a free port with this module's own instance; ``{"base", "home", "store"}``."""
    _need("chromium")
    _need("chromedriver")
    pytest.importorskip("selenium")
    from plastics_dagster.cli._instance import ensure_instance_config

    tmp = tmp_path_factory.mktemp("ui-hostile")
    home, store = ensure_instance_config(tmp / "home"), tmp / "store"
    port = _free_port()
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "PLASTICS_STORE": str(store),
        "PLASTICS_PROGRESS": "0",
        "PLASTICS_MODEL_STORE": str(models_dir),
        "PYTHONPATH": str(REPO),
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }
    log = (tmp / "dagster-dev.log").open("w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dagster",
            "dev",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-f",
            str(REPO / "tests" / "_ui_defs.py"),
        ],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    query = "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus } } } }"
    try:
        _wait(
            "the webserver and code location",
            lambda: (
                proc.poll() is None
                and any(
                    e["loadStatus"] == "LOADED"
                    for e in graphql(base, query)["workspaceOrError"]["locationEntries"]
                )
                or (proc.poll() is not None and pytest.fail(f"dagster dev exited: see {log.name}"))
            ),
            300,
        )
        yield {"base": base, "home": home, "store": store}
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        log.close()


@pytest.fixture(scope="module")
def chromium(ui: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    opts = Options()
    opts.binary_location = _need("chromium")
    profile = tmp_path_factory.mktemp("chromium-profile-hostile")
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1600,1000",
        f"--user-data-dir={profile}",
        "--no-first-run",
    ):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(_need("chromedriver")), options=opts)
    driver.implicitly_wait(0)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    yield driver
    driver.quit()


def test_a_hostile_roi_key_from_the_ui_is_named_and_removed_by_the_cli(
    ui: dict[str, Any], chromium: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from selenium.webdriver.common.by import By

    from plastics_dagster.cli import cli

    repo = {"repositoryLocationName": LOCATION, "repositoryName": "__repository__"}
    added = graphql(ui["base"], ADD_PARTITION, {"repo": repo, "key": HOSTILE})["addDynamicPartition"]
    assert added["__typename"] == "AddDynamicPartitionSuccess"  # Dagster accepts any text as a key
    open_page(chromium, f"{ui['base']}/assets/descartes_run?view=partitions", "Partitions")
    text_appears(chromium, HOSTILE)
    shot(chromium, "hostile-key-partitions")

    monkeypatch.setenv("DAGSTER_HOME", str(ui["home"]))
    monkeypatch.setenv("PLASTICS_STORE", str(ui["store"]))
    listed = CliRunner().invoke(cli, ["roi", "list"], catch_exceptions=False)
    assert listed.exit_code == 0, listed.output
    (warning,) = [line for line in listed.output.splitlines() if line.startswith("Warning:")]
    assert f"'{HOSTILE}'" in warning and f"plastics roi remove '{HOSTILE}'" in warning
    removed = CliRunner().invoke(cli, ["roi", "remove", HOSTILE], catch_exceptions=False)
    assert removed.exit_code == 0, removed.output

    chromium.refresh()
    text_appears(chromium, "Partitions")
    time.sleep(2)
    _wait(
        f"{HOSTILE!r} gone from the partition page",
        lambda: HOSTILE not in chromium.find_element(By.TAG_NAME, "body").text,
        60,
        1.0,
    )
    shot(chromium, "hostile-key-removed")
    clean = CliRunner().invoke(cli, ["roi", "list"], catch_exceptions=False)
    assert "Warning" not in clean.output and HOSTILE not in clean.output
