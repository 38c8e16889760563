"""The Dagster UI in a real browser: Debian chromium + chromium-driver driven by Selenium against
``dagster dev`` (webserver + daemon) on 127.0.0.1, with the project's graph on tiny synthetic tiles
(:mod:`tests._ui_defs`) and this test's own instance (``dagster.yaml`` as the CLI writes it).

Clicked like a user: the lineage shows the assets, an asset's partition grid opens, a backfill of
2 ROIs x 1 window is launched from the Materialize dialog and succeeds (the job's partition
statuses and every asset's materializations agree on its partitions), its run log shows the tile
progress, and a run of a partition added without a geometry fails with the one-line message.
Screenshots are kept in ``test-artifacts/ui/`` (git-ignored; the path is printed).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import _fanout_util as fu

pytestmark = [pytest.mark.browser, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts" / "ui"
WINDOW = fu.WINDOW
ROIS = ("ui_a", "ui_b")
NO_GEOMETRY = "ui_only"
LOCATION = "_ui_defs.py"


def _need(exe: str) -> str:
    found = shutil.which(exe)
    if found is None:
        if os.environ.get("CI"):
            pytest.fail(f"{exe} not found: .ci/run must `apt-get install -y chromium chromium-driver`")
        pytest.skip(f"{exe} not installed (apt-get install -y chromium chromium-driver)")
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def graphql(base: str, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    req = urllib.request.Request(f"{base}/graphql", body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())["data"]


def _wait(what: str, check: Any, timeout: float, every: float = 2.0) -> Any:
    end = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < end:
        try:
            last = check()
            if last:
                return last
        except OSError as exc:  # server not up yet
            last = exc
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> Iterator[str]:
    """``dagster dev`` on a free 127.0.0.1 port with two 4-tile ROIs and one partition without geometry."""
    _need("chromium")
    _need("chromedriver")
    pytest.importorskip("selenium")
    from dagster import DagsterInstance

    from plastics_dagster.cli._instance import ensure_instance_config

    tmp = tmp_path_factory.mktemp("ui")
    home, store = ensure_instance_config(tmp / "home"), tmp / "store"
    instance = DagsterInstance.from_config(str(home))
    for name in ROIS:
        fu.register(instance, store, name)
    instance.add_dynamic_partitions("roi", [NO_GEOMETRY])  # as "Add a partition" in the UI does
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
        print(f"\nUI test: {base}, dagster dev log {log.name}, screenshots in {ARTIFACTS}")
        yield base
    finally:
        os.killpg(proc.pid, signal.SIGINT)  # dagster dev shuts its webserver, daemon and code server down
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        log.close()


@pytest.fixture(scope="module")
def browser(server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    opts = Options()
    opts.binary_location = _need("chromium")
    profile = tmp_path_factory.mktemp("chromium-profile")
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


def shot(driver: Any, name: str) -> Path:
    path = ARTIFACTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path


def text_appears(driver: Any, text: str, timeout: float = 60) -> None:
    from selenium.webdriver.common.by import By

    _wait(
        f"{text!r} on {driver.current_url}",
        lambda: text in driver.find_element(By.TAG_NAME, "body").text,
        timeout,
        every=1.0,
    )


def open_page(driver: Any, url: str, expect: str) -> None:
    """Load ``url``, dismiss the first-visit community dialog, wait for ``expect``."""
    from selenium.webdriver.common.by import By

    driver.get(url)
    text_appears(driver, expect, 90)
    for button in driver.find_elements(By.XPATH, "//button[normalize-space()='Skip']"):
        button.click()


def launch_backfill(driver: Any, base: str, rois: tuple[str, ...], name: str) -> None:
    """detect_job -> Materialize all... -> pick ``rois`` and WINDOW -> Launch backfill (all by clicking)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    open_page(driver, f"{base}/locations/{LOCATION}/jobs/detect_job", "Materialize all")
    driver.find_element(By.XPATH, "//button[contains(., 'Materialize all')]").click()
    text_appears(driver, "Partition selection")
    driver.find_element(By.CSS_SELECTOR, "[role=dialog] [class*=TagSelector_tagSelectorContainer]").click()
    for roi in rois:
        _wait(
            f"ROI option {roi}",
            lambda roi=roi: driver.find_elements(
                By.CSS_SELECTOR, f"[data-radix-popper-content-wrapper] [data-tooltip='{roi}']"
            ),
            30,
            0.5,
        )[0].click()
    driver.find_element(By.TAG_NAME, "body").send_keys(Keys.ESCAPE)
    window = driver.find_element(By.CSS_SELECTOR, "[role=dialog] input[placeholder^='ex: 2017-07-01']")
    window.click()
    window.send_keys(WINDOW, Keys.ENTER)
    text_appears(driver, f"{len(rois)} partition")
    shot(driver, f"{name}-dialog")
    # 2+ partitions: "Launch backfill"; one partition: "Launch 1 run"
    driver.find_element(
        By.XPATH, "//div[@role='dialog']//button[starts-with(normalize-space(), 'Launch ')]"
    ).click()


