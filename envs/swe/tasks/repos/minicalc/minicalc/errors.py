"""Exception hierarchy: every error minicalc raises is a :class:`CalcError`."""

from __future__ import annotations


class CalcError(Exception):
    """Base class of all minicalc errors."""


class ParseError(CalcError):
    """The input is not a valid expression.

    Attributes:
        pos: 0-based offset of the offending character in the source text.
        column: the same position, 1-based, as shown in messages.
    """

    def __init__(self, message: str, pos: int) -> None:
        self.pos = pos
        self.column = pos + 1
        super().__init__(f"{message} at column {self.column}")


class EvalError(CalcError):
    """The expression is well-formed but cannot be evaluated (division by zero, bad call, ...)."""


class UndefinedNameError(EvalError):
    """A variable or function name is not defined."""

    def __init__(self, name: str, kind: str = "variable") -> None:
        self.name = name
        super().__init__(f"undefined {kind} {name!r}")
