"""Store files that cannot be parsed: named in one line, moved aside, recomputed by the rerun.

A store file can be damaged outside any run (a truncated copy, a disk fault, an edit by hand): a
COG whose tiles end early, a manifest or ``tiles.json`` that is not JSON. Retrying the step reads
the same bytes again, so the readers here never retry a parse. They read the bytes (network faults
keep their retries: :func:`plastics_core.storage.store.read_bytes`), parse them, and when the parse
fails they

1. move the file aside to ``<name>.corrupt`` (kept for inspection, replacing an older one; readers
   never list it),
2. delete the completion markers that vouch for it (``invalidate``: a tile's ``.summary``, the
   pair's manifest, a folder's ``tiles.json``), so the next run sees the work as missing and
   computes it again,
3. raise :class:`CorruptStoreFileError`: one line naming the file, the parse error and the fix
   (rerun the same command).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from upath import UPath

from plastics_core.errors import PlasticsError
from plastics_core.geo.raster import Raster

T = TypeVar("T")
#: suffix of a corrupt store file moved aside
CORRUPT_SUFFIX = ".corrupt"


class CorruptStoreFileError(PlasticsError):
    """A store file cannot be parsed (truncated, not JSON, not a GeoTIFF); it was moved aside."""


def quarantine(path: UPath, invalidate: Sequence[UPath] = ()) -> UPath:
    """Move ``path`` to ``<path>.corrupt`` and delete the files of ``invalidate`` (those missing are
    skipped). Returns the new path. Best effort: a file that cannot be moved is deleted."""
    target = path.with_name(path.name + CORRUPT_SUFFIX)
    try:
        if target.exists():
            target.unlink()
        path.rename(target)
    except OSError:
        with contextlib.suppress(OSError):
            path.unlink()
    for marker in invalidate:
        with contextlib.suppress(FileNotFoundError):
            marker.unlink()
    return target


def parse_store_file(
    path: UPath, parse: Callable[[bytes], T], kind: str, invalidate: Sequence[UPath] = ()
) -> T:
    """``parse(bytes of path)``; when the parse raises, :func:`quarantine` (``path`` and
    ``invalidate``) and :class:`CorruptStoreFileError` naming ``path`` (expected to be a ``kind``)."""
    from plastics_core.storage.store import read_bytes

    data = read_bytes(path)
    try:
        return parse(data)
    except Exception as exc:  # noqa: BLE001 - the bytes are in memory: any parse failure is the file's
        moved = quarantine(path, invalidate)
        reason = " ".join(str(exc).split())[:160] or type(exc).__name__
        raise CorruptStoreFileError(
            f"store file {path} is corrupt ({len(data)} bytes, not a valid {kind}: {reason}); it was moved aside "
            f"to {moved.name} and will be recomputed: rerun the same command"
        ) from exc


def _json(data: bytes) -> Any:
    return json.loads(data.decode("utf-8"))


def load_json(path: UPath, invalidate: Sequence[UPath] = ()) -> Any:
    """The JSON document stored at ``path`` (a manifest, ``tiles.json``, a tile summary)."""
    return parse_store_file(path, _json, "JSON file", invalidate)


def load_raster(path: UPath, invalidate: Sequence[UPath] = ()) -> Raster:
    """The GeoTIFF/COG stored at ``path``, every pixel read (a truncated tile fails here, not later)."""
    from plastics_core.storage.outputs import read_raster

    return parse_store_file(path, read_raster, "GeoTIFF", invalidate)
