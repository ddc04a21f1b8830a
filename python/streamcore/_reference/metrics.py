"""Reference twin of the ``metrics`` capability: counters, gauges, log-bucket histograms.

The native twin keeps the same numbers in lock-free atomics; this one guards plain
ints with a lock. Both expose the same classes, methods and results.

Histogram buckets are powers of two: bucket ``i`` counts observations ``v`` with
``2**(i-1) < v <= 2**i`` (bucket 0 holds ``v <= 1``), 64 buckets in all, so one
histogram covers microseconds to hours without configuration.
"""

from __future__ import annotations

import math
import threading

__all__ = ["Counter", "CounterArray", "Gauge", "Histogram", "HISTOGRAM_BUCKETS"]

HISTOGRAM_BUCKETS = 64


class Counter:
    """A monotonically increasing integer."""

    __slots__ = ("_lock", "_value")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._value = 0

    def inc(self, n: int = 1) -> None:
        """Add ``n`` (must be ≥ 0)."""
        if n < 0:
            raise ValueError("a counter only goes up")
        with self._lock:
            self._value += n

    @property
    def value(self) -> int:
        return self._value


class Gauge:
    """An integer that goes up and down."""

    __slots__ = ("_lock", "_value")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._value = 0

    def set(self, value: int) -> None:
        self._value = int(value)

    def inc(self, n: int = 1) -> None:
        with self._lock:
            self._value += n

    def dec(self, n: int = 1) -> None:
        with self._lock:
            self._value -= n

    @property
    def value(self) -> int:
        return self._value


class CounterArray:
    """``size`` counters addressed by index (e.g. one per API key or error code)."""

    __slots__ = ("_lock", "_values")

    def __init__(self, size: int) -> None:
        if size <= 0:
            raise ValueError("size must be positive")
        self._lock = threading.Lock()
        self._values = [0] * size

    def inc(self, index: int, n: int = 1) -> None:
        """Add ``n`` to counter ``index``; an index out of range raises IndexError."""
        if n < 0:
            raise ValueError("a counter only goes up")
        if not 0 <= index < len(self._values):
            raise IndexError(f"counter index {index} out of range 0..{len(self._values) - 1}")
        with self._lock:
            self._values[index] += n

    def inc_pair(self, index_a: int, index_b: int) -> None:
        """Add one to two counters in one call (an attempt and its outcome, say)."""
        size = len(self._values)
        if not (0 <= index_a < size and 0 <= index_b < size):
            raise IndexError(f"counter index out of range 0..{size - 1}")
        with self._lock:
            self._values[index_a] += 1
            self._values[index_b] += 1

    def values(self) -> list[int]:
        with self._lock:
            return list(self._values)

    def __len__(self) -> int:
        return len(self._values)


def _bucket(value: int) -> int:
    if value <= 1:
        return 0
    return min((value - 1).bit_length(), HISTOGRAM_BUCKETS - 1)


class Histogram:
    """Counts of non-negative integer observations in power-of-two buckets, plus sum."""

    __slots__ = ("_counts", "_count", "_lock", "_sum")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts = [0] * HISTOGRAM_BUCKETS
        self._count = 0
        self._sum = 0

    def observe(self, value: int) -> None:
        """Record one observation (negative values count as 0)."""
        v = int(value) if value > 0 else 0
        b = _bucket(v)
        with self._lock:
            self._counts[b] += 1
            self._count += 1
            self._sum += v

    def snapshot(self) -> tuple[list[int], int, int]:
        """Return (per-bucket counts, total count, sum)."""
        with self._lock:
            return list(self._counts), self._count, self._sum

    def quantile(self, q: float) -> int:
        """Upper bound of the bucket holding quantile ``q`` (0..1); 0 when empty."""
        counts, total, _ = self.snapshot()
        if total == 0:
            return 0
        rank = max(1, math.ceil(q * total))
        seen = 0
        for i, c in enumerate(counts):
            seen += c
            if seen >= rank:
                return 1 << i
        return 1 << (HISTOGRAM_BUCKETS - 1)
