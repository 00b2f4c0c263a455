import pytest
from intervals import Interval, format_ranges, parse_ranges


def test_parse_single_numbers_and_ranges():
    assert list(parse_ranges("1-3,7")) == [Interval(1, 4), Interval(7, 8)]


def test_parse_overlapping_ranges_merge():
    assert list(parse_ranges("1-5,3-8")) == [Interval(1, 9)]


def test_parse_ignores_spaces_around_items():
    assert list(parse_ranges(" 10-12 ,  20 ")) == [Interval(10, 13), Interval(20, 21)]


@pytest.mark.parametrize("bad", ["abc", "1-", "5-2", "1..3"])
def test_parse_rejects_malformed(bad):
    with pytest.raises(ValueError):
        parse_ranges(bad)


def test_format_ranges():
    assert format_ranges(parse_ranges("1-3, 7-9")) == "1-3, 7-9"


def test_roundtrip():
    text = "2-4, 8-15, 40-41"
    assert format_ranges(parse_ranges(text)) == text
