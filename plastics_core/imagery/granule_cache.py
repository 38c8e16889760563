"""Granule-level decode cache: each granule band is decoded once, tiles read windows of a COG.

Decoding a Sentinel-2 JPEG 2000 window costs about 3x per pixel what decoding the whole band
does (a window touches up to four 1024 x 1024 code tiles and their resolution levels) and
about 15x what reading the same window from a compressed COG does. Adjacent tiles of one quarter
read the same granules, so :class:`GranuleCache` decodes a granule band **once**, whole, at
its native resolution (10, 20 or 60 m; nothing is resampled), and stores it as a COG on the
granule's own grid: uint16, ZSTD level 1 + predictor 2, 512 x 512 blocks, overviews (nearest), the
source's CRS, transform and nodata. Every later read of that band (any tile) opens the COG.

- **Key**: ``<root>/<scene id>/<band key>.tif`` (ids and keys made file-safe). A STAC item id
  names one granule of one acquisition, so the key identifies the pixels.
- **Root**: a local folder or ``s3://bucket/prefix`` (UPath/fsspec; S3 endpoint from
  ``$AWS_ENDPOINT_URL``). COGs on S3 are read in place by range requests through fsspec.
- **Atomic**: a COG is built in memory and written in one piece (local temp file + rename,
  or one S3 PUT); a reader never sees a partial file.
- **Decoded once across workers**: a worker missing a band first claims it
  (:mod:`plastics_core.imagery.granule_claim`: an exclusively created ``<band key>.tif.decoding``
  marker); other workers missing it meanwhile wait for the COG (``claim_timeout_s``, default
  600 s) instead of decoding it too. Should a claimer die, the next worker decodes after the
  timeout; identical bytes either way.
- **Bounded**: ``max_bytes`` (a resource / parameter, default 50 GB). After each write, if the
  cache holds more, the least recently used COGs are deleted until it fits (LRU by access
  time: a read touches the file's modification time locally, or rewrites an empty
  ``<band key>.tif.used`` marker object on S3). The COG just written is never evicted.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import rasterio
from rasterio.io import MemoryFile
from rasterio.shutil import copy as rio_copy
from upath import UPath

from plastics_core.errors import ParameterError
from plastics_core.imagery.granule_claim import claim_marker, release, try_claim, wait_for
from plastics_core.imagery.timing import StageTimer
from plastics_core.storage.store import atomic_write, is_local, s3_call, store_path

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_LOCKS: dict[str, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()
USED_SUFFIX = ".used"
#: ZSTD level 1 with the horizontal predictor: on the bench's granule bands it encodes 2x faster
#: than DEFLATE level 6 and writes a smaller file (bench/realimagery.py, docs/PERFORMANCE.md).
COG_OPTIONS = {"COMPRESS": "ZSTD", "LEVEL": "1", "PREDICTOR": "2", "BLOCKSIZE": "512",
               "OVERVIEW_RESAMPLING": "NEAREST", "NUM_THREADS": "1"}


def _lock(key: str) -> threading.Lock:
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(key, threading.Lock())


def cog_bytes(arr: np.ndarray, src: Any) -> bytes:
    """``arr`` (the whole first band of the open dataset ``src``) as COG bytes on ``src``'s grid
    (see module docstring)."""
    profile = {"driver": "GTiff", "width": src.width, "height": src.height, "count": 1, "dtype": arr.dtype.name,
               "crs": src.crs, "transform": src.transform, "nodata": src.nodata}
    with MemoryFile() as tmp, MemoryFile() as out:
        with tmp.open(**profile) as dst:
            dst.write(arr, 1)
        with tmp.open() as gt:
            rio_copy(gt, out.name, driver="COG", **COG_OPTIONS)
        return bytes(out.read())


@dataclass
class GranuleCache:
    """Decoded granule bands as COGs under ``root`` (folder or ``s3://``), at most ``max_bytes``."""

    root: str
    max_bytes: int = 50 * 1024**3
    #: seconds a worker waits for another worker's claimed decode before decoding itself; a claim
    #: older than this is taken over (its claimer died)
    claim_timeout_s: float = 600.0
    stats: dict[str, int] = field(default_factory=lambda: {"decodes": 0, "hits": 0, "evicted": 0, "waits": 0})
    timer: StageTimer = field(default_factory=StageTimer)

    def __post_init__(self) -> None:
        if self.max_bytes <= 0:
            raise ParameterError(f"granule cache max_bytes {self.max_bytes} must be > 0: give a size in bytes")
        self._root: UPath = store_path(self.root)

    def path(self, scene_id: str, key: str) -> UPath:
        """Where the COG of ``scene_id``'s band ``key`` lives."""
        return self._root / _UNSAFE.sub("_", scene_id) / f"{_UNSAFE.sub('_', key)}.tif"

    @contextlib.contextmanager
    def open(self, scene_id: str, key: str, open_source: Callable[[], Any], **open_kwargs: Any) -> Iterator[Any]:
        """An open rasterio dataset of the cached band (``open_kwargs`` go to ``rasterio.open``,
        e.g. ``overview_level``), decoding it first through ``open_source()`` (a context manager
        giving the source dataset) when missing: the whole-band read goes to ``timer["granule_decode"]``,
        building the COG to ``timer["cog_encode"]``, writing it to ``timer["cache_write"]``."""
        path = self.path(scene_id, key)
        with _lock(str(path)):
            if path.exists() or self._wait_or_fill(path, open_source):
                self.stats["hits"] += 1
                self._touch(path)
        if is_local(path):
            with rasterio.open(path.path, **open_kwargs) as ds:
                yield ds
        else:
            with rasterio.open(path.path, opener=path.fs, **open_kwargs) as ds:
                yield ds

    def _wait_or_fill(self, path: UPath, open_source: Callable[[], Any]) -> bool:
        """Fill the missing COG ``path``, unless another worker holds its claim and writes it
        meanwhile (then True: a hit, after a wait timed as ``timer["claim_wait"]``)."""
        marker = claim_marker(path)
        owned = try_claim(marker, self.claim_timeout_s)
        if not owned:
            self.stats["waits"] += 1
            with self.timer("claim_wait"):
                if wait_for(path, marker, self.claim_timeout_s):
                    return True
            owned = try_claim(marker, self.claim_timeout_s)  # its claimer died or is too slow
        try:
            if owned and path.exists():  # written between our check and our claim
                return True
            with open_source() as src:
                with self.timer("granule_decode"):
                    arr = src.read(1)
                with self.timer("cog_encode"):
                    data = cog_bytes(arr, src)
            with self.timer("cache_write"):
                atomic_write(path, data)
        finally:
            if owned:
                release(marker)
        self.stats["decodes"] += 1
        self.evict(keep=path)
        return False

    def _touch(self, path: UPath) -> None:
        if is_local(path):
            os.utime(path.path)
        else:
            marker = path.with_name(path.name + USED_SUFFIX)
            s3_call(lambda: marker.fs.pipe_file(marker.path, b""), f"touch {marker}")

    def entries(self) -> list[tuple[str, int, float]]:
        """Every cached COG: (filesystem path, bytes, last access as a POSIX timestamp)."""
        if not self._root.exists():
            return []
        found = self._root.fs.find(self._root.path, detail=True)
        used = {name[: -len(USED_SUFFIX)]: _mtime(info) for name, info in found.items() if name.endswith(USED_SUFFIX)}
        return [(name, int(info.get("size") or 0), max(_mtime(info), used.get(name, 0.0)))
                for name, info in found.items() if name.endswith(".tif")]

    def size(self) -> int:
        """Bytes held by the cached COGs."""
        return sum(size for _, size, _ in self.entries())

    def evict(self, keep: UPath | None = None) -> int:
        """Delete least recently used COGs until the cache holds at most ``max_bytes``;
        returns how many were deleted (``keep`` never is)."""
        entries = sorted(self.entries(), key=lambda e: e[2])
        total = sum(size for _, size, _ in entries)
        fs, removed = self._root.fs, 0
        for name, size, _ in entries:
            if total <= self.max_bytes:
                break
            if keep is not None and name == keep.path:
                continue
            for victim in (name, name + USED_SUFFIX):
                with contextlib.suppress(FileNotFoundError):
                    fs.rm_file(victim)
            total -= size
            removed += 1
        self.stats["evicted"] += removed
        return removed


def _mtime(info: dict[str, Any]) -> float:
    value = info.get("mtime", info.get("LastModified", 0.0))
    if isinstance(value, dt.datetime):
        return value.timestamp()
    try:
        return float(value)
    except (TypeError, ValueError):
        return time.time()
