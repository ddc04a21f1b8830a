"""``_native.classifier``: error messages and Kafka error codes to error categories.

Categories are ints numbered as ``streamcore.retry.ErrorCategory``.
"""

from collections.abc import Iterable

__all__ = ["classify", "classify_many", "classify_code", "PATTERNS", "CATEGORY_COUNT"]

#: (lower-case substring, category) pairs, matched in one pass.
PATTERNS: tuple[tuple[str, int], ...]
CATEGORY_COUNT: int

def classify(message: str) -> int: ...
def classify_many(messages: Iterable[str]) -> list[int]: ...
def classify_code(code: int) -> int: ...
