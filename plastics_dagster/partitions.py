"""Partitions of the detection graph: ``roi`` (dynamic) x ``window`` (quarterly).

A partition key is a :class:`dagster.MultiPartitionKey` ``{"roi": NAME, "window": YYYY-MM-DD}``;
its string form is ``NAME|YYYY-MM-DD`` (dimension names sorted). For ``descartes_run`` the
``window`` is one spectrogram pair: the first composite's period start; the partner starts
``spectrogram_interval * mosaic_period`` months later (see :func:`plastics_core.geo.periods.pair_periods`).
For the detection window's assets (``heatmaps``, ``patch_geojson`` and downstream) the window
``W`` aggregates the pairs of the quarters ``W - (pairs - 1) .. W``: :data:`WINDOW_PAIRS_MAPPING`
(same ROI, the last :data:`~plastics_core.geo.periods.DEFAULT_PAIRS` quarters) maps it to them.

Only complete windows are offered: the ``window`` dimension ends at the last window whose pair
partner's quarter has ended (``end_offset=WINDOW_END_OFFSET``: a fixed lag of two quarters, so
the newest window advances by itself at each quarter boundary, with no date computed when the
definitions load). :func:`check_complete` additionally waits :data:`IMAGERY_LAG_DAYS` after the
partner's quarter for its last scenes to arrive: the sensors request no window inside that lag,
detection automation waits for it (:data:`LAG_CRON`), and a run of one -- launched from the UI,
automation, a sensor or the CLI -- fails in its first step with one line naming the date it
becomes complete. A window past the dimension's end (typed in the Launchpad) is refused by Dagster
itself before a run starts ("Could not find partition").

Partition keys of ``roi`` can be added outside the project's tools (the UI's *Add partition*,
the GraphQL API); a key that is not a valid ROI name is never used by a sensor, named by every
``plastics`` command and removable with ``plastics roi remove`` (:mod:`plastics_dagster.registry`).
"""

from __future__ import annotations

import datetime as dt
import warnings
from typing import Any, TypeVar

from dagster import (
    BetaWarning,
    DataVersion,
    DimensionPartitionMapping,
    DynamicPartitionsDefinition,
    IdentityPartitionMapping,
    MultiPartitionKey,
    MultiPartitionMapping,
    MultiPartitionsDefinition,
    Output,
    TimeWindowPartitionMapping,
    TimeWindowPartitionsDefinition,
)

from plastics_core.errors import ParameterError
from plastics_core.geo.periods import DEFAULT_PAIRS

#: Name of the dynamic ROI partitions definition (``instance.add_dynamic_partitions("roi", ...)``).
ROI_PARTITIONS_NAME = "roi"
WINDOW_CRON = "0 0 1 */3 *"
WINDOW_START = "2017-07-01"
WINDOW_FMT = "%Y-%m-%d"
#: quarters between a window's start and the end of its default pair partner's quarter, minus one
#: (mosaic_period 3 x spectrogram_interval 2 = 6 months): the last partition is the last complete window
WINDOW_END_OFFSET = -2
#: days after the partner quarter ends before a window counts as complete (runs, sensors, automation)
IMAGERY_LAG_DAYS = 5
#: the moment each quarter's newest window becomes complete: IMAGERY_LAG_DAYS after the quarter starts
LAG_CRON = f"0 0 {1 + IMAGERY_LAG_DAYS} 1,4,7,10 *"

T = TypeVar("T")

roi_partitions = DynamicPartitionsDefinition(name=ROI_PARTITIONS_NAME)
window_partitions = TimeWindowPartitionsDefinition(
    cron_schedule=WINDOW_CRON, start=WINDOW_START, fmt=WINDOW_FMT, end_offset=WINDOW_END_OFFSET
)
detect_partitions = MultiPartitionsDefinition({"roi": roi_partitions, "window": window_partitions})


def window_pairs_mapping(pairs: int = DEFAULT_PAIRS) -> MultiPartitionMapping:
    """(roi, W) -> the ``descartes_run`` partitions (roi, W - pairs + 1 quarters) .. (roi, W).

    Quarters before the first window are skipped (``allow_nonexistent_upstream_partitions``).
    A mapping's offset is static: the graph declares the default ``pairs``; a run with another
    ``pairs`` reads its own span from the store (:func:`plastics_core.method.window.load_window_pairs`)."""
    with warnings.catch_warnings():  # MultiPartitionMapping and allow_nonexistent_... are beta
        warnings.simplefilter("ignore", BetaWarning)
        return MultiPartitionMapping(
            {
                "roi": DimensionPartitionMapping("roi", IdentityPartitionMapping()),
                "window": DimensionPartitionMapping(
                    "window",
                    TimeWindowPartitionMapping(
                        start_offset=-(pairs - 1), end_offset=0, allow_nonexistent_upstream_partitions=True
                    ),
                ),
            }
        )


