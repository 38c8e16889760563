"""The UI path: `dagster-webserver -w workspace.yaml` (what `dagster dev` / `make ui` serve) loads the
code location and answers GraphQL with the whole asset graph, its partitions and the sensors."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
ASSETS = {
    "descartes_run",
    "heatmaps",
    "patch_geojson",
    "blobs",
    "candidates",
    "contours",
    "enriched_sites",
    "preview",
    "site_registry",
}
QUERY = """{ assetNodes { assetKey { path } isPartitioned groupName }
  repositoriesOrError { ... on RepositoryConnection { nodes { name sensors { name } } } } }"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _post(url: str, query: str) -> dict[str, Any]:
    req = urllib.request.Request(
        url, json.dumps({"query": query}).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        out: dict[str, Any] = json.loads(resp.read())
    return out


@pytest.fixture(scope="module")
def webserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    home = tmp_path_factory.mktemp("ui_home")
    port = _free_port()
    exe = Path(sys.executable).with_name("dagster-webserver")
    env = {**os.environ, "DAGSTER_HOME": str(home), "PLASTICS_STORE": str(home / "store")}
    proc = subprocess.Popen(
        [str(exe), "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 180
        while time.time() < deadline:
            if proc.poll() is not None:
                pytest.fail(
                    f"dagster-webserver exited {proc.returncode}: {proc.stderr.read()[-2000:] if proc.stderr else ''}"
                )
            try:
                data = _post(f"{url}/graphql", QUERY)
                if data.get("data", {}).get("assetNodes"):
                    break
            except OSError:
                pass
            time.sleep(1)
        else:
            pytest.fail("dagster-webserver did not serve the asset graph within 180 s")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.mark.slow
def test_ui_serves_the_graph_partitions_and_sensors(webserver: str) -> None:
    data = _post(f"{webserver}/graphql", QUERY)["data"]
    nodes = {"/".join(n["assetKey"]["path"]): n for n in data["assetNodes"]}
    assert ASSETS <= set(nodes), sorted(nodes)
    assert all(nodes[k]["isPartitioned"] for k in ASSETS)
    assert {nodes[k]["groupName"] for k in ("descartes_run", "heatmaps")} == {"detection"}
    sensors = {s["name"] for repo in data["repositoriesOrError"]["nodes"] for s in repo["sensors"]}
    assert {"roi_sensor", "imagery_sensor"} <= sensors
