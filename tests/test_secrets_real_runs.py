"""Secrets in URLs never leave, on real ``plastics run`` processes.

Canary values are planted in the STAC catalog URL (userinfo and query token), in the S3
endpoint URL (``AWS_ENDPOINT_URL`` with an access key and secret as userinfo) and in the model
store URL; each run's stdout, stderr, every file of its store and every file of its
``DAGSTER_HOME`` (the sqlite event log and run storage, read as bytes) are searched for them:

- a catalog that answers its landing page and refuses the search (HTTP 403): the run fails in
  the Dagster step, with one line;
- the real Slovenia L1C granules served by a working local STAC API at a URL with a token: the
  run succeeds;
- an S3 store whose endpoint (with credentials) refuses connections: preflight fails in one line;
- a model store URL with userinfo and a signed query that answers with something else than the
  model: the run fails in one line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

PASSWORD, TOKEN = "PwCanary7f3a91", "TkCanary2be8c4"
AWS_KEY, AWS_SECRET = "AkidCanary55d0e1", "SecretCanary9c4b22"
MODEL_TOKEN = "ModelCanary31aa07"
DB_PASSWORD = "DbCanary5e0c2d"
CANARIES = (PASSWORD, TOKEN, AWS_KEY, AWS_SECRET, MODEL_TOKEN, DB_PASSWORD)


class _Refusing(BaseHTTPRequestHandler):
    """A STAC API landing page; every search is refused with HTTP 403 (not transient: no retry)."""

    paths: list[str] = []

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, status: int, body: dict[str, Any]) -> None:
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def do_GET(self) -> None:  # noqa: N802 - http.server API
        self.paths.append(self.path)
        base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._send(
            200,
            {
                "type": "Catalog",
                "id": "refusing",
                "stac_version": "1.0.0",
                "description": "test",
                "conformsTo": [
                    "https://api.stacspec.org/v1.0.0/core",
                    "https://api.stacspec.org/v1.0.0/item-search",
                ],
                "links": [
                    {"rel": "self", "href": base},
                    {"rel": "root", "href": base},
                    {
                        "rel": "search",
                        "href": f"{base}/search?token={TOKEN}",
                        "method": "POST",
                        "type": "application/geo+json",
                    },
                ],
            },
        )

    def do_POST(self) -> None:  # noqa: N802
        self.paths.append(self.path)
        self._send(403, {"code": "Forbidden", "description": f"token {TOKEN} is not valid for {self.path}"})


@pytest.fixture()
def refusing() -> Iterator[tuple[str, list[str]]]:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Refusing)
    paths: list[str] = []
    _Refusing.paths = paths
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{srv.server_address[1]}", paths
    srv.shutdown()
    srv.server_close()


def _env(tmp: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "PLASTICS_STORE", "PLASTICS_IMAGERY", "DAGSTER_"))
    }
    (tmp / "home").mkdir(exist_ok=True)
    return {
        **env,
        "DAGSTER_HOME": str(tmp / "home"),
        "PLASTICS_STORE": str(tmp / "store"),
        "PLASTICS_STORE_RETRY_SECONDS": "5",
        **extra,
    }


def _plastics(tmp: Path, args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    cli = [sys.executable, "-m", "plastics_dagster.cli", "run", *args]
    return subprocess.run(cli, env=env, cwd=tmp, capture_output=True, text=True, timeout=900, check=False)


def _leaks(tmp: Path, proc: subprocess.CompletedProcess[str]) -> dict[str, list[str]]:
    """Every canary found in the run's stdout/stderr and in every file under ``tmp`` (the store,
    DAGSTER_HOME's sqlite files, logs), as bytes."""
    found: dict[str, list[str]] = {}
    for name, text in (("stdout", proc.stdout), ("stderr", proc.stderr)):
        hits = [c for c in CANARIES if c in text]
        if hits:
            found[name] = hits
    files = [p for p in tmp.rglob("*") if p.is_file()]
    for path in files:
        blob = path.read_bytes()
        hits = [c for c in CANARIES if c.encode() in blob]
        if hits:
            found[str(path.relative_to(tmp))] = hits
    return found


def _home_files(tmp: Path) -> list[Path]:
    return [p for p in (tmp / "home").rglob("*") if p.is_file()]


