"""Date windows: mosaic periods, spectrogram pairs, monthly frames.

A *window* (the Dagster ``window`` partition) is the first composite's period. Its pair
partner starts ``spectrogram_interval * mosaic_period`` months later. Periods are
half-open: ``start <= date < end``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from plastics_core.errors import ParameterError


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


def window_span(
    window_start: dt.date, mosaic_period: int = 3, spectrogram_interval: int = 2
) -> Period:
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
