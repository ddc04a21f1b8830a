"""Parsers of broker setting values: each takes what a TOML file, an environment
variable or a command-line flag gave and returns the typed value, or raises
ConfigError naming the setting (see :mod:`streamcore.broker.config`)."""

from __future__ import annotations

import math
import re

from streamcore import _units
from streamcore.errors import ConfigError

__all__ = [
    "PARSERS",
    "parse_bool",
    "parse_duration_ms",
    "parse_int",
    "parse_list",
    "parse_number",
    "parse_principals",
    "parse_size_bytes",
    "parse_str",
]


def parse_duration_ms(value: object, setting: str = "duration", allow_forever: bool = False) -> int:
    """Parse a duration into milliseconds by the rules of :mod:`streamcore._units`.

    Accepts an int (ms) or a string ``<int>[ms|s|m|h|d]`` in any ASCII case (no unit =
    ms); ``-1`` (forever) only with ``allow_forever``. Raises ConfigError naming
    ``setting`` when malformed or out of range.
    """
    try:
        return _units.parse_duration_ms(value, setting, allow_forever)
    except _units.UnitValueError as exc:
        raise ConfigError(str(exc)) from None


def parse_size_bytes(value: object, setting: str = "size", allow_forever: bool = False) -> int:
    """Parse a size into bytes by the rules of :mod:`streamcore._units`.

    Accepts an int or ``<int>[B|KiB|MiB|GiB|TiB|KB|MB|GB|TB]`` in any ASCII case;
    ``K``/``M``/``G`` alone are binary (KiB/MiB/GiB); ``-1`` (unlimited) only with
    ``allow_forever``. Raises ConfigError naming ``setting``.
    """
    try:
        return _units.parse_size_bytes(value, setting, allow_forever)
    except _units.UnitValueError as exc:
        raise ConfigError(str(exc)) from None


def parse_int(value: object, setting: str) -> int:
    if isinstance(value, bool):
        raise ConfigError(f"{setting}: expected an integer, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise ConfigError(f"{setting}: expected an integer, got {value!r}")


def parse_bool(value: object, setting: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        v = value.strip().lower()
        if v in ("1", "true", "yes", "on"):
            return True
        if v in ("0", "false", "no", "off"):
            return False
    raise ConfigError(f"{setting}: expected true/false (or 1/0, yes/no, on/off), got {value!r}")


def parse_number(value: object, setting: str) -> float:
    """A finite decimal number (TOML int or float, or a string such as ``12.5``)."""
    number: float | None = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            number = None
    if number is None or not math.isfinite(number):
        raise ConfigError(f"{setting}: expected a number, got {value!r}")
    return number


def parse_str(value: object, setting: str) -> str:
    if isinstance(value, str):
        return value
    raise ConfigError(f"{setting}: expected a string, got {value!r}")


def _list_items(value: object, setting: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return list(value)
    raise ConfigError(f"{setting}: expected a list of strings or a comma-separated string, got {value!r}")


def parse_list(value: object, setting: str) -> tuple[str, ...]:
    """A TOML list of strings, or a string of comma-separated items (each list item is
    split on commas too, so ``--listener A,B`` is two entries)."""
    out = []
    for item in _list_items(value, setting):
        out += [part.strip() for part in item.split(",") if part.strip()]
    return tuple(out)


_PRINCIPAL_START = re.compile(r"^[A-Za-z][A-Za-z0-9_]*:")


def parse_principals(value: object, setting: str) -> tuple[str, ...]:
    """Principals (``User:alice``) separated by ``;`` or ``,``. Within one string, a piece
    that does not begin with ``Type:`` continues the previous principal, so a certificate
    subject such as ``User:CN=app,O=Acme`` stays whole."""
    out: list[str] = []
    for item in _list_items(value, setting):
        first = len(out)
        for piece in re.split(r"[;,]", item):
            text = piece.strip()
            if not text:
                continue
            if len(out) > first and not _PRINCIPAL_START.match(text):
                out[-1] += "," + text
            else:
                out.append(text)
    for principal in out:
        if not _PRINCIPAL_START.match(principal) or not principal.partition(":")[2]:
            raise ConfigError(f"{setting}: {principal!r} is not a principal such as User:alice")
    return tuple(out)


PARSERS = {
    "int": parse_int,
    "number": parse_number,
    "duration": parse_duration_ms,
    "size": parse_size_bytes,
    "bool": parse_bool,
    "str": parse_str,
    "choice": parse_str,
    "list": parse_list,
    "principals": parse_principals,
}
