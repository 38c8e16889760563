"""Granule decode cache: each block of a granule band is decoded once, tiles read from blocks.

Decoding a Sentinel-2 JPEG 2000 window costs about 3x per pixel what decoding whole code tiles
does (a window touches up to four 1024 x 1024 code tiles) and about 15x what reading the same
window from a compressed GeoTIFF does. Adjacent tiles of one quarter read the same granules, so
:class:`GranuleCache` decodes each granule band **block by block** (:mod:`.granule_blocks`:
blocks aligned to the band's code tiles, at its native 10, 20 or 60 m; nothing is resampled),
**once**, and only the blocks some tile needs: blocks outside every tile read (a small ROI, the
sea beside a coast) or that no wanted pixel samples (``need``: e.g. pixels the cloud mask has
already masked) are never decoded. A read assembles the blocks it needs in memory and warps
them onto the tile grid exactly as it would warp the source (same pixels, same GDAL warper).

- **Key**: ``<root>/<granule>/<band key>/r<row>_c<col>.tif`` plus ``meta.json`` (the band's
  size, CRS, transform, dtype, nodata, blocks, overviews), so a hit opens no source file.
  ``<granule>`` is :meth:`Granule.folder`: a readable prefix of the item id and a hash of
  (catalog URL, collection, item id, asset href), never the id alone (catalog ids are untrusted:
  two items with one id, ``..``, a 300-character id each get their own bounded folder); band
  keys are made file-safe by :func:`path_part`. The cloud mask's
  coarse reads (:meth:`GranuleCache.read_coarse`) are blocks of a JPEG 2000 resolution level,
  under ``<band key>.L<level>``.
- **Blocks**: tiled GeoTIFF files (:mod:`.granule_files`), georeferenced.
- **Root**: a local folder or ``s3://bucket/prefix`` (UPath/fsspec; S3 endpoint from
  ``$AWS_ENDPOINT_URL``); a block on S3 is read with one GET.
- **Atomic**: a block is encoded in memory and written in one piece (local temp file + rename,
  or one S3 PUT); a reader never sees a partial file.
- **Decoded once across workers**: a worker missing a block first claims it
  (:mod:`plastics_core.imagery.granule_claim`: an exclusively created ``r<row>_c<col>.tif.decoding``
  marker); other workers missing it meanwhile wait for it (``claim_timeout_s``, default 600 s)
  instead of decoding it too. Should a claimer die, the next worker decodes after the timeout;
  identical bytes either way.
- **Bounded**: ``max_bytes`` (a resource / parameter, default 50 GB). After a process has written
  1 % of ``max_bytes`` (and after its first write), if the cache holds more, the least recently
  used blocks are deleted until it fits (LRU by access time: a read touches the file's
  modification time locally, or, once per process and block, rewrites an empty
  ``<block>.tif.used`` marker object on S3). The block just written is never evicted; so the
  bound may be exceeded by 1 % per writing process in between. ``meta.json`` files (a few
  hundred bytes per band) are not evicted.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from affine import Affine
from rasterio.enums import Resampling
from rasterio.io import MemoryFile
from upath import UPath

from plastics_core.errors import ParameterError
from plastics_core.imagery.granule_blocks import BandMeta, Grid, needed_blocks
from plastics_core.imagery.granule_claim import claim_marker, release, try_claim, wait_for
from plastics_core.imagery.granule_files import block_bytes, paste_block
from plastics_core.imagery.granule_key import Granule, path_part
from plastics_core.imagery.local import read_on_grid
from plastics_core.storage.store import atomic_write, is_local, s3_call, store_path
from plastics_core.timing import StageTimer

__all__ = ["USED_SUFFIX", "Granule", "GranuleCache", "path_part"]

#: threads of one process never fill one block twice: one of these locks per block (by hash)
_LOCKS = tuple(threading.Lock() for _ in range(64))
_METAS_GUARD = threading.Lock()
#: band metas read or written by this process (bounded: least recently added dropped first)
_METAS: dict[str, BandMeta] = {}
_METAS_MAX = 4096
USED_SUFFIX = ".used"


def _lock(key: str) -> threading.Lock:
    return _LOCKS[hash(key) % len(_LOCKS)]


@dataclass
class GranuleCache:
    """Decoded granule blocks under ``root`` (folder or ``s3://``), at most ``max_bytes``."""

    root: str
    max_bytes: int = 50 * 1024**3
    #: seconds a worker waits for another worker's claimed decode before decoding itself; a claim
    #: older than this is taken over (its claimer died)
    claim_timeout_s: float = 600.0
    #: the smallest block side in px (blocks are whole code tiles; ESA's 1024 px tiles are kept)
    min_block: int = 256
    stats: dict[str, int] = field(
        default_factory=lambda: {"decodes": 0, "hits": 0, "skipped": 0, "evicted": 0, "waits": 0}
    )
    timer: StageTimer = field(default_factory=StageTimer)

    def __post_init__(self) -> None:
        if self.max_bytes <= 0:
            raise ParameterError(
                f"granule cache max_bytes {self.max_bytes} must be > 0: give a size in bytes"
            )
        self._root: UPath = store_path(self.root)
        self._check_every = max(1, self.max_bytes // 100)
        self._written = self._check_every  # the first write checks the bound
        self._touched: set[str] = set()

    def band_dir(self, scene_id: Granule | str, key: str) -> UPath:
        """The folder of granule ``scene_id``'s band ``key``: ``<root>/<Granule.folder()>/<key>``."""
        granule = scene_id if isinstance(scene_id, Granule) else Granule(item_id=str(scene_id))
        return self._root / granule.folder() / path_part(key)

    def block_path(self, scene_id: Granule | str, key: str, row: int, col: int) -> UPath:
        """Where block (``row``, ``col``) of ``scene_id``'s band ``key`` lives."""
        return self.band_dir(scene_id, key) / f"r{row}_c{col}.tif"

    def read_coarse(
        self,
        scene_id: Granule | str,
        key: str,
        open_source: Callable[..., Any],
        grid: Grid,
        resampling: Resampling = Resampling.nearest,
        nodata: float | None = 0,
    ) -> np.ndarray:
        """Like :meth:`read`, from the source's overview (JPEG 2000 resolution level) nearest
        below the grid's resolution (full resolution when none is), cached as blocks of that
        level (key ``<band key>.L<level>``, blocks of at least 4 x ``min_block`` px): the pixels a
        direct read of the level gives. ``open_source(**kw)`` opens the source (``overview_level``)."""
        with contextlib.ExitStack() as stack:
            meta = self._meta(scene_id, key, _lazy(stack, open_source))
        level = meta.level_for(abs(grid[1].a))
        if level is None:
            return self.read(scene_id, key, open_source, grid, resampling, nodata)
        return self.read(
            scene_id,
            f"{key}.L{level}",
            lambda: open_source(overview_level=level),
            grid,
            resampling,
            nodata,
            min_block=4 * self.min_block,
        )

    def read(
        self,
        scene_id: Granule | str,
        key: str,
        open_source: Callable[[], Any],
        grid: Grid,
        resampling: Resampling = Resampling.nearest,
        nodata: float | None = 0,
        need: np.ndarray | None = None,
        min_block: int | None = None,
    ) -> np.ndarray:
        """Band ``key`` of ``scene_id`` warped onto ``grid``: (rows, cols) in the band's dtype,
        ``nodata`` (0 when None) outside the band, where it is nodata and, with ``need``
        ((rows, cols) bool), possibly where ``need`` is False (blocks no wanted pixel samples are
        neither decoded nor read). ``open_source()`` is a context manager giving the source
        dataset; it is opened only for a missing block or meta. JPEG 2000 decoding is timed as
        ``timer["granule_decode"]``, encoding blocks as ``cache_encode``, writing them as
        ``cache_write``, waiting for another worker's decode as ``claim_wait``."""
        with contextlib.ExitStack() as stack:
            source = _lazy(stack, open_source)
            meta = self._meta(scene_id, key, source, min_block)
            margin = 2 if resampling == Resampling.nearest else 4
            window, blocks = needed_blocks(meta, grid, need, margin)
            if need is not None:  # blocks under the grid that no wanted pixel samples
                self.stats["skipped"] += len(needed_blocks(meta, grid, None, margin)[1]) - len(blocks)
            fill = 0 if nodata is None else nodata
            if window is None:
                return np.full(grid[2], fill, dtype=meta.dtype)
            src_fill = meta.nodata if meta.nodata is not None else fill
            arr = np.full((int(window.height), int(window.width)), src_fill, dtype=meta.dtype)
            for row, col in blocks:
                path = self.block_path(scene_id, key, row, col)
                self._ensure(path, meta, row, col, source)
                paste_block(arr, window, meta.block_window(row, col), path)
        transform = meta.transform @ Affine.translation(window.col_off, window.row_off)
        profile = {
            "driver": "GTiff",
            "width": arr.shape[1],
            "height": arr.shape[0],
            "count": 1,
            "dtype": arr.dtype.name,
            "crs": meta.crs,
            "transform": transform,
            "nodata": meta.nodata,
        }
        crs, dst_transform, shape = grid
        with MemoryFile() as mem:
            with mem.open(**profile) as ds:
                ds.write(arr, 1)
            with mem.open() as ds:
                out: np.ndarray = read_on_grid(
                    ds, crs, dst_transform, shape, resampling, indexes=[1], nodata=nodata
                )[0]
        return out

    def _meta(
        self, scene_id: Granule | str, key: str, source: Callable[[], Any], min_block: int | None = None
    ) -> BandMeta:
        path = self.band_dir(scene_id, key) / "meta.json"
        name = str(path)
        with _METAS_GUARD:
            known = _METAS.get(name)
        if known is not None:
            return known
        if path.exists():
            meta = BandMeta.from_json(path.read_text())
        else:
            meta = BandMeta.of(source(), min_block or self.min_block)
            atomic_write(path, meta.to_json().encode())
        with _METAS_GUARD:
            if len(_METAS) >= _METAS_MAX:
                del _METAS[next(iter(_METAS))]
            _METAS[name] = meta
        return meta

    def _ensure(self, path: UPath, meta: BandMeta, row: int, col: int, source: Callable[[], Any]) -> None:
        """Make block ``path`` present: a hit, another worker's decode awaited, or decoded here."""
        with _lock(str(path)):
            if path.exists() or self._wait_or_fill(path, meta, row, col, source):
                self.stats["hits"] += 1
                self._touch(path)

    def _wait_or_fill(
        self, path: UPath, meta: BandMeta, row: int, col: int, source: Callable[[], Any]
    ) -> bool:
        """Fill the missing block ``path``, unless another worker holds its claim and writes it
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
            window = meta.block_window(row, col)
            src = source()
            with self.timer("granule_decode"):
                arr = src.read(1, window=window)
            with self.timer("cache_encode"):
                data = block_bytes(
                    arr,
                    meta.crs,
                    meta.transform @ Affine.translation(window.col_off, window.row_off),
                    meta.nodata,
                )
            with self.timer("cache_write"):
                atomic_write(path, data)
        finally:
            if owned:
                release(marker)
        self.stats["decodes"] += 1
        self._written += len(data)
        if self._written >= self._check_every:
            self._written = 0
            self.evict(keep=path)
        return False

    def _touch(self, path: UPath) -> None:
        if is_local(path):
            os.utime(path.path)
        elif str(path) not in self._touched:
            marker = path.with_name(path.name + USED_SUFFIX)
            s3_call(lambda: marker.fs.pipe_file(marker.path, b""), f"touch {marker}")
            self._touched.add(str(path))

    def entries(self) -> list[tuple[str, int, float]]:
        """Every cached block: (filesystem path, bytes, last access as a POSIX timestamp)."""
        if not self._root.exists():
            return []
        found = self._root.fs.find(self._root.path, detail=True)
        used = {
            name[: -len(USED_SUFFIX)]: _mtime(info)
            for name, info in found.items()
            if name.endswith(USED_SUFFIX)
        }
        return [
            (name, int(info.get("size") or 0), max(_mtime(info), used.get(name, 0.0)))
            for name, info in found.items()
            if name.endswith(".tif")
        ]

    def size(self) -> int:
        """Bytes held by the cached blocks."""
        return sum(size for _, size, _ in self.entries())

    def evict(self, keep: UPath | None = None) -> int:
        """Delete least recently used blocks until the cache holds at most ``max_bytes``;
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


def _lazy(stack: contextlib.ExitStack, open_source: Callable[[], Any]) -> Callable[[], Any]:
    """A function opening ``open_source()`` on its first call (closed with ``stack``)."""
    opened: list[Any] = []

    def source() -> Any:
        if not opened:
            opened.append(stack.enter_context(open_source()))
        return opened[0]

    return source


def _mtime(info: dict[str, Any]) -> float:
    value = info.get("mtime", info.get("LastModified", 0.0))
    if isinstance(value, dt.datetime):
        return value.timestamp()
    try:
        return float(value)
    except (TypeError, ValueError):
        return time.time()
