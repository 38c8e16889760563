"""A store written by a hostile party never runs code when the preview is built or opened.

Template expressions (Jinja ``{{ }}`` / ``{% %}``, one that would run a shell command creating a
canary file), a ``</script>`` break-out and markup go into every text property of every layer
(blobs, candidates, contours, enriched sites), the site names, the geocoder's address and the
page title. The preview is built (by the library, and by the real graph over a copy of the
session's store), then opened in headless Chromium. Nothing may be evaluated: the canary file never
appears, ``7*7`` never becomes ``49``, no script but the project's runs, and every payload shows
literally as text.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import geopandas as gpd
import pytest

from plastics_core.report.leaflet_offline import external_resources, inline_script_hashes, load_leaflet
from plastics_core.report.preview import build_preview_html
from plastics_core.report.preview_page import page_policy
from tests import _preview_data as d
from tests._graph_run import GRAPH_RUN_PARAMS, GRAPH_RUN_WINDOW, GraphRun
from tests.test_browser import FLAGS, _chromium, _inject, _run

#: What an evaluated template payload would turn into; neither may appear anywhere. (A payload that
#: ran as script would set a ``pwned-*`` attribute on ``<html>``.)
EVALUATED = ("P49Q", "L0L1L2")


def payloads(canary: Path) -> tuple[str, ...]:
    """Hostile strings; ``canary`` is the file the shell-command payload would create."""
    return (
        "P{{ 7*7 }}Q",
        "{{ self.__init__.__globals__.__builtins__.__import__('os').system('touch " + str(canary) + "') }}",
        "{% for x in range(3) %}L{{ x }}{% endfor %}",
        "</script><script>document.documentElement.setAttribute('pwned-script','1')</script>",
        "{{ '<img src=x onerror=document.documentElement.setAttribute(\"pwned-img\",1)>' }}",
        "${7*7}`+document.documentElement.setAttribute('pwned-tick','1')+`",
    )


def poison(gdf: gpd.GeoDataFrame, texts: tuple[str, ...], keep: tuple[str, ...] = ()) -> gpd.GeoDataFrame:
    """``gdf`` with every non-numeric column (but ``keep``) and one extra column (whose NAME is a
    payload too) filled with payloads, row ``i`` getting payload ``i + j`` of column ``j``."""
    out = gdf.copy()
    cols = [
        c for c in out.columns if c != out.geometry.name and c not in keep and out[c].dtype.kind not in "fiub"
    ]
    for j, col in enumerate([*cols, "P{{ 7*7 }}Q column"]):
        out[col] = [f"{texts[(i + j) % len(texts)]} #{col}{i}" for i in range(len(out))]
    return out


#: Opens every tooltip and every popup and keeps copies of them.
OPEN_ALL = """<script>window.addEventListener("load", function () { setTimeout(function () {
  var box = document.createElement("div"); box.id = "probe-shown"; document.body.appendChild(box);
  window.plasticsMap.eachLayer(function (l) {
    var t = l.getTooltip && l.getTooltip();
    if (t) { l.openTooltip(); if (t.getElement()) { box.appendChild(t.getElement().cloneNode(true)); } }
    var p = l.getPopup && l.getPopup();
    if (p) { l.openPopup(); if (p.getElement()) { box.appendChild(p.getElement().cloneNode(true)); } }
  });
}, 500); });</script>"""


def shown(text: str) -> str:
    """How a DOM text node holding ``text`` serializes."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\u00a0", "&nbsp;")


