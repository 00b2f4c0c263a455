"""A small parser for ALFRED-domain PDDL problems, the ``(define (problem ...) ...)`` files ALFWorld writes.

Why our own parser: the native engine must load a problem in well under a millisecond and must not depend on
fast-downward or textworld. We only need the subset ALFWorld emits: typed ``:objects``, ground ``:init`` atoms
(numeric ``(= (totalCost) 0)`` facts are skipped), an optional ``:metric`` and a ``:goal`` built from and / or /
not / exists / forall / ``=`` over atoms. Errors name the line and token so a broken sample is quick to fix.

Names keep the case written in the file; PDDL is case-insensitive and the engine lowercases them (as
fast-downward does) where that matters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Union

__all__ = [
    "And",
    "Atom",
    "Exists",
    "Forall",
    "Formula",
    "Not",
    "Or",
    "PddlError",
    "Problem",
    "parse_problem",
]


class PddlError(ValueError):
    """A malformed problem; the message starts with ``line N:`` and quotes the offending token."""

    def __init__(self, message: str, line: int, token: str | None = None) -> None:
        self.line = line
        self.token = token
        where = f"line {line}: " + (f"{message} at {token!r}" if token is not None else message)
        super().__init__(where)


# ---------------------------------------------------------------------------------------------- formula AST


@dataclass(frozen=True, slots=True)
class Atom:
    """``(pred arg ...)``; args are object names or ``?variables``. ``=`` is an atom with predicate ``"="``."""

    pred: str
    args: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Not:
    """``(not f)``."""

    body: Formula


@dataclass(frozen=True, slots=True)
class And:
    """``(and f ...)``; an empty ``and`` is true."""

    parts: tuple[Formula, ...]


@dataclass(frozen=True, slots=True)
class Or:
    """``(or f ...)``; an empty ``or`` is false."""

    parts: tuple[Formula, ...]


@dataclass(frozen=True, slots=True)
class Exists:
    """``(exists (?v - type ...) body)``; ``variables`` holds ``(name, type)`` pairs with the ``?`` kept."""

    variables: tuple[tuple[str, str], ...]
    body: Formula


@dataclass(frozen=True, slots=True)
class Forall:
    """``(forall (?v - type ...) body)``."""

    variables: tuple[tuple[str, str], ...]
    body: Formula


Formula = Union[Atom, Not, And, Or, Exists, Forall]  # noqa: UP007 - a runtime alias used by isinstance-free code


@dataclass(slots=True)
class Problem:
    """A parsed problem: objects grouped by type (file order), ground init atoms, and the goal formula."""

    name: str
    domain: str
    objects: dict[str, list[str]] = field(default_factory=dict)
    init: list[tuple[str, ...]] = field(default_factory=list)
    goal: Formula = field(default_factory=lambda: And(()))

    def object_types(self) -> dict[str, str]:
        """Object name -> type, for callers that look objects up by name."""
        return {name: typ for typ, names in self.objects.items() for name in names}


# ---------------------------------------------------------------------------------------------- s-expressions

_TOKEN_RE = re.compile(r"\s+|;[^\n]*|\(|\)|[^\s();]+")
_NAME_RE = re.compile(r"^[A-Za-z0-9_\-?.@=+*/<>!:]+$")


@dataclass(slots=True)
class _Tok:
    text: str
    line: int


@dataclass(slots=True)
class _List:
    items: list[_Node]
    line: int


_Node = Union[_Tok, _List]  # noqa: UP007


def _tokenize(text: str) -> list[_Tok]:
    """Split into parens and names, dropping whitespace and ``;`` comments; reject characters PDDL never uses."""
    tokens: list[_Tok] = []
    line = 1
    for match in _TOKEN_RE.finditer(text):
        piece = match.group()
        if piece[0].isspace() or piece[0] == ";":
            line += piece.count("\n")
            continue
        if piece not in "()" and not _NAME_RE.match(piece):
            raise PddlError("bad token", line, piece)
        tokens.append(_Tok(piece, line))
    return tokens


def _read_tree(tokens: list[_Tok]) -> _List:
    """Build the nested lists; the file must be exactly one balanced top-level list."""
    stack: list[_List] = []
    root: _List | None = None
    for tok in tokens:
        if tok.text == "(":
            stack.append(_List([], tok.line))
        elif tok.text == ")":
            if not stack:
                raise PddlError("unbalanced parentheses: unexpected", tok.line, ")")
            done = stack.pop()
            if stack:
                stack[-1].items.append(done)
            elif root is None:
                root = done
            else:
                raise PddlError("text after the end of the problem", tok.line, ")")
        elif not stack:
            raise PddlError("text outside the problem", tok.line, tok.text)
        else:
            stack[-1].items.append(tok)
    if stack:
        raise PddlError("unbalanced parentheses: '(' never closed", stack[-1].line, "(")
    if root is None:
        raise PddlError("empty problem", tokens[-1].line if tokens else 1)
    return root


# ---------------------------------------------------------------------------------------------- sections


def _name(node: _Node, what: str) -> str:
    if not isinstance(node, _Tok) or node.text in "()":
        raise PddlError(f"expected {what}, found a list", node.line, "(")
    return node.text


def _typed_list(items: list[_Node]) -> list[tuple[str, str]]:
    """``a b - t1 c - t2 d`` -> [(a, t1), (b, t1), (c, t2), (d, object)]."""
    out: list[tuple[str, str]] = []
    pending: list[str] = []
    i = 0
    while i < len(items):
        text = _name(items[i], "a name")
        if text == "-":
            if i + 1 >= len(items) or not pending:
                raise PddlError("a '-' must sit between names and a type", items[i].line, "-")
            typ = _name(items[i + 1], "a type")
            out.extend((n, typ) for n in pending)
            pending = []
            i += 2
            continue
        pending.append(text)
        i += 1
    out.extend((n, "object") for n in pending)
    return out


def _init_fact(node: _Node) -> tuple[str, ...] | None:
    """One ``:init`` entry as a tuple, or None for numeric ``(= (f) v)`` facts, which the engine ignores."""
    if not isinstance(node, _List) or not node.items:
        raise PddlError("expected a fact like (pred arg ...)", node.line, getattr(node, "text", "()"))
    head = _name(node.items[0], "a predicate")
    if head == "=":
        return None
    return (head, *(_name(arg, "an object name") for arg in node.items[1:]))


def _formula(node: _Node) -> Formula:
    """Goal formulas: and / or / not / exists / forall / = / atoms."""
    if not isinstance(node, _List) or not node.items:
        raise PddlError("expected a formula", node.line, getattr(node, "text", "()"))
    head = _name(node.items[0], "a connective or predicate").lower()
    rest = node.items[1:]
    if head == "and":
        return And(tuple(_formula(p) for p in rest))
    if head == "or":
        return Or(tuple(_formula(p) for p in rest))
    if head == "not":
        if len(rest) != 1:
            raise PddlError("'not' takes one formula", node.line, "not")
        return Not(_formula(rest[0]))
    if head in ("exists", "forall"):
        if len(rest) != 2 or not isinstance(rest[0], _List):
            raise PddlError(f"'{head}' takes (variables) and a body", node.line, head)
        variables = tuple(_typed_list(rest[0].items))
        body = _formula(rest[1])
        return Exists(variables, body) if head == "exists" else Forall(variables, body)
    return Atom(_name(node.items[0], "a predicate"), tuple(_name(arg, "an argument") for arg in rest))


def _header(root: _List) -> str:
    items = root.items
    if not items or _name(items[0], "'define'").lower() != "define":
        raise PddlError("a problem starts with (define", root.line, getattr(items[0], "text", "(") if items else "(")
    if len(items) < 2 or not isinstance(items[1], _List) or len(items[1].items) != 2:
        raise PddlError("expected (problem NAME)", root.line, "define")
    kw = _name(items[1].items[0], "'problem'")
    if kw.lower() != "problem":
        raise PddlError("expected (problem NAME)", items[1].line, kw)
    return _name(items[1].items[1], "a problem name")


def parse_problem(text: str) -> Problem:
    """Parse one problem file's text; raises :class:`PddlError` naming the line and token on malformed input."""
    root = _read_tree(_tokenize(text))
    problem = Problem(name=_header(root), domain="")
    seen_goal = False
    for section in root.items[2:]:
        if not isinstance(section, _List) or not section.items:
            raise PddlError("expected a (:section ...)", section.line, getattr(section, "text", "()"))
        key = _name(section.items[0], "a section keyword").lower()
        body = section.items[1:]
        if key == ":domain":
            problem.domain = _name(body[0], "a domain name") if body else ""
        elif key == ":objects":
            for obj, typ in _typed_list(body):
                problem.objects.setdefault(typ, []).append(obj)
        elif key == ":init":
            problem.init.extend(fact for fact in map(_init_fact, body) if fact is not None)
        elif key == ":goal":
            if len(body) != 1:
                raise PddlError("(:goal ...) holds exactly one formula", section.line, ":goal")
            problem.goal = _formula(body[0])
            seen_goal = True
        elif key not in (":metric", ":requirements"):
            raise PddlError("unknown section", section.line, key)
    if not seen_goal:
        raise PddlError("the problem has no (:goal ...)", root.line)
    return problem
