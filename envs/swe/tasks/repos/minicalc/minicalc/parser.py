"""A recursive-descent parser producing :mod:`minicalc.nodes` trees.

Grammar (lowest to highest precedence)::

    statement := NAME "=" statement | expr
    expr      := term (("+" | "-") term)*
    term      := unary (("*" | "/" | "%") unary)*
    unary     := ("-" | "+") unary | power
    power     := call ("^" unary)?
    call      := NAME "(" [expr ("," expr)*] ")" | primary
    primary   := NUMBER | NAME | "(" expr ")"
"""

from __future__ import annotations

from minicalc.errors import ParseError
from minicalc.nodes import Assign, BinOp, Call, Name, Node, Number, UnaryOp
from minicalc.tokenizer import EOF_KIND, NAME, NUMBER, OP, Token, tokenize


class Parser:
    """Parses one statement from a token list."""

    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.index = 0

    # -- token helpers -----------------------------------------------------
    def _peek(self, offset: int = 0) -> Token:
        return self.tokens[min(self.index + offset, len(self.tokens) - 1)]

    def _advance(self) -> Token:
        token = self._peek()
        self.index += 1
        return token

    def _peek_op(self, *ops: str) -> bool:
        token = self._peek()
        return token.kind == OP and token.text in ops

    def _expect_op(self, op: str) -> Token:
        if not self._peek_op(op):
            raise self._error(f"expected {op!r}")
        return self._advance()

    def _error(self, message: str) -> ParseError:
        token = self._peek()
        found = "end of input" if token.kind == EOF_KIND else repr(token.text)
        return ParseError(f"{message}, found {found}", token.pos)

    # -- grammar -----------------------------------------------------------
    def parse(self) -> Node:
        """Parse the whole input as one statement."""
        node = self._statement()
        if self._peek().kind != EOF_KIND:
            raise self._error("expected end of input")
        return node

    def _statement(self) -> Node:
        if self._peek().kind == NAME and self._peek(1).kind == OP and self._peek(1).text == "=":
            name = self._advance().text
            self._advance()
            return Assign(name, self._statement())
        return self._expr()

    def _expr(self) -> Node:
        node = self._term()
        while self._peek_op("+", "-"):
            op = self._advance().text
            node = BinOp(op, node, self._term())
        return node

    def _term(self) -> Node:
        node = self._unary()
        while self._peek_op("*", "/", "%"):
            op = self._advance().text
            node = BinOp(op, node, self._unary())
        return node

    def _unary(self) -> Node:
        if self._peek_op("-", "+"):
            op = self._advance().text
            return UnaryOp(op, self._unary())
        return self._power()

    def _power(self) -> Node:
        base = self._call()
        if self._peek_op("^"):
            self._advance()
            return BinOp("^", base, self._unary())
        return base

    def _call(self) -> Node:
        if self._peek().kind == NAME and self._peek(1).kind == OP and self._peek(1).text == "(":
            func = self._advance().text
            self._advance()
            args: list[Node] = []
            if not self._peek_op(")"):
                args.append(self._expr())
                while self._peek_op(","):
                    self._advance()
                    args.append(self._expr())
            self._expect_op(")")
            return Call(func, tuple(args))
        return self._primary()

    def _primary(self) -> Node:
        token = self._peek()
        if token.kind == NUMBER:
            self._advance()
            return Number(token.value)
        if token.kind == NAME:
            self._advance()
            return Name(token.text)
        if self._peek_op("("):
            self._advance()
            node = self._expr()
            self._expect_op(")")
            return node
        raise self._error("expected a number, name or '('")


def parse(text: str) -> Node:
    """Parse ``text`` into a syntax tree.

    >>> parse("1 + 2 * x")
    BinOp(op='+', left=Number(value=1), right=BinOp(op='*', left=Number(value=2), right=Name(id='x')))
    """
    return Parser(tokenize(text)).parse()
