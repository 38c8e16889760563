"""Which worker runs a step: the celery worker's node name and queue, else host and pid.

Recorded in ``infer_tile``'s output metadata (``worker``, ``queue``, ``pid``) so a run can show
(and CI can assert) that every tile ran on the GPU-queue worker.
"""

from __future__ import annotations

import os
import socket
from typing import Any


def _celery_request() -> Any:
    """The current celery task's request, or None outside a celery worker task."""
    try:
        from celery import current_task
    except ImportError:  # pragma: no cover - celery is a pinned dependency
        return None
    task = current_task
    if task is None or getattr(task, "request", None) is None:
        return None
    return task.request if getattr(task.request, "hostname", None) else None


def worker_identity() -> dict[str, Any]:
    """``{"worker": celery node name (e.g. plastics-gpu@host) or hostname, "queue": the celery
    routing queue ('' outside celery), "pid": process id}``."""
    request = _celery_request()
    if request is None:
        return {"worker": socket.gethostname(), "queue": "", "pid": os.getpid()}
    info = getattr(request, "delivery_info", None) or {}
    routing_key = str(info.get("routing_key") or "")
    return {"worker": str(request.hostname), "queue": routing_key.split(".")[0], "pid": os.getpid()}
