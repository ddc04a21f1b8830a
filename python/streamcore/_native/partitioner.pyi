"""``_native.partitioner``: the Java client's key-to-partition hash (murmur2)."""

from typing_extensions import Buffer

__all__ = ["murmur2", "default_partition"]

def murmur2(data: Buffer) -> int:
    """MurmurHash2 of ``data`` as Kafka's ``Utils.murmur2``: a signed 32-bit int."""

def default_partition(key: Buffer, num_partitions: int) -> int:
    """Partition (0 .. num_partitions-1) the Java client picks for a non-null ``key``."""
