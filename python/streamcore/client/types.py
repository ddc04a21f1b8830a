"""Small value types the client returns."""

from __future__ import annotations

from typing import Any, NamedTuple

__all__ = [
    "TopicPartition",
    "RecordMetadata",
    "BatchMetadata",
    "ConsumerRecord",
    "PartitionColumns",
    "OffsetAndMetadata",
    "ConsumerGroupMetadata",
]


class TopicPartition(NamedTuple):
    """A partition of a topic."""

    topic: str
    partition: int


class RecordMetadata(NamedTuple):
    """Where a produced record was written: ``offset`` is -1 under acks=0.

    ``timestamp`` is the record's timestamp in ms since the epoch.
    """

    topic: str
    partition: int
    offset: int
    timestamp: int


class BatchMetadata(NamedTuple):
    """Where a run of records from ``send_batch`` was written.

    Records ``base_offset .. base_offset + record_count - 1`` of ``partition``, in the
    order given (``base_offset`` is -1 under acks=0).
    """

    topic: str
    partition: int
    base_offset: int
    record_count: int
    timestamp: int


class ConsumerRecord(NamedTuple):
    """One consumed record; ``timestamp`` in ms since the epoch, headers as (str, bytes) pairs."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    key: Any
    value: Any
    headers: list[tuple[str, bytes | None]]


class PartitionColumns(NamedTuple):
    """Records of one partition from one poll, as numpy columns (see RecordBatch.to_columns).

    ``columns`` keys: offset, timestamp_ms, key_offset, key_length, value_offset,
    value_length (numpy arrays) and buffer (bytes the offsets index into).
    """

    topic: str
    partition: int
    columns: dict[str, Any]


class OffsetAndMetadata(NamedTuple):
    """A committed offset (next offset to consume) and its metadata string."""

    offset: int
    metadata: str = ""


class ConsumerGroupMetadata(NamedTuple):
    """A consumer's group membership, for ``Producer.send_offsets_to_transaction``
    (``Consumer.group_metadata()``): the group coordinator refuses the offsets of a
    member that has been replaced since (a rebalance moved its partitions).

    ``generation_id`` -1 and ``member_id`` "" stand for a consumer that is not a member
    (manual assignment): the offsets are then committed without that check.
    """

    group_id: str
    generation_id: int = -1
    member_id: str = ""
    group_instance_id: str | None = None
