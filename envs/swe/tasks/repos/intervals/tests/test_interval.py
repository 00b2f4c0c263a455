import pytest
from intervals import Interval


def test_contains_is_half_open():
    iv = Interval(1, 4)
    assert 1 in iv
    assert 3.5 in iv
    assert 4 not in iv
    assert 0 not in iv


def test_empty_and_length():
    assert Interval(3, 3).is_empty
    assert not Interval(3, 4).is_empty
    assert Interval(2, 7).length == 5


def test_end_before_start_rejected():
    with pytest.raises(ValueError):
        Interval(5, 1)


def test_overlaps():
    assert Interval(1, 5).overlaps(Interval(4, 8))
    assert not Interval(1, 3).overlaps(Interval(5, 8))
    assert not Interval(1, 3).overlaps(Interval(3, 5))


def test_intersection():
    assert Interval(1, 5).intersection(Interval(3, 9)) == Interval(3, 5)
    assert Interval(1, 2).intersection(Interval(5, 6)) is None


def test_union_of_overlapping_and_touching():
    assert Interval(1, 5).union(Interval(3, 9)) == Interval(1, 9)
    assert Interval(1, 3).union(Interval(3, 5)) == Interval(1, 5)
    with pytest.raises(ValueError):
        Interval(1, 2).union(Interval(4, 5))


def test_shift_and_ordering():
    assert Interval(1, 3).shift(10) == Interval(11, 13)
    assert sorted([Interval(4, 5), Interval(1, 9), Interval(1, 2)]) == [Interval(1, 2), Interval(1, 9), Interval(4, 5)]
