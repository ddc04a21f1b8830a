"""Key-to-partition hashing compatible with the Java client's default partitioner.

Records with a key go to ``(murmur2(key) & 0x7fffffff) % num_partitions``, the
formula of ``org.apache.kafka.clients.producer.internals.BuiltInPartitioner``;
matching it is what keeps a key on the same partition whichever client wrote it.

The functions are those of the ``partitioner`` capability that ``streamcore._impl``
selected (``rust/core/src/partitioner.rs``, or its twin
``streamcore._reference.partitioner`` under ``STREAMCORE_NO_EXTENSIONS=1``), so the
hash has one implementation per twin and the producer uses the same one.
"""

from __future__ import annotations

from streamcore._impl import partitioner as _impl

__all__ = ["default_partition", "murmur2"]

#: ``murmur2(data)``: MurmurHash2 of a bytes-like ``data`` as Kafka's ``Utils.murmur2``
#: (a signed 32-bit int).
murmur2 = _impl.murmur2

#: ``default_partition(key, num_partitions)``: the partition (0 .. num_partitions-1)
#: the Java client picks for a non-null ``key``; ValueError unless ``num_partitions``
#: is positive.
default_partition = _impl.default_partition
