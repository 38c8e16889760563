"""The output store, without Dagster: paths, atomic writes and the per-tile file layout.

A store is a local folder or ``s3://bucket/prefix`` (S3 endpoint from ``$AWS_ENDPOINT_URL``,
credentials from the environment only). Writes are atomic: local files go to a temp file in the
same folder and are moved into place with ``os.replace``; S3 objects are written with one PUT of
the full bytes (never partial). The Dagster IO managers (:mod:`plastics_dagster.io_manager`) and
the remote tile job (:mod:`plastics_core.remote`) both write through these functions, so a tile
computed on an EarthOne worker lands in exactly the files the in-process step writes::

    <store>/descartes_run/<roi>/<window>/<run-hash>/<tile>.tif              the window's pair: pixel scores
    <store>/descartes_run/<roi>/<window>/<run-hash>/<tile>.patchgrid.tif    the pair's patch-score grid
    <store>/descartes_run/<roi>/<window>/<run-hash>/<tile>.summary          JSON summary, written last

One ``descartes_run`` partition is one spectrogram pair (the quarter ``<window>`` and its partner);
the detection window's assets read the last ``pairs`` of them (:mod:`plastics_core.window`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from upath import UPath

from plastics_core.imagery.retry import RetryPolicy, is_transient, retry_call
from plastics_core.outputs import write_bytes

TILE_SUMMARY_EXT = ".summary"

#: Retries of one S3 call on transient faults (on top of botocore's own retries); then a one-line
#: RetryBudgetExceeded (a PlasticsError) naming the object. A PUT is idempotent: a retried write
#: never duplicates an object.
S3_RETRY = RetryPolicy(attempts=3, base_delay=1.0, max_delay=8.0)
_S3_TRANSIENT = {"EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError", "ConnectionClosedError",
                 "ClientConnectorError", "ServerDisconnectedError", "ClientOSError"}


def store_path(store: str) -> UPath:
    """A UPath for a local folder or ``s3://`` URL (S3 endpoint from $AWS_ENDPOINT_URL)."""
    if store.startswith("s3://"):
        endpoint = os.environ.get("AWS_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT_URL_S3")
        opts: dict[str, Any] = {"client_kwargs": {"endpoint_url": endpoint}} if endpoint else {}
        return UPath(store, **opts)
    return UPath(Path(store).expanduser().resolve())


def is_local(path: UPath) -> bool:
    return getattr(path, "protocol", "") in ("", "file", "local")


def _s3_transient(err: BaseException) -> bool:
    chain: list[BaseException] = []
    cur: BaseException | None = err
    while cur is not None and len(chain) < 8:
        chain.append(cur)
        cur = cur.__cause__ or cur.__context__
    return any(is_transient(e) or type(e).__name__ in _S3_TRANSIENT for e in chain)


def s3_call(fn: Any, what: str) -> Any:
    """``fn()`` with :data:`S3_RETRY` (transient network faults only)."""
    return retry_call(fn, what=what, policy=S3_RETRY, transient=_s3_transient)


def read_bytes(path: UPath) -> bytes:
    """``path.read_bytes()``; on S3 with bounded retries."""
    if is_local(path):
        return path.read_bytes()
    return s3_call(path.read_bytes, f"read {path}")  # type: ignore[no-any-return]


def atomic_write(path: UPath, data: bytes) -> None:
    """Write ``data`` to ``path`` all-or-nothing (local temp + os.replace; S3 one PUT)."""
    if is_local(path):
        write_bytes(data, Path(path.path))  # temp file beside it, fsync, rename
    else:
        s3_call(lambda: path.fs.pipe_file(path.path, data), f"write {path}")


def safe_name(key: str) -> str:
    """A tile key as a file name (``:`` and ``/`` -> ``_``)."""
    return key.replace(":", "_").replace("/", "_")


def run_folder(store: UPath, roi: str, window: str, run_hash: str) -> UPath:
    """``<store>/descartes_run/<roi>/<window>/<run-hash>``: where the tile files live."""
    return store / "descartes_run" / roi / window / run_hash


def tile_files(folder: UPath, tile_key: str) -> dict[str, UPath]:
    """The three files of one tile and pair: ``heatmap`` (.tif), ``patch_grid`` (.patchgrid.tif),
    ``summary`` (.summary, JSON)."""
    name = safe_name(tile_key)
    return {"heatmap": folder / f"{name}.tif", "patch_grid": folder / f"{name}.patchgrid.tif",
            "summary": folder / f"{name}{TILE_SUMMARY_EXT}"}


def tiles_done(folder: UPath, planned: list[str]) -> int:
    """How many of the ``planned`` tile keys have their summary (written last) in ``folder``: one
    listing, so it is cheap on S3 too. Progress for logs: ``tiles done k/n``."""
    if not folder.exists():
        return 0
    names = {p.name for p in folder.iterdir()}
    return sum(tile_files(folder, key)["summary"].name in names for key in planned)
