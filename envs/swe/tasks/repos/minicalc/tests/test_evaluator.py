import math

import pytest
from minicalc import EvalError, UndefinedNameError, evaluate


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1 + 2 * 3", 7),
        ("(1 + 2) * 3", 9),
        ("7 % 3", 1),
        ("6 / 3", 2),
        ("7 / 2", 3.5),
        ("2 ^ 10", 1024),
        ("-3 + 5", 2),
        ("2 * -3", -6),
        ("+4", 4),
    ],
)
def test_arithmetic(text, expected):
    assert evaluate(text) == expected


def test_integer_division_stays_int():
    assert isinstance(evaluate("6 / 3"), int)


def test_variables():
    assert evaluate("a * b + 1", {"a": 3, "b": 4}) == 13


def test_constants():
    assert evaluate("pi") == math.pi
    assert evaluate("e ^ 1") == math.e


def test_functions():
    assert evaluate("max(3, 9, 4)") == 9
    assert evaluate("min(3, 9, 4)") == 3
    assert evaluate("sqrt(16)") == 4.0
    assert evaluate("round(2.567, 2)") == 2.57
    assert evaluate("abs(-2) + floor(2.7)") == 4


def test_undefined_variable():
    with pytest.raises(UndefinedNameError) as info:
        evaluate("x + 1")
    assert info.value.name == "x"


def test_cannot_assign_to_constant():
    with pytest.raises(EvalError):
        evaluate("pi = 3")


def test_domain_errors_are_eval_errors():
    with pytest.raises(EvalError):
        evaluate("sqrt(-1)")
    with pytest.raises(EvalError):
        evaluate("(-8) ^ 0.5")
