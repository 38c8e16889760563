"""The Dagster UI in a real browser: Debian chromium + chromium-driver driven by Selenium against
``dagster dev`` (webserver + daemon) on 127.0.0.1, with the project's graph on tiny synthetic tiles
(:mod:`tests._ui_defs`) and this test's own instance (``dagster.yaml`` as the CLI writes it).

Clicked like a user: the lineage shows the assets, an asset's partition grid opens, a backfill of
2 ROIs x 1 window is launched from the Materialize dialog and succeeds (the job's partition
statuses and every asset's materializations agree on its partitions; the quarter grid of
``descartes_run`` shows exactly the quarters the store holds, those the window's ``heatmaps``
step computed included), its run log shows the tile progress, and a run of a partition added without a geometry fails with the one-line message.
Screenshots are kept in ``test-artifacts/ui/`` (git-ignored; the path is printed).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import _fanout_util as fu
from tests._browser import (
    LOCATION,
    REPOSITORY,
    chromium,
    dagster_dev,
    graphql,
    need_browser,
    open_page,
    shot,
    text_appears,
    wait,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

WINDOW = fu.WINDOW
PAIRS = fu.UI_PAIRS
ROIS = ("ui_a", "ui_b")
NO_GEOMETRY = "ui_only"


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> Iterator[dict[str, Any]]:
    """``dagster dev`` on a free 127.0.0.1 port with two 4-tile ROIs and one partition without
    geometry; ``{"base": its URL, "store": its store folder}``."""
    need_browser()
    from dagster import DagsterInstance

    from plastics_dagster.cli._instance import ensure_instance_config

    tmp = tmp_path_factory.mktemp("ui")
    home, store = ensure_instance_config(tmp / "home"), tmp / "store"
    instance = DagsterInstance.from_config(str(home))
    for name in ROIS:
        fu.register(instance, store, name)
    instance.add_dynamic_partitions("roi", [NO_GEOMETRY])  # as "Add a partition" in the UI does
    with dagster_dev(tmp, home, store, models_dir) as base:
        yield {"base": base, "store": store}


@pytest.fixture(scope="module")
def server(ui: dict[str, Any]) -> str:
    return str(ui["base"])


@pytest.fixture(scope="module")
def browser(server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with chromium(tmp_path_factory.mktemp("chromium-profile")) as driver:
        yield driver


def launch_backfill(driver: Any, base: str, rois: tuple[str, ...], name: str) -> None:
    """detect_job -> Materialize all... -> pick ``rois`` and WINDOW -> Launch backfill (all by clicking)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    open_page(driver, f"{base}/locations/{LOCATION}/jobs/detect_job", "Materialize all")
    driver.find_element(By.XPATH, "//button[contains(., 'Materialize all')]").click()
    text_appears(driver, "Partition selection")
    driver.find_element(By.CSS_SELECTOR, "[role=dialog] [class*=TagSelector_tagSelectorContainer]").click()
    for roi in rois:
        wait(
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

    bid = wait("the backfill", new_backfill, 60)

    def finished() -> list[dict[str, Any]] | None:
        runs = tagged_runs(base, "dagster/backfill", bid)
        done = [r for r in runs if r["status"] in FINISHED]
        return runs if len(runs) == n_runs and len(done) == n_runs else None

    return bid, wait(f"{n_runs} runs of backfill {bid}", finished, timeout, 5)


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


def test_backfill_of_two_rois_succeeds_and_logs_tile_progress(
    ui: dict[str, Any], server: str, browser: Any
) -> None:
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
    # every quarter the store holds is a materialized descartes_run partition in the UI: the
    # window's own quarter (fan-out) and those its heatmaps step computed
    for roi in ROIS:
        stored = stored_quarters(ui["store"], roi)
        assert len(stored) == PAIRS and WINDOW in stored, stored
        assert {w for r, w in quarter_statuses(server) if r == roi} == stored, roi
    open_page(browser, f"{server}/assets/descartes_run?view=partitions", "Partitions")
    text_appears(browser, ROIS[0])
    shot(browser, "backfill-quarter-grid")
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
    (run,) = wait(
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
    data = graphql(base, JOB_PARTITIONS, {"repo": REPOSITORY})["partitionSetOrError"]
    statuses = data.get("partitionStatusesOrError", data)
    assert "results" in statuses, data
    return {r["partitionName"]: r["runStatus"] for r in statuses["results"] if r["runStatus"]}


QUARTER_STATUSES = """query($key: AssetKeyInput!) { assetNodeOrError(assetKey: $key) { ... on AssetNode {
  assetPartitionStatuses { __typename ... on MultiPartitionStatuses { primaryDimensionName ranges {
    primaryDimStartKey primaryDimEndKey secondaryDim { __typename
      ... on DefaultPartitionStatuses { materializedPartitions } } } } } } } }"""


def quarter_statuses(base: str) -> set[tuple[str, str]]:
    """The ``(roi, quarter)`` partitions of ``descartes_run`` that its partition grid (the asset
    page's Partitions tab) shows materialized, read through the query that page makes."""
    from plastics_dagster.partitions import window_partitions

    windows = list(window_partitions.get_partition_keys())

    def span(start: str, end: str) -> list[str]:
        return windows[windows.index(start) : windows.index(end) + 1]

    data = graphql(base, QUARTER_STATUSES, {"key": {"path": ["descartes_run"]}})["assetNodeOrError"]
    statuses = data["assetPartitionStatuses"]
    assert statuses["__typename"] == "MultiPartitionStatuses", statuses
    assert statuses["primaryDimensionName"] == "window", statuses  # Dagster: the time dimension
    found: set[tuple[str, str]] = set()
    for part in statuses["ranges"]:  # windows start..end: the ROIs materialized for each of them
        rois = part["secondaryDim"]["materializedPartitions"]
        quarters = span(part["primaryDimStartKey"], part["primaryDimEndKey"])
        found |= {(roi, quarter) for quarter in quarters for roi in rois}
    return found


def stored_quarters(store: Path, roi: str) -> set[str]:
    """Quarters whose pair the store holds for ``roi`` (a manifest per quarter, written last)."""
    return {p.parent.name for p in (store / "descartes_run" / roi).glob("*/*.json")}


def materialized_partitions(base: str, asset: str, partitions: list[str]) -> set[str]:
    """Which of ``partitions`` the asset's partition grid shows materialized."""
    data = graphql(base, ASSET_PARTITIONS, {"key": {"path": [asset]}, "parts": partitions})["assetOrError"]
    return {m["partition"] for m in data["assetMaterializations"]}


STEP_FAILURES = """query($id: ID!) { logsForRun(runId: $id) { ... on EventConnection { events { __typename
  ... on ExecutionStepFailureEvent { stepKey failureMetadata { description } error { message cause { message } } }
} } } }"""
