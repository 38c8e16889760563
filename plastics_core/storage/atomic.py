"""Atomic file writes: a temporary file beside the destination, renamed over it.

:func:`atomic_writer` writes a temporary file in the destination directory and renames it over
the destination (``os.replace``); on any exception the temporary file is removed and an
existing destination is left untouched. Temp files left by killed writes are removed by the
next write in the same folder (:func:`remove_stale_temps`).
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

#: Temp files are ``.<name>.p<pid>-<random>.tmp``; one whose process is gone is stale.
_TEMP = re.compile(r"^\..+\.p(\d+)-[^/]*\.tmp$")
#: A temp file without a live owner on this host, or older than this (another host), is stale.
STALE_TEMP_SECONDS = 6 * 3600.0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temps(folder: str | Path) -> list[Path]:
    """Delete temp files in ``folder`` left by writes that were killed between writing and
    renaming (their process is gone, or they are older than ``STALE_TEMP_SECONDS``); returns them.
    Temp files of writes still in progress are kept."""
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    now = time.time()
    for entry in entries:
        m = _TEMP.match(entry.name)
        if m is None and not (entry.name.startswith(".") and entry.name.endswith(".tmp")):
            continue
        try:
            old = now - entry.stat(follow_symlinks=False).st_mtime > STALE_TEMP_SECONDS
            if old or (m is not None and int(m.group(1)) != os.getpid() and not _alive(int(m.group(1)))):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
        except (OSError, ValueError):
            continue
    return removed


@contextlib.contextmanager
def atomic_writer(path: str | Path) -> Iterator[IO[bytes]]:
    """Open a temp file beside ``path`` for binary writing; rename it to ``path`` on success,
    delete it on error (``path`` keeps its previous content). Stale temp files of the folder (from
    killed writes: :func:`remove_stale_temps`) are removed first."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.p{os.getpid()}-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_bytes(data: bytes, path: str | Path) -> None:
    """Atomically write ``data`` to ``path``."""
    with atomic_writer(path) as fh:
        fh.write(data)
