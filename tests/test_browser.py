"""Open a preview in headless Debian Chromium from file:// (no network) and check it rendered.

Needs ``/usr/bin/chromium`` (``apt-get install -y chromium``; .ci/run installs it). Skipped when it
is missing outside CI; a failure in CI (CI=true).
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from plastics_core.preview import build_preview_html
from tests import _preview_data as d

pytestmark = pytest.mark.browser

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-dev-shm-usage", "--hide-scrollbars", "--virtual-time-budget=5000"]


def _chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("chromium not found: .ci/run must `apt-get install -y chromium`")
        pytest.skip("chromium not installed (apt-get install -y chromium)")
    return exe


def _run(args: list[str], tmp: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HOME": str(tmp)}  # chromium profile/crash dirs stay in the test folder
    return subprocess.run(args, capture_output=True, text=True, timeout=120, env=env,
                          cwd=tmp, check=False)


@pytest.fixture(scope="module")
def preview_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("browser")
    page = build_preview_html(d.roi(), d.heatmap(), d.blobs(), d.candidates(), d.contours(), d.enriched(),
                              "browser test")
    path = folder / "preview.html"
    path.write_text(page, encoding="utf-8")
    return path


def test_map_and_candidate_markers_render(preview_file: Path) -> None:
    exe = _chromium()
    tmp = preview_file.parent
    proc = _run([exe, *FLAGS, f"--user-data-dir={tmp / 'profile-dom'}", "--dump-dom", preview_file.as_uri()], tmp)
    dom = proc.stdout
    assert proc.returncode == 0 and dom, proc.stderr[-2000:]
    assert re.search(r'class="[^"]*leaflet-container', dom), "Leaflet did not initialise the map"
    markers = re.findall(r'<div class="leaflet-marker-icon plastics-candidate[^"]*"', dom)
    assert len(markers) == 2, "one div-icon marker per candidate"
    assert len(re.findall(r'class="[^"]*leaflet-interactive', dom)) >= 2 + 2 + 2  # markers, blobs, contours
    assert re.search(r'<img[^>]+class="[^"]*leaflet-image-layer', dom), "heatmap overlay missing"
    assert len(re.findall(r'<tr class="plastics-site-row"', dom)) == 2
    assert "leaflet-control-layers" in dom


PROBE = """<script>window.addEventListener("load", function () { setTimeout(function () {
  var pre = document.createElement("pre"); pre.id = "probe-resources";
  pre.textContent = JSON.stringify(performance.getEntriesByType("resource").map(function (e) { return e.name; }));
  document.body.appendChild(pre);
}, 1000); });</script>"""


def test_page_requests_nothing_over_the_network(preview_file: Path) -> None:
    exe = _chromium()
    tmp = preview_file.parent
    probe = tmp / "probe.html"
    probe.write_text(preview_file.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"), encoding="utf-8")
    proc = _run([exe, *FLAGS, f"--user-data-dir={tmp / 'profile-probe'}", "--dump-dom", probe.as_uri()], tmp)
    found = re.search(r'<pre id="probe-resources">(.*?)</pre>', proc.stdout, re.S)
    assert found, proc.stderr[-2000:]
    loaded = json.loads(html.unescape(found.group(1)))
    assert [u for u in loaded if not u.startswith("data:")] == []


def test_candidate_popup_opens_with_id_and_address(preview_file: Path) -> None:
    exe = _chromium()
    tmp = preview_file.parent
    click = """<script>window.addEventListener("load", function () { setTimeout(function () {
      document.querySelector(".plastics-candidate").click(); }, 500); });</script>"""
    page = tmp / "click.html"
    page.write_text(preview_file.read_text(encoding="utf-8").replace("</body>", click + "</body>"), encoding="utf-8")
    proc = _run([exe, *FLAGS, f"--user-data-dir={tmp / 'profile-click'}", "--dump-dom", page.as_uri()], tmp)
    popup = re.search(r'<div class="leaflet-popup-content"[^>]*>(.*?)</div></div>', proc.stdout, re.S)
    assert popup, "clicking a candidate opened no popup"
    assert "s-aaa" in popup.group(1) and "pixel score: 0.910" in popup.group(1)
    assert "Jakarta &lt;Utara&gt;" in popup.group(1)


def test_screenshot(preview_file: Path) -> None:
    exe = _chromium()
    tmp = preview_file.parent
    shot = tmp / "preview.png"
    proc = _run([exe, *FLAGS, f"--user-data-dir={tmp / 'profile-shot'}", "--window-size=1280,900",
                 f"--screenshot={shot}", preview_file.as_uri()], tmp)
    assert proc.returncode == 0 and shot.is_file(), proc.stderr[-2000:]
    img = Image.open(shot).convert("RGB")
    assert img.size == (1280, 900)
    colours = img.resize((64, 64)).getcolors(64 * 64)
    assert colours is not None and len(colours) > 20, "screenshot is blank"


@pytest.mark.slow
def test_demo_preview_renders_its_candidates(demo_run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    """The preview the demo wrote (real models, real graph) renders offline with one marker per candidate."""
    proc, tmp = demo_run
    assert proc.returncode == 0, proc.stdout + proc.stderr
    found = re.search(r"^\s+preview\s+(\S+\.html)\s*$", proc.stdout, re.M)
    assert found, proc.stdout
    page = Path(found.group(1))
    assert page.is_file()
    n_candidates = int(re.search(r"^candidates\s+(\d+)", proc.stdout, re.M).group(1))  # type: ignore[union-attr]
    assert n_candidates >= 1
    exe = _chromium()
    dom_run = _run([exe, *FLAGS, f"--user-data-dir={tmp / 'profile-demo'}", "--dump-dom", page.as_uri()], tmp)
    dom = dom_run.stdout
    assert re.search(r'class="[^"]*leaflet-container', dom), "Leaflet did not initialise the demo map"
    markers = re.findall(r'<div class="leaflet-marker-icon plastics-candidate[^"]*"', dom)
    assert len(markers) == n_candidates
    assert re.search(r'<img[^>]+class="[^"]*leaflet-image-layer', dom), "heatmap overlay missing"
    shot = tmp / "demo-preview.png"
    _run([exe, *FLAGS, f"--user-data-dir={tmp / 'profile-demo-shot'}", "--window-size=1280,900",
          f"--screenshot={shot}", page.as_uri()], tmp)
    assert shot.is_file() and Image.open(shot).size == (1280, 900)