BACKFILLS = "{ partitionBackfillsOrError { ... on PartitionBackfills { results { id status } } } }"
RUNS = """query($key: String!, $value: String!) { runsOrError(filter: {tags: [{key: $key, value: $value}]}) {
  ... on Runs { results { runId status tags { key value } } } } }"""
FINISHED = ("SUCCESS", "FAILURE", "CANCELED")


def tagged_runs(base: str, key: str, value: str) -> list[dict[str, Any]]:
    return graphql(base, RUNS, {"key": key, "value": value})["runsOrError"]["results"]


def backfill_runs(
    base: str, known: set[str], n_runs: int, timeout: float
) -> tuple[str, list[dict[str, Any]]]:
    """The new backfill's id and its ``n_runs`` runs once all finished."""

    def new_backfill() -> str | None:
        ids = [b["id"] for b in graphql(base, BACKFILLS)["partitionBackfillsOrError"]["results"]]
        return next((i for i in ids if i not in known), None)

    bid = _wait("the backfill", new_backfill, 60)

    def finished() -> list[dict[str, Any]] | None:
        runs = tagged_runs(base, "dagster/backfill", bid)
        done = [r for r in runs if r["status"] in FINISHED]
        return runs if len(runs) == n_runs and len(done) == n_runs else None

    return bid, _wait(f"{n_runs} runs of backfill {bid}", finished, timeout, 5)


def test_lineage_shows_the_assets(server: str, browser: Any) -> None:
    open_page(browser, f"{server}/locations/{LOCATION}/asset-groups/detection", "descartes_run")
    for name in ("heatmaps", "patch_geojson"):
        text_appears(browser, name)
    shot(browser, "lineage-detection")
    open_page(browser, f"{server}/asset-groups", "Global asset lineage")
    for group in ("detection", "sites", "preview"):
        text_appears(browser, group)
    shot(browser, "lineage-global")


def test_partition_grid_opens(server: str, browser: Any) -> None:
    open_page(browser, f"{server}/assets/descartes_run?view=partitions", "Partitions")
    for roi in (*ROIS, NO_GEOMETRY):
        text_appears(browser, roi)
    from plastics_dagster.partitions import window_partitions

    text_appears(browser, window_partitions.get_last_partition_key() or "-")  # the last complete window
    text_appears(browser, "Missing")
    shot(browser, "partitions-descartes_run")