def check_page(page: str, must_show: list[str], canary: Path, tmp: Path) -> str:
    """Assert ``page`` is inert, statically and in Chromium, and shows each of ``must_show`` as
    literal text; returns the rendered DOM."""
    assert not canary.exists(), "a template expression ran a shell command"
    for bad in EVALUATED:
        assert bad not in page, bad
    assert external_resources(page) == []
    island = re.search(r'<script type="application/json" id="plastics-data">(.*?)</script>', page, re.S)
    assert island and "<" not in island.group(1) and ">" not in island.group(1)
    outside = page.replace(island.group(0), "")
    assert "{{" not in outside and "{%" not in outside, "a payload reached the page outside the data island"
    policy = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]+)">', page)
    assert policy and policy.group(1) == page_policy(load_leaflet()), "the CSP depends on the data"
    allowed = set(policy.group(1).split("script-src ")[1].split(";")[0].split())
    assert set(inline_script_hashes(page)) == allowed and len(allowed) == 3  # Leaflet, map, table
    tmp.mkdir(parents=True, exist_ok=True)
    path = tmp / "hostile.html"
    path.write_text(_inject(page, OPEN_ALL), encoding="utf-8")
    proc = _run([_chromium(), *FLAGS, f"--user-data-dir={tmp / 'profile'}", "--dump-dom", path.as_uri()], tmp)
    dom = proc.stdout
    assert re.search(r'class="[^"]*leaflet-container', dom), proc.stderr[-2000:]
    root = re.search(r"<html[^>]*>", dom)
    assert root and "pwned" not in root.group(0), root.group(0) if root else dom[:300]
    for bad in EVALUATED:
        assert bad not in dom, bad
    assert not re.search(r"<img[^>]*\bsrc=\"?x\b", dom), "markup from the data became an element"
    for text in must_show:  # payloads show literally, as text
        assert shown(text) in dom, text
    assert not canary.exists()
    return dom


@pytest.mark.browser
def test_template_payloads_in_every_layer_and_the_title_stay_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    canary = tmp_path / "CANARY"
    texts = payloads(canary)
    sites = poison(d.enriched(), texts)
    page = build_preview_html(
        d.roi(),
        d.heatmap(),
        poison(d.blobs(), texts),
        poison(d.candidates(), texts),
        poison(d.contours(), texts),
        sites,
        f"{texts[0]} {texts[1]} {texts[3]}",
    )
    dom = check_page(page, [texts[0], texts[3]], canary, tmp_path)
    shown_box = dom[dom.index('<div id="probe-shown">') :]
    table = dom[dom.index('id="plastics-sites"') :]
    for col in ("site_id", "name", "address"):  # the table shows every site's text columns literally
        for i, value in enumerate(sites[col]):
            assert shown(value) in table, (col, i)
    for name in sites["name"]:
        assert shown(f"name: {name}") in shown_box  # candidate popups
    title = re.search(r"<title>(.*?)</title>", dom, re.S)
    assert title and html.unescape(title.group(1)) == f"{texts[0]} {texts[1]} {texts[3]}"


def _materialize(store: Path, selection: list[str]) -> Any:
    from dagster import AssetKey, DagsterInstance, materialize

    from plastics_dagster.checks import ALL_CHECKS
    from plastics_dagster.config import DetectionParams
    from plastics_dagster.definitions import ALL_ASSETS, default_resources
    from plastics_dagster.partitions import partition_key
    from plastics_dagster.resources import ImagerySourceResource, StoreResource

    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("roi", ["test_patch"])
    res = default_resources(
        params=DetectionParams(**GRAPH_RUN_PARAMS),
        imagery=ImagerySourceResource(),
        store=StoreResource(location=str(store)),
    )
    return materialize(
        [*ALL_ASSETS, *ALL_CHECKS],
        selection=[AssetKey(k) for k in selection],
        instance=instance,
        resources=res,
        partition_key=partition_key("test_patch", GRAPH_RUN_WINDOW),
        run_config={"ops": {"preview": {"config": {"report_top_n": 2, "report_rgb": False}}}},
    )


def _rewrite(path: Path, gdf: gpd.GeoDataFrame) -> None:
    from plastics_core.storage.outputs import geojson_bytes

    path.write_bytes(geojson_bytes(gdf))


