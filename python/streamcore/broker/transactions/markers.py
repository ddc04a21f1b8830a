"""Transaction markers: the COMMIT/ABORT control batches that end a transaction in a partition.

A marker is a record batch v2 with the control and transactional attribute bits set,
the transaction's producer id and epoch, base sequence -1 and one record:

* key: ``int16 version (0), int16 type (0 ABORT, 1 COMMIT)``
* value: ``int16 version (0), int32 coordinator epoch``

(Kafka's ``EndTransactionMarker``.) The coordinator writes one to every partition of
a transaction, ``__consumer_offsets`` included when offsets were committed in it,
through an :data:`AppendMarker` callback the broker provides; consumers skip control
batches, and read_committed ones use the ABORT markers to drop aborted data.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

from streamcore.codec import decode_batches, encode_batch
from streamcore.codec.batch_header import CONTROL_FLAG, TRANSACTIONAL_FLAG
from streamcore.storage.txn_index import CONTROL_ABORT, CONTROL_COMMIT, CONTROL_KEY, CONTROL_VALUE

__all__ = [
    "AppendMarker",
    "Marker",
    "build_marker",
    "make_marker_appender",
    "parse_marker",
]

_VERSION = 0

#: ``append_marker(topic, partition, batch) -> awaitable of the offset the marker got``.
#: Raises (or its awaitable fails) with TopicError UNKNOWN_TOPIC_OR_PARTITION for a
#: partition that no longer exists, anything else for a failure worth retrying.
AppendMarker = Callable[[str, int, bytes], Awaitable[int]]


class Marker(NamedTuple):
    """A decoded end-transaction marker."""

    producer_id: int
    producer_epoch: int
    commit: bool
    coordinator_epoch: int
    #: Offset of the marker (0 in a batch not yet appended).
    offset: int


def build_marker(
    producer_id: int,
    producer_epoch: int,
    *,
    commit: bool,
    coordinator_epoch: int = 0,
    timestamp_ms: int | None = None,
) -> bytes:
    """The control batch ending ``producer_id``'s transaction (``timestamp_ms``: now by default)."""
    key = CONTROL_KEY.pack(_VERSION, CONTROL_COMMIT if commit else CONTROL_ABORT)
    value = CONTROL_VALUE.pack(_VERSION, coordinator_epoch)
    ts = int(time.time() * 1000) if timestamp_ms is None else timestamp_ms
    return encode_batch(
        [value],
        keys=[key],
        timestamps_ms=[ts],
        producer_id=producer_id,
        producer_epoch=producer_epoch,
        base_sequence=-1,
        transactional=True,
        control=True,
    )


def parse_marker(batch: bytes | bytearray | memoryview) -> Marker:
    """Decode the first batch of ``batch`` as a marker; ValueError when it is not one."""
    batches = decode_batches(batch)
    if not batches:
        raise ValueError("no whole record batch")
    b = batches[0]
    if not b.attributes & CONTROL_FLAG or not b.attributes & TRANSACTIONAL_FLAG:
        raise ValueError("not a transactional control batch")
    if len(b.records) != 1:
        raise ValueError(f"a marker holds one record, this batch {len(b.records)}")
    record = b.records[0]
    if record.key is None or len(record.key) != CONTROL_KEY.size:
        raise ValueError("control record key is not 4 bytes")
    key_version, kind = CONTROL_KEY.unpack(record.key)
    if key_version != _VERSION or kind not in (CONTROL_ABORT, CONTROL_COMMIT):
        raise ValueError(f"not an end-transaction marker (key version {key_version}, type {kind})")
    if record.value is None or len(record.value) < CONTROL_VALUE.size:
        raise ValueError("marker value shorter than 6 bytes")
    _value_version, coordinator_epoch = CONTROL_VALUE.unpack_from(record.value, 0)
    return Marker(b.producer_id, b.producer_epoch, kind == CONTROL_COMMIT, coordinator_epoch, b.base_offset)


def make_marker_appender(topics: Any, delayed: Any = None) -> AppendMarker:
    """The broker's :data:`AppendMarker`: append to the partition's log (a
    ``TopicManager.log`` lookup, so an unknown partition raises TopicError) and, once
    durable, wake the partition's waiting fetches (``DelayedFetch.notify``).

    Markers bypass the idempotent-producer sequence checks, as Kafka's coordinator
    appends do.
    """

    async def append_marker(topic: str, partition: int, batch: bytes) -> int:
        log = topics.log(topic, partition)
        result = await log.append_async(batch)
        if delayed is not None:
            delayed.notify(topic, partition)
        return int(result.base_offset)

    return append_marker
