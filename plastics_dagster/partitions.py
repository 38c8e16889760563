"""Partitions of the detection graph: ``roi`` (dynamic) x ``window`` (quarterly).

A partition key is a :class:`dagster.MultiPartitionKey` ``{"roi": NAME, "window": YYYY-MM-DD}``;
its string form is ``NAME|YYYY-MM-DD`` (dimension names sorted). For ``descartes_run`` the
``window`` is one spectrogram pair: the first composite's period start; the partner starts
``spectrogram_interval * mosaic_period`` months later (see :func:`plastics_core.periods.pair_periods`).
For the detection window's assets (``heatmaps``, ``patch_geojson`` and downstream) the window
``W`` aggregates the pairs of the quarters ``W - (pairs - 1) .. W``: :data:`WINDOW_PAIRS_MAPPING`
(same ROI, the last :data:`~plastics_core.periods.DEFAULT_PAIRS` quarters) maps it to them.
"""

from __future__ import annotations

import datetime as dt
import warnings

from dagster import (
    BetaWarning,
    DimensionPartitionMapping,
    DynamicPartitionsDefinition,
    IdentityPartitionMapping,
    MultiPartitionKey,
    MultiPartitionMapping,
    MultiPartitionsDefinition,
    TimeWindowPartitionMapping,
    TimeWindowPartitionsDefinition,
)

from plastics_core.errors import ParameterError
from plastics_core.periods import DEFAULT_PAIRS

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


def window_pairs_mapping(pairs: int = DEFAULT_PAIRS) -> MultiPartitionMapping:
    """(roi, W) -> the ``descartes_run`` partitions (roi, W - pairs + 1 quarters) .. (roi, W).

    Quarters before the first window are skipped (``allow_nonexistent_upstream_partitions``).
    A mapping's offset is static: the graph declares the default ``pairs``; a run with another
    ``pairs`` reads its own span from the store (:func:`plastics_core.window.load_window_pairs`)."""
    with warnings.catch_warnings():  # MultiPartitionMapping and allow_nonexistent_... are beta
        warnings.simplefilter("ignore", BetaWarning)
        return MultiPartitionMapping({
            "roi": DimensionPartitionMapping("roi", IdentityPartitionMapping()),
            "window": DimensionPartitionMapping("window", TimeWindowPartitionMapping(
                start_offset=-(pairs - 1), end_offset=0, allow_nonexistent_upstream_partitions=True)),
        })


#: The lineage of a detection window: its last DEFAULT_PAIRS quarters' pairs.
WINDOW_PAIRS_MAPPING = window_pairs_mapping()


def partition_key(roi: str, window: str) -> MultiPartitionKey:
    """The multi-partition key of one (ROI, window)."""
    return MultiPartitionKey({"roi": roi, "window": window})


def parse_window(window: str) -> dt.date:
    """``YYYY-MM-DD`` -> date; raises ParameterError unless it is a quarterly window start."""
    try:
        day = dt.datetime.strptime(window, WINDOW_FMT).date()
    except ValueError:
        raise ParameterError(f"window {window!r} is not a date: use YYYY-MM-DD, e.g. 2021-01-01") from None
    start = dt.datetime.strptime(WINDOW_START, WINDOW_FMT).date()
    if day < start or day.day != 1 or day.month not in (1, 4, 7, 10):
        raise ParameterError(
            f"window {window} is not a quarterly window: use the first day of Jan/Apr/Jul/Oct from {WINDOW_START}"
        )
    return day


def split_key(key: str | MultiPartitionKey) -> tuple[str, str]:
    """``(roi, window)`` of a multi-partition key (or its ``roi|window`` string form)."""
    if isinstance(key, MultiPartitionKey):
        dims = key.keys_by_dimension
        return dims["roi"], dims["window"]
    roi, _, window = str(key).partition("|")
    return roi, window
