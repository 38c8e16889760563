"""How ``plastics run`` stops on SIGTERM / SIGINT, wherever the signal lands.

Dagster only raises an interrupt inside a step's user code: a signal that arrives between two
steps is held until the next step starts, and one that arrives after a run's last step (while
the run's events are written) is dropped when that run ends. ``plastics run`` executes two
Dagster runs in a row (the window's ``detect_job`` run, the ROI's ``registry_job`` run), so a signal in that last
gap would let the next run start as if nothing happened. :func:`stoppable` therefore also
listens below Python's signal handlers: the interpreter writes every delivered signal's number
to a wakeup pipe (``signal.set_wakeup_fd``) whichever Python handler is installed, and
:meth:`StopRequests.requested` reads it between runs.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequests:
    """Records SIGINT/SIGTERM delivered to this process while :func:`stoppable` is active."""

    def __init__(self, read_fd: int | None = None) -> None:
        self._fd = read_fd
        self._seen = False

    def requested(self) -> bool:
        """True once SIGINT or SIGTERM has been delivered (sticky); never blocks."""
        while self._fd is not None and not self._seen:
            try:
                data = os.read(self._fd, 512)
            except BlockingIOError:
                break
            if not data:
                break
            self._seen = any(b in STOP_SIGNALS for b in data)
        return self._seen


@contextlib.contextmanager
def stoppable() -> Iterator[StopRequests]:
    """SIGTERM and SIGINT interrupt the run (handlers restored on exit); yields the
    :class:`StopRequests` to check between Dagster runs.

    Both signals get Python's interrupt handler (KeyboardInterrupt), also when SIGINT was ignored
    (a background job): Dagster then interrupts the executing step's code, fails the step and ends
    the run (temp files of unfinished writes are removed; finished tiles stay in the store) and
    the CLI exits 130 with one line. Without this, Dagster copies an ignored SIGINT onto SIGTERM
    and the run cannot be stopped but by SIGKILL. Off the main thread (signals cannot be handled
    there) nothing is changed and no stop is ever requested.
    """
    if threading.current_thread() is not threading.main_thread():
        yield StopRequests()
        return
    from plastics_dagster.reliability import STOP_ON_INTERRUPT_ENV, reset_stop

    reset_stop()
    saved = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    saved_env = os.environ.get(STOP_ON_INTERRUPT_ENV)
    read_fd, write_fd = os.pipe()
    os.set_blocking(read_fd, False)
    os.set_blocking(write_fd, False)
    for sig in saved:
        signal.signal(sig, signal.default_int_handler)
    saved_wakeup = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    os.environ[STOP_ON_INTERRUPT_ENV] = "1"
    try:
        yield StopRequests(read_fd)
    finally:
        signal.set_wakeup_fd(saved_wakeup)
        for sig, handler in saved.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        if saved_env is None:
            os.environ.pop(STOP_ON_INTERRUPT_ENV, None)
        else:
            os.environ[STOP_ON_INTERRUPT_ENV] = saved_env
        os.close(read_fd)
        os.close(write_fd)
