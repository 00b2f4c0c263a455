"""Calendar helpers: date ranges as half-open ``Interval``s of ``datetime.date``."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta

from intervals.interval import Interval

ONE_DAY = timedelta(days=1)
RANGE_SEPARATOR = ".."


def parse_date_range(text: str) -> Interval:
    """Parse ``"YYYY-MM-DD..YYYY-MM-DD"`` (both days inclusive) or a single ``"YYYY-MM-DD"``.

    >>> parse_date_range("2024-01-30..2024-02-02")
    Interval(datetime.date(2024, 1, 30), datetime.date(2024, 2, 3))
    """
    first, sep, last = text.partition(RANGE_SEPARATOR)
    start = date.fromisoformat(first.strip())
    end = date.fromisoformat(last.strip()) if sep else start
    if end < start:
        raise ValueError(f"date range {text!r} ends before it starts")
    return Interval(start, end + ONE_DAY)


def format_date_range(interval: Interval) -> str:
    """Format a date interval as ``"YYYY-MM-DD..YYYY-MM-DD"`` with an inclusive last day."""
    if interval.is_empty:
        raise ValueError("cannot format an empty date range")
    last = interval.end - ONE_DAY
    if last == interval.start:
        return interval.start.isoformat()
    return f"{interval.start.isoformat()}{RANGE_SEPARATOR}{last.isoformat()}"


def days(interval: Interval) -> int:
    """The number of days in a date interval."""
    return int((interval.end - interval.start).days)


def iter_days(interval: Interval) -> Iterator[date]:
    """Yield every day of a date interval, in order."""
    day = interval.start
    while day < interval.end:
        yield day
        day += ONE_DAY


def _first_of_next_month(day: date) -> date:
    if day.month == 12:
        return date(day.year + 1, 1, 1)
    return date(day.year, day.month + 1, 1)


def split_by_month(interval: Interval) -> list[Interval]:
    """Split a date interval at month boundaries.

    >>> [format_date_range(p) for p in split_by_month(parse_date_range("2024-01-30..2024-02-02"))]
    ['2024-01-30..2024-01-31', '2024-02-01..2024-02-02']
    """
    pieces: list[Interval] = []
    start = interval.start
    while start < interval.end:
        end = min(_first_of_next_month(start), interval.end)
        pieces.append(Interval(start, end))
        start = end
    return pieces