def test_backfill_of_two_rois_succeeds_and_logs_tile_progress(server: str, browser: Any) -> None:
    known = {b["id"] for b in graphql(server, BACKFILLS)["partitionBackfillsOrError"]["results"]}
    launch_backfill(browser, server, ROIS, "backfill")
    bid, runs = backfill_runs(server, known, len(ROIS), 420)
    assert {r["status"] for r in runs} == {"SUCCESS"}, runs
    partitions = {t["value"] for r in runs for t in r["tags"] if t["key"] == "dagster/partition"}
    assert partitions == {f"{roi}|{WINDOW}" for roi in ROIS}
    # the job's Partitions tab and each asset's partition grid agree on these partitions
    job_status = job_partition_statuses(server)
    assert {k: job_status.get(k) for k in partitions} == {k: "SUCCESS" for k in partitions}, job_status
    for asset in (
        "heatmaps",
        "patch_geojson",
        "blobs",
        "candidates",
        "contours",
        "enriched_sites",
        "preview",
    ):
        assert materialized_partitions(server, asset, sorted(partitions)) == partitions, asset
    open_page(browser, f"{server}/runs/b/{bid}", bid)
    text_appears(browser, "Succeeded")
    text_appears(browser, "100% completed")
    shot(browser, "backfill-page")
    run_id = runs[0]["runId"]
    open_page(browser, f"{server}/runs/{run_id}", "infer_tile")
    from selenium.webdriver.common.by import By

    search = browser.find_elements(By.CSS_SELECTOR, "input[placeholder*='Filter']")
    if search:  # the log is virtualised: filter it down to the progress lines
        search[0].send_keys("tiles done")
    text_appears(browser, "tiles done 4/4", 60)
    shot(browser, "run-log-tile-progress")


def test_partition_without_geometry_fails_with_one_line(server: str, browser: Any) -> None:
    launch_backfill(browser, server, (NO_GEOMETRY,), "unregistered")  # one partition: "Launch 1 run"
    key = f"{NO_GEOMETRY}|{WINDOW}"
    (run,) = _wait(
        f"the run of {key}",
        lambda: [r for r in tagged_runs(server, "dagster/partition", key) if r["status"] in FINISHED],
        400,
        5,
    )
    assert run["status"] == "FAILURE"
    open_page(browser, f"{server}/runs/{run['runId']}", "plan_tiles")
    text_appears(browser, f"ROI '{NO_GEOMETRY}' is not registered", 60)
    text_appears(browser, f"plastics roi add {NO_GEOMETRY}", 10)
    shot(browser, "run-unregistered-roi")
    failed = graphql(server, STEP_FAILURES, {"id": run["runId"]})["logsForRun"]["events"]
    steps = {e["stepKey"]: e for e in failed if e["__typename"] == "ExecutionStepFailureEvent"}
    assert list(steps) == ["descartes_run.plan_tiles"]  # one step fails, the others never start
    message = steps["descartes_run.plan_tiles"]["failureMetadata"]["description"]
    assert message.startswith(f"ROI '{NO_GEOMETRY}' is not registered") and "\n" not in message
    assert steps["descartes_run.plan_tiles"]["error"]["cause"] is None  # no chained traceback


JOB_PARTITIONS = """query($repo: RepositorySelector!) { partitionSetOrError(repositorySelector: $repo,
  partitionSetName: "detect_job_partition_set") { __typename ... on PartitionSet { partitionStatusesOrError {
  __typename ... on PartitionStatuses { results { partitionName runStatus } } ... on PythonError { message } } }
  ... on PythonError { message } } }"""
ASSET_PARTITIONS = """query($key: AssetKeyInput!, $parts: [String!]) { assetOrError(assetKey: $key) {
  ... on Asset { assetMaterializations(partitions: $parts) { partition } } } }"""


def job_partition_statuses(base: str) -> dict[str, str]:
    """detect_job's partition -> the status its Partitions tab shows (from its runs)."""
    repo = {"repositoryLocationName": LOCATION, "repositoryName": "__repository__"}
    data = graphql(base, JOB_PARTITIONS, {"repo": repo})["partitionSetOrError"]
    statuses = data.get("partitionStatusesOrError", data)
    assert "results" in statuses, data
    return {r["partitionName"]: r["runStatus"] for r in statuses["results"] if r["runStatus"]}


def materialized_partitions(base: str, asset: str, partitions: list[str]) -> set[str]:
    """Which of ``partitions`` the asset's partition grid shows materialized."""
    data = graphql(base, ASSET_PARTITIONS, {"key": {"path": [asset]}, "parts": partitions})["assetOrError"]
    return {m["partition"] for m in data["assetMaterializations"]}


STEP_FAILURES = """query($id: ID!) { logsForRun(runId: $id) { ... on EventConnection { events { __typename
  ... on ExecutionStepFailureEvent { stepKey failureMetadata { description } error { message cause { message } } }
} } } }"""
