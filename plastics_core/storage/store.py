"""The output store, without Dagster: paths, atomic writes and the per-tile file layout.

A store is a local folder or ``s3://bucket/prefix`` (S3 endpoint from ``$AWS_ENDPOINT_URL``,
credentials from the environment only). Writes are atomic: local files go to a temp file in the
same folder and are moved into place with ``os.replace``; S3 objects are written with one PUT of
the full bytes (never partial). The Dagster IO managers (:mod:`plastics_dagster.io_manager`) and
the remote tile job (:mod:`plastics_core.execution.tile_job`) both write through these functions, so a tile
computed on an EarthOne worker lands in exactly the files the in-process step writes::

    <store>/descartes_run/<roi>/<window>/<run-hash>/<tile>.tif              the window's pair: pixel scores
    <store>/descartes_run/<roi>/<window>/<run-hash>/<tile>.patchgrid.tif    the pair's patch-score grid
    <store>/descartes_run/<roi>/<window>/<run-hash>/<tile>.summary          JSON summary, written last

One ``descartes_run`` partition is one spectrogram pair (the quarter ``<window>`` and its partner);
the detection window's assets read the last ``pairs`` of them (:mod:`plastics_core.method.window`).
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import tenacity
from upath import UPath

from plastics_core.errors import ParameterError, PlasticsError
from plastics_core.redact import redact, remember
from plastics_core.retry import call_within_budget, is_transient, one_line
from plastics_core.storage.atomic import write_bytes

TILE_SUMMARY_EXT = ".summary"


log = logging.getLogger(__name__)


class StoreUnreachableError(PlasticsError):
    """The output store's endpoint cannot be reached (or has no credentials)."""


#: Seconds one S3 call keeps retrying transient faults (endpoint down, connection refused, 5xx,
#: timeouts) before a one-line RetryBudgetExceeded naming the object: long enough to ride out an
#: outage of a minute or two. ``$PLASTICS_STORE_RETRY_SECONDS`` (read at each call) overrides it.
STORE_RETRY_SECONDS = 120.0
STORE_RETRY_ENV = "PLASTICS_STORE_RETRY_SECONDS"
#: Backoff between tries: exponential from 1 s, at most 15 s apart (+ up to 1 s of jitter).
_WAIT_INITIAL, _WAIT_MAX = 1.0, 15.0
_S3_TRANSIENT = {
    "EndpointConnectionError",
    "ConnectTimeoutError",
    "ReadTimeoutError",
    "ConnectionClosedError",
    "ClientConnectorError",
    "ServerDisconnectedError",
    "ClientOSError",
}


_BUDGET_CAP: contextvars.ContextVar[float | None] = contextvars.ContextVar("store_retry_cap", default=None)


@contextlib.contextmanager
def retry_budget_cap(seconds: float) -> Iterator[None]:
    """Within the block, one S3 call retries for at most ``seconds`` (the preflight probe: an
    endpoint down at start is reported in seconds; the run's own calls keep their budget)."""
    token = _BUDGET_CAP.set(seconds)
    try:
        yield
    finally:
        _BUDGET_CAP.reset(token)


def store_retry_seconds() -> float:
    """The retry budget of one S3 call in seconds (``$PLASTICS_STORE_RETRY_SECONDS`` or 120; at most
    the cap of an enclosing :func:`retry_budget_cap`)."""
    cap = _BUDGET_CAP.get()
    value = _configured_retry_seconds()
    return value if cap is None else min(cap, value)


def _configured_retry_seconds() -> float:
    raw = os.environ.get(STORE_RETRY_ENV, "")
    try:
        value = float(raw) if raw.strip() else STORE_RETRY_SECONDS
    except ValueError:
        raise ParameterError(f"{STORE_RETRY_ENV}={raw!r} is not a number: give seconds, e.g. 120") from None
    if not 0 <= value <= 86_400:
        raise ParameterError(f"{STORE_RETRY_ENV}={raw!r} is outside [0, 86400] seconds: give e.g. 120")
    return value


