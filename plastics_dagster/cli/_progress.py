"""A progress bar for an in-process Dagster run, fed by Dagster's console log lines.

``materialize()`` logs every event through Dagster's default console logger, which writes to
``sys.stderr`` at emit time. :func:`dagster_progress` swaps ``sys.stderr`` for a line filter
for the duration of the run: Dagster event lines (``... - dagster - LEVEL - ...``) are not
printed; ``STEP_START`` / ``STEP_SUCCESS`` lines advance a tqdm bar (on the real stderr) showing
the running step; every other line (warnings, user prints) passes through unchanged.
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
_STEP_EVENT = re.compile(r" - (?P<step>[^ ]+) - (?P<event>STEP_START|STEP_SUCCESS|STEP_FAILURE|STEP_SKIPPED) - ")
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
        self._pending += text
        while "\n" in self._pending:
            line, self._pending = self._pending.split("\n", 1)
            self._line(line)
        return len(text)

    def flush(self) -> None:
        self.target.flush()

    def _line(self, line: str) -> None:
        plain = _ANSI.sub("", line)
        if not _DAGSTER_LINE.search(plain):
            self.bar.clear()
            self.target.write(line + "\n")
            self.bar.refresh()
            return
        match = _STEP_EVENT.search(plain)
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
        sys.stderr = filt  # type: ignore[assignment]
        try:
            yield filt
        finally:
            sys.stderr = real
            rest = filt._pending
            if rest and not _DAGSTER_LINE.search(_ANSI.sub("", rest)):
                real.write(rest + "\n")
