"""The query language, parsed with the same rules as ``rust/core/src/search/query.rs``.

::

    query   := or
    or      := and ("OR" and)*
    and     := unary (["AND"] unary)*          adjacent clauses are ANDed
    unary   := "NOT" unary | primary
    primary := "(" or ")" | [field ":"] (word | '"phrase"' | "[" lo "TO" hi "]")

Whitespace is ASCII space, tab, CR, LF, VT and FF. A word runs to the next
whitespace or one of ``()[]"``; a word containing ``:`` is ``field:value`` (split
at the first ``:``), and ``field:`` alone takes the phrase or range after it.
``AND``, ``OR`` and ``NOT`` are operators only in capitals and as whole words.
Inside a phrase ``\\`` escapes the next character. A range's bounds are numbers or
``*`` (open) and are inclusive. An empty query matches every document.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

__all__ = ["All", "And", "Node", "Not", "Or", "QueryError", "Range", "Text", "parse", "parse_number"]


class QueryError(ValueError):
    """A query that does not follow the grammar."""

    def __init__(self, message: str) -> None:
        super().__init__(f"invalid search query: {message}")


@dataclass(frozen=True)
class All:
    """Every document."""


@dataclass(frozen=True)
class Text:
    """A word or phrase in ``field`` (any text when None); ``number``: the word as a
    number when it has the form of one (a numeric leaf equal to it matches too)."""

    field: str | None
    text: str
    number: float | None


@dataclass(frozen=True)
class Range:
    """A numeric leaf of ``field`` within the inclusive bounds (None: open)."""

    field: str
    lo: float | None
    hi: float | None


@dataclass(frozen=True)
class And:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    inner: Node


Node = All | Text | Range | And | Or | Not

_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?")
_SPACE = " \t\n\r\x0b\x0c"
_SPECIAL = '()[]"'


def parse_number(text: str) -> float | None:
    """``text`` as a number when it has the form ``-?[0-9]+(.[0-9]+)?([eE][+-]?[0-9]+)?`` and a finite value."""
    if _NUMBER.fullmatch(text) is None:
        return None
    value = float(text)
    return value if math.isfinite(value) else None


def _bound(text: str) -> float | None:
    if text == "*":
        return None
    value = parse_number(text)
    if value is None:
        raise QueryError(f"range bound {text!r} is not a number or *")
    return value


# Tokens: ("(",), (")",), ("AND",), ("OR",), ("NOT",), ("word", field, value),
# ("phrase", text), ("range", lo, hi).
_Tok = tuple


def _lex(query: str) -> list[_Tok]:
    out: list[_Tok] = []
    i, n = 0, len(query)
    while i < n:
        c = query[i]
        if c in _SPACE:
            i += 1
        elif c in "()":
            out.append((c,))
            i += 1
        elif c == "]":
            raise QueryError("']' without '['")
        elif c == '"':
            chars: list[str] = []
            i += 1
            while True:
                if i >= n:
                    raise QueryError("unterminated phrase")
                ch = query[i]
                if ch == '"':
                    break
                if ch == "\\" and i + 1 < n:
                    chars.append(query[i + 1])
                    i += 2
                else:
                    chars.append(ch)
                    i += 1
            i += 1
            out.append(("phrase", "".join(chars)))
        elif c == "[":
            end = query.find("]", i)
            if end < 0:
                raise QueryError("unterminated range")
            inner = query[i + 1 : end]
            parts = [p for p in re.split("[" + _SPACE + "]", inner) if p]
            if len(parts) != 3 or parts[1] != "TO":
                raise QueryError(f"range [{inner}] is not of the form [lo TO hi]")
            out.append(("range", _bound(parts[0]), _bound(parts[2])))
            i = end + 1
        else:
            start = i
            while i < n and query[i] not in _SPACE and query[i] not in _SPECIAL:
                i += 1
            word = query[start:i]
            if word in ("AND", "OR", "NOT"):
                out.append((word,))
            elif ":" in word:
                field, value = word.split(":", 1)
                if not field:
                    raise QueryError(f"{word!r} has an empty field name")
                out.append(("word", field, value))
            else:
                out.append(("word", None, word))
    return out


class _Parser:
    def __init__(self, toks: list[_Tok]) -> None:
        self.toks = toks
        self.pos = 0

    def peek(self) -> str | None:
        return self.toks[self.pos][0] if self.pos < len(self.toks) else None

    def next(self) -> _Tok | None:
        tok = self.toks[self.pos] if self.pos < len(self.toks) else None
        self.pos += 1
        return tok

    def or_(self) -> Node:
        items = [self.and_()]
        while self.peek() == "OR":
            self.pos += 1
            items.append(self.and_())
        return items[0] if len(items) == 1 else Or(tuple(items))

    def and_(self) -> Node:
        items = [self.unary()]
        while True:
            kind = self.peek()
            if kind == "AND":
                self.pos += 1
                items.append(self.unary())
            elif kind in (None, "OR", ")"):
                break
            else:
                items.append(self.unary())
        return items[0] if len(items) == 1 else And(tuple(items))

    def unary(self) -> Node:
        if self.peek() == "NOT":
            self.pos += 1
            return Not(self.unary())
        return self.primary()

    def primary(self) -> Node:
        tok = self.next()
        if tok is None:
            raise QueryError("the query ends where a clause is expected")
        kind = tok[0]
        if kind == "(":
            inner = self.or_()
            if self.next() != (")",):
                raise QueryError("'(' without ')'")
            return inner
        if kind == "word":
            field, value = tok[1], tok[2]
            if field is not None and value == "":
                nxt = self.next()
                if nxt is not None and nxt[0] == "phrase":
                    return Text(field, nxt[1], None)
                if nxt is not None and nxt[0] == "range":
                    return Range(field, nxt[1], nxt[2])
                raise QueryError(f"{field}: must be followed by a word, a phrase or a range")
            # A bare word that looks like a number is still only text: bare terms search text.
            return Text(field, value, parse_number(value) if field is not None else None)
        if kind == "phrase":
            return Text(None, tok[1], None)
        if kind == "range":
            raise QueryError("a range needs a field: field:[lo TO hi]")
        if kind == ")":
            raise QueryError("')' without '('")
        raise QueryError(f"operator {kind} needs a clause after it")


def parse(query: str) -> Node:
    """Parse ``query`` (see the module doc); raises QueryError (a ValueError)."""
    toks = _lex(query)
    if not toks:
        return All()
    parser = _Parser(toks)
    node = parser.or_()
    kind = parser.peek()
    if kind is None:
        return node
    if kind == ")":
        raise QueryError("')' without '('")
    raise QueryError(f"unexpected {kind}")
