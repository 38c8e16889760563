"""Cross-worker claims on a granule block, so that one worker decodes it and the others wait.

Tiles of one granule run on different processes and machines (Celery, Kubernetes). Before a
worker decodes a granule block missing from the cache, it creates a claim marker
``<block>.tif.decoding`` beside the block file **exclusively**: ``O_CREAT | O_EXCL`` on a local or
shared file system, a conditional PUT (``If-None-Match: *``) on S3. The worker that created it
decodes, writes the block, then deletes the marker; a worker that finds the marker taken polls
until the block appears (a cache hit) or the marker goes away without one, then decodes itself.
A marker older than the claim timeout belongs to a worker that died: it is taken over. The
marker's body names the claimer (host, process id, time) for an operator who finds one.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import socket
import time
from pathlib import Path
from typing import Any

from upath import UPath

from plastics_core.storage.store import is_local, s3_call

CLAIM_SUFFIX = ".decoding"


def claim_marker(cog: UPath) -> UPath:
    """The claim marker of the cached file ``cog`` (a granule block)."""
    return cog.with_name(cog.name + CLAIM_SUFFIX)


def _body() -> bytes:
    return f"{socket.gethostname()} pid {os.getpid()} at {dt.datetime.now(dt.UTC).isoformat()}".encode()


def _create(marker: UPath) -> bool:
    """Create ``marker`` exclusively; False when it exists."""
    if is_local(marker):
        Path(marker.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(marker.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "wb") as out:
            out.write(_body())
        return True
    try:
        s3_call(lambda: marker.fs.pipe_file(marker.path, _body(), mode="create"), f"claim {marker}")
    except FileExistsError:
        return False
    return True


def _age_s(marker: UPath) -> float | None:
    """Seconds since ``marker`` was written; None when it is gone."""
    try:
        if is_local(marker):
            return time.time() - os.path.getmtime(marker.path)
        marker.fs.invalidate_cache(marker.path)
        info: dict[str, Any] = marker.fs.info(marker.path)
    except FileNotFoundError:
        return None
    modified = info.get("LastModified", info.get("mtime"))
    stamp = modified.timestamp() if isinstance(modified, dt.datetime) else float(modified or 0.0)
    return time.time() - stamp


def try_claim(marker: UPath, stale_s: float) -> bool:
    """True when this process now owns ``marker`` (created it, or took over one older than
    ``stale_s`` seconds); False when another worker holds it."""
    if _create(marker):
        return True
    age = _age_s(marker)
    if age is not None and age <= stale_s:
        return False
    release(marker)  # gone meanwhile, or its claimer died: take it over (one of the racers wins)
    return _create(marker)


def release(marker: UPath) -> None:
    """Delete ``marker`` (no error when it is already gone)."""
    with contextlib.suppress(FileNotFoundError):
        if is_local(marker):
            os.remove(marker.path)
        else:
            marker.fs.rm_file(marker.path)


def wait_for(cog: UPath, marker: UPath, timeout_s: float, poll_s: float = 0.25) -> bool:
    """Poll until ``cog`` exists (True), or ``marker`` is gone without it or ``timeout_s`` passed
    (False: decode it yourself)."""
    deadline = time.monotonic() + timeout_s
    while True:
        if not is_local(cog):
            cog.fs.invalidate_cache(cog.path)
        if cog.exists():
            return True
        if _age_s(marker) is None or time.monotonic() >= deadline:
            return cog.exists()
        time.sleep(poll_s)
