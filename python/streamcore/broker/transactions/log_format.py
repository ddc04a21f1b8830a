"""Records of the ``__transaction_state`` topic, in Kafka's layout.

One record per transactional id and state change; the topic is compacted, so the
latest record of each id is its state, and a null value (tombstone) removes an id.

* key, version 0: ``int16 version, string transactional_id``
* value, version 0: ``int16 version, int64 producer_id, int16 producer_epoch,
  int32 transaction_timeout_ms, int8 transaction_status, partitions (nullable array of
  {string topic, int32 array partition_ids}; null in state Empty), int64
  last_update_timestamp_ms, int64 start_timestamp_ms``
* value, version 1 (flexible, written by Kafka once transaction.version >= 1): the
  same fields in compact encodings, with tagged fields 0 (previous producer id),
  1 (next producer id) and 2 (client transaction version).

``string`` is int16 length + UTF-8; arrays int32 count (-1 = null). The flexible
version uses unsigned varints of length + 1 and ends each struct with its tagged
fields. The broker writes version 0 (what Kafka writes for transaction.version 0) and
reads both, so a state log copied from Kafka loads.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from typing import NamedTuple

from streamcore.broker.transactions.metadata import (
    NO_PRODUCER_EPOCH,
    NO_PRODUCER_ID,
    TopicPartition,
    TxnState,
    TxnTransit,
)

__all__ = [
    "KEY_VERSION",
    "VALUE_VERSION",
    "LogValue",
    "decode_key",
    "decode_value",
    "encode_key",
    "encode_value",
    "encode_value_v1",
]

KEY_VERSION = 0
VALUE_VERSION = 0

_I8 = struct.Struct(">b")
_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_I64 = struct.Struct(">q")
_V0_HEAD = struct.Struct(">hqhib")  # version, producer id, epoch, timeout, status
_V1_HEAD = struct.Struct(">qhib")  # producer id, epoch, timeout, status (after the version)
_TIMES = struct.Struct(">qq")  # last update, start


class LogValue(NamedTuple):
    """A decoded value: the fields a record carries (epochs/ids it lacks are -1)."""

    producer_id: int
    producer_epoch: int
    timeout_ms: int
    state: TxnState
    partitions: frozenset[TopicPartition]
    last_update_ms: int
    start_ms: int
    previous_producer_id: int = NO_PRODUCER_ID
    next_producer_id: int = NO_PRODUCER_ID
    client_transaction_version: int = 0

    def transit(self) -> TxnTransit:
        """As a transition record (the last epoch is not stored: -1, as after a Kafka load)."""
        return TxnTransit(
            self.producer_id,
            self.previous_producer_id,
            self.producer_epoch,
            NO_PRODUCER_EPOCH,
            self.timeout_ms,
            self.state,
            self.partitions,
            self.start_ms,
            self.last_update_ms,
        )


# ---------------------------------------------------------------------- encoding


def _string(text: str) -> bytes:
    raw = text.encode("utf-8")
    return _I16.pack(len(raw)) + raw


def _uvarint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _by_topic(partitions: Iterable[TopicPartition]) -> list[tuple[str, list[int]]]:
    grouped: dict[str, list[int]] = {}
    for topic, partition in sorted(partitions):
        grouped.setdefault(topic, []).append(partition)
    return list(grouped.items())


def encode_key(transactional_id: str) -> bytes:
    """The record key of a transactional id (version 0)."""
    return _I16.pack(KEY_VERSION) + _string(transactional_id)


def encode_value(transit: TxnTransit) -> bytes:
    """The record value (version 0) of a transition's target state.

    Raises ValueError for state Empty with partitions (Kafka refuses it too).
    """
    if transit.state is TxnState.EMPTY and transit.partitions:
        raise ValueError("a transaction in state Empty has no partitions")
    out = [
        _V0_HEAD.pack(
            VALUE_VERSION, transit.producer_id, transit.producer_epoch, transit.timeout_ms, transit.state
        )
    ]
    if transit.state is TxnState.EMPTY:
        out.append(_I32.pack(-1))
    else:
        groups = _by_topic(transit.partitions)
        out.append(_I32.pack(len(groups)))
        for topic, ids in groups:
            out.append(_string(topic))
            out.append(_I32.pack(len(ids)))
            out.extend(_I32.pack(p) for p in ids)
    out.append(_TIMES.pack(transit.last_update_ms, transit.start_ms))
    return b"".join(out)


def encode_value_v1(value: LogValue) -> bytes:
    """The flexible value version 1 (Kafka writes it once transaction.version >= 1;
    here for reading tests and tools: the broker itself writes version 0)."""
    out = [
        _I16.pack(1),
        _V1_HEAD.pack(value.producer_id, value.producer_epoch, value.timeout_ms, value.state),
    ]
    if value.state is TxnState.EMPTY:
        out.append(_uvarint(0))
    else:
        groups = _by_topic(value.partitions)
        out.append(_uvarint(len(groups) + 1))
        for topic, ids in groups:
            raw = topic.encode("utf-8")
            out.append(_uvarint(len(raw) + 1) + raw)
            out.append(_uvarint(len(ids) + 1))
            out.extend(_I32.pack(p) for p in ids)
            out.append(_uvarint(0))  # the struct's tagged fields
    out.append(_TIMES.pack(value.last_update_ms, value.start_ms))
    tags = []
    if value.previous_producer_id != NO_PRODUCER_ID:
        tags.append((0, _I64.pack(value.previous_producer_id)))
    if value.next_producer_id != NO_PRODUCER_ID:
        tags.append((1, _I64.pack(value.next_producer_id)))
    if value.client_transaction_version != 0:
        tags.append((2, _I16.pack(value.client_transaction_version)))
    out.append(_uvarint(len(tags)))
    for tag, data in tags:
        out.append(_uvarint(tag) + _uvarint(len(data)) + data)
    return b"".join(out)


# ---------------------------------------------------------------------- decoding


class _Reader:
    __slots__ = ("buf", "pos")

    def __init__(self, buf: bytes, pos: int = 0) -> None:
        self.buf = buf
        self.pos = pos

    def take(self, s: struct.Struct) -> tuple[int, ...]:
        if self.pos + s.size > len(self.buf):
            raise ValueError("record ends inside a field")
        values = s.unpack_from(self.buf, self.pos)
        self.pos += s.size
        return values

    def raw(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.buf):
            raise ValueError("record ends inside a field")
        data = self.buf[self.pos : self.pos + n]
        self.pos += n
        return data

    def uvarint(self) -> int:
        shift = result = 0
        while True:
            if self.pos >= len(self.buf):
                raise ValueError("record ends inside a varint")
            byte = self.buf[self.pos]
            self.pos += 1
            result |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return result
            shift += 7
            if shift > 35:
                raise ValueError("varint too long")

    def string(self) -> str:
        (n,) = self.take(_I16)
        if n < 0:
            raise ValueError("null string where a string is required")
        return self.raw(n).decode("utf-8")

    def compact_string(self) -> str:
        n = self.uvarint() - 1
        if n < 0:
            raise ValueError("null string where a string is required")
        return self.raw(n).decode("utf-8")

    def skip_tags(self) -> dict[int, bytes]:
        tags = {}
        for _ in range(self.uvarint()):
            tag = self.uvarint()
            tags[tag] = self.raw(self.uvarint())
        return tags


def decode_key(key: bytes) -> str | None:
    """The transactional id of a record key; None for a key version this broker does not know."""
    reader = _Reader(key)
    (version,) = reader.take(_I16)
    if version != KEY_VERSION:
        return None
    return reader.string()


def decode_value(value: bytes) -> LogValue:
    """A record value of version 0 or 1. Raises ValueError for anything else."""
    reader = _Reader(value)
    (version,) = reader.take(_I16)
    partitions: set[TopicPartition] = set()
    tags: dict[int, bytes] = {}
    if version == 0:
        _, producer_id, epoch, timeout, status = _V0_HEAD.unpack_from(value, 0)
        reader.pos = _V0_HEAD.size
        (count,) = reader.take(_I32)
        for _ in range(max(count, 0)):
            topic = reader.string()
            (n,) = reader.take(_I32)
            for _ in range(max(n, 0)):
                partitions.add((topic, reader.take(_I32)[0]))
        last_update, start = reader.take(_TIMES)
    elif version == 1:
        producer_id, epoch, timeout, status = reader.take(_V1_HEAD)
        count = reader.uvarint() - 1
        for _ in range(max(count, 0)):
            topic = reader.compact_string()
            n = reader.uvarint() - 1
            for _ in range(max(n, 0)):
                partitions.add((topic, reader.take(_I32)[0]))
            reader.skip_tags()
        last_update, start = reader.take(_TIMES)
        tags = reader.skip_tags()
    else:
        raise ValueError(f"unknown __transaction_state value version {version}")
    try:
        state = TxnState(status)
    except ValueError:
        raise ValueError(f"unknown transaction state id {status}") from None
    if state is TxnState.EMPTY:
        partitions.clear()
    return LogValue(
        producer_id,
        epoch,
        timeout,
        state,
        frozenset(partitions),
        last_update,
        start,
        _I64.unpack(tags[0])[0] if len(tags.get(0, b"")) == 8 else NO_PRODUCER_ID,
        _I64.unpack(tags[1])[0] if len(tags.get(1, b"")) == 8 else NO_PRODUCER_ID,
        _I16.unpack(tags[2])[0] if len(tags.get(2, b"")) == 2 else 0,
    )
