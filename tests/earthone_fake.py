"""A fake EarthOne platform on 127.0.0.1 for offline tests of plastics_core.imagery.earthone.

It speaks the wire formats the real ``earthdaily-earthone`` 6.2.0 client uses (JSON:API
catalog v2, the raster ``/npz`` blosc stream, compute v1 functions/jobs, storage
downloads), so the real client code runs end to end. What it does NOT do: authenticate
(any bearer token is accepted, the header is recorded), execute uploaded code bundles
(a job's result is computed by calling ``FakeEarthOne.runner`` in-process with the job's
args), or implement filters (it returns every registered image; the client filters).
"""

from __future__ import annotations

import json
import re
import threading
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import blosc2
import numpy as np
from affine import Affine
from rasterio.errors import NotGeoreferencedWarning
from rasterio.warp import Resampling, reproject


@dataclass
class FakeImage:
    """One catalog image: ``layers`` maps EarthOne band name -> (rows, cols) uint16 DN;
    ``attributes``: further catalog attributes (e.g. ``solar_azimuth_angle``)."""

    id: str
    acquired: str
    cloud_fraction: float
    geometry: dict[str, Any]
    layers: dict[str, np.ndarray]
    crs: str
    transform: Affine
    extra_properties: dict[str, Any] = field(default_factory=dict)
    attributes: dict[str, Any] = field(default_factory=dict)


class FakeEarthOne(ThreadingHTTPServer):
    def __init__(self, product_id: str, band_names: list[str]) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.base = f"http://127.0.0.1:{self.server_address[1]}"
        self.product_id, self.band_names = product_id, band_names
        self.images: list[FakeImage] = []
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        self.fail_next: dict[str, int] = {}  # path prefix -> number of 503s to answer first
        self.runner: Callable[..., Any] = lambda *a, **k: None
        self.functions: dict[str, dict[str, Any]] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self.results: dict[str, bytes] = {}
        self.bundles: dict[str, bytes] = {}
        self.credentials_posted: list[dict[str, Any]] = []
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    def __enter__(self) -> FakeEarthOne:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.shutdown()
        self.server_close()


def _jsonapi(kind: str, id_: str, attrs: dict[str, Any]) -> dict[str, Any]:
    return {"type": kind, "id": id_, "attributes": attrs}


def _blosc(arr: np.ndarray) -> bytes:
    return bytes(blosc2.compress(np.ascontiguousarray(arr).tobytes(), typesize=arr.dtype.itemsize))


