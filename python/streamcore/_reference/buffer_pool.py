"""Reference twin of the ``buffer_pool`` capability: fixed-size reusable bytearrays.

The native pool hands out buffers it keeps for reuse so that steady-state
appends allocate nothing; this twin keeps the same bookkeeping (hits, misses,
allocations, in_use, pooled) with plain bytearrays under a lock.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["BufferPool", "extend_unfilled", "unfilled_bytearray"]

# Zeros the twin extends buffers with, 64 KiB at a time (no temporary per call).
_ZEROS = memoryview(bytes(64 * 1024))


def unfilled_bytearray(size: int) -> bytearray:
    """A ``bytearray`` of ``size`` bytes for reads to fill. The native twin leaves its
    contents as the allocator gave them; this one zero-fills (Python cannot do less)."""
    if size < 0:
        raise OverflowError(f"size must be >= 0, not {size}")
    return bytearray(size)


def extend_unfilled(buf: bytearray, extra: int) -> None:
    """Lengthen ``buf`` in place by ``extra`` bytes for reads to fill (zeros here).
    BufferError while a view of ``buf`` is held."""
    if not isinstance(buf, bytearray):
        raise TypeError(f"buf must be a bytearray, not {type(buf).__name__}")
    if extra < 0:
        raise OverflowError(f"extra must be >= 0, not {extra}")
    target = len(buf) + extra
    while len(buf) < target:
        buf += _ZEROS[: min(target - len(buf), len(_ZEROS))]


class BufferPool:
    """A pool of writable buffers of exactly ``buffer_size`` bytes, keeping at most ``max_buffers``.

    ``get()`` reuses a pooled buffer (a hit) or allocates one (a miss);
    ``put()`` returns it, dropping it when ``max_buffers`` are already pooled.
    """

    def __init__(self, buffer_size: int, max_buffers: int) -> None:
        if buffer_size < 0:
            raise ValueError(f"buffer_size must be >= 0, not {buffer_size}")
        if max_buffers < 0:
            raise ValueError(f"max_buffers must be >= 0, not {max_buffers}")
        self.buffer_size = buffer_size
        self.max_buffers = max_buffers
        self._free: list[bytearray] = []
        self._lock = threading.Lock()
        self._hits = 0
        self._misses = 0
        self._allocations = 0
        self._in_use = 0

    def get(self) -> bytearray:
        """A writable buffer of ``buffer_size`` bytes (contents unspecified when reused)."""
        with self._lock:
            self._in_use += 1
            if self._free:
                self._hits += 1
                return self._free.pop()
            self._misses += 1
            self._allocations += 1
        return bytearray(self.buffer_size)

    def put(self, buf: bytearray) -> None:
        """Return a buffer from ``get``; a buffer of the wrong size is a ValueError."""
        if len(buf) != self.buffer_size:
            raise ValueError(
                f"buffer of {len(buf)} bytes does not belong to a pool of {self.buffer_size}-byte buffers"
            )
        with self._lock:
            if self._in_use > 0:
                self._in_use -= 1
            if len(self._free) < self.max_buffers:
                self._free.append(buf)

    @contextmanager
    def lease(self) -> Iterator[bytearray]:
        """Context manager: a buffer from ``get``, returned with ``put`` on exit."""
        buf = self.get()
        try:
            yield buf
        finally:
            self.put(buf)

    def stats(self) -> dict[str, int]:
        """hits, misses, allocations, in_use, pooled (counts)."""
        with self._lock:
            return {
                "hits": self._hits,
                "misses": self._misses,
                "allocations": self._allocations,
                "in_use": self._in_use,
                "pooled": len(self._free),
            }
