"""Built-in functions callable from expressions."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from minicalc.errors import EvalError

Number = int | float


@dataclass(frozen=True)
class Function:
    """A callable with a fixed range of accepted argument counts.

    Attributes:
        name: the name used in expressions.
        impl: the Python implementation.
        min_args: the fewest arguments accepted.
        max_args: the most arguments accepted, or ``None`` for no limit.
    """

    name: str
    impl: Callable[..., Number]
    min_args: int
    max_args: int | None

    def __call__(self, *args: Number) -> Number:
        if len(args) < self.min_args or (self.max_args is not None and len(args) > self.max_args):
            raise EvalError(f"{self.name}() takes {self._arity()} arguments, got {len(args)}")
        try:
            return self.impl(*args)
        except (ValueError, OverflowError) as exc:
            raise EvalError(f"{self.name}(): {exc}") from None

    def _arity(self) -> str:
        if self.max_args is None:
            return f"at least {self.min_args}"
        if self.max_args == self.min_args:
            return str(self.min_args)
        return f"{self.min_args} to {self.max_args}"


def _round(x: Number, digits: Number = 0) -> Number:
    return round(x, int(digits)) if digits else round(x)


BUILTINS: dict[str, Function] = {
    f.name: f
    for f in [
        Function("abs", abs, 1, 1),
        Function("sqrt", math.sqrt, 1, 1),
        Function("sin", math.sin, 1, 1),
        Function("cos", math.cos, 1, 1),
        Function("tan", math.tan, 1, 1),
        Function("log", math.log, 1, 2),
        Function("exp", math.exp, 1, 1),
        Function("floor", math.floor, 1, 1),
        Function("ceil", math.ceil, 1, 1),
        Function("round", _round, 1, 2),
        Function("min", min, 1, None),
        Function("max", max, 1, None),
    ]
}

CONSTANTS: dict[str, float] = {"pi": math.pi, "e": math.e}
