"""Logging of the ``streamcore`` commands: a level and a format, text or JSON lines.

A library does not configure logging; the commands do, through :func:`configure_logging`.
``json`` writes one JSON object per line for log shippers (Fluent Bit, Vector, Loki's
promtail): ``time`` (UTC, RFC 3339 with milliseconds), ``level``, ``logger``,
``message``, then any ``extra=`` fields the call passed, and ``exception`` with the
traceback text when there is one.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import sys
from typing import Any, TextIO

__all__ = ["LEVELS", "FORMATS", "JsonFormatter", "configure_logging"]

#: Accepted levels, least to most severe.
LEVELS: tuple[str, ...] = ("debug", "info", "warning", "error")
#: Accepted formats.
FORMATS: tuple[str, ...] = ("text", "json")

_TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# Attributes every LogRecord has; whatever else a record carries came from ``extra=``.
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": _dt.datetime.fromtimestamp(record.created, _dt.timezone.utc).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and key not in out:
                out[key] = value
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exception"] = record.exc_text
        # default=str: an extra field of any type still yields a line rather than an error.
        return json.dumps(out, default=str, ensure_ascii=False)


def configure_logging(level: str = "warning", fmt: str = "text", stream: TextIO | None = None) -> None:
    """Send every ``streamcore`` (and other) log record of ``level`` or above to ``stream``
    (default stderr) as text or JSON lines, replacing handlers set by an earlier call.

    ``level``: one of :data:`LEVELS`; ``fmt``: one of :data:`FORMATS`; anything else
    raises ValueError naming the valid values.
    """
    if level.lower() not in LEVELS:
        raise ValueError(f"log level {level!r} is not one of {', '.join(LEVELS)}")
    if fmt not in FORMATS:
        raise ValueError(f"log format {fmt!r} is not one of {', '.join(FORMATS)}")
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(_TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_streamcore", False):
            root.removeHandler(old)
    handler._streamcore = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper())
