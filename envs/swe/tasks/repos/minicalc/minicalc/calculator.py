"""A stateful calculator session with parse and result caching."""

from __future__ import annotations

from collections.abc import Mapping

from minicalc.evaluator import Evaluator, Value
from minicalc.nodes import Assign, Node, free_names
from minicalc.parser import parse


class Calculator:
    """Evaluates statements one after another, keeping variables between them.

    Parsed trees are cached by source text, and the results of expressions that
    read no variables are memoised, so re-evaluating the same formula is cheap.

    >>> calc = Calculator()
    >>> calc.evaluate("x = 3")
    3
    >>> calc.evaluate("x * 2")
    6
    """

    def __init__(self, variables: Mapping[str, Value] | None = None) -> None:
        self.evaluator = Evaluator(variables)
        self._trees: dict[str, Node] = {}
        self._constant_results: dict[str, Value] = {}

    @property
    def variables(self) -> dict[str, Value]:
        """The current variables (a live view; prefer :meth:`set` for changes)."""
        return self.evaluator.variables

    def set(self, name: str, value: Value) -> None:
        """Set a variable."""
        self.evaluator.variables[name] = value

    def compile(self, text: str) -> Node:
        """Parse ``text``, using the cache when possible."""
        tree = self._trees.get(text)
        if tree is None:
            tree = self._trees[text] = parse(text)
        return tree

    def evaluate(self, text: str) -> Value:
        """Parse and evaluate one statement."""
        if text in self._constant_results:
            return self._constant_results[text]
        tree = self.compile(text)
        value = self.evaluator.evaluate(tree)
        if not isinstance(tree, Assign) and not free_names(tree):
            self._constant_results[text] = value
        return value

    def clear_cache(self) -> None:
        """Forget cached trees and results."""
        self._trees.clear()
        self._constant_results.clear()


def evaluate(text: str, variables: Mapping[str, Value] | None = None) -> Value:
    """Evaluate one statement with an optional set of variables.

    >>> evaluate("2 * (3 + 4) ^ 2")
    98
    >>> evaluate("a / b", {"a": 1, "b": 4})
    0.25
    """
    return Evaluator(variables).evaluate(parse(text))
