import pytest
from minicalc import ParseError, tokenize


def kinds_and_texts(text):
    return [(t.kind, t.text) for t in tokenize(text)]


def test_tokenize_expression():
    assert kinds_and_texts("x=2*(y+10)") == [
        ("NAME", "x"),
        ("OP", "="),
        ("NUMBER", "2"),
        ("OP", "*"),
        ("OP", "("),
        ("NAME", "y"),
        ("OP", "+"),
        ("NUMBER", "10"),
        ("OP", ")"),
        ("EOF", ""),
    ]


def test_number_values():
    tokens = tokenize("42 2.5 3. 1e3")
    assert [t.value for t in tokens[:-1]] == [42, 2.5, 3.0, 1000.0]
    assert isinstance(tokens[0].value, int)


def test_positions_skip_whitespace():
    assert [t.pos for t in tokenize("  ab +  1")] == [2, 5, 8, 9]


def test_names_with_underscores_and_digits():
    assert [t.text for t in tokenize("_tmp2 + rate_1")][:3] == ["_tmp2", "+", "rate_1"]


def test_unexpected_character():
    with pytest.raises(ParseError) as info:
        tokenize("1 + $")
    assert info.value.pos == 4


def test_value_of_non_number():
    with pytest.raises(TypeError):
        _ = tokenize("x")[0].value