class _DropClosedConnectionTasks(logging.Filter):
    """Drops asyncio's "Task exception was never retrieved" records for connection errors.

    During an S3 outage the S3 client's event loop (s3fs on aiohttp) leaves a request-body task
    whose connection was closed under it; the request itself fails and is retried
    (:func:`s3_call`), but asyncio still prints the orphaned task's traceback on stderr. Other
    asyncio records pass."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        orphan = str(record.msg).startswith("Task exception was never retrieved")
        return not (orphan and isinstance(exc, ConnectionError))


_QUIET_ORPHANS = _DropClosedConnectionTasks()


_URL_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:/")  # two letters at least: not a drive letter


def store_path(store: str) -> UPath:
    """A UPath for a local folder or ``s3://`` URL (S3 endpoint from $AWS_ENDPOINT_URL); any other
    URL scheme (``gs://``, ``S3://``, ``file://`` ...) is a one-line ParameterError, never a local
    folder named after it."""
    if _URL_SCHEME.match(store) and not store.startswith("s3://"):
        raise ParameterError(
            f"store {store.split(':', 1)[0]}:// is not supported: give a local folder or an "
            "s3://bucket/prefix URL"
        )
    if store.startswith("s3://"):
        asyncio_log = logging.getLogger("asyncio")
        if _QUIET_ORPHANS not in asyncio_log.filters:
            asyncio_log.addFilter(_QUIET_ORPHANS)
        endpoint = os.environ.get("AWS_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT_URL_S3")
        opts: dict[str, Any] = {"client_kwargs": {"endpoint_url": endpoint}} if endpoint else {}
        remote: UPath = UPath(store, **opts)  # UPath.__new__ is typed Any
        return remote
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


#: Errors meaning the store's endpoint could not be reached at all (nothing was answered).
_UNREACHABLE = {
    "EndpointConnectionError",
    "ConnectTimeoutError",
    "ClientConnectorError",
    "ConnectionRefusedError",
    "NoCredentialsError",
}


def unreachable_store_error(err: BaseException) -> PlasticsError | None:
    """A one-line :class:`StoreUnreachableError` when ``err`` (or its cause chain) says the S3
    endpoint could not be reached or signed for, else None. Names the endpoint (scheme, host, port
    only: never a key or credential) and the fix."""
    cur: BaseException | None = err
    seen = 0
    while cur is not None and seen < 16:
        name = type(cur).__name__
        if name in _UNREACHABLE:
            if name == "NoCredentialsError":
                return StoreUnreachableError(
                    "no S3 credentials found: set AWS_ACCESS_KEY_ID and "
                    "AWS_SECRET_ACCESS_KEY (or an AWS profile) for the store"
                )
            url = str(
                getattr(cur, "kwargs", {}).get("endpoint_url") or os.environ.get("AWS_ENDPOINT_URL") or ""
            )
            remember(url)
            m = re.match(r"[a-z][a-z0-9+.-]*://[^\s/?#]+", redact(url))  # userinfo shown as ***
            where = m.group(0) if m else "the S3 endpoint"
            return StoreUnreachableError(
                f"cannot reach the store at {where} ({name}): check AWS_ENDPOINT_URL and the network, "
                "then rerun (finished work is kept)"
            )
        seen += 1
        cur = cur.__cause__ or cur.__context__
    return None


def s3_call(fn: Any, what: str) -> Any:
    """``fn()``, retrying transient network faults with exponential backoff for
    :func:`store_retry_seconds`; then RetryBudgetExceeded (one line, retryable by the step). A
    PUT is idempotent: a retried write never duplicates an object."""
    budget = store_retry_seconds()
    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_delay(budget),
        wait=tenacity.wait_exponential_jitter(initial=_WAIT_INITIAL, max=_WAIT_MAX, jitter=1.0),
        retry=tenacity.retry_if_exception(_s3_transient),
        before_sleep=lambda state: log.warning(
            "%s: store unavailable (%s); retry %d in %.0f s",
            redact(what),
            one_line(state.outcome.exception()) if state.outcome else "?",
            state.attempt_number,
            state.next_action.sleep if state.next_action else 0.0,
        ),
        reraise=False,
    )
    return call_within_budget(
        retrying,
        fn,
        lambda last: (
            f"{redact(what)} failed for {budget:.0f} s ({one_line(last.exception())}): the store is unavailable; rerun "
            f"when it is back (finished work is kept), or raise {STORE_RETRY_ENV}"
        ),
    )


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
    """``<store>/descartes_run/<roi>/<window>/<run-hash>``: where the tile files live
    (:func:`plastics_core.storage.layout.asset_path` without an extension)."""
    from plastics_core.storage.layout import asset_path

    return asset_path(store, "descartes_run", roi, window, run_hash)


def tile_files(folder: UPath, tile_key: str) -> dict[str, UPath]:
    """The three files of one tile and pair: ``heatmap`` (.tif), ``patch_grid`` (.patchgrid.tif),
    ``summary`` (.summary, JSON)."""
    name = safe_name(tile_key)
    return {
        "heatmap": folder / f"{name}.tif",
        "patch_grid": folder / f"{name}.patchgrid.tif",
        "summary": folder / f"{name}{TILE_SUMMARY_EXT}",
    }


def tiles_done(folder: UPath, planned: list[str]) -> int:
    """How many of the ``planned`` tile keys have their summary (written last) in ``folder``: one
    listing, so it is cheap on S3 too. Progress for logs: ``tiles done k/n``."""
    if not folder.exists():
        return 0
    names = {p.name for p in folder.iterdir()}
    return sum(tile_files(folder, key)["summary"].name in names for key in planned)
