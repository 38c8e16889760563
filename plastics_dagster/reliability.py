"""Retry policy of the network-bound assets, and user errors that must not be retried.

- :data:`NETWORK_RETRY` / :data:`STORE_RETRY`: the Dagster ``RetryPolicy`` of every asset that
  talks to a network service (imagery fetch, model download) or writes to the store: 4 retries,
  waits of 6, 18, 42 and 90 s (each +-6 s jitter; Dagster's exponential backoff), 132-180 s in all. Sources and the store retry transient
  faults themselves first (:mod:`plastics_core.retry`, :func:`plastics_core.storage.store.s3_call`,
  120 s); this is the step-level net on top.
- :func:`fail_fast_on_user_errors`: wraps an asset function so a
  :class:`~plastics_core.errors.PlasticsError` (bad ROI, parameter, model, imagery, credentials:
  retrying cannot help) fails the step at once -- ``dagster.Failure(allow_retries=False)`` whose
  description is the error's one-line message (what the UI shows as the step's failure) and
  whose metadata ``error`` names the error class; the original traceback is not chained (a user
  error needs the sentence, not the frames; ``PLASTICS_DEBUG=1`` chains it). A deterministic
  error (:func:`is_deterministic`: a data error such as a ``ValueError``, ``KeyError`` or
  ``TypeError`` -- a malformed answer, a corrupt file -- that no network fault caused) fails the
  step at once too, chained to its traceback: it would repeat on every retry. A spent source
  retry budget (:class:`~plastics_core.retry.RetryBudgetExceeded`), a transient fault
  (network, HTTP 5xx, timeouts) and any other exception stay retryable. Under ``plastics run``
  (:data:`STOP_ON_INTERRUPT_ENV`), an interrupt (SIGTERM/SIGINT) fails the step for good and
  every step that starts after it fails at once, so the run stops (no signal is sent: one landing
  after the run's end would interrupt the CLI's own clean-up).
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from dagster import Backoff, Failure, Jitter, RetryPolicy

from plastics_core.errors import PlasticsError

F = TypeVar("F", bound=Callable[..., Any])

#: 4 retries after waits of 6, 18, 42 and 90 s (Dagster's exponential backoff ``(2**n - 1) * 6`` s, each
#: +-6 s): between 132 and 180 s of waiting in all, so a store or service outage of a minute is ridden
#: out at step level too.
NETWORK_RETRY = RetryPolicy(max_retries=4, delay=6.0, backoff=Backoff.EXPONENTIAL, jitter=Jitter.PLUS_MINUS)
#: The policy of every asset that writes to the store (the same budget).
STORE_RETRY = NETWORK_RETRY


#: Set to ``1`` by ``plastics run`` while it executes: an interrupted step then fails for good and
#: the in-process run stops (Dagster would otherwise retry an interrupted step by its policy, in
#: the same process, so the run never stops). Unset (step workers of Celery/k8s), Dagster's own
#: behaviour applies: the interrupted step ends its process and is retried elsewhere.
STOP_ON_INTERRUPT_ENV = "PLASTICS_STOP_ON_INTERRUPT"
#: After an interrupt, the process exits with 130 if the run has not ended within this many seconds.
HARD_STOP_SECONDS = 30.0
#: class names of the errors a stopping run raises in a step (a signal, or a stopped run)
INTERRUPT_ERRORS = frozenset({"DagsterExecutionInterruptedError", "KeyboardInterrupt"})
_stopping = threading.Event()


def _stop_run_soon() -> None:
    """Mark this process as stopping: every step that starts afterwards fails at once (see
    :func:`fail_fast_on_user_errors`), so no further step runs; a watchdog ends the process if the
    run has not ended in time."""
    if not _stopping.is_set():
        _stopping.set()
        watchdog = threading.Timer(HARD_STOP_SECONDS, os._exit, (130,))
        watchdog.daemon = True
        watchdog.start()


def reset_stop() -> None:
    """Forget an earlier interrupt of this process (``plastics run`` calls it when it starts)."""
    _stopping.clear()


#: exception types whose failure repeats on a retry: errors in the data, not in reaching it
DETERMINISTIC_ERRORS: tuple[type[BaseException], ...] = (ValueError, TypeError, LookupError, ArithmeticError)
#: class names (anywhere in the cause chain) of network faults: retried even inside a deterministic type
_NETWORK_ERRORS = frozenset(
    {
        "EndpointConnectionError",
        "ConnectTimeoutError",
        "ReadTimeoutError",
        "ConnectionClosedError",
        "ClientConnectorError",
        "ServerDisconnectedError",
        "ClientOSError",
        "ClientResponseError",
        "ProtocolError",
        "ChunkedEncodingError",
    }
)


def is_deterministic(exc: BaseException) -> bool:
    """True when ``exc`` is one of :data:`DETERMINISTIC_ERRORS` and nothing in its cause chain is a
    transient or network fault (:func:`plastics_core.retry.is_transient`, connection and
    timeout errors): retrying the step would fail the same way."""
    from plastics_core.retry import is_transient

    if not isinstance(exc, DETERMINISTIC_ERRORS):
        return False
    cur: BaseException | None = exc
    for _ in range(16):
        if cur is None:
            return True
        if (
            isinstance(cur, ConnectionError | TimeoutError)
            or type(cur).__name__ in _NETWORK_ERRORS
            or is_transient(cur)
        ):
            return False
        cur = cur.__cause__ or cur.__context__
    return True


def fail_fast_on_user_errors(fn: F) -> F:
    """Decorator (put it under ``@asset``): PlasticsError -> non-retryable ``Failure`` (same message)."""
    from plastics_core.retry import RetryBudgetExceeded

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if _stopping.is_set() and os.environ.get(STOP_ON_INTERRUPT_ENV) == "1":
            raise Failure(
                description="not started: the run is stopping after SIGTERM/SIGINT", allow_retries=False
            )
        try:
            return fn(*args, **kwargs)
        except RetryBudgetExceeded:
            raise
        except PlasticsError as exc:
            failure = user_failure(exc)
            if os.environ.get("PLASTICS_DEBUG", "") not in ("", "0"):
                raise failure from exc
            raise failure from None
        except Exception as exc:
            if not is_deterministic(exc):
                raise
            text = " ".join(str(exc).split())[:300] or "no message"
            raise Failure(
                description=f"{type(exc).__name__}: {text} (a data error: not retried)", allow_retries=False
            ) from exc
        except BaseException as exc:
            if type(exc).__name__ not in INTERRUPT_ERRORS or os.environ.get(STOP_ON_INTERRUPT_ENV) != "1":
                raise
            _stop_run_soon()
            raise Failure(description="interrupted by SIGTERM/SIGINT", allow_retries=False) from exc

    return wrapper  # type: ignore[return-value]


def user_failure(exc: PlasticsError) -> Failure:
    """The non-retryable one-line ``Failure`` of a user error (metadata ``error``: its class name)."""
    return Failure(description=str(exc), metadata={"error": type(exc).__name__}, allow_retries=False)
