import pytest
from minicalc import ParseError, parse
from minicalc.nodes import Assign, BinOp, Call, Name, Number, free_names, to_source


def test_multiplication_binds_tighter_than_addition():
    assert to_source(parse("1 + 2 * 3")) == "(1 + (2 * 3))"


def test_parentheses():
    assert to_source(parse("(1 + 2) * 3")) == "((1 + 2) * 3)"


def test_multiplicative_left_associative():
    assert to_source(parse("8 / 4 / 2")) == "((8 / 4) / 2)"
    assert to_source(parse("7 % 4 * 2")) == "((7 % 4) * 2)"


def test_single_power():
    assert parse("x ^ 2") == BinOp("^", Name("x"), Number(2))
    assert to_source(parse("2 * 3 ^ 2")) == "(2 * (3 ^ 2))"


def test_negative_exponent():
    assert to_source(parse("2 ^ -1")) == "(2 ^ (-1))"


def test_unary_minus_on_term():
    assert to_source(parse("-x * 3")) == "((-x) * 3)"


def test_function_calls():
    assert parse("max(1, x, 2 + 3)") == Call("max", (Number(1), Name("x"), BinOp("+", Number(2), Number(3))))
    assert parse("f()") == Call("f", ())


def test_assignment_is_right_associative():
    assert parse("a = b = 3") == Assign("a", Assign("b", Number(3)))


@pytest.mark.parametrize("bad", ["1 +", "(1 + 2", "max(1,", "* 2", ")"])
def test_syntax_errors(bad):
    with pytest.raises(ParseError):
        parse(bad)


def test_parse_error_reports_column():
    with pytest.raises(ParseError, match="column"):
        parse("(1 + 2")


def test_free_names():
    assert free_names(parse("x * y + 2")) == {"x", "y"}
    assert free_names(parse("2 ^ 8")) == set()
