"""intervals: half-open interval arithmetic for numbers and dates."""

from intervals.dates import days, format_date_range, iter_days, parse_date_range, split_by_month
from intervals.interval import Interval
from intervals.intervalset import IntervalSet
from intervals.parse import format_ranges, parse_ranges

__all__ = [
    "Interval",
    "IntervalSet",
    "days",
    "format_date_range",
    "format_ranges",
    "iter_days",
    "parse_date_range",
    "parse_ranges",
    "split_by_month",
]

__version__ = "1.2.0"