@pytest.mark.browser
@pytest.mark.slow  # re-materializes contours, enriched_sites and preview twice, then opens Chromium
def test_hostile_store_through_the_real_graph(
    graph_run: GraphRun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from plastics_core.storage.folders import read_gdf

    assert graph_run.summary.success
    store = tmp_path / "store"
    shutil.copytree(graph_run.store, store)
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    canary = tmp_path / "CANARY"
    texts = payloads(canary)

    def file(asset: str) -> Path:
        (found,) = (store / asset / "test_patch" / GRAPH_RUN_WINDOW).glob("*.geojson")
        return found

    # 1. what the red team did: hostile candidate names reach contours and enriched sites, and the
    #    geocoder answers with payloads in every address field
    candidates = read_gdf(file("candidates").read_bytes())
    assert len(candidates) >= 1
    _rewrite(
        file("candidates"),
        poison(candidates, texts, keep=("name",)).assign(
            name=[texts[i % len(texts)] for i in range(len(candidates))]
        ),
    )
    answers = {
        f"{round(p.y, 5):.5f},{round(p.x, 5):.5f}": {
            "display_name": texts[(i + 1) % len(texts)],
            "road": texts[2],
            "city": texts[0],
            "country": texts[3],
        }
        for i, p in enumerate(candidates.geometry.to_crs(4326))
    }
    fixture = tmp_path / "geocoder.json"
    fixture.write_text(json.dumps(answers), encoding="utf-8")
    monkeypatch.setenv("PLASTICS_GEOCODER", "fixture")
    monkeypatch.setenv("PLASTICS_GEOCODER_FIXTURE", str(fixture))
    assert _materialize(store, ["contours", "enriched_sites", "preview"]).success
    assert not canary.exists() and not (work / "CANARY").exists()
    enriched = read_gdf(file("enriched_sites").read_bytes())
    assert set(enriched["display_name"]) <= set(texts) and set(enriched["name"]) <= set(texts)
    (page_path,) = (store / "preview" / "test_patch" / GRAPH_RUN_WINDOW).glob("*.html")
    must_show = [*enriched["name"], *enriched["display_name"]]
    check_page(page_path.read_text(encoding="utf-8"), must_show, canary, tmp_path / "one")

    # 2. every text property of every layer in the store is a payload; only the preview is rebuilt
    for asset in ("blobs", "candidates", "contours", "enriched_sites"):
        _rewrite(file(asset), poison(read_gdf(file(asset).read_bytes()), texts))
    sites = read_gdf(file("enriched_sites").read_bytes())
    sites["name"] = [
        f"{texts[1]} #n{i}" for i in range(len(sites))
    ]  # the shell-command payload: shown, not run
    _rewrite(file("enriched_sites"), sites)
    assert _materialize(store, ["preview"]).success
    must_show = [*sites["site_id"], *sites["name"], *sites["display_name"]]
    check_page(page_path.read_text(encoding="utf-8"), must_show, canary, tmp_path / "two")
    assert not canary.exists() and not (work / "CANARY").exists()
    assert (
        subprocess.run(
            ["find", str(tmp_path), "-name", "CANARY"], capture_output=True, text=True, check=True
        ).stdout
        == ""
    )


def test_the_report_package_uses_no_template_engine() -> None:
    """The preview is assembled by string concatenation of project text and one JSON island: no
    module of plastics_core/report imports a template engine (folium/branca render with Jinja)."""
    import ast

    engines = {"jinja2", "folium", "branca", "mako", "string.Template"}
    folder = Path(__file__).resolve().parents[1] / "plastics_core" / "report"
    for path in sorted(folder.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        names |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        assert not {m.split(".")[0] for m in names} & engines, path.name


def test_policy_is_fixed_before_data_and_hostile_data_cannot_change_it(tmp_path: Path) -> None:
    """The same CSP for a clean page and a page whose data tries to add a script; the policy's
    hashes are exactly the project's scripts, and the injected text is not among them."""
    texts = payloads(tmp_path / "CANARY")
    clean = build_preview_html(
        d.roi(), d.heatmap(), d.blobs(), d.candidates(), d.contours(), d.enriched(), "t"
    )
    hostile = build_preview_html(
        d.roi(), None, poison(d.blobs(), texts), None, None, poison(d.enriched(), texts), texts[3]
    )
    policies = [re.search(r'content="(default-src[^"]+)"', p).group(1) for p in (clean, hostile)]  # type: ignore[union-attr]
    assert policies[0] == policies[1] == page_policy(load_leaflet())
    assert inline_script_hashes(hostile) == inline_script_hashes(clean)


def test_roi_names_cannot_carry_a_payload_and_reach_the_title_as_text(tmp_path: Path) -> None:
    """An ROI name is refused unless it is a slug, so no template or markup reaches a partition key;
    the title built from it (``<roi> · window <w> · run <hash>``) is shown as text in any case."""
    from plastics_core.geo.roi import RoiError, validate_roi_name

    for name in payloads(tmp_path / "CANARY"):
        with pytest.raises(RoiError, match="is not allowed"):
            validate_roi_name(name)
    page = build_preview_html(d.roi(), None, None, None, None, None, "P{{ 7*7 }}Q · window 2021-01-01")
    assert "P49Q" not in page and "P{{ 7*7 }}Q" in page.split('id="plastics-data">')[1]
