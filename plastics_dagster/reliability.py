"""Retry policy of the network-bound assets, and user errors that must not be retried.

- :data:`NETWORK_RETRY`: the Dagster ``RetryPolicy`` of every asset that talks to a network
  service (imagery fetch, model download, S3 store): 2 retries, 2 s then 4 s (exponential
  backoff, +-jitter). Sources retry transient faults themselves first
  (:mod:`plastics_core.imagery.retry`); this is the step-level net on top.
- :func:`fail_fast_on_user_errors`: wraps an asset function so a
  :class:`~plastics_core.errors.PlasticsError` (bad ROI, parameter, model, imagery, credentials:
  retrying cannot help) fails the step at once -- ``dagster.Failure(allow_retries=False)`` whose
  description is the error's one-line message (what the UI shows as the step's failure) and
  whose metadata ``error`` names the error class; the original traceback is not chained (a user
  error needs the sentence, not the frames; ``PLASTICS_DEBUG=1`` chains it). A spent
  source retry budget (:class:`~plastics_core.imagery.retry.RetryBudgetExceeded`) and any other
  exception stay retryable.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any, TypeVar

from dagster import Backoff, Failure, Jitter, RetryPolicy

from plastics_core.errors import PlasticsError

F = TypeVar("F", bound=Callable[..., Any])

NETWORK_RETRY = RetryPolicy(max_retries=2, delay=2.0, backoff=Backoff.EXPONENTIAL, jitter=Jitter.PLUS_MINUS)


def fail_fast_on_user_errors(fn: F) -> F:
    """Decorator (put it under ``@asset``): PlasticsError -> non-retryable ``Failure`` (same message)."""
    from plastics_core.imagery.retry import RetryBudgetExceeded

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except RetryBudgetExceeded:
            raise
        except PlasticsError as exc:
            failure = user_failure(exc)
            if os.environ.get("PLASTICS_DEBUG", "") not in ("", "0"):
                raise failure from exc
            raise failure from None

    return wrapper  # type: ignore[return-value]


def user_failure(exc: PlasticsError) -> Failure:
    """The non-retryable one-line ``Failure`` of a user error (metadata ``error``: its class name)."""
    return Failure(description=str(exc), metadata={"error": type(exc).__name__}, allow_retries=False)
