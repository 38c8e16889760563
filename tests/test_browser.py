"""Open a preview in headless Debian Chromium from file:// (no network) and check it rendered.

Needs ``/usr/bin/chromium`` (``apt-get install -y chromium``; .ci/run installs it). Skipped when it
is missing outside CI; a failure in CI (CI=true).
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from plastics_core.report.preview import build_preview_html
from tests import _preview_data as d

pytestmark = pytest.mark.browser

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--virtual-time-budget=5000",
]


def _chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("chromium not found: .ci/run must `apt-get install -y chromium`")
        pytest.skip("chromium not installed (apt-get install -y chromium)")
    return exe


def _inject(page: str, script: str) -> str:
    """``page`` with the test's ``<script>`` added before ``</body>`` and its hash allowed by the
    page's Content-Security-Policy (which allows only the page's own scripts)."""
    body = re.fullmatch(r"<script>(.*)</script>", script.strip(), re.S)
    assert body, script
    digest = base64.b64encode(hashlib.sha256(body.group(1).encode()).digest()).decode()
    page = page.replace("script-src ", f"script-src 'sha256-{digest}' ", 1)
    return page.replace("</body>", script.strip() + "</body>", 1)


def _run(args: list[str], tmp: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HOME": str(tmp)}  # chromium profile/crash dirs stay in the test folder
    return subprocess.run(args, capture_output=True, text=True, timeout=120, env=env, cwd=tmp, check=False)


@pytest.fixture(scope="module")
def preview_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("browser")
    page = build_preview_html(
        d.roi(), d.heatmap(), d.blobs(), d.candidates(), d.contours(), d.enriched(), "browser test"
    )
    path = folder / "preview.html"
    path.write_text(page, encoding="utf-8")
    return path


def test_map_and_candidate_markers_render(preview_file: Path) -> None:
    exe = _chromium()
    tmp = preview_file.parent
    proc = _run(
        [exe, *FLAGS, f"--user-data-dir={tmp / 'profile-dom'}", "--dump-dom", preview_file.as_uri()], tmp
    )
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
    probe.write_text(_inject(preview_file.read_text(encoding="utf-8"), PROBE), encoding="utf-8")
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
    page.write_text(_inject(preview_file.read_text(encoding="utf-8"), click), encoding="utf-8")
    proc = _run([exe, *FLAGS, f"--user-data-dir={tmp / 'profile-click'}", "--dump-dom", page.as_uri()], tmp)
    popup = re.search(r'<div class="leaflet-popup-content"[^>]*>(.*?)</div></div>', proc.stdout, re.S)
    assert popup, "clicking a candidate opened no popup"
    assert "s-aaa" in popup.group(1) and "pixel score: 0.910" in popup.group(1)
    assert "Jakarta &lt;Utara&gt;" in popup.group(1)


def test_screenshot(preview_file: Path) -> None:
    exe = _chromium()
    tmp = preview_file.parent
    shot = tmp / "preview.png"
    proc = _run(
        [
            exe,
            *FLAGS,
            f"--user-data-dir={tmp / 'profile-shot'}",
            "--window-size=1280,900",
            f"--screenshot={shot}",
            preview_file.as_uri(),
        ],
        tmp,
    )
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
    _run(
        [
            exe,
            *FLAGS,
            f"--user-data-dir={tmp / 'profile-demo-shot'}",
            "--window-size=1280,900",
            f"--screenshot={shot}",
            page.as_uri(),
        ],
        tmp,
    )
    assert shot.is_file() and Image.open(shot).size == (1280, 900)


#: Strings an attacker can plant in OpenStreetMap names, GeoJSON properties or STAC fields. Each
#: would set an attribute on <html> (or add an <img>) if it ever ran as script or parsed as markup.
HOSTILE = (
    "${document.documentElement.setAttribute(/pwned/.source,document.domain+/XSS-EXECUTED/.source)}",
    "`+document.documentElement.setAttribute('pwned-backtick','1')+`",
    "</script><script>document.documentElement.setAttribute('pwned-script','1')</script>",
    "\"><img src=x onerror=\"document.documentElement.setAttribute('pwned-img','1')\">",
    "javascript:document.documentElement.setAttribute('pwned-url','1')",
    "'-alert(1)-'\u2028\u2029\\",
)


def _hostile_page() -> str:
    import geopandas as gpd

    def hostile(i: int) -> str:
        return f"{HOSTILE[i % len(HOSTILE)]} #{i}"

    blobs = d.blobs()
    blobs["name"] = [hostile(0), hostile(1)]
    cands = d.candidates()
    cands["name"] = [hostile(2), hostile(3)]
    sites = d.enriched(ids=(hostile(4), hostile(5)))
    sites["name"] = [hostile(6), hostile(7)]
    sites["address"] = [hostile(8), hostile(9)]  # the geocoder's display_name
    contours = d.contours()
    contours["name"] = [hostile(10 + i) for i in range(len(contours))]
    contours["date"] = [hostile(0) if i % 2 else str(v) for i, v in enumerate(contours["date"])]
    contours["source"] = hostile(3)  # a catalog-ish field carried along as a property
    assert isinstance(contours, gpd.GeoDataFrame)
    return build_preview_html(d.roi(), d.heatmap(), blobs, cands, contours, sites, hostile(11))


OPEN_ALL = """<script>window.addEventListener("load", function () { setTimeout(function () {
  var m = window[document.getElementById("plastics-sites-table").getAttribute("data-map")];
  var box = document.createElement("div"); box.id = "probe-tooltips"; document.body.appendChild(box);
  m.eachLayer(function (l) {  // open every tooltip and keep a copy of what it shows
    var t = l.getTooltip && l.getTooltip();
    if (t) { l.openTooltip(); if (t.getElement()) { box.appendChild(t.getElement().cloneNode(true)); } }
  });
  document.querySelector(".plastics-candidate").click();
}, 500); });</script>"""

VIOLATIONS = """<script>window.plasticsViolations = [];
document.addEventListener("securitypolicyviolation", function (e) {
  window.plasticsViolations.push(e.violatedDirective + " " + e.blockedURI); });
