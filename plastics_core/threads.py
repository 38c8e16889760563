"""CPU threading for the numpy stages (compositing, the pixel models): how many worker threads,
and keeping BLAS single-threaded while our own pool runs."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def usable_threads(cap: int | None = None) -> int:
    """Worker threads = the cores this process may use (``$PLASTICS_THREADS`` overrides), at most ``cap``."""
    env = os.environ.get("PLASTICS_THREADS")
    if env and env.isdigit() and int(env) > 0:
        n = int(env)
    else:
        affinity = getattr(os, "sched_getaffinity", None)
        n = len(affinity(0)) if affinity else (os.cpu_count() or 1)
    return max(1, n if cap is None else min(cap, n))


def blas_single() -> Any:
    """Limit BLAS to one thread while our own pool runs chunks (if threadpoolctl exists)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover
        return nullcontext()
    return threadpool_limits(1, user_api="blas")


def map_threads(fn: Callable[[T], R], items: Iterable[T], threads: int) -> list[R]:
    """``[fn(x) for x in items]`` on ``threads`` worker threads, in order. When the caller is
    interrupted (SIGTERM/SIGINT raise in the main thread) or a chunk fails, chunks not yet started
    are cancelled instead of being run to the end, so the interrupt takes effect within one chunk."""
    pool = ThreadPoolExecutor(threads)
    try:
        results = list(pool.map(fn, items))
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    return results
