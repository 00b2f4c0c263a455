"""Splitting source text into tokens."""

from __future__ import annotations

import re
from dataclasses import dataclass

from minicalc.errors import ParseError

NUMBER = "NUMBER"
NAME = "NAME"
OP = "OP"
EOF_KIND = "EOF"

_NUMBER = re.compile(r"(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_NAME = re.compile(r"[A-Za-z_]\w*")
_OPERATORS = frozenset("+-*/%^(),=")


@dataclass(frozen=True)
class Token:
    """One token: its kind (``NUMBER``, ``NAME``, ``OP`` or ``EOF``), text and 0-based position."""

    kind: str
    text: str
    pos: int

    @property
    def value(self) -> int | float:
        """The numeric value of a ``NUMBER`` token (an ``int`` when it has no fraction or exponent)."""
        if self.kind != NUMBER:
            raise TypeError(f"{self.kind} token has no numeric value")
        if any(c in self.text for c in ".eE"):
            return float(self.text)
        return int(self.text)


def tokenize(text: str) -> list[Token]:
    """Split ``text`` into tokens, ending with an ``EOF`` token.

    >>> [t.text for t in tokenize("x=2.5*(y+1)")]
    ['x', '=', '2.5', '*', '(', 'y', '+', '1', ')', '']

    Raises:
        ParseError: on a character that cannot start a token.
    """
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        char = text[pos]
        if char.isspace():
            pos += 1
            continue
        if match := _NUMBER.match(text, pos):
            tokens.append(Token(NUMBER, match.group(), pos))
            pos = match.end()
        elif match := _NAME.match(text, pos):
            tokens.append(Token(NAME, match.group(), pos))
            pos = match.end()
        elif char in _OPERATORS:
            tokens.append(Token(OP, char, pos))
            pos += 1
        else:
            raise ParseError(f"unexpected character {char!r}", pos)
    tokens.append(Token(EOF_KIND, "", len(text)))
    return tokens
