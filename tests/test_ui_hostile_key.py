"""A ``roi`` partition key the project cannot use, added the way the UI's *Add a partition* adds it
(the webserver's ``addDynamicPartition`` GraphQL mutation), seen in a real browser and removed
with the documented CLI (``plastics roi list`` names it in one line, ``plastics roi remove``
deletes it). Debian chromium + chromium-driver through Selenium against ``dagster dev`` on
127.0.0.1, as tests/test_ui_browser.py; screenshots in ``test-artifacts/ui/``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tests._browser import (
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

HOSTILE = "bad|name"
ADD_PARTITION = """mutation($repo: RepositorySelector!, $key: String!) {
  addDynamicPartition(repositorySelector: $repo, partitionsDefName: "roi", partitionKey: $key) { __typename } }"""


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> Iterator[dict[str, Any]]:
    """``dagster dev`` on a free port with this module's own instance; ``{"base", "home", "store"}``."""
    need_browser()
    from plastics_dagster.cli._instance import ensure_instance_config

    tmp = tmp_path_factory.mktemp("ui-hostile")
    home, store = ensure_instance_config(tmp / "home"), tmp / "store"
    with dagster_dev(tmp, home, store, models_dir) as base:
        yield {"base": base, "home": home, "store": store}


@pytest.fixture(scope="module", name="chromium")
def chromium_driver(ui: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with chromium(tmp_path_factory.mktemp("chromium-profile-hostile")) as driver:
        yield driver


def test_a_hostile_roi_key_from_the_ui_is_named_and_removed_by_the_cli(
    ui: dict[str, Any], chromium: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from selenium.webdriver.common.by import By

    from plastics_dagster.cli import cli

    added = graphql(ui["base"], ADD_PARTITION, {"repo": REPOSITORY, "key": HOSTILE})["addDynamicPartition"]
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
    wait(
        f"{HOSTILE!r} gone from the partition page",
        lambda: HOSTILE not in chromium.find_element(By.TAG_NAME, "body").text,
        60,
        1.0,
    )
    shot(chromium, "hostile-key-removed")
    clean = CliRunner().invoke(cli, ["roi", "list"], catch_exceptions=False)
    assert "Warning" not in clean.output and HOSTILE not in clean.output
