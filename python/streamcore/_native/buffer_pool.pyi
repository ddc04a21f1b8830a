"""``_native.buffer_pool``: a pool of fixed-size ``bytearray`` buffers."""

from typing import final

__all__ = ["BufferPool", "unfilled_bytearray", "extend_unfilled"]

@final
class BufferPool:
    """Pool of ``buffer_size``-byte bytearrays keeping at most ``max_buffers`` for reuse."""

    def __new__(cls, buffer_size: int, max_buffers: int) -> BufferPool: ...
    @property
    def buffer_size(self) -> int:
        """Size of every buffer (bytes)."""
    @property
    def max_buffers(self) -> int: ...
    def get(self) -> bytearray: ...
    def put(self, buf: bytearray) -> None: ...
    def lease(self) -> Lease: ...
    def stats(self) -> dict[str, int]:
        """hits, misses, allocations, in_use, pooled."""

@final
class Lease:
    """Context manager from :meth:`BufferPool.lease`: a buffer for the ``with`` block."""

    def __enter__(self) -> bytearray: ...
    def __exit__(self, _exc_type: object, _exc: object, _tb: object) -> bool: ...

def unfilled_bytearray(size: int) -> bytearray:
    """A bytearray of ``size`` bytes, not zero-filled: for reads to fill."""

def extend_unfilled(buf: bytearray, extra: int) -> None:
    """Lengthen ``buf`` in place by ``extra`` unfilled bytes; BufferError while it is viewed."""
