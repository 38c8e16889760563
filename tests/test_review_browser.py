"""The review page in a real browser (Debian chromium + chromium-driver, Selenium) against a live
``plastics serve`` application on 127.0.0.1: keyboard review that survives a reload, a rejected site
detected again stays out of the queue, and a hostile note is shown as text and runs nothing."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from plastics_core.sitedb.engine import open_database
from plastics_core.sitedb.verdicts import review_queue
from tests import _review_data as d
from tests._browser import chromium, free_port, need, wait

pytestmark = [pytest.mark.browser]

USER, PASSWORD = "ana", "review-pw"
W1, W2 = "2024-01-01", "2024-04-01"


class Served:
    def __init__(self, base: str, url: str, store: Path) -> None:
        self.base, self.url, self.store = base, url, store

    def engine(self) -> Any:
        return open_database(self.url)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    need("chromium")
    need("chromedriver")
    import uvicorn

    from plastics_core.api.app import create_app

    tmp = tmp_path_factory.mktemp("review-browser")
    url = f"sqlite:///{tmp}/sites.sqlite"
    old = os.environ.get("PLASTICS_API_USERS")
    os.environ["PLASTICS_API_USERS"] = f"{USER}:{PASSWORD}"
    app = create_app(url, str(tmp / "store"))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.1)
    assert server.started, "uvicorn did not start"
    try:
        yield Served(f"http://127.0.0.1:{port}", url, tmp / "store")
    finally:
        server.should_exit = True
        thread.join(10)
        if old is None:
            os.environ.pop("PLASTICS_API_USERS", None)
        else:
            os.environ["PLASTICS_API_USERS"] = old


@pytest.fixture(scope="module")
def browser(served: Served, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with chromium(tmp_path_factory.mktemp("chromium-profile"), size="1400,1000") as driver:
        yield driver


def _wait(what: str, check: Any, timeout: float = 30.0) -> Any:
    return wait(what, check, timeout, every=0.1)


def _texts(driver: Any, css: str) -> list[str]:
    from selenium.webdriver.common.by import By

    return [e.text for e in driver.find_elements(By.CSS_SELECTOR, css)]


def _open(driver: Any, served: Served, roi: str) -> None:
    """Sign in (HTTP basic, as the browser's login prompt would) and open the ROI's review page."""
    host = served.base.removeprefix("http://")
    driver.get(f"http://{USER}:{PASSWORD}@{host}/review/login?roi={roi}")
    _wait("the review page", lambda: driver.current_url.endswith(f"/review?roi={roi}"))
    driver.get(f"{served.base}/review?roi={roi}")  # the browser keeps the credentials for this server
    _wait(
        "the queue",
        lambda: driver.execute_script(
            "return document.querySelectorAll('#queue-list li').length > 0 "
            "|| !document.getElementById('empty-message').hidden"
        ),
    )


def _key(driver: Any, key: str) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(driver).send_keys(key).perform()


def _current(driver: Any) -> str:
    return str(
        driver.execute_script(
            "const li = document.querySelector('#queue-list li.current');return li ? li.dataset.siteId : '';"
        )
    )


def _publish(served: Served, roi: str, windows: dict[str, Any]) -> list[str]:
    d.write_store(served.store, sorted(windows), roi=roi)
    engine = served.engine()
    try:
        d.publish(engine, windows, roi=roi)
        return [i.site_id for i in review_queue(engine, roi)]
    finally:
        engine.dispose()


def test_three_sites_reviewed_by_keyboard_survive_a_reload(served: Served, browser: Any) -> None:
    roi = "kbd"
    queue = _publish(served, roi, {W1: d.enriched({"temesi": 0.9, "north": 0.7, "west": 0.55, "east": 0.5})})
    _open(browser, served, roi)
    assert [t.split(" · ")[0] for t in _texts(browser, "#queue-list li")] == queue
    _wait(
        "chips",
        lambda: (
            browser.execute_script(
                "return [...document.querySelectorAll('#chips img')].filter(i => i.complete && i.naturalWidth > 0).length"
            )
            == 2
        ),
    )
    assert browser.execute_script("return document.querySelectorAll('#map .leaflet-image-layer').length") >= 1
    for i, key in enumerate(["c", "r", "u"]):
        assert _current(browser) == queue[i]
        _key(browser, key)
        _wait(f"verdict {key} recorded", lambda i=i: _current(browser) == queue[i + 1])
    browser.refresh()
    _wait("the queue after reload", lambda: _texts(browser, "#reviewed-list li"))
    assert [t.split(" · ")[0] for t in _texts(browser, "#queue-list li")] == [queue[3]]
    reviewed = {t.split(" · ")[0]: t for t in _texts(browser, "#reviewed-list li")}
    assert set(reviewed) == set(queue[:3])
    assert "confirm by ana" in reviewed[queue[0]] and "reject by ana" in reviewed[queue[1]]
    assert "unsure by ana" in reviewed[queue[2]]


def test_a_rejected_site_detected_again_is_not_in_the_queue(served: Served, browser: Any) -> None:
    roi = "again"
    first = {W1: d.enriched({"temesi": 0.9, "north": 0.7})}
    queue = _publish(served, roi, first)
    _open(browser, served, roi)
    assert _current(browser) == queue[0]  # Temesi, the highest score
    _key(browser, "r")
    _wait("the reject", lambda: _current(browser) == queue[1])
    # the next window detects Temesi again (~100 m away, score +0.03) and one new site
    _publish(
        served, roi, {**first, W2: d.enriched({"temesi": 0.93, "north": 0.7, "east": 0.6}, jitter=0.001)}
    )
    browser.refresh()
    _wait("the new queue", lambda: len(_texts(browser, "#queue-list li")) == 2)
    ids = [t.split(" · ")[0] for t in _texts(browser, "#queue-list li")]
    assert queue[0] not in ids and queue[1] in ids
    assert any(t.startswith(queue[0]) and "reject" in t for t in _texts(browser, "#reviewed-list li"))


def test_a_hostile_note_is_shown_as_text_and_runs_nothing(served: Served, browser: Any) -> None:
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.by import By

    roi = "hostile"
    queue = _publish(served, roi, {W1: d.enriched({"temesi": 0.9, "north": 0.7})})
    note = (
        '</textarea><script>window.__pwned=1;alert(1)</script><img src=x onerror="window.__pwned=2">'
        " ${window.__pwned=3} `${alert(4)}` {{7*7}}"
    )
    _open(browser, served, roi)
    textarea = browser.find_element(By.ID, "note")
    textarea.click()
    textarea.send_keys(note)
    _key(browser, "\ue00c")  # Escape leaves the note; the keys act on the page again
    _key(browser, "r")
    _wait("the reject", lambda: _current(browser) == queue[1])
    _key(browser, "p")
    _wait("the history", lambda: any(note in t for t in _texts(browser, "#history li")))
    browser.refresh()
    _wait("the reviewed list", lambda: any(note in t for t in _texts(browser, "#reviewed-list li")))
    assert browser.execute_script("return window.__pwned === undefined")
    assert (
        browser.execute_script("return document.querySelectorAll('main script, main img[onerror]').length")
        == 0
    )
    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert.text  # noqa: B018 (reading it is the check)
    engine = served.engine()
    try:
        from plastics_core.sitedb.verdicts import history

        with engine.connect() as conn:
            assert history(conn, roi, queue[0])[-1].note == note
    finally:
        engine.dispose()
