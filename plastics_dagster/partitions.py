"""Partitions of the detection graph: ``roi`` (dynamic) x ``window`` (quarterly).

A partition key is a :class:`dagster.MultiPartitionKey` ``{"roi": NAME, "window": YYYY-MM-DD}``;
its string form is ``NAME|YYYY-MM-DD`` (dimension names sorted). The ``window`` is the first
composite's period start; the pair partner starts ``spectrogram_interval * mosaic_period`` months
later (see :func:`plastics_core.periods.pair_periods`).
"""

from __future__ import annotations

import datetime as dt

from dagster import (
    DynamicPartitionsDefinition,
    MultiPartitionKey,
    MultiPartitionsDefinition,
    TimeWindowPartitionsDefinition,
)

from plastics_core.errors import ParameterError

#: Name of the dynamic ROI partitions definition (``instance.add_dynamic_partitions("roi", ...)``).
ROI_PARTITIONS_NAME = "roi"
WINDOW_CRON = "0 0 1 */3 *"
WINDOW_START = "2017-07-01"
WINDOW_FMT = "%Y-%m-%d"

roi_partitions = DynamicPartitionsDefinition(name=ROI_PARTITIONS_NAME)
window_partitions = TimeWindowPartitionsDefinition(
    cron_schedule=WINDOW_CRON, start=WINDOW_START, fmt=WINDOW_FMT
)
detect_partitions = MultiPartitionsDefinition({"roi": roi_partitions, "window": window_partitions})


def partition_key(roi: str, window: str) -> MultiPartitionKey:
    """The multi-partition key of one (ROI, window)."""
    return MultiPartitionKey({"roi": roi, "window": window})


def parse_window(window: str) -> dt.date:
    """``YYYY-MM-DD`` -> date; raises ParameterError unless it is a quarterly window start of a
    quarter that has ended (a window partition exists)."""
    try:
        day = dt.datetime.strptime(window, WINDOW_FMT).date()
    except ValueError:
        raise ParameterError(f"window {window!r} is not a date: use YYYY-MM-DD, e.g. 2021-01-01") from None
    start = dt.datetime.strptime(WINDOW_START, WINDOW_FMT).date()
    if day < start or day.day != 1 or day.month not in (1, 4, 7, 10):
        raise ParameterError(
            f"window {window} is not a quarterly window: use the first day of Jan/Apr/Jul/Oct from {WINDOW_START}"
        )
    last = window_partitions.get_last_partition_key()  # the latest quarter that has ended (now)
    if last is not None and window > last:
        raise ParameterError(f"window {window} has not ended yet: use a window up to {last} "
                             "(a window is a partition once its quarter is over)")
    return day


def split_key(key: str | MultiPartitionKey) -> tuple[str, str]:
    """``(roi, window)`` of a multi-partition key (or its ``roi|window`` string form)."""
    if isinstance(key, MultiPartitionKey):
        dims = key.keys_by_dimension
        return dims["roi"], dims["window"]
    roi, _, window = str(key).partition("|")
    return roi, window
