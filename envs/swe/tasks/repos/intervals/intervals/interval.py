"""A single half-open interval ``[start, end)``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, order=True)
class Interval:
    """The half-open interval ``[start, end)`` over any totally ordered type.

    ``start`` is included, ``end`` is not; ``Interval(3, 3)`` is empty. Intervals
    sort by ``(start, end)``.

    >>> 3 in Interval(1, 4), 4 in Interval(1, 4)
    (True, False)
    """

    start: Any
    end: Any

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ValueError(f"interval end {self.end!r} is before its start {self.start!r}")

    def __repr__(self) -> str:
        return f"Interval({self.start!r}, {self.end!r})"

    @property
    def is_empty(self) -> bool:
        """True if the interval contains no points."""
        return self.start == self.end

    @property
    def length(self) -> Any:
        """``end - start`` (a number, or a ``timedelta`` for dates)."""
        return self.end - self.start

    def __contains__(self, value: Any) -> bool:
        return self.start <= value < self.end

    def overlaps(self, other: Interval) -> bool:
        """True if the two intervals share at least one point."""
        return self.start < other.end and other.start < self.end

    def touches(self, other: Interval) -> bool:
        """True if one interval ends exactly where the other starts."""
        return self.end == other.start or other.end == self.start

    def intersection(self, other: Interval) -> Interval | None:
        """The common part of both intervals, or ``None`` if they do not overlap."""
        if not self.overlaps(other):
            return None
        return Interval(max(self.start, other.start), min(self.end, other.end))

    def union(self, other: Interval) -> Interval:
        """The single interval covering both, which must overlap or touch.

        Raises:
            ValueError: if there is a gap between the two intervals.
        """
        if not (self.overlaps(other) or self.touches(other)):
            raise ValueError(f"{self!r} and {other!r} are disjoint; use IntervalSet for a union with gaps")
        return Interval(min(self.start, other.start), max(self.end, other.end))

    def shift(self, offset: Any) -> Interval:
        """The interval moved by ``offset``."""
        return Interval(self.start + offset, self.end + offset)
