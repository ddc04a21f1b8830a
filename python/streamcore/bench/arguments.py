"""Argument types (argparse ``type=``) and the JSON report writer shared by the
``streamcore bench`` command lines."""

from __future__ import annotations

import argparse
import json
from typing import Any

__all__ = ["non_negative_int", "positive_float", "positive_int", "write_json"]


def positive_int(text: str) -> int:
    """An int of at least 1; argparse reports anything else as a usage error."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def positive_float(text: str) -> float:
    """A float above 0 (NaN refused); argparse reports anything else as a usage error."""
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def non_negative_int(text: str) -> int:
    """An int of at least 0; argparse reports anything else as a usage error."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def write_json(path: str, report: dict[str, Any]) -> None:
    """``report`` as indented, key-sorted JSON in ``path`` (ending in a newline)."""
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(report, fh, indent=2, sort_keys=True)
        fh.write("\n")
