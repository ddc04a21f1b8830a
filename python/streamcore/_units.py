"""Durations and sizes written in settings: one parser, one set of rules.

Every setting that takes a duration or a size, in the broker's config tree and in
the client's retry and timeout settings, goes through these two functions, so that
``30S`` and ``7d`` mean the same everywhere. Standard library only: this module sits
at the bottom of the package and its callers turn ``UnitValueError`` into their own
error class.

Rules
    * An ``int`` is milliseconds (bytes for a size). ``bool``, ``float`` and other
      types are refused: write ``"1500ms"``, not ``1.5``.
    * Text is ASCII digits with an optional unit, in any ASCII case, with ASCII blanks
      allowed around and between (``" 5 M "``). No unit means milliseconds (bytes).
      Duration units: ``ms``, ``s``, ``m``, ``h``, ``d``. Size units: ``b``; decimal
      ``kb``, ``mb``, ``gb``, ``tb``; binary ``kib``, ``mib``, ``gib``, ``tib`` and the
      short ``k``, ``m``, ``g``.
    * ``-1`` (the int, or the text without a unit) means forever / unlimited, and only
      where the caller passes ``allow_forever=True``; everywhere else, and any other
      negative value, is an error.
    * Results are at most ``MAX_VALUE`` (a signed 64-bit integer), so the native core
      can take them as they are.

Each distinct text is parsed once (LRU cache): settings are read repeatedly from
environments and property maps.
"""

from __future__ import annotations

import functools
import re

__all__ = ["UnitValueError", "parse_duration_ms", "parse_size_bytes", "MAX_VALUE", "FOREVER"]

#: Largest duration (ms) or size (bytes) accepted: fits a signed 64-bit integer.
MAX_VALUE = (1 << 63) - 1
#: What ``-1`` parses to where ``allow_forever`` is set.
FOREVER = -1


class UnitValueError(ValueError):
    """A duration or size that breaks the rules; the message is one line naming the
    setting, the value and the accepted forms."""


_DURATION_UNITS = {None: 1, "ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_SIZE_UNITS = {
    None: 1,
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
    "k": 1024,
    "kib": 1024,
    "m": 1024**2,
    "mib": 1024**2,
    "g": 1024**3,
    "gib": 1024**3,
    "tib": 1024**4,
}


def _grammar(units: dict[str | None, int]) -> re.Pattern[str]:
    # Longest unit first so that "ms" is not read as "m" followed by junk.
    names = sorted((u for u in units if u), key=len, reverse=True)
    return re.compile(r"\s*(?:(-1)|([0-9]+)\s*(" + "|".join(names) + r")?)\s*", re.IGNORECASE | re.ASCII)


_DURATION = _grammar(_DURATION_UNITS)
_SIZE = _grammar(_SIZE_UNITS)

_DURATION_FORMS = (
    "expected a whole number with unit ms, s, m, h or d in any case "
    "(e.g. '100ms', '30s', '5m', '1h', '7d'); a bare number or an int is milliseconds"
)
_SIZE_FORMS = (
    "expected a whole number with unit B, KB, MB, GB, TB (decimal) or KiB, MiB, GiB, TiB, K, M, G "
    "(binary) in any case (e.g. '1048576', '512KiB', '64MiB', '1GiB'); a bare number or an int is bytes"
)
_FOREVER_FORMS = {False: "", True: "; -1 means forever"}
_UNLIMITED_FORMS = {False: "", True: "; -1 means unlimited"}

# Past this many digits the value is out of range whatever the unit (and int() of a
# very long digit string is refused by Python anyway).
_MAX_DIGITS = 20


# What the text scanners answer besides a valid value (>= 0): negative codes, so that
# the hot path (a cached valid text) costs one comparison.
_MALFORMED = -2
_OUT_OF_RANGE = -3


def _scan(pattern: re.Pattern[str], units: dict[str | None, int], text: str) -> int:
    """The value of ``text`` (>= 0), or FOREVER for "-1", _MALFORMED or _OUT_OF_RANGE."""
    m = pattern.fullmatch(text)
    if m is None:
        return _MALFORMED
    if m.group(1):
        return FOREVER
    digits = m.group(2).lstrip("0") or "0"
    if len(digits) > _MAX_DIGITS:
        return _OUT_OF_RANGE
    unit = m.group(3)
    value = int(digits) * units[unit.lower() if unit else None]
    return value if value <= MAX_VALUE else _OUT_OF_RANGE


@functools.lru_cache(maxsize=4096)
def _duration_text_ms(text: str) -> int:
    return _scan(_DURATION, _DURATION_UNITS, text)


@functools.lru_cache(maxsize=1024)
def _size_text_bytes(text: str) -> int:
    return _scan(_SIZE, _SIZE_UNITS, text)


def _int_value(value: int) -> int:
    value = int(value)
    return value if value == FOREVER or 0 <= value <= MAX_VALUE else _OUT_OF_RANGE


def _check(value: object, parsed: int, what: str, forms: str, setting: str, allow_forever: bool) -> int:
    if parsed >= 0:
        return parsed
    if parsed == FOREVER:
        if allow_forever:
            return FOREVER
        raise UnitValueError(f"{setting}: invalid {what} {value!r} (-1 is not accepted here): {forms}")
    if parsed == _OUT_OF_RANGE:
        raise UnitValueError(f"{setting}: {what} {value!r} is out of range 0..{MAX_VALUE}: {forms}")
    raise UnitValueError(f"{setting}: invalid {what} {value!r}: {forms}")


def parse_duration_ms(value: object, setting: str = "duration", allow_forever: bool = False) -> int:
    """Whole milliseconds of ``value``: a duration text (``"30s"``, ``"7d"``) or an int of ms.

    ``setting`` names the value in errors. With ``allow_forever`` ``-1`` is accepted and
    returned as ``FOREVER`` (-1). Raises UnitValueError (a ValueError) otherwise.
    """
    if type(value) is str:
        parsed = _duration_text_ms(value)
        if parsed >= 0:
            return parsed
    elif isinstance(value, int) and not isinstance(value, bool):
        parsed = _int_value(value)
    elif isinstance(value, str):  # a str subclass: cache its plain text
        parsed = _duration_text_ms(str(value))
    else:
        parsed = _MALFORMED
    return _check(
        value, parsed, "duration", _DURATION_FORMS + _FOREVER_FORMS[allow_forever], setting, allow_forever
    )


def parse_size_bytes(value: object, setting: str = "size", allow_forever: bool = False) -> int:
    """Bytes of ``value``: a size text (``"64MiB"``, ``"1GB"``) or an int of bytes.

    ``setting`` names the value in errors. With ``allow_forever`` ``-1`` is accepted and
    returned as ``FOREVER`` (-1, unlimited). Raises UnitValueError (a ValueError) otherwise.
    """
    if isinstance(value, str):
        parsed = _size_text_bytes(str(value))
    elif isinstance(value, int) and not isinstance(value, bool):
        parsed = _int_value(value)
    else:
        parsed = _MALFORMED
    return _check(
        value, parsed, "size", _SIZE_FORMS + _UNLIMITED_FORMS[allow_forever], setting, allow_forever
    )
