import pytest
from textkit import closest, hamming, levenshtein, similarity


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [("kitten", "sitting", 3), ("flaw", "lawn", 2), ("", "abc", 3), ("abc", "abc", 0), ("abc", "", 3)],
)
def test_levenshtein(a, b, expected):
    assert levenshtein(a, b) == expected


def test_levenshtein_ignore_case():
    assert levenshtein("Hello", "hELLO", ignore_case=True) == 0
    assert levenshtein("Hello", "hELLO") == 5


def test_hamming():
    assert hamming("karolin", "kathrin") == 3
    with pytest.raises(ValueError):
        hamming("a", "ab")


def test_similarity():
    assert similarity("abcd", "abce") == 0.75
    assert similarity("abc", "xyz") == 0.0


def test_closest_unique_best():
    assert closest("appel", ["apple", "maple", "banana"]) == "apple"


def test_closest_none_within_distance():
    assert closest("banana", ["apple", "cherry"]) is None