#: The lineage of a detection window: its last DEFAULT_PAIRS quarters' pairs.
WINDOW_PAIRS_MAPPING = window_pairs_mapping()


def data_version(run_hash: str, *quarters: str) -> DataVersion:
    """The ``DataVersion`` of a detection output made under ``run_hash`` (resolved parameters, method
    version, model checksums, imagery source, ROI geometry) from the pairs of ``quarters``
    (``YYYY-MM-DD``): the same inputs give the same version, so recomputing identical data is no
    update for automation (:mod:`plastics_dagster.automation`)."""
    return DataVersion(f"{run_hash}:{','.join(quarters)}")


def versioned_output(value: T, metadata: dict[str, Any], run_hash: str, *quarters: str) -> Output[T]:
    """``Output(value, metadata=...)`` with :func:`data_version` (``Output``'s ``data_version`` is beta)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BetaWarning)
        return Output(value, metadata=metadata, data_version=data_version(run_hash, *quarters))


def partition_key(roi: str, window: str) -> MultiPartitionKey:
    """The multi-partition key of one (ROI, window)."""
    return MultiPartitionKey({"roi": roi, "window": window})


def parse_window(window: str) -> dt.date:
    """``YYYY-MM-DD`` -> date; raises ParameterError unless it is a quarterly window start of a
    quarter that has ended (a window partition exists)."""
    from plastics_core.geo.periods import parse_day

    day = parse_day(window)  # strict: exactly YYYY-MM-DD
    start = dt.datetime.strptime(WINDOW_START, WINDOW_FMT).date()
    if day < start or day.day != 1 or day.month not in (1, 4, 7, 10):
        raise ParameterError(
            f"window {window} is not a quarterly window: use the first day of Jan/Apr/Jul/Oct from {WINDOW_START}"
        )
    last = window_partitions.get_last_partition_key()  # the latest quarter that has ended (now)
    if last is not None and window > last:
        raise ParameterError(
            f"window {window} is not complete yet (its pair partner's imagery must have "
            f"arrived): the newest complete window is {last}"
        )
    return day


def split_key(key: str | MultiPartitionKey) -> tuple[str, str]:
    """``(roi, window)`` of a multi-partition key (or its ``roi|window`` string form)."""
    if isinstance(key, MultiPartitionKey):
        dims = key.keys_by_dimension
        return dims["roi"], dims["window"]
    roi, _, window = str(key).partition("|")
    return roi, window


def window_ready(window: str, mosaic_period: int = 3, spectrogram_interval: int = 2) -> dt.date:
    """The first day on which ``window`` counts as complete: its partner period's end plus
    :data:`IMAGERY_LAG_DAYS`."""
    from plastics_core.geo.periods import pair_periods

    _, partner = pair_periods(parse_window(window), mosaic_period, spectrogram_interval)
    return partner.end + dt.timedelta(days=IMAGERY_LAG_DAYS)


def check_complete(
    window: str, today: dt.date | None = None, mosaic_period: int = 3, spectrogram_interval: int = 2
) -> dt.date:
    """``window`` as a date; raises ParameterError (one line) when it is not complete on ``today``."""
    day = parse_window(window)
    today = today or dt.date.today()
    ready = window_ready(window, mosaic_period, spectrogram_interval)
    if ready > today:
        done = complete_windows(today, mosaic_period, spectrogram_interval)
        hint = f"the newest complete window is {done[-1]}" if done else "no window is complete yet"
        raise ParameterError(
            f"window {window} is not complete until {ready} (its pair partner's imagery must "
            f"have arrived): {hint}"
        )
    return day


def complete_windows(today: dt.date, mosaic_period: int = 3, spectrogram_interval: int = 2) -> list[str]:
    """Quarterly windows (``YYYY-MM-DD``, oldest first) complete on ``today`` (see :func:`window_ready`)."""
    from plastics_core.geo.periods import add_months

    out: list[str] = []
    day = dt.datetime.strptime(WINDOW_START, WINDOW_FMT).date()
    last = window_partitions.get_last_partition_key() or ""  # never past the window dimension
    while (
        day.isoformat() <= last
        and window_ready(day.isoformat(), mosaic_period, spectrogram_interval) <= today
    ):
        out.append(day.isoformat())
        day = add_months(day, 3)
    return out
