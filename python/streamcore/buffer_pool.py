"""``streamcore.BufferPool``: reusable fixed-size byte buffers for zero-copy code.

A pool hands out ``bytearray`` buffers of one size and takes them back for reuse,
so that a loop which reads into a buffer (``sock.recv_into``, ``file.readinto``)
or builds a payload in place stops allocating once it is warm. The bookkeeping
runs natively (``streamcore._native.buffer_pool``) or in the pure-Python twin,
whichever ``streamcore._impl`` chose; both hand out plain ``bytearray`` objects.

    pool = BufferPool(64 * 1024, max_buffers=32)
    with pool.lease() as buf:          # returned to the pool when the block ends
        n = sock.recv_into(buf)
        handle(memoryview(buf)[:n])
    pool.stats().hits                  # gets served from a pooled buffer
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import NamedTuple

from streamcore import _impl

__all__ = ["BufferPool", "PoolStats"]


class PoolStats(NamedTuple):
    """Counters of a :class:`BufferPool` since it was made."""

    #: ``get`` calls served from a pooled buffer.
    hits: int
    #: ``get`` calls that found the pool empty.
    misses: int
    #: Buffers allocated (one per miss).
    allocations: int
    #: Buffers handed out and not yet put back.
    in_use: int
    #: Buffers kept for reuse now.
    pooled: int


def _count(name: str, value: int, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, not {value}")
    return value


class BufferPool:
    """A pool of writable buffers of exactly ``buffer_size`` bytes.

    Args:
        buffer_size: size of every buffer (bytes, >= 1).
        max_buffers: most buffers kept for reuse (>= 0); a buffer put back while
            this many are pooled is dropped, so the pool holds at most
            ``buffer_size * max_buffers`` bytes of idle memory.

    Thread-safe. A reused buffer keeps whatever its previous user wrote.
    """

    __slots__ = ("_pool",)

    def __init__(self, buffer_size: int, max_buffers: int = 64) -> None:
        self._pool = _impl.buffer_pool.BufferPool(
            _count("buffer_size", buffer_size, 1), _count("max_buffers", max_buffers, 0)
        )

    @property
    def buffer_size(self) -> int:
        """Size of every buffer (bytes)."""
        return int(self._pool.buffer_size)

    @property
    def max_buffers(self) -> int:
        """Most buffers kept for reuse."""
        return int(self._pool.max_buffers)

    def get(self) -> bytearray:
        """A writable ``bytearray`` of ``buffer_size`` bytes: a pooled one (a hit) or a new one (a miss)."""
        buf: bytearray = self._pool.get()
        return buf

    def put(self, buf: bytearray) -> None:
        """Give back a buffer from :meth:`get` for reuse.

        Raises TypeError unless ``buf`` is a bytearray and ValueError unless it
        still has ``buffer_size`` bytes (a resized buffer cannot serve the next get).
        """
        if not isinstance(buf, bytearray):
            raise TypeError(f"put() takes a bytearray from get(), not {type(buf).__name__}")
        self._pool.put(buf)

    @contextmanager
    def lease(self) -> Iterator[bytearray]:
        """Context manager: a buffer from :meth:`get`, put back when the block ends (also on error)."""
        buf = self.get()
        try:
            yield buf
        finally:
            self.put(buf)

    def stats(self) -> PoolStats:
        """Counters: hits, misses, allocations, in_use, pooled."""
        raw = self._pool.stats()
        return PoolStats(raw["hits"], raw["misses"], raw["allocations"], raw["in_use"], raw["pooled"])

    def __repr__(self) -> str:
        return f"BufferPool(buffer_size={self.buffer_size}, max_buffers={self.max_buffers})"
