"""Reference twin of the ``partitioner`` capability: the Java client's key hash in Python.

Records with a key go to ``(murmur2(key) & 0x7fffffff) % num_partitions``, the
formula of ``org.apache.kafka.clients.producer.internals.BuiltInPartitioner``;
matching it is what keeps a key on the same partition whichever client wrote it.
The native twin is ``rust/core/src/partitioner.rs``.
"""

from __future__ import annotations

__all__ = ["default_partition", "murmur2"]

_M = 0x5BD1E995
_SEED = 0x9747B28C
_MASK = 0xFFFFFFFF


def murmur2(data: bytes | bytearray | memoryview) -> int:
    """MurmurHash2 of ``data`` as Kafka's ``Utils.murmur2``: a signed 32-bit int."""
    buf = bytes(data)
    length = len(buf)
    h = (_SEED ^ length) & _MASK
    body = length & ~3
    for i in range(0, body, 4):
        k = int.from_bytes(buf[i : i + 4], "little")
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    rest = length & 3
    # Java's switch falls through from 3 to 1: the tail bytes are xored in together.
    if rest == 3:
        h ^= buf[body + 2] << 16
    if rest >= 2:
        h ^= buf[body + 1] << 8
    if rest >= 1:
        h ^= buf[body]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def default_partition(key: bytes | bytearray | memoryview, num_partitions: int) -> int:
    """Partition (0 .. num_partitions-1) the Java client picks for a non-null ``key``."""
    if num_partitions <= 0:
        raise ValueError(f"num_partitions must be positive, not {num_partitions}")
    return (murmur2(key) & 0x7FFFFFFF) % num_partitions
