"""Each quarter's pair computed once: exclusive claims per (ROI, quarter, run hash) and per tile.

Several runs can need one ``descartes_run`` pair at the same time: two detection windows of one
ROI whose spans overlap, a window and the quarter's own ``descartes_run`` run. Before computing,
a worker creates a claim marker **exclusively** (the granule claims' primitive,
:mod:`plastics_core.imagery.granule_claim`: ``O_CREAT | O_EXCL`` on a local or shared file system,
a conditional PUT ``If-None-Match: *`` on S3)::

    <store>/descartes_run/<roi>/<quarter>/<run-hash>.json.computing          the quarter (window step)
    <store>/descartes_run/<roi>/<quarter>/<run-hash>/<tile>.summary.computing one tile (any step)

The claimer computes, writes the result (the manifest, or the tile's summary: both written last),
then deletes the marker. A worker that finds a marker taken waits for the result and reads it
instead of computing it again; when the marker goes away without a result (its claimer failed)
it claims and computes itself. While the claimer works it refreshes the marker's time every
quarter of ``stale_s``; a marker not refreshed for ``stale_s`` seconds belongs to a worker that
died (killed, lost machine) and is taken over.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

from upath import UPath

from plastics_core.execution.manifest import RunRecord, pair_manifest
from plastics_core.geo.periods import parse_day
from plastics_core.imagery.granule_claim import release, try_claim, wait_for
from plastics_core.storage.store import is_local, s3_call

if TYPE_CHECKING:
    from plastics_core.execution.loaded import Models
    from plastics_core.imagery.base import ImagerySource
    from plastics_core.models.store import ModelStore
    from plastics_core.params import DetectParams

#: suffix of a claim marker beside the file it promises
CLAIM_SUFFIX = ".computing"
#: seconds without a refresh after which a claim counts as abandoned
STALE_S = 300.0


def claim_marker(result: UPath) -> UPath:
    """The claim marker of ``result`` (a manifest or a tile summary): ``<result>.computing``."""
    return result.with_name(result.name + CLAIM_SUFFIX)


def _refresh(marker: UPath) -> None:
    """Set ``marker``'s time to now (S3: rewrite it; its claimer's name stays)."""
    if is_local(marker):
        with contextlib.suppress(FileNotFoundError):
            os.utime(marker.path)
        return
    body = f"{socket.gethostname()} pid {os.getpid()} at {dt.datetime.now(dt.UTC).isoformat()}".encode()
    s3_call(lambda: marker.fs.pipe_file(marker.path, body), f"refresh {marker}")


@contextlib.contextmanager
def _heartbeat(marker: UPath, stale_s: float) -> Iterator[None]:
    """Refresh ``marker`` every ``stale_s / 4`` seconds while the block runs; release it after."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(stale_s / 4):
            _refresh(marker)

    thread = threading.Thread(target=beat, name=f"claim {marker.name}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        release(marker)


def compute_once(
    result: UPath, compute: Callable[[], Any], load: Callable[[], Any], stale_s: float = STALE_S
) -> tuple[Any, bool]:
    """``(value, computed)``: ``load()`` when ``result`` exists or another worker writes it while
    this one waits; else ``compute()`` (which writes ``result``) under an exclusive claim."""
    marker = claim_marker(result)
    while True:
        if result.exists():
            return load(), False
        if try_claim(marker, stale_s):
            with _heartbeat(marker, stale_s):
                if result.exists():  # written between the check and the claim
                    return load(), False
                return compute(), True
        # another worker holds it: wait for its result; gone without one (or stale) -> try again
        if wait_for(result, marker, timeout_s=stale_s):
            return load(), False


def compute_tile_once(
    tile_key: str,
    source: ImagerySource,
    models: Models | ModelStore,
    params: DetectParams,
    window: dt.date,
    folder: UPath,
    log: Callable[[str], None] | None = None,
    stale_s: float = STALE_S,
) -> tuple[dict[str, Any], bool]:
    """One tile's pair into ``folder`` (:func:`plastics_core.execution.tile_job.compute_tile`) unless
    its summary exists or another worker is computing it (then its summary, once written).
    Returns ``(summary, computed)``; ``computed`` is False when the summary came from the store."""
    from plastics_core.execution.tile_job import compute_tile
    from plastics_core.storage.corrupt import load_json
    from plastics_core.storage.store import tile_files

    summary = tile_files(folder, tile_key)["summary"]
    value, computed = compute_once(
        summary,
        lambda: compute_tile(tile_key, source, models, params, window, folder, log=log),
        lambda: dict(load_json(summary)),
        stale_s,
    )
    return dict(value), computed


@dataclass
class PairComputed:
    """One quarter's pair computed by this worker: its manifest (as ``descartes_run`` writes it) and
    the tile summaries (``computed`` per tile: False when another worker's file was used)."""

    start: str
    manifest: dict[str, Any]
    summaries: list[dict[str, Any]] = field(default_factory=list)

    @property
    def pairs_computed(self) -> int:
        return sum(1 for s in self.summaries if s.get("computed"))

    @property
    def composites_computed(self) -> int:
        return sum(int(s.get("composites_computed", 0)) for s in self.summaries if s.get("computed"))


def compute_pairs_once(
    store: UPath,
    record: RunRecord,
    starts: Sequence[dt.date | str],
    tiles: Sequence[str],
    source: ImagerySource,
    models: Models | ModelStore,
    stale_s: float = STALE_S,
) -> list[PairComputed]:
    """Compute and store the pairs of ``starts`` the store lacks (every tile of ``tiles``, one after
    the other), each with its manifest (:func:`plastics_core.execution.manifest.pair_manifest` of
    ``record``: the run's ROI, hash, parameters, imagery source, models, executor), unless another
    worker computes them (then wait for its manifest).
    Returns the pairs this call computed, oldest first; a pair found in the store or written by
    another worker meanwhile is not among them."""
    from plastics_core.method.window import manifest_path, missing_starts
    from plastics_core.storage.corrupt import load_json
    from plastics_core.storage.folders import DescartesRun, write_run
    from plastics_core.storage.store import run_folder

    roi, run_hash = record.roi, record.run_hash
    done: list[PairComputed] = []
    for start in missing_starts(store, roi, starts, run_hash):
        path = manifest_path(store, roi, start, run_hash)

        def compute(start: str = start, path: UPath = path) -> PairComputed:
            folder, day = run_folder(store, roi, start, run_hash), parse_day(start)
            summaries = []
            for key in tiles:
                summary, computed = compute_tile_once(
                    key, source, models, record.params, day, folder, stale_s=stale_s
                )
                summaries.append({**summary, "computed": computed})
            manifest = pair_manifest(record, start, tiles, summaries)
            write_run(path, DescartesRun(manifest))  # the tiles' files are in place: the manifest only
            return PairComputed(start, manifest, summaries)

        value, computed = compute_once(path, compute, partial(load_json, path), stale_s)
        if computed:
            done.append(value)
    return done