def test_refused_catalog_search_leaks_no_secret(refusing: tuple[str, list[str]], tmp_path: Path) -> None:
    host, paths = refusing
    url = f"http://user:{PASSWORD}@{host}/?token={TOKEN}"
    proc = _plastics(
        tmp_path,
        ["--roi", "test_patch", "--window", "2021-01-01", "--imagery", f"stac:{url}"],
        _env(tmp_path),
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert any(p.startswith("/search") for p in paths), paths  # the search reached the catalog
    error = proc.stderr.strip().splitlines()[-1]
    assert "403" in error and f"http://***@{host}/?token=***" in error, error  # where, and why: one line
    assert any(p.suffix == ".db" for p in _home_files(tmp_path)), "the run went through Dagster's storage"
    assert _leaks(tmp_path, proc) == {}


def test_model_store_credentials_never_shown(refusing: tuple[str, list[str]], tmp_path: Path) -> None:
    host, paths = refusing
    store = f"http://user:{MODEL_TOKEN}@{host}/models?sig={MODEL_TOKEN}"
    proc = _plastics(
        tmp_path,
        ["--roi", "test_patch", "--window", "2021-01-01", "--imagery", "synthetic"],
        _env(tmp_path, PLASTICS_MODEL_STORE=store, XDG_CACHE_HOME=str(tmp_path / "cache")),
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert paths and host in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert _leaks(tmp_path, proc) == {}


def test_s3_endpoint_credentials_never_shown(tmp_path: Path) -> None:
    endpoint = f"http://{AWS_KEY}:{AWS_SECRET}@127.0.0.1:1"
    proc = _plastics(
        tmp_path,
        [
            "--roi",
            "test_patch",
            "--window",
            "2021-01-01",
            "--imagery",
            "synthetic",
            "--store",
            "s3://bucket/prefix",
        ],
        _env(
            tmp_path, AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID=AWS_KEY, AWS_SECRET_ACCESS_KEY=AWS_SECRET
        ),
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "127.0.0.1:1" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert _leaks(tmp_path, proc) == {}


def test_database_password_never_shown(tmp_path: Path) -> None:
    """An unreachable site database (closed port) is found before any tile: one line, no password."""
    import socket

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"postgresql://plastics:{DB_PASSWORD}@127.0.0.1:{port}/sites?sslmode=disable"
    proc = _plastics(
        tmp_path,
        ["--roi", "test_patch", "--window", "2021-01-01", "--imagery", "synthetic"],
        _env(tmp_path, PLASTICS_DATABASE_URL=url),
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "site database" in lines[0] and f"127.0.0.1:{port}" in lines[0], proc.stderr
    assert not list((tmp_path / "store").glob("descartes_run/**/*.tif"))  # found before any tile
    assert _leaks(tmp_path, proc) == {}


def test_working_catalog_with_a_token_leaks_no_secret(shared_dir: Path, tmp_path: Path) -> None:
    """The real granules through the whole graph from a catalog URL with userinfo and a token."""
    from rasterio.warp import transform_bounds
    from shapely.geometry import box

    from plastics_core.storage.store import store_path
    from plastics_dagster.registry import store_roi
    from tests._granules import slovenia_scenes, write_catalog
    from tests._stac_server import serve

    scenes = [
        replace(s, datetime=s.datetime.replace(year=2021), id=s.id.replace("_2015", "_2021"))
        for s in slovenia_scenes(shared_dir / "data")
    ]
    template = json.loads(
        (shared_dir / "data" / "stac" / "earth_search_v1_sentinel-2-l1c_search_response.json").read_text()
    )["features"][0]
    granules = tmp_path.parent / f"{tmp_path.name}-granules"  # outside the folder searched for canaries
    write_catalog(scenes, granules, template, block=64)
    rows, cols = scenes[0].bands.shape[1:]
    t = scenes[0].transform
    footprint = box(
        *transform_bounds(scenes[0].crs, "EPSG:4326", t.c, t.f + t.e * rows, t.c + t.a * cols, t.f)
    )
    store_roi(store_path(str(tmp_path / "store")), "ljubljana", footprint)
    params = ["tilesize=256", "pad=16", "pairs=1", "mosaic_period=1", "spectrogram_interval=1"]
    with serve(granules) as (base, stats):
        url = base.replace("http://", f"http://user:{PASSWORD}@") + f"/?token={TOKEN}"
        proc = _plastics(
            tmp_path,
            [
                "--roi",
                "ljubljana",
                "--window",
                "2021-07-01",
                "--imagery",
                f"stac:{url}",
                "--json",
                *(a for p in params for a in ("--param", p)),
            ],
            _env(tmp_path),
        )
        served = stats.bytes_served
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout[proc.stdout.index("{") :])
    assert summary["success"] and summary["tiles"] >= 1 and served > 0
    assert _leaks(tmp_path, proc) == {}
