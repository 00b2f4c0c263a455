from intervals import Interval, IntervalSet


def test_overlapping_intervals_are_merged_and_sorted():
    s = IntervalSet([Interval(5, 7), Interval(1, 3), Interval(2, 4)])
    assert list(s) == [Interval(1, 4), Interval(5, 7)]
    assert len(s) == 2


def test_empty_intervals_dropped():
    s = IntervalSet([Interval(2, 2), Interval(5, 6)])
    assert list(s) == [Interval(5, 6)]


def test_membership():
    s = IntervalSet([Interval(1, 4), Interval(10, 20)])
    assert 2 in s
    assert 15.5 in s
    assert 4 not in s
    assert 7 not in s
    assert 20 not in s
    assert 0 not in s


def test_add_merges_overlap():
    s = IntervalSet([Interval(1, 4)])
    s.add(Interval(3, 6))
    s.add(Interval(10, 12))
    assert list(s) == [Interval(1, 6), Interval(10, 12)]


def test_discard_splits_interval():
    s = IntervalSet([Interval(0, 10)])
    s.discard(Interval(3, 5))
    assert list(s) == [Interval(0, 3), Interval(5, 10)]


def test_union_and_intersection():
    a = IntervalSet([Interval(0, 5), Interval(10, 15)])
    b = IntervalSet([Interval(3, 12)])
    assert list(a | b) == [Interval(0, 15)]
    assert list(a & b) == [Interval(3, 5), Interval(10, 12)]


def test_difference():
    a = IntervalSet([Interval(0, 10)])
    b = IntervalSet([Interval(2, 3), Interval(6, 8)])
    assert list(a - b) == [Interval(0, 2), Interval(3, 6), Interval(8, 10)]
    assert list(a) == [Interval(0, 10)]


def test_complement_inside_bounds():
    s = IntervalSet([Interval(0, 2), Interval(5, 10)])
    assert list(s.complement(Interval(0, 10))) == [Interval(2, 5)]


def test_total_length_and_bounds():
    s = IntervalSet([Interval(1, 4), Interval(10, 12)])
    assert s.total_length() == 5
    assert s.bounds == Interval(1, 12)
    assert IntervalSet([Interval(0, 0)]).bounds is None


def test_equality_and_repr():
    assert IntervalSet([Interval(1, 3), Interval(2, 5)]) == IntervalSet([Interval(1, 5)])
    assert repr(IntervalSet([Interval(1, 2)])) == "IntervalSet([Interval(1, 2)])"
    assert not IntervalSet([Interval(0, 0)])
