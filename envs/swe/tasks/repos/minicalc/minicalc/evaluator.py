"""Evaluating syntax trees."""

from __future__ import annotations

from collections.abc import Mapping

from minicalc.errors import EvalError, UndefinedNameError
from minicalc.functions import BUILTINS, CONSTANTS, Function
from minicalc.nodes import Assign, BinOp, Call, Name, Node, Number, UnaryOp

Value = int | float


class Evaluator:
    """Evaluates syntax trees against a variable environment.

    Args:
        variables: initial variable values; copied, so the caller's mapping is never modified.
        functions: extra functions, added to (or overriding) the built-ins.
    """

    def __init__(
        self,
        variables: Mapping[str, Value] | None = None,
        functions: Mapping[str, Function] | None = None,
    ) -> None:
        self.variables: dict[str, Value] = dict(variables or {})
        self.functions: dict[str, Function] = {**BUILTINS, **(functions or {})}

    def lookup(self, name: str) -> Value:
        """The value of a variable or constant."""
        if name in self.variables:
            return self.variables[name]
        if name in CONSTANTS:
            return CONSTANTS[name]
        raise UndefinedNameError(name)

    def function(self, name: str) -> Function:
        """The function called ``name``."""
        try:
            return self.functions[name]
        except KeyError:
            raise UndefinedNameError(name, kind="function") from None

    def evaluate(self, node: Node) -> Value:
        """Evaluate ``node``; assignments update :attr:`variables`."""
        if isinstance(node, Number):
            return node.value
        if isinstance(node, Name):
            return self.lookup(node.id)
        if isinstance(node, UnaryOp):
            operand = self.evaluate(node.operand)
            return -operand if node.op == "-" else operand
        if isinstance(node, BinOp):
            return self._binop(node.op, self.evaluate(node.left), self.evaluate(node.right))
        if isinstance(node, Call):
            func = self.function(node.func)
            return func(*(self.evaluate(arg) for arg in node.args))
        if isinstance(node, Assign):
            if node.name in CONSTANTS:
                raise EvalError(f"cannot assign to constant {node.name!r}")
            value = self.evaluate(node.value)
            self.variables[node.name] = value
            return value
        raise TypeError(f"not a syntax tree node: {node!r}")

    @staticmethod
    def _binop(op: str, left: Value, right: Value) -> Value:
        if op == "+":
            return left + right
        if op == "-":
            return left - right
        if op == "*":
            return left * right
        if op in ("/", "%") and right == 0:
            raise EvalError("division by zero")
        if op == "/":
            quotient = left / right
            return int(quotient) if isinstance(left, int) and isinstance(right, int) and left % right == 0 else quotient
        if op == "%":
            return left % right
        if op == "^":
            try:
                result = left**right
            except (OverflowError, ZeroDivisionError) as exc:
                raise EvalError(f"cannot compute {left!r} ^ {right!r}: {exc}") from None
            if isinstance(result, complex):
                raise EvalError(f"{left!r} ^ {right!r} is not a real number")
            return result
        raise EvalError(f"unknown operator {op!r}")
