"""A local STAC API and file server on 127.0.0.1 for offline runs of the real-format path.

:func:`serve` starts a ``ThreadingHTTPServer`` in a daemon thread and yields its base URL:

- ``GET /``: a STAC API landing page (core, item-search, ``query`` extension).
- ``POST /search``: the items whose geometry intersects ``intersects``, whose ``datetime``
  lies in the request's interval and that pass ``query`` ``eo:cloud_cover`` ``lte`` / ``lt``;
  one page, no paging.
- ``GET /<path>`` / ``HEAD``: files under ``folder`` with HTTP ``Range`` (``bytes=a-b``,
  ``a-``, ``-n``; answered 206 with ``Content-Range``) as GDAL's ``/vsicurl/`` needs.
  Paths are resolved inside ``folder`` only.

``stats`` counts requests and bytes served (the benchmark reports them as fetch volume).
Test servers of their own (fault injection) build on :func:`landing_page`, :class:`JsonHandler`
and :func:`running`.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from shapely.geometry import shape

_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")


@dataclass
class ServerStats:
    """Requests and bytes served since start (thread-safe enough for counters under the GIL)."""

    searches: int = 0
    file_requests: int = 0
    bytes_served: int = 0
    paths: dict[str, int] = field(default_factory=dict)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    folder: Path
    items: list[dict[str, Any]]
    base: str
    stats: ServerStats


def _parse_time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def matches(item: dict[str, Any], body: dict[str, Any]) -> bool:
    """Whether a STAC item passes a ``/search`` body's ``intersects``, ``datetime`` and
    ``query`` (``eo:cloud_cover`` ``lte`` / ``lt`` only)."""
    if body.get("intersects") and item.get("geometry"):
        if not shape(item["geometry"]).intersects(shape(body["intersects"])):
            return False
    when = _parse_time(item["properties"]["datetime"])
    if body.get("datetime"):
        lo, _, hi = str(body["datetime"]).partition("/")
        if lo not in ("", "..") and when < _parse_time(lo):
            return False
        if hi not in ("", "..") and when > _parse_time(hi):
            return False
    cc = item["properties"].get("eo:cloud_cover")
    rule = (body.get("query") or {}).get("eo:cloud_cover", {})
    if cc is not None and "lte" in rule and not cc <= rule["lte"]:
        return False
    return not (cc is not None and "lt" in rule and not cc < rule["lt"])


def landing_page(base: str, catalog_id: str, description: str) -> dict[str, Any]:
    """A STAC API landing page (core, item-search, ``query`` extension) for a catalog at
    ``base`` whose item search is ``POST {base}/search``."""
    return {
        "type": "Catalog",
        "id": catalog_id,
        "stac_version": "1.0.0",
        "description": description,
        "conformsTo": [
            "https://api.stacspec.org/v1.0.0/core",
            "https://api.stacspec.org/v1.0.0/item-search",
            "https://api.stacspec.org/v1.0.0/item-search#query",
        ],
        "links": [
            {"rel": "self", "href": base},
            {"rel": "root", "href": base},
            {"rel": "search", "href": f"{base}/search", "method": "POST", "type": "application/geo+json"},
        ],
    }


class JsonHandler(BaseHTTPRequestHandler):
    """A request handler that logs nothing (keeps pytest output clean) and answers JSON."""

    def log_message(self, *args: Any) -> None:
        pass

    def send_json(self, status: int, body: dict[str, Any], ctype: str = "application/json") -> None:
        """Answer ``status`` with ``body`` serialised as JSON, served as ``ctype``."""
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)


@contextmanager
def running(srv: ThreadingHTTPServer) -> Iterator[None]:
    """Serve ``srv`` from a daemon thread inside the block; shut it down and close it on exit."""
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        srv.shutdown()
        srv.server_close()


class _Handler(JsonHandler):
    server: _Server

    def do_POST(self) -> None:  # noqa: N802 - http.server API
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        self.server.stats.searches += 1
        feats = [it for it in self.server.items if matches(it, body)]
        self.send_json(
            200,
            {
                "type": "FeatureCollection",
                "features": feats,
                "links": [],
                "numberMatched": len(feats),
                "numberReturned": len(feats),
            },
            "application/geo+json",
        )

    def do_HEAD(self) -> None:  # noqa: N802
        self._file(head=True)

    def do_GET(self) -> None:  # noqa: N802
        if urlparse(self.path).path in ("", "/"):
            self.send_json(200, landing_page(self.server.base, "local", "local granules"))
        else:
            self._file(head=False)

    def _file(self, head: bool) -> None:
        root = self.server.folder
        target = (root / unquote(urlparse(self.path).path).lstrip("/")).resolve()
        if not target.is_file() or not target.is_relative_to(root):
            self.send_error(404)
            return
        size = target.stat().st_size
        start, end, status = 0, size - 1, 200
        match = _RANGE.match(self.headers.get("Range", "").strip())
        if match and size:
            a, b = match.groups()
            start, end = (size - int(b), size - 1) if a == "" else (int(a), min(int(b or size - 1), size - 1))
            start, status = max(0, start), 206
            if start > end:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.end_headers()
                return
        self.send_response(status)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(end - start + 1))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.end_headers()
        if head:
            return
        with open(target, "rb") as fh:
            fh.seek(start)
            data = fh.read(end - start + 1)
        stats = self.server.stats
        stats.file_requests += 1
        stats.bytes_served += len(data)
        stats.paths[target.name] = stats.paths.get(target.name, 0) + 1
        self.wfile.write(data)


def absolute_hrefs(item: dict[str, Any], base: str) -> dict[str, Any]:
    """A copy of ``item`` whose relative asset hrefs are made absolute under ``base``."""
    out = copy.deepcopy(item)
    for asset in out.get("assets", {}).values():
        href = str(asset.get("href", ""))
        if href and "://" not in href and not href.startswith("/"):
            asset["href"] = f"{base.rstrip('/')}/{href}"
    return out


@contextmanager
def serve(
    folder: Path, items: list[dict[str, Any]] | None = None, port: int = 0
) -> Iterator[tuple[str, ServerStats]]:
    """Serve ``folder`` (files, with Range) and ``items`` (default: ``folder/items.json``'s
    features; relative asset hrefs are served from ``folder``) on 127.0.0.1; yields
    ``(base_url, stats)`` and stops the server on exit."""
    root = folder.resolve()
    if items is None:
        items = json.loads((root / "items.json").read_text())["features"]
    srv = _Server(("127.0.0.1", port), _Handler)
    srv.base = f"http://127.0.0.1:{srv.server_address[1]}"
    srv.folder, srv.items, srv.stats = root, [absolute_hrefs(it, srv.base) for it in items], ServerStats()
    with running(srv):
        yield srv.base, srv.stats