window.addEventListener("load", function () { setTimeout(function () {
  var pre = document.createElement("pre"); pre.id = "probe-csp";
  pre.textContent = JSON.stringify(window.plasticsViolations); document.body.appendChild(pre);
}, 1500); });</script>"""


def test_hostile_strings_stay_inert_text(tmp_path: Path) -> None:
    """Hostile names, addresses and properties run nothing and show literally in popups, tooltips,
    layer names and the table; the page's Content-Security-Policy blocks nothing the map needs."""
    exe = _chromium()
    page = _hostile_page()
    csp = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]+)">', page)
    assert csp and page.index(csp.group(0)) < page.index("<script")
    policy = csp.group(1)
    assert "default-src 'none'" in policy and "unsafe-eval" not in policy
    assert "'unsafe-inline'" not in policy.split("script-src")[1].split(";")[0]
    assert "img-src data:" in policy
    listener = VIOLATIONS.strip()
    body = re.fullmatch(r"<script>(.*)</script>", listener, re.S).group(1)  # type: ignore[union-attr]
    digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
    page = page.replace(csp.group(0), csp.group(0) + listener, 1).replace(
        "script-src ", f"script-src 'sha256-{digest}' ", 1
    )
    path = tmp_path / "hostile.html"
    path.write_text(_inject(page, OPEN_ALL), encoding="utf-8")
    proc = _run(
        [exe, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", path.as_uri()], tmp_path
    )
    dom = proc.stdout
    assert re.search(r'class="[^"]*leaflet-container', dom), proc.stderr[-2000:]
    root = re.search(r"<html[^>]*>", dom)
    assert root and "pwned" not in root.group(0), root.group(0) if root else dom[:500]
    assert not re.search(r"<[a-z]+\s[^>]*\bonerror=", dom), "an element with an onerror handler was created"
    assert not re.search(r"<script>document", dom), "a script element was created"
    assert len(re.findall(r'<div class="leaflet-marker-icon plastics-candidate[^"]*"', dom)) == 2
    violations = re.search(r'<pre id="probe-csp">(.*?)</pre>', dom, re.S)
    assert violations and json.loads(html.unescape(violations.group(1))) == [], violations
    popup = re.search(r'<div class="leaflet-popup-content"[^>]*>(.*?)</div></div>', dom, re.S)
    assert popup, "clicking a candidate opened no popup"
    tooltips = dom[dom.index('<div id="probe-tooltips">') :]

    def shown(text: str) -> str:  # how a DOM text node holding ``text`` serializes
        return (
            text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\u00a0", "&nbsp;")
        )

    assert shown(HOSTILE[4 % len(HOSTILE)]) in popup.group(1) or shown(
        HOSTILE[5 % len(HOSTILE)]
    ) in popup.group(1)
    assert any(shown(f"{HOSTILE[i % len(HOSTILE)]} #{i}") in popup.group(1) for i in (8, 9))  # address
    assert shown(f"{HOSTILE[0]} #0") in tooltips and shown(f"{HOSTILE[1]} #1") in tooltips  # blob names
    assert shown(f"{HOSTILE[14 % len(HOSTILE)]} #14") in tooltips  # contour property (the shown date)
    table = dom[dom.index('id="plastics-sites"') :]
    for i in (4, 5, 6, 7, 8, 9):
        assert shown(f"{HOSTILE[i % len(HOSTILE)]} #{i}") in table


LAYOUT = """<script>window.addEventListener("load", function () { setTimeout(function () {
  function box(sel) { var r = document.querySelector(sel).getBoundingClientRect();
    return {left: r.left, right: r.right, top: r.top, bottom: r.bottom}; }
  var pre = document.createElement("pre"); pre.id = "probe-layout";
  pre.textContent = JSON.stringify({legend: box(".plastics-legend"), layers: box(".leaflet-control-layers"),
    map: box("#plastics-map"), rows: document.querySelectorAll(".leaflet-control-layers-overlays label").length});
  document.body.appendChild(pre);
}, 800); });</script>"""


def test_legend_stays_visible_beside_a_long_list_of_contour_dates(tmp_path: Path) -> None:
    """21 contour dates make a long layer list; it scrolls inside its box instead of covering the
    colour legend, which stays inside the map."""
    exe = _chromium()
    dates = tuple(f"{2019 + m // 12}-{m % 12 + 1:02d}-01" for m in range(0, 63, 3))
    assert len(dates) == 21
    page = build_preview_html(
        d.roi(), d.heatmap(), d.blobs(), d.candidates(), d.contours(dates), d.enriched(), "many dates"
    )
    path = tmp_path / "dates.html"
    path.write_text(_inject(page, LAYOUT), encoding="utf-8")
    proc = _run(
        [
            exe,
            *FLAGS,
            f"--user-data-dir={tmp_path / 'profile'}",
            "--window-size=1280,800",
            "--dump-dom",
            path.as_uri(),
        ],
        tmp_path,
    )
    found = re.search(r'<pre id="probe-layout">(.*?)</pre>', proc.stdout, re.S)
    assert found, proc.stderr[-2000:]
    layout = json.loads(html.unescape(found.group(1)))
    assert layout["rows"] >= 21 + 5  # every date is listed (plus basemaps, ROI, heatmap, blobs, sites)
    legend, layers, frame = layout["legend"], layout["layers"], layout["map"]
    overlap = min(legend["right"], layers["right"]) > max(legend["left"], layers["left"]) and min(
        legend["bottom"], layers["bottom"]
    ) > max(legend["top"], layers["top"])
    assert not overlap, layout
    assert frame["top"] <= legend["top"] and legend["bottom"] <= frame["bottom"], layout
