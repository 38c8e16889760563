"""Stage timers: wall and CPU seconds accumulated per named stage (for benchmarks and logs)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager


class StageTimer:
    """``with timer("decode"): ...`` adds the block's wall seconds and this process's CPU
    seconds (all threads) to ``totals["decode"] = [wall_s, cpu_s]``. Stages may nest; each
    counts its own block in full (an outer stage includes its inner ones)."""

    def __init__(self) -> None:
        self.totals: dict[str, list[float]] = {}

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        w, c = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            tot = self.totals.setdefault(stage, [0.0, 0.0])
            tot[0] += time.perf_counter() - w
            tot[1] += time.process_time() - c

    def reset(self) -> None:
        self.totals.clear()
