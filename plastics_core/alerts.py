"""New-site alerts: one Slack-compatible webhook message per ROI and publication.

:func:`build_message` makes the JSON body (``text`` plus Slack ``blocks``: the count of new
unreviewed sites, the top sites by score with their address, and a link to the review page);
:func:`send_alert` POSTs it with bounded retries (tenacity): each attempt waits at most
``timeout_s`` for the receiver (a receiver that never answers is a timeout, not a hang), HTTP
429/5xx and connection faults are retried with exponential backoff until ``max_attempts`` or
``max_total_s`` is spent, and anything else (400, 403, 404) fails at once.

A webhook URL is a credential (Slack's secret is the URL's path): messages, logs and errors show
only :func:`redact_webhook` of it (scheme and host). Text from outside (addresses from the
geocoder, ROI names) is escaped for Slack's mrkdwn (``&``, ``<``, ``>``), so it cannot form a link
or a mention.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
import tenacity

from plastics_core.errors import PlasticsError

#: HTTP statuses worth another attempt
RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


class AlertError(PlasticsError):
    """The alert webhook refused the message, or did not accept it within the retry budget."""


@dataclass(frozen=True)
class AlertSite:
    """One site of an alert: ``score`` is the latest pixel score in [0, 1] (NaN when unknown),
    ``lon``/``lat`` in degrees (EPSG:4326), ``reason`` why it is in the review queue."""

    site_id: str
    score: float
    lon: float
    lat: float
    address: str = ""
    reason: str = "new"


@dataclass(frozen=True)
class AlertResult:
    """What :func:`send_alert` did: the HTTP status of the accepted attempt and how many attempts."""

    status: int
    attempts: int
    seconds: float


def redact_webhook(url: str) -> str:
    """``scheme://host[:port]/…`` of ``url``: no user, password, path, query or fragment (all of which
    may hold the webhook's secret). An unparsable URL gives ``<webhook>``."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<webhook>"
    if not parts.scheme or not host:
        return "<webhook>"
    return f"{parts.scheme}://{host}{port}/…"


def slack_escape(text: str) -> str:
    """``text`` with Slack's three control characters escaped (``&`` ``<`` ``>``), one line."""
    return " ".join(str(text).split()).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _score(value: float) -> str:
    return f"{value:.3f}" if math.isfinite(value) else "-"


def build_message(
    roi: str,
    sites: Sequence[AlertSite],
    review_url: str,
    *,
    publication: str = "",
    top_n: int = 5,
    synthetic: bool = False,
) -> dict[str, Any]:
    """The webhook body for ``sites`` (new unreviewed sites of one publication of ``roi``).

    Returns ``{"text": str, "blocks": [...]}`` (Slack incoming-webhook format; receivers that read
    only ``text`` get the whole message). The top ``top_n`` sites by score are listed; the link
    points at ``review_url`` (the review page of the ROI). Nothing in it comes from the environment.
    """
    ranked = sorted(sites, key=lambda s: (-s.score if math.isfinite(s.score) else math.inf, s.site_id))
    n = len(ranked)
    head = (
        f"{n} new site{'' if n == 1 else 's'} to review in ROI {slack_escape(roi)}"
        + (f" (publication {slack_escape(publication)})" if publication else "")
        + (" [synthetic demo scene]" if synthetic else "")
    )
    lines = []
    for s in ranked[: max(0, top_n)]:
        where = slack_escape(s.address) if s.address else f"{s.lat:.5f}, {s.lon:.5f}"
        reason = "" if s.reason == "new" else f" ({slack_escape(s.reason)})"
        lines.append(f"• `{slack_escape(s.site_id)}` score {_score(s.score)}: {where}{reason}")
    if n > len(lines):
        lines.append(f"… and {n - len(lines)} more")
    link = f"<{slack_escape(review_url)}|Open the review page>"
    text = "\n".join([head, *lines, link])
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*{head}*"}},
    ]
    if lines:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)}})
    blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": link}})
    return {"text": text, "blocks": blocks}


class _RetryableStatus(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


def _retryable(err: BaseException) -> bool:
    return isinstance(err, _RetryableStatus | requests.ConnectionError | requests.Timeout)


def _describe(err: BaseException | None) -> str:
    """A short cause that never repeats the URL (requests' messages do)."""
    if isinstance(err, _RetryableStatus):
        return f"HTTP {err.status}"
    if isinstance(err, requests.Timeout):
        return "no answer within the timeout"
    if isinstance(err, requests.ConnectionError):
        return "connection failed"
    return type(err).__name__ if err is not None else "unknown error"


def send_alert(
    webhook_url: str,
    message: dict[str, Any],
    *,
    timeout_s: float = 5.0,
    max_attempts: int = 4,
    max_total_s: float = 30.0,
    backoff_s: float = 0.5,
    session: requests.Session | None = None,
) -> AlertResult:
    """POST ``message`` as JSON to ``webhook_url``; retry transient failures.

    ``timeout_s``: seconds to connect and to wait for the answer, per attempt. Retries stop after
    ``max_attempts`` or once ``max_total_s`` seconds have passed since the first attempt, whichever
    comes first (so the worst case is about ``max_total_s + timeout_s``). Raises :class:`AlertError`
    (one line, URL redacted) when no attempt is accepted; a 2xx answer is success.
    """
    if not webhook_url.lower().startswith(("http://", "https://")):
        raise AlertError(
            f"alert webhook {redact_webhook(webhook_url)} is not an http(s) URL: set "
            "PLASTICS_ALERT_WEBHOOK to the webhook's https:// URL"
        )
    shown = redact_webhook(webhook_url)
    http = session or requests.Session()
    attempts = 0
    start = time.monotonic()

    def post() -> int:
        nonlocal attempts
        attempts += 1
        resp = http.post(webhook_url, json=message, timeout=(timeout_s, timeout_s), allow_redirects=False)
        resp.close()
        if resp.status_code in RETRY_STATUS:
            raise _RetryableStatus(resp.status_code)
        if not 200 <= resp.status_code < 300:
            raise AlertError(
                f"alert webhook {shown} answered HTTP {resp.status_code}: check "
                "PLASTICS_ALERT_WEBHOOK (the message was not sent)"
            )
        return int(resp.status_code)

    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception(_retryable),
        stop=tenacity.stop_after_attempt(max_attempts) | tenacity.stop_after_delay(max_total_s),
        wait=tenacity.wait_exponential(multiplier=backoff_s, max=max(backoff_s, max_total_s / 4)),
        reraise=False,
    )
    try:
        status = retrying(post)
    except tenacity.RetryError as err:
        cause = _describe(err.last_attempt.exception())
        raise AlertError(
            f"alert webhook {shown} did not accept the message after {attempts} attempt"
            f"{'' if attempts == 1 else 's'} in {time.monotonic() - start:.0f} s ({cause}); "
            "it is retried at the next publication check"
        ) from None
    finally:
        if session is None:
            http.close()
    return AlertResult(status=status, attempts=attempts, seconds=time.monotonic() - start)
