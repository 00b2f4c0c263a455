"""Parsing and formatting integer range lists such as ``"1-5, 7, 10-12"``."""

from __future__ import annotations

import re

from intervals.interval import Interval
from intervals.intervalset import IntervalSet

_RANGE = re.compile(r"^(-?\d+)(?:\s*-\s*(-?\d+))?$")


def parse_ranges(text: str) -> IntervalSet:
    """Parse a comma-separated list of inclusive integer ranges.

    Each item is ``N`` or ``LO-HI`` (inclusive, so ``"1-3"`` is 1, 2 and 3); numbers
    may be negative (``"-5--2"``). Blank items are ignored. The result stores the
    half-open equivalents, e.g. ``"1-3"`` becomes ``Interval(1, 4)``.

    Raises:
        ValueError: for a malformed item or a range whose end is below its start.

    >>> parse_ranges("1-3, 7")
    IntervalSet([Interval(1, 4), Interval(7, 8)])
    """
    items: list[Interval] = []
    for item in text.split(","):
        token = item.strip()
        if not token:
            continue
        match = _RANGE.match(token)
        if match is None:
            raise ValueError(f"invalid range {token!r}")
        lo = int(match.group(1))
        hi = int(match.group(2)) if match.group(2) is not None else lo
        if hi < lo:
            raise ValueError(f"range {token!r} ends before it starts")
        items.append(Interval(lo, hi + 1))
    return IntervalSet(items)


def format_ranges(ranges: IntervalSet) -> str:
    """Format an integer :class:`IntervalSet` back into ``"1-3, 7"`` form (inverse of :func:`parse_ranges`).

    >>> format_ranges(IntervalSet([Interval(1, 4), Interval(7, 8)]))
    '1-3, 7'
    """
    parts = []
    for iv in ranges:
        last = iv.end - 1
        parts.append(str(iv.start) if last == iv.start else f"{iv.start}-{last}")
    return ", ".join(parts)
