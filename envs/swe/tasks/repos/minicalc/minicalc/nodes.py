"""Syntax tree nodes and helpers."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Number:
    """A numeric literal."""

    value: int | float


@dataclass(frozen=True)
class Name:
    """A variable or constant reference."""

    id: str


@dataclass(frozen=True)
class UnaryOp:
    """``-operand`` or ``+operand``."""

    op: str
    operand: Node


@dataclass(frozen=True)
class BinOp:
    """A binary operation: one of ``+ - * / % ^``."""

    op: str
    left: Node
    right: Node


@dataclass(frozen=True)
class Call:
    """A function call ``func(args...)``."""

    func: str
    args: tuple[Node, ...]


@dataclass(frozen=True)
class Assign:
    """``name = value``; evaluates to the assigned value."""

    name: str
    value: Node


Node = Number | Name | UnaryOp | BinOp | Call | Assign


def free_names(node: Node) -> set[str]:
    """Return the variable names an expression reads (function names are not included).

    >>> sorted(free_names(BinOp("+", Name("x"), Call("max", (Name("y"), Number(1))))))
    ['x', 'y']
    """
    if isinstance(node, Number):
        return set()
    if isinstance(node, Name):
        return {node.id}
    if isinstance(node, UnaryOp):
        return free_names(node.operand)
    if isinstance(node, BinOp):
        return free_names(node.left) | free_names(node.right)
    if isinstance(node, Call):
        names: set[str] = set()
        for arg in node.args:
            names |= free_names(arg)
        return names
    return free_names(node.value)


def to_source(node: Node) -> str:
    """Render a node back to fully parenthesised source text.

    >>> to_source(BinOp("-", Number(1), UnaryOp("-", Name("x"))))
    '(1 - (-x))'
    """
    if isinstance(node, Number):
        return repr(node.value)
    if isinstance(node, Name):
        return node.id
    if isinstance(node, UnaryOp):
        return f"({node.op}{to_source(node.operand)})"
    if isinstance(node, BinOp):
        return f"({to_source(node.left)} {node.op} {to_source(node.right)})"
    if isinstance(node, Call):
        return f"{node.func}({', '.join(to_source(a) for a in node.args)})"
    return f"{node.name} = {to_source(node.value)}"
