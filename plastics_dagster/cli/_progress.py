"""A progress bar for ``plastics run``, fed by the Dagster runs' event stream.

:func:`dagster_progress` yields a :class:`Progress`: its :meth:`Progress.on_event` is registered
as an event listener of each run (``DagsterInstance.add_event_listener``, see
:func:`plastics_dagster.runner.materialize_partition`) and receives every event log entry as the
instance stores it: ``STEP_START`` shows the running step, ``STEP_SUCCESS`` advances a tqdm bar
(on stderr), a ``descartes_run`` materialization that computed tiles prints one line
(``quarter 2019-04-01: 4 tile pairs computed in 12.3 s``). Dagster's console logger is set to
``CRITICAL`` meanwhile (:attr:`Progress.log_level`), so its log lines do not bury the bar; a
failure reaches the user as the runner's one-line error. Anything else written to stderr
(warnings, user prints) is left alone. With ``verbose`` (or ``PLASTICS_VERBOSE=1``) there is no
bar and Dagster's full event log is printed.

The bar is shown on a terminal; ``PLASTICS_PROGRESS=0`` hides it, ``PLASTICS_PROGRESS=1`` shows it
on any stderr (a log file).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any

from dagster import DagsterEventType, EventLogEntry

#: Dagster's console log level while the bar is shown (Dagster's own lines hidden)
QUIET = "CRITICAL"
#: its level with ``--verbose``: every event
VERBOSE = "DEBUG"


class Progress:
    """What ``plastics run`` hands to the runner: :attr:`on_event` (None: no listener) and the
    console :attr:`log_level`. ``done``: steps succeeded; ``failed``: step keys that failed;
    ``quarters``: ``[(quarter, tile pairs computed, seconds)]`` in the order they were stored."""

    def __init__(self, bar: Any | None, log_level: str) -> None:
        self.bar = bar
        self.log_level = log_level
        self.on_event: Callable[[EventLogEntry], None] | None = self._on_event if bar is not None else None
        self.done = 0
        self.failed: list[str] = []
        self.quarters: list[tuple[str, int, float]] = []

    def _on_event(self, entry: EventLogEntry) -> None:
        event = entry.dagster_event
        if event is None or self.bar is None:
            return
        kind = event.event_type
        if kind == DagsterEventType.STEP_START:
            self.bar.set_postfix_str(event.step_key or "", refresh=True)
        elif kind == DagsterEventType.STEP_SUCCESS:
            self.done += 1
            self.bar.update(1)
        elif kind == DagsterEventType.STEP_FAILURE:
            self.failed.append(event.step_key or "")
        elif kind == DagsterEventType.ASSET_MATERIALIZATION:
            self._quarter(event.event_specific_data)

    def _quarter(self, data: Any) -> None:
        """One line for a ``descartes_run`` quarter whose tiles this run computed."""
        mat = data.materialization
        if mat.asset_key.path[-1] != "descartes_run" or mat.partition is None:
            return
        computed, seconds = mat.metadata.get("pairs_computed"), mat.metadata.get("seconds")
        n = int(computed.value) if computed is not None else 0
        if n <= 0:
            return
        quarter = str(mat.partition).rsplit("|", 1)[-1]
        took = float(seconds.value) if seconds is not None else 0.0
        self.quarters.append((quarter, n, took))
        if self.bar is not None and not self.bar.disable:
            self.bar.write(f"quarter {quarter}: {n} tile pairs computed in {took:.1f} s", file=self.bar.fp)


def _show() -> bool | None:
    """tqdm's ``disable``: True hides the bar, None shows it on a terminal only, False always."""
    setting = os.environ.get("PLASTICS_PROGRESS", "")
    return True if setting == "0" else False if setting == "1" else None


@contextlib.contextmanager
def dagster_progress(desc: str, total: int | None = None, verbose: bool = False) -> Iterator[Progress]:
    """A :class:`Progress` for the runs of one ``plastics run`` (see the module doc)."""
    if verbose or os.environ.get("PLASTICS_VERBOSE", "") not in ("", "0"):
        yield Progress(None, VERBOSE)
        return
    from tqdm import tqdm

    with tqdm(total=total, desc=desc, unit="step", file=sys.stderr, disable=_show(), leave=False) as bar:
        yield Progress(bar, QUIET)
