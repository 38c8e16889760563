"""Shared helpers of the real-browser tests: Debian ``chromium`` + ``chromium-driver`` driven by
Selenium (headless), ``dagster dev`` on a free 127.0.0.1 port, the webserver's GraphQL, and
screenshots in ``test-artifacts/ui/`` (git-ignored)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts" / "ui"
#: the code location name ``dagster dev -f tests/_ui_defs.py`` gives the browser tests' graph
LOCATION = "_ui_defs.py"
REPOSITORY = {"repositoryLocationName": LOCATION, "repositoryName": "__repository__"}


def need(exe: str) -> str:
    """The path of ``exe``; skip the test without it (fail under CI, which installs it)."""
    found = shutil.which(exe)
    if found is None:
        if os.environ.get("CI"):
            pytest.fail(f"{exe} not found: .ci/run must `apt-get install -y chromium chromium-driver`")
        pytest.skip(f"{exe} not installed (apt-get install -y chromium chromium-driver)")
    return found


def need_browser() -> None:
    """Skip (or fail under CI) unless chromium, chromedriver and selenium are installed."""
    need("chromium")
    need("chromedriver")
    pytest.importorskip("selenium")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait(what: str, check: Callable[[], Any], timeout: float, every: float = 2.0) -> Any:
    """``check()``'s first truthy value, polled every ``every`` s for ``timeout`` s (an OSError,
    a server not up yet, counts as not yet); AssertionError naming ``what`` on timeout."""
    end = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < end:
        try:
            last = check()
            if last:
                return last
        except OSError as exc:
            last = exc
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


def graphql(base: str, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    """POST ``query`` to the webserver's ``/graphql`` (as the UI's pages do); its ``data``."""
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    req = urllib.request.Request(f"{base}/graphql", body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        data: dict[str, Any] = json.loads(resp.read())["data"]
    return data


@contextlib.contextmanager
def dagster_dev(tmp: Path, home: Path, store: Path, models_dir: Path) -> Iterator[str]:
    """``dagster dev`` (webserver + daemon) on a free 127.0.0.1 port over ``tests/_ui_defs.py``
    with the instance ``home`` and the store ``store``; yields the base URL once the code location
    is loaded; stops it (webserver, daemon, code server) on exit. Its log: ``tmp/dagster-dev.log``."""
    port = free_port()
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
    defs = str(REPO / "tests" / "_ui_defs.py")
    proc = subprocess.Popen(
        [sys.executable, "-m", "dagster", "dev", "-h", "127.0.0.1", "-p", str(port), "-f", defs],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    query = "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus } } } }"

    def loaded() -> bool:
        if proc.poll() is not None:
            pytest.fail(f"dagster dev exited: see {log.name}")
        entries = graphql(base, query)["workspaceOrError"]["locationEntries"]
        return any(e["loadStatus"] == "LOADED" for e in entries)

    try:
        wait("the webserver and code location", loaded, 300)
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


@contextlib.contextmanager
def chromium(profile: Path, size: str = "1600,1000") -> Iterator[Any]:
    """A headless Chromium WebDriver with its own profile folder ``profile``, window ``size``."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    opts = Options()
    opts.binary_location = need("chromium")
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        f"--window-size={size}",
        f"--user-data-dir={profile}",
        "--no-first-run",
    ):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(need("chromedriver")), options=opts)
    driver.implicitly_wait(0)
    driver.set_page_load_timeout(60)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        yield driver
    finally:
        driver.quit()


def shot(driver: Any, name: str) -> Path:
    """Save a screenshot as ``test-artifacts/ui/<name>.png``."""
    path = ARTIFACTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path


def text_appears(driver: Any, text: str, timeout: float = 60) -> None:
    from selenium.webdriver.common.by import By

    wait(
        f"{text!r} on {driver.current_url}",
        lambda: text in driver.find_element(By.TAG_NAME, "body").text,
        timeout,
        every=1.0,
    )


def open_page(driver: Any, url: str, expect: str) -> None:
    """Load ``url``, dismiss the Dagster UI's first-visit community dialog, wait for ``expect``."""
    from selenium.webdriver.common.by import By

    driver.get(url)
    text_appears(driver, expect, 90)
    for button in driver.find_elements(By.XPATH, "//button[normalize-space()='Skip']"):
        button.click()
