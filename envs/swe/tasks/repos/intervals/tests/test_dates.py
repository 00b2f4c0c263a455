from datetime import date, timedelta

import pytest
from intervals import Interval, IntervalSet, days, format_date_range, iter_days, parse_date_range, split_by_month


def test_parse_date_range_is_inclusive():
    iv = parse_date_range("2024-03-01..2024-03-31")
    assert iv == Interval(date(2024, 3, 1), date(2024, 4, 1))
    assert days(iv) == 31


def test_parse_single_day():
    assert days(parse_date_range("2024-02-29")) == 1


def test_parse_date_range_reversed():
    with pytest.raises(ValueError):
        parse_date_range("2024-03-05..2024-03-01")


def test_format_date_range_roundtrip():
    assert format_date_range(parse_date_range("2023-06-10..2023-06-20")) == "2023-06-10..2023-06-20"
    assert format_date_range(parse_date_range("2023-06-10")) == "2023-06-10"


def test_iter_days():
    assert list(iter_days(parse_date_range("2024-02-28..2024-03-01"))) == [
        date(2024, 2, 28),
        date(2024, 2, 29),
        date(2024, 3, 1),
    ]


def test_split_by_month():
    pieces = split_by_month(parse_date_range("2024-01-30..2024-03-02"))
    assert [format_date_range(p) for p in pieces] == [
        "2024-01-30..2024-01-31",
        "2024-02-01..2024-02-29",
        "2024-03-01..2024-03-02",
    ]


def test_date_interval_set_total_length():
    s = IntervalSet([parse_date_range("2024-01-01..2024-01-10"), parse_date_range("2024-01-05..2024-01-12")])
    assert s.total_length(zero=timedelta(0)) == timedelta(days=12)
