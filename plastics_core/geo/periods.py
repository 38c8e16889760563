"""Date windows: mosaic periods, spectrogram pairs, monthly frames.

A *window* (the Dagster ``window`` partition) is the first composite's period. Its pair
partner starts ``spectrogram_interval * mosaic_period`` months later. Periods are
half-open: ``start <= date < end``.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from plastics_core.errors import ParameterError

_ISO_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
#: what a window looks like, for error messages
WINDOW_FORM = "YYYY-MM-DD, the first day of a quarter (Jan/Apr/Jul/Oct 1st), e.g. 2021-01-01"


def parse_day(text: object, what: str = "window", form: str = WINDOW_FORM) -> dt.date:
    """The one parser of dates given as text (windows, ``--start``, ``--end``): exactly
    ``YYYY-MM-DD``, zero-padded ASCII digits (``2021-1-1``, ``20210101`` and ``2021-01-01T00:00``
    are refused). Raises ParameterError (one line naming ``what``, the text and ``form``)."""
    if not isinstance(text, str) or not _ISO_DAY.fullmatch(text):
        raise ParameterError(f"{what} {str(text)[:40]!r} is not a date in the form {form}")
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise ParameterError(f"{what} {text!r} is not a date (no such day): use the form {form}") from None


@dataclass(frozen=True, order=True)
class Period:
    """A half-open date interval ``[start, end)``."""

    start: dt.date
    end: dt.date

    def __post_init__(self) -> None:
        if self.end <= self.start:
            raise ParameterError(
                f"period end {self.end} is not after start {self.start}: give an end date after the start"
            )

    def contains(self, day: dt.date) -> bool:
        return self.start <= day < self.end

    @property
    def label(self) -> str:
        """``YYYY-MM-DD_YYYY-MM-DD`` (end exclusive); used in band descriptions and ids."""
        return f"{self.start.isoformat()}_{self.end.isoformat()}"


def add_months(day: dt.date, months: int) -> dt.date:
    """``day`` moved by whole months (day of month clamped to 28 for safety is NOT done:
    callers pass first-of-month dates; other days raise)."""
    if day.day != 1:
        raise ParameterError(f"window date {day} is not the first of a month: use YYYY-MM-01")
    total = day.year * 12 + (day.month - 1) + months
    return dt.date(total // 12, total % 12 + 1, 1)


def pair_periods(
    window_start: dt.date, mosaic_period: int = 3, spectrogram_interval: int = 2
) -> tuple[Period, Period]:
    """The two composite periods of one window: ``(k, k + spectrogram_interval)``.

    >>> pair_periods(dt.date(2021, 1, 1))
    (Period(start=datetime.date(2021, 1, 1), end=datetime.date(2021, 4, 1)), Period(start=datetime.date(2021, 7, 1), end=datetime.date(2021, 10, 1)))
    """
    if mosaic_period < 1:
        raise ParameterError(f"mosaic_period must be >= 1 month, got {mosaic_period}")
    if spectrogram_interval < 1:
        raise ParameterError(f"spectrogram_interval must be >= 1 period, got {spectrogram_interval}")
    first = Period(window_start, add_months(window_start, mosaic_period))
    partner_start = add_months(window_start, spectrogram_interval * mosaic_period)
    return first, Period(partner_start, add_months(partner_start, mosaic_period))


def window_span(window_start: dt.date, mosaic_period: int = 3, spectrogram_interval: int = 2) -> Period:
    """Everything one window reads: from the first period's start to the partner's end."""
    first, partner = pair_periods(window_start, mosaic_period, spectrogram_interval)
    return Period(first.start, partner.end)


def monthly_periods(span: Period) -> list[Period]:
    """Consecutive one-month periods covering ``span`` (used for contour frames)."""
    out: list[Period] = []
    cur = span.start
    while cur < span.end:
        nxt = add_months(cur, 1)
        out.append(Period(cur, min(nxt, span.end)))
        cur = nxt
    return out


#: Pairs a detection window aggregates by default (GPW's 2019-01..2021-06 runs scored about eight).
DEFAULT_PAIRS = 8
MAX_PAIRS = 24


def window_pair_starts(
    window_start: dt.date, pairs: int = DEFAULT_PAIRS, mosaic_period: int = 3, earliest: dt.date | None = None
) -> list[dt.date]:
    """First-period starts of the ``pairs`` spectrogram pairs a detection window aggregates,
    oldest first, ending with ``window_start`` itself (the window's own pair); starts before
    ``earliest`` are dropped (the partitions begin there).

    >>> [d.isoformat() for d in window_pair_starts(dt.date(2021, 1, 1), 3)]
    ['2020-07-01', '2020-10-01', '2021-01-01']
    """
    if not 1 <= pairs <= MAX_PAIRS:
        raise ParameterError(
            f"pairs {pairs} is outside [1, {MAX_PAIRS}]: give a whole number of pairs in that range"
        )
    starts = [add_months(window_start, -mosaic_period * k) for k in range(pairs - 1, -1, -1)]
    return [s for s in starts if earliest is None or s >= earliest]


def range_pair_starts(
    start: dt.date, end: dt.date, mosaic_period: int = 3, spectrogram_interval: int = 2
) -> list[dt.date]:
    """Every pair of a date range, as GPW's ``Detect(start_date, end_date)`` scored them: first
    periods start at ``start`` and every ``mosaic_period`` months after while the partner period
    ends on or before ``end`` (inclusive end date). ``start`` must be a first of month.

    >>> len(range_pair_starts(dt.date(2019, 1, 1), dt.date(2021, 6, 30)))
    8
    """
    if end < start:
        raise ParameterError(f"end {end} is before start {start}: give an end date after the start")
    out: list[dt.date] = []
    cur = start
    while True:
        _, partner = pair_periods(cur, mosaic_period, spectrogram_interval)
        if partner.end > end + dt.timedelta(days=1):
            return out
        out.append(cur)
        cur = add_months(cur, mosaic_period)
