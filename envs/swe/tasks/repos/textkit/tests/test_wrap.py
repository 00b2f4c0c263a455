import pytest
from textkit import fill, indent, truncate, wrap


def test_wrap_simple():
    assert wrap("the quick brown fox jumps", 12) == ["the quick", "brown fox", "jumps"]


def test_wrap_collapses_whitespace():
    assert wrap("a\n\n  b\tc", 20) == ["a b c"]


def test_wrap_breaks_long_words():
    assert wrap("abcdefghij xy", 4) == ["abcd", "efgh", "ij", "xy"]


def test_wrap_keeps_long_words_when_asked():
    assert wrap("abcdefghij xy", 4, break_long_words=False) == ["abcdefghij", "xy"]


def test_wrap_rejects_bad_width():
    with pytest.raises(ValueError):
        wrap("abc", 0)


def test_wrap_empty():
    assert wrap("", 10) == []
    assert fill("   ", 10) == ""


def test_fill_joins_lines():
    assert fill("the quick brown fox jumps", 12) == "the quick\nbrown fox\njumps"


def test_truncate_short_text_unchanged():
    assert truncate("short", 10) == "short"
    assert truncate("exact", 5) == "exact"


def test_truncate_without_suffix():
    assert truncate("abcdefgh", 5, suffix="") == "abcde"


def test_truncate_word_boundary_without_suffix():
    assert truncate("The quick brown fox", 12, suffix="", word_boundary=True) == "The quick"


def test_truncate_tiny_length():
    assert truncate("abcdef", 2) == ".."


def test_truncate_negative_length():
    with pytest.raises(ValueError):
        truncate("abc", -1)


def test_indent():
    assert indent("a\n\nb", "> ") == "> a\n\n> b"
    assert indent("a\n\nb", "> ", skip_empty=False) == "> a\n> \n> b"
