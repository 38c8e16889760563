"""Bounded retries with exponential backoff for transient HTTP / S3 / GDAL faults.

One policy object (:class:`RetryPolicy`) is shared by the STAC, GeoTIFF-over-HTTP/S3 and
EarthOne code paths; the store's S3 calls use :func:`call_within_budget`, :func:`is_transient`
and :func:`one_line`. Only *transient* failures are retried (HTTP 429/5xx, connection resets,
timeouts, GDAL "HTTP response code: 5xx" read errors); anything else (404, bad request, bad
credentials) fails at once. When the budget is spent the last error is re-raised wrapped in
:class:`~plastics_core.errors.ImageryError` with one line naming the operation, the attempts and
the cause. The loop itself is tenacity's.
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import tenacity

from plastics_core.errors import ImageryError, PlasticsError
from plastics_core.redact import redact, redacted_cause

T = TypeVar("T")
log = logging.getLogger(__name__)

#: HTTP statuses treated as transient.
TRANSIENT_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})

_TRANSIENT_TEXT = re.compile(
    r"(HTTP response code: ?(408|425|429|5\d\d))|timed? ?out|timeout|connection (reset|refused|aborted)"
    r"|temporarily unavailable|SlowDown|RequestTimeout|InternalError|ServiceUnavailable"
    r"|Remote end closed|IncompleteRead|BrokenPipe|Max retries exceeded",
    re.IGNORECASE,
)


def is_transient(err: BaseException) -> bool:
    """True for errors worth retrying: transient HTTP statuses, connection/timeout faults.

    Looks at ``status_code`` / ``response.status_code`` attributes (requests, pystac-client
    ``APIError``, botocore) and, failing that, at the message text (GDAL/rasterio errors).
    """
    if isinstance(err, PlasticsError):
        return False
    status = getattr(err, "status_code", None)
    if status is None and isinstance(getattr(err, "status", None), int):  # earthone ClientError/ServerError
        status = err.status  # type: ignore[attr-defined]
    if status is None:
        response = getattr(err, "response", None)
        status = getattr(response, "status_code", None)
        if status is None and isinstance(response, dict):  # botocore ClientError
            status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    if isinstance(status, int):
        return status in TRANSIENT_STATUS
    if isinstance(err, ConnectionError | TimeoutError):
        return True
    return bool(_TRANSIENT_TEXT.search(str(err)))


@dataclass(frozen=True)
class RetryPolicy:
    """``attempts`` tries in total (>= 1); sleep ``base_delay * 2**k`` (capped at
    ``max_delay``, scaled by a random factor in [1 - jitter, 1]) between tries."""

    attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 8.0
    jitter: float = 0.5

    def delay(self, retry_index: int) -> float:
        """Seconds to sleep before retry number ``retry_index`` (0-based)."""
        raw = min(self.base_delay * (2.0**retry_index), self.max_delay)
        return raw * random.uniform(1.0 - self.jitter, 1.0)


#: No waiting: for tests.
NO_WAIT = RetryPolicy(attempts=3, base_delay=0.0, max_delay=0.0, jitter=0.0)


class RetryBudgetExceeded(ImageryError):
    """A transient fault persisted through every attempt of the retry budget."""


def retry_call(
    fn: Callable[[], T],
    *,
    what: str,
    policy: RetryPolicy | None = None,
    transient: Callable[[BaseException], bool] = is_transient,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call ``fn()`` until it succeeds, retrying transient failures within ``policy`` (tenacity).

    ``what`` names the operation in logs and in the final error (redacted with
    :func:`plastics_core.redact.redact`, so a URL in it shows no userinfo or query value). Non-transient errors propagate unchanged on the first occurrence; when every attempt failed
    transiently, :class:`RetryBudgetExceeded` names the operation, the attempts and the last cause.
    """
    pol = policy or RetryPolicy()
    if pol.attempts < 1:
        raise ValueError(f"retry attempts must be >= 1, got {pol.attempts}")
    what = redact(what)
    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(pol.attempts),
        wait=lambda state: pol.delay(state.attempt_number - 1),
        retry=tenacity.retry_if_exception(lambda err: isinstance(err, Exception) and transient(err)),
        before_sleep=lambda state: log.warning(
            "%s: transient error (%s); retry %d/%d in %.1fs",
            what,
            _last_error(state),
            state.attempt_number,
            pol.attempts - 1,
            state.next_action.sleep if state.next_action else 0.0,
        ),
        sleep=sleep,
        reraise=False,
    )
    return call_within_budget(
        retrying,
        fn,
        lambda last: (
            f"{what} failed after {pol.attempts} attempts ({_last_error(last)}): the service is "
            "unavailable; retry later or raise the retry budget"
        ),
    )


def call_within_budget(
    retrying: tenacity.Retrying, fn: Callable[[], T], message: Callable[[tenacity.Future], str]
) -> T:
    """``retrying(fn)``; when its budget is spent, :class:`RetryBudgetExceeded` with
    ``message(last attempt)``, chained to the last exception's redacted stand-in
    (:func:`plastics_core.redact.redacted_cause`)."""
    try:
        return retrying(fn)
    except tenacity.RetryError as err:
        last = err.last_attempt.exception()
        raise RetryBudgetExceeded(message(err.last_attempt)) from (redacted_cause(last) if last else None)


def _last_error(outcome: tenacity.RetryCallState | tenacity.Future) -> str:
    """One line for the exception of a failed attempt (a retry state or its outcome)."""
    fut = outcome.outcome if isinstance(outcome, tenacity.RetryCallState) else outcome
    return one_line(fut.exception() if fut is not None else None)


def one_line(err: BaseException | None, limit: int = 160) -> str:
    """``err`` as one redacted line of at most ``limit`` characters (its type name when it has no
    text, ``HTTP <status>`` in front when it carries a status code the text lacks; ``?`` for None)."""
    if err is None:
        return "?"
    text = redact(" ".join(str(err).split())) or type(err).__name__
    status = getattr(err, "status_code", None)
    if isinstance(status, int) and str(status) not in text:
        text = f"HTTP {status} {text}"
    return text if len(text) <= limit else text[: limit - 3] + "..."
