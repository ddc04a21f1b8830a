"""What a record's value becomes in the index, and how text is cut into terms.

The same rules as the native ``rust/core/src/search/analyze.rs``, so that both
twins answer a query with the same offsets:

* A value that parses as a JSON object is flattened: nested keys are joined with
  ``.``, arrays are transparent (their elements keep the array's path), strings and
  booleans (as the words ``true``/``false``) are text, numbers are floats, nulls are
  skipped. Every text leaf is also searchable by bare terms.
* Any other value (a JSON array, string or number, or not JSON at all) is one piece
  of plain text, decoded as UTF-8 with invalid bytes replaced.
* Text is cut into maximal runs of alphanumeric characters; runs of 40 bytes or
  more (UTF-8, before lowercasing) are dropped; the rest are lowercased one
  character at a time.

Unicode corner: Python's ``str.isalnum`` and Rust's ``char::is_alphanumeric``
disagree on some combining marks (Rust counts the "Other_Alphabetic" ones), so
text using them may be cut differently by the two twins.
"""

from __future__ import annotations

import json
import math
from typing import Any, NamedTuple

__all__ = ["Analyzed", "MAX_TOKEN_BYTES", "analyze_value", "positioned_tokens", "tokens"]

#: A token of this many UTF-8 bytes or more is dropped.
MAX_TOKEN_BYTES = 40
#: serde_json refuses values nested this deep (arrays and objects count).
_MAX_DEPTH = 128


def tokens(text: str) -> list[str]:
    """The terms of ``text``, in order."""
    return [t for t in positioned_tokens(text) if t is not None]


def positioned_tokens(text: str) -> list[str | None]:
    """The terms of ``text`` by position: a dropped (too long) token leaves a None, as
    it leaves a gap in the native index's positions, so no phrase matches across it."""
    out: list[str | None] = []
    start = -1
    for i, ch in enumerate(text):
        if ch.isalnum():
            if start < 0:
                start = i
        elif start >= 0:
            _push(out, text[start:i])
            start = -1
    if start >= 0:
        _push(out, text[start:])
    return out


def _push(out: list[str | None], token: str) -> None:
    if len(token.encode("utf-8", "surrogatepass")) < MAX_TOKEN_BYTES:
        # Character by character, as tantivy's LowerCaser does (no final-sigma rule).
        out.append("".join(ch.lower() for ch in token))
    else:
        out.append(None)


class Analyzed(NamedTuple):
    """A value as the index sees it."""

    #: (path, text) of every text leaf of a JSON object
    fields: list[tuple[str, str]]
    #: (path, number) of every numeric leaf of a JSON object
    numbers: list[tuple[str, float]]
    #: the value as plain text when it is not a JSON object
    plain: str | None


class _NotJson(Exception):
    pass


def _constant(name: str) -> Any:
    # NaN and Infinity are not JSON (serde_json refuses them).
    raise _NotJson(name)


def _number(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NotJson(text)  # serde_json refuses numbers beyond f64's range
    return value


def _parse(value: bytes) -> Any:
    try:
        text = value.decode("utf-8")
        return json.loads(text, parse_constant=_constant, parse_float=_number, parse_int=_number)
    except (UnicodeDecodeError, ValueError, _NotJson, RecursionError):
        return None


def analyze_value(value: bytes) -> Analyzed:
    """Flatten ``value`` (see the module doc)."""
    parsed = _parse(value)
    if isinstance(parsed, dict):
        out = Analyzed([], [], None)
        try:
            for key, leaf in parsed.items():
                _flatten(_checked(key), leaf, out, 1)
        except _NotJson:
            pass
        else:
            return out
    return Analyzed([], [], value.decode("utf-8", "replace"))


def _checked(text: str) -> str:
    # A lone surrogate escape (\ud800) parses in Python, not in serde_json.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise _NotJson(text) from None
    return text


def _flatten(path: str, value: Any, out: Analyzed, depth: int) -> None:
    if value is None:
        return
    if value is True or value is False:
        out.fields.append((path, "true" if value else "false"))
    elif isinstance(value, float):
        out.numbers.append((path, value))
    elif isinstance(value, str):
        out.fields.append((path, _checked(value)))
    else:
        if depth + 1 >= _MAX_DEPTH:
            raise _NotJson("nested too deep")
        if isinstance(value, list):
            for item in value:
                _flatten(path, item, out, depth + 1)
        else:
            for key, leaf in value.items():
                _flatten(f"{path}.{_checked(key)}", leaf, out, depth + 1)
