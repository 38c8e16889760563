"""A progress bar for an in-process Dagster run, fed by Dagster's console log lines.

``materialize()`` logs every event through Dagster's default console logger, which writes to
``sys.stderr`` at emit time, one whole record (possibly many lines: a step failure carries its
traceback) per ``write``. :func:`dagster_progress` swaps ``sys.stderr`` for a record filter
for the duration of the run: Dagster records (first line ``... - dagster - LEVEL - ...``) are
not printed (a failure reaches the user as the runner's one-line error); ``STEP_START`` /
``STEP_SUCCESS`` records advance a tqdm bar (on the real stderr) showing the running step;
everything else (warnings, user prints) passes through unchanged.
With ``verbose`` nothing is filtered (the full Dagster log is shown).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys
from collections.abc import Iterator
from typing import Any, TextIO

_DAGSTER_LINE = re.compile(r" - dagster - (DEBUG|INFO|WARNING|ERROR|CRITICAL) - ")
_STEP_EVENT = re.compile(
    r" - (?P<step>[^ ]+) - (?P<event>STEP_START|STEP_SUCCESS|STEP_FAILURE|STEP_SKIPPED) - "
)
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class _StepFilter(io.TextIOBase):
    """File-like stderr replacement: consumes Dagster log lines, updates ``bar``, forwards the rest."""

    def __init__(self, target: TextIO, bar: Any) -> None:
        self.target = target
        self.bar = bar
        self._pending = ""
        self.done = 0
        self.failed: list[str] = []

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        # A logging handler writes one whole record (all its lines, e.g. a traceback) per call,
        # ending in a newline; decide per record, on its first line.
        self._pending += text
        if self._pending.endswith("\n"):
            record, self._pending = self._pending, ""
            self._record(record)
        return len(text)

    def flush(self) -> None:
        # Never raise: IOBase.__del__ calls close() -> flush() whenever the garbage collector gets
        # to this object, possibly after the stream it wrapped (e.g. a test runner's) was closed.
        with contextlib.suppress(ValueError, OSError):
            if not getattr(self.target, "closed", False):
                self.target.flush()

    def _record(self, record: str) -> None:
        first = _ANSI.sub("", record.split("\n", 1)[0])
        if not _DAGSTER_LINE.search(first):
            self.bar.clear()
            try:
                self.target.write(record)
            except ValueError:  # the wrapped stream was closed under us: use the process's stderr
                if sys.__stderr__ is not None:
                    sys.__stderr__.write(record)
            self.bar.refresh()
            return
        match = _STEP_EVENT.search(first)
        if match is None:
            return
        step, event = match.group("step"), match.group("event")
        if event == "STEP_START":
            self.bar.set_postfix_str(step, refresh=True)
        elif event == "STEP_SUCCESS":
            self.done += 1
            self.bar.update(1)
        elif event == "STEP_FAILURE":
            self.failed.append(step)


@contextlib.contextmanager
def dagster_progress(desc: str, total: int | None = None, verbose: bool = False) -> Iterator[Any]:
    """Show a step progress bar while an in-process Dagster run logs to stderr (see module doc)."""
    if verbose or os.environ.get("PLASTICS_VERBOSE", "") not in ("", "0"):
        yield None
        return
    from tqdm import tqdm

    real = sys.stderr
    disable = True if os.environ.get("PLASTICS_PROGRESS", "") == "0" else None  # None: off unless a TTY
    with tqdm(total=total, desc=desc, unit="step", file=real, disable=disable, leave=False) as bar:
        filt = _StepFilter(real, bar)
        sys.stderr = filt
        try:
            yield filt
        finally:
            sys.stderr = real
            rest = filt._pending
            if rest and not _DAGSTER_LINE.search(_ANSI.sub("", rest.split("\n", 1)[0])):
                real.write(rest + "\n")
