"""A normalised set of disjoint intervals."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Iterator
from typing import Any

from intervals.interval import Interval


def _merge(intervals: Iterable[Interval]) -> list[Interval]:
    """Sort ``intervals`` and merge the ones that overlap or touch; drop empty ones."""
    merged: list[Interval] = []
    for iv in sorted((iv for iv in intervals if not iv.is_empty), key=lambda iv: (iv.start, iv.end)):
        if merged and iv.start <= merged[-1].end:
            last = merged[-1]
            merged[-1] = Interval(last.start, max(last.end, iv.end))
        else:
            merged.append(iv)
    return merged


class IntervalSet:
    """A set of points stored as sorted, disjoint, non-touching half-open intervals.

    >>> s = IntervalSet([Interval(5, 7), Interval(1, 3), Interval(2, 4)])
    >>> list(s)
    [Interval(1, 4), Interval(5, 7)]
    """

    def __init__(self, intervals: Iterable[Interval] = ()) -> None:
        self._intervals: list[Interval] = list(intervals)
        self._normalize()

    def _normalize(self) -> None:
        self._intervals[:] = _merge(self._intervals)

    # -- container protocol ------------------------------------------------
    def __iter__(self) -> Iterator[Interval]:
        return iter(list(self._intervals))

    def __len__(self) -> int:
        """The number of disjoint intervals (not the number of points)."""
        return len(self._intervals)

    def __bool__(self) -> bool:
        return bool(self._intervals)

    def __contains__(self, value: Any) -> bool:
        starts = [iv.start for iv in self._intervals]
        i = bisect_right(starts, value) - 1
        return i >= 0 and value in self._intervals[i]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, IntervalSet):
            return NotImplemented
        return self._intervals == other._intervals

    def __repr__(self) -> str:
        return f"IntervalSet({self._intervals!r})"

    def copy(self) -> IntervalSet:
        """A shallow copy (intervals are immutable)."""
        return IntervalSet(self._intervals)

    # -- mutation ----------------------------------------------------------
    def add(self, interval: Interval) -> None:
        """Add ``interval``, merging it with any interval it overlaps or touches."""
        self._intervals.append(interval)
        self._normalize()

    def discard(self, interval: Interval) -> None:
        """Remove every point of ``interval`` from the set."""
        out: list[Interval] = []
        for cur in self._intervals:
            if not cur.overlaps(interval):
                out.append(cur)
                continue
            if cur.start < interval.start:
                out.append(Interval(cur.start, interval.start))
            if interval.end < cur.end:
                out.append(Interval(interval.end, cur.end))
        self._intervals = out

    # -- set algebra -------------------------------------------------------
    def union(self, other: IntervalSet) -> IntervalSet:
        """Points in either set."""
        return IntervalSet([*self._intervals, *other._intervals])

    def intersection(self, other: IntervalSet) -> IntervalSet:
        """Points in both sets."""
        out: list[Interval] = []
        i = j = 0
        a, b = self._intervals, other._intervals
        while i < len(a) and j < len(b):
            common = a[i].intersection(b[j])
            if common is not None:
                out.append(common)
            if a[i].end < b[j].end:
                i += 1
            else:
                j += 1
        return IntervalSet(out)

    def difference(self, other: IntervalSet) -> IntervalSet:
        """Points in this set but not in ``other``."""
        result = self.copy()
        for iv in other._intervals:
            result.discard(iv)
        return result

    __or__ = union
    __and__ = intersection
    __sub__ = difference

    def complement(self, within: Interval) -> IntervalSet:
        """The gaps of this set inside ``within``.

        >>> IntervalSet([Interval(2, 4)]).complement(Interval(0, 10))
        IntervalSet([Interval(0, 2), Interval(4, 10)])
        """
        gaps: list[Interval] = []
        cursor = within.start
        for iv in self._intervals:
            if iv.end <= within.start:
                continue
            if iv.start >= within.end:
                break
            if iv.start > cursor:
                gaps.append(Interval(cursor, iv.start))
            cursor = max(cursor, iv.end)
        if cursor < within.end:
            gaps.append(Interval(cursor, within.end))
        return IntervalSet(gaps)

    def total_length(self, zero: Any = 0) -> Any:
        """The summed length of all intervals (pass ``zero=timedelta(0)`` for dates)."""
        return sum((iv.length for iv in self._intervals), zero)

    @property
    def bounds(self) -> Interval | None:
        """The smallest interval covering the whole set, or ``None`` if it is empty."""
        if not self._intervals:
            return None
        return Interval(self._intervals[0].start, self._intervals[-1].end)
