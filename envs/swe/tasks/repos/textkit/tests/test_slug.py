import pytest
from textkit import slugify


def test_basic_slug():
    assert slugify("Hello, World!") == "hello-world"


def test_runs_of_punctuation_collapse():
    assert slugify("  a -- b __ c  ") == "a-b-c"


def test_custom_separator():
    assert slugify("Release notes v2", sep="_") == "release_notes_v2"


def test_keep_case():
    assert slugify("Hello World", lowercase=False) == "Hello-World"


def test_max_length_cuts_at_separator():
    assert slugify("one two three", max_length=7) == "one-two"


def test_negative_max_length_rejected():
    with pytest.raises(ValueError):
        slugify("abc", max_length=-1)


def test_empty_text():
    assert slugify("") == ""
    assert slugify("!!!") == ""