class _Handler(BaseHTTPRequestHandler):
    server: FakeEarthOne
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def _reply(self, status: int, body: Any, ctype: str = "application/json") -> None:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def _handle(self) -> None:
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        srv = self.server
        srv.requests.append((self.command, self.path, dict(self.headers), body))
        for prefix, left in srv.fail_next.items():
            if self.path.startswith(prefix) and left > 0:
                srv.fail_next[prefix] = left - 1
                self._reply(
                    503, {"errors": [{"status": "503", "title": "Service Unavailable", "detail": "fault"}]}
                )
                return
        data = json.loads(body) if body and self.headers.get("Content-Type", "").find("json") >= 0 else None
        path = self.path.split("?")[0]
        for pattern, method, fn in _ROUTES:
            m = re.fullmatch(pattern, path)
            if m and method == self.command:
                fn(self, data, body, *m.groups())
                return
        self._reply(404, {"errors": [{"status": "404", "title": "Not found", "detail": self.path}]})

    do_GET = do_PUT = do_POST = do_PATCH = do_DELETE = _handle

    # -- catalog ---------------------------------------------------------------------------
    def product(self, data: Any, body: bytes, pid: str) -> None:
        from urllib.parse import unquote

        pid = unquote(pid)
        if pid != self.server.product_id:
            self._reply(404, {"errors": [{"status": "404", "title": "Object not found", "detail": pid}]})
            return
        self._reply(
            200,
            {
                "data": _jsonapi("product", pid, {"name": "Sentinel-2 L1C", "owners": [], "readers": []}),
                "jsonapi": {"version": "1.0"},
            },
        )

    def images(self, data: Any, body: bytes) -> None:
        docs = [
            _jsonapi(
                "image",
                im.id,
                {
                    "product_id": self.server.product_id,
                    "acquired": im.acquired,
                    "cloud_fraction": im.cloud_fraction,
                    "geometry": im.geometry,
                    "extra_properties": im.extra_properties,
                    "provider_id": im.id,
                    **im.attributes,
                },
            )
            for im in self.server.images
        ]
        self._reply(
            200, {"data": docs, "meta": {"count": len(docs)}, "links": {}, "jsonapi": {"version": "1.0"}}
        )

    def bands(self, data: Any, body: bytes) -> None:
        pid = self.server.product_id
        docs = [
            _jsonapi(
                "band",
                f"{pid}:{name}",
                {
                    "name": name,
                    "product_id": pid,
                    "type": "spectral",
                    "data_type": "UInt16",
                    "nodata": 0,
                    "data_range": [0, 10000],
                    "display_range": [0, 4000],
                    "band_index": 0,
                    "resolution": {"value": 10, "unit": "meters"},
                },
            )
            for name in self.server.band_names
        ]
        self._reply(
            200, {"data": docs, "meta": {"count": len(docs)}, "links": {}, "jsonapi": {"version": "1.0"}}
        )

    def storage_download(self, data: Any, body: bytes, blob_id: str) -> None:
        from urllib.parse import unquote

        blob_id = unquote(blob_id)
        if blob_id not in self.server.results:
            self._reply(404, {"errors": [{"status": "404", "title": "Object not found", "detail": blob_id}]})
            return
        url = f"{self.server.base}/blobs/{uuid.uuid5(uuid.NAMESPACE_URL, blob_id)}"
        self.server.results[url] = self.server.results[blob_id]
        self._reply(200, {"data": _jsonapi("storage_download", blob_id, {"resumable_url": url})})

    def blob(self, data: Any, body: bytes, key: str) -> None:
        self._reply(200, self.server.results[f"{self.server.base}/blobs/{key}"], "application/octet-stream")

    # -- raster ----------------------------------------------------------------------------
    def npz(self, data: Any, body: bytes) -> None:
        left, bottom, right, top = data["outputBounds"]
        res = float(data["resolution"])
        width, height = round((right - left) / res), round((top - bottom) / res)
        dst_transform = Affine(res, 0, left, 0, -res, top)
        images = {im.id: im for im in self.server.images}
        out = np.zeros((len(data["bands"]), height, width), np.uint16)
        for image_id in data["ids"]:
            im = images[image_id]
            for b, name in enumerate(data["bands"]):
                layer = np.zeros((height, width), np.uint16)
                with warnings.catch_warnings():  # numpy arrays carry no georeferencing of their own
                    warnings.simplefilter("ignore", NotGeoreferencedWarning)
                    reproject(
                        im.layers[name],
                        layer,
                        src_transform=im.transform,
                        src_crs=im.crs,
                        src_nodata=0,
                        dst_transform=dst_transform,
                        dst_crs=data["srs"],
                        dst_nodata=0,
                        resampling=Resampling.nearest,
                    )
                out[b] = np.where(out[b] == 0, layer, out[b])
        mask = out == 0
        meta = {"geoTransform": list(dst_transform.to_gdal()), "wkt": data["srs"]}
        stream = [
            json.dumps(meta).encode() + b"\n",
            json.dumps({"shape": list(out.shape), "dtype": "uint16", "chunks": 1}).encode() + b"\n",
            json.dumps({"offset": [0, 0, 0], "shape": list(out.shape)}).encode() + b"\n",
            _blosc(out),
            _blosc(mask),
        ]
        self._reply(200, b"".join(stream), "application/octet-stream")

    # -- compute ---------------------------------------------------------------------------
    def credentials(self, data: Any, body: bytes) -> None:
        if data is not None:
            self.server.credentials_posted.append(data)
        self._reply(200, {})

    def create_function(self, data: Any, body: bytes) -> None:
        fid = uuid.uuid4().hex[:12]
        fn = dict(
            data,
            id=fid,
            status="awaiting_bundle",
            namespace="fake-namespace",
            creation_date="2026-01-01T00:00:00Z",
        )
        self.server.functions[fid] = fn
        self._reply(201, {"function": fn, "bundle_upload_url": f"{self.server.base}/upload/{fid}"})

    def upload(self, data: Any, body: bytes, fid: str) -> None:
        self.server.bundles[fid] = body
        self._reply(200, b"", "application/octet-stream")

    def bundle_done(self, data: Any, body: bytes, fid: str) -> None:
        fn = self.server.functions[fid]
        fn["status"] = "ready"
        self._reply(200, fn)

    def get_function(self, data: Any, body: bytes, fid: str) -> None:
        fn = dict(self.server.functions[fid])
        jobs = [j for j in self.server.jobs.values() if j["function_id"] == fid]
        fn["job_statistics"] = {
            s: sum(j["status"] == s for j in jobs)
            for s in ("pending", "running", "cancel", "canceling", "success", "failure", "timeout")
        }
        self._reply(200, fn)

    def bulk_jobs(self, data: Any, body: bytes) -> None:
        created = []
        for args, kwargs in zip(
            data["bulk_args"], data.get("bulk_kwargs") or [{}] * len(data["bulk_args"]), strict=True
        ):
            jid = uuid.uuid4().hex[:12]
            job = {
                "id": jid,
                "function_id": data["function_id"],
                "args": args,
                "kwargs": kwargs or {},
                "status": "pending",
                "creation_date": "2026-01-01T00:00:00Z",
                "tags": data.get("tags", []),
            }
            try:  # "execute" the job: the real service runs the uploaded bundle on a worker
                result = self.server.runner(*args, **(kwargs or {}))
                blob_id = f"compute/fake-namespace/{data['function_id']}/{jid}"
                self.server.results[blob_id] = json.dumps(result).encode()
                job["status"] = "success"
            except Exception as err:  # noqa: BLE001
                job["status"], job["error_reason"] = "failure", str(err)
            self.server.jobs[jid] = job
            created.append(dict(job, status="pending"))
        self._reply(200, created)

    def get_job(self, data: Any, body: bytes, jid: str) -> None:
        self._reply(200, self.server.jobs[jid])


_ROUTES: list[tuple[str, str, Callable[..., None]]] = [
    (r"/catalog/v2/products/([^/]+)", "GET", _Handler.product),
    (r"/catalog/v2/images", "PUT", _Handler.images),
    (r"/catalog/v2/bands", "PUT", _Handler.bands),
    (r"/catalog/v2/storage/download/(.+)", "GET", _Handler.storage_download),
    (r"/blobs/([^/]+)", "GET", _Handler.blob),
    (r"/raster/v2/npz", "POST", _Handler.npz),
    (r"/compute/v1/credentials", "GET", _Handler.credentials),
    (r"/compute/v1/credentials", "POST", _Handler.credentials),
    (r"/compute/v1/functions", "POST", _Handler.create_function),
    (r"/upload/([^/]+)", "PUT", _Handler.upload),
    (r"/compute/v1/functions/([^/]+)/bundle", "POST", _Handler.bundle_done),
    (r"/compute/v1/functions/([^/]+)", "GET", _Handler.get_function),
    (r"/compute/v1/jobs/bulk", "POST", _Handler.bulk_jobs),
    (r"/compute/v1/jobs/([^/]+)", "GET", _Handler.get_job),
]
