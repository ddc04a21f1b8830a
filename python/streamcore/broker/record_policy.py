"""What a topic's configs demand of a produced batch, checked after the codec validated it.

(The topic's ``max.message.bytes`` is checked by the Produce handler before that.)

Kafka's LogValidator rules that depend on topic configs, applied per batch:

- ``cleanup.policy`` with compact: every record needs a key, otherwise INVALID_RECORD
  (87) with one record error per keyless record, Kafka's messages.
- ``message.timestamp.type=CreateTime`` with ``message.timestamp.before.max.ms`` /
  ``after.max.ms``: a record timestamp outside [now - before, now + after] is
  INVALID_TIMESTAMP (32) with one record error per such record (records without a
  timestamp, -1, pass, as in Kafka).
- ``compression.type`` other than ``producer``: a batch whose codec differs is re-encoded
  with the topic's codec (and its compression.*.level), as Kafka's LogValidator does:
  same records (offset deltas, timestamps, keys, values, headers), same producer id,
  epoch, base sequence and partition leader epoch, so idempotent producers see no
  difference; the Produce response is unchanged.
- ``message.timestamp.type=LogAppendTime``: the broker stamps the batch with the append
  time: attributes bit 3 set, maxTimestamp = now, CRC recomputed; the records keep their
  bytes, so a compressed batch is not recompressed (Kafka does the same for v2 batches).

Records are decoded only when a rule needs them: for a compacted topic, or when the
header's timestamps cannot settle the range check (a lower bound is set, or the
header's maxTimestamp is out of range).
"""

from __future__ import annotations

import struct
import time
from typing import Any, NamedTuple

from streamcore import _impl
from streamcore.broker.topic_configs import TopicConfig
from streamcore.codec import decode_batch, encode_batch, validate_batch
from streamcore.codec.batch_header import (
    ATTRIBUTES_AT,
    CRC_AT,
    CRC_START,
    LOG_APPEND_TIME_FLAG,
    MAX_TIMESTAMP_AT,
    TRANSACTIONAL_FLAG,
    BatchInfo,
)
from streamcore.errors import ErrorCode

__all__ = ["Accepted", "PolicyRefusal", "apply_record_policy"]

_NO_TIMESTAMP = -1
_LONG_MAX = (1 << 63) - 1
_I16 = struct.Struct(">h")
_I64 = struct.Struct(">q")
_U32 = struct.Struct(">I")
_CODEC_MASK = 0x07
_CODEC_NAMES = ("none", "gzip", "snappy", "lz4", "zstd", "?", "?", "?")


class PolicyRefusal(Exception):
    """A batch the topic's configs refuse: Kafka error code, message and per-record errors."""

    def __init__(
        self, code: int, message: str | None, record_errors: list[tuple[int, str]] | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        #: (index of the record in the batch, message), as Produce v8+ reports them.
        self.record_errors = record_errors or []


class Accepted(NamedTuple):
    """A batch the topic's configs accept, as it is to be appended."""

    records: Any
    info: BatchInfo
    #: The append time stamped into the batch (ms), or -1 under CreateTime.
    log_append_time_ms: int


def apply_record_policy(
    cfg: TopicConfig,
    topic: str,
    partition: int,
    records: Any,
    info: BatchInfo,
    now_ms: int | None = None,
) -> Accepted:
    """Check one validated batch against its topic's configs; stamp it under LogAppendTime.

    ``records`` is the batch (any buffer); ``info`` its validated header; ``now_ms`` the
    broker's clock (ms since the epoch, default now). Raises PolicyRefusal.
    """
    now = int(time.time() * 1000) if now_ms is None else now_ms
    decoded = None
    if cfg.compact:
        decoded = decode_batch(records)
        keyless = [i for i, r in enumerate(decoded.records) if r.key is None]
        if keyless:
            where = f"{topic}-{partition}"
            errors = [
                (i, f"Compacted topic cannot accept message without key in topic partition {where}")
                for i in keyless
            ]
            raise PolicyRefusal(ErrorCode.INVALID_RECORD.code, _summary(errors), errors)
    if cfg.log_append_time:
        records, info = _recompress(cfg, records, info, decoded)
        return Accepted(*_stamp(records, info, now), now)
    _check_timestamps(cfg, records, info, now, decoded)
    records, info = _recompress(cfg, records, info, decoded)
    return Accepted(records, info, _NO_TIMESTAMP)


def _recompress(cfg: TopicConfig, records: Any, info: BatchInfo, decoded: Any) -> tuple[Any, BatchInfo]:
    """The batch re-encoded with the topic's codec when compression.type asks for another one."""
    target = cfg.recompression
    if target is None:
        return records, info
    codec, level = target
    if _CODEC_NAMES[info.attributes & _CODEC_MASK] == codec:
        return records, info
    batch = decoded if decoded is not None else decode_batch(records)
    recs = batch.records
    encoded = encode_batch(
        [r.value for r in recs],
        keys=[r.key for r in recs],
        headers=[r.headers for r in recs],
        timestamps_ms=[r.timestamp_ms for r in recs],
        compression=codec,
        compression_level=level,
        producer_id=info.producer_id,
        producer_epoch=info.producer_epoch,
        base_sequence=info.base_sequence,
        partition_leader_epoch=info.partition_leader_epoch,
        transactional=bool(info.attributes & TRANSACTIONAL_FLAG),
    )
    # The producer's batches carry offset deltas 0..n-1 (validate_batch checks it), so
    # re-encoding them in order keeps every record's delta.
    return encoded, validate_batch(encoded)


def _summary(errors: list[tuple[int, str]]) -> str:
    # Kafka's wording for INVALID_RECORD, listing at most three record errors.
    shown = ", ".join(f"RecordError(batchIndex={i}, message='{m}')" for i, m in errors[:3])
    return (
        f"One or more records have been rejected due to {len(errors)} record errors in total, "
        f"and only showing the first three errors at most: [{shown}]"
    )


def _check_timestamps(cfg: TopicConfig, records: Any, info: BatchInfo, now: int, decoded: Any) -> None:
    before, after = cfg.message_timestamp_before_max_ms, cfg.message_timestamp_after_max_ms
    lower = now - before
    upper = min(now + after, _LONG_MAX)
    # The header's maxTimestamp bounds every record from above, so under the default
    # before.max.ms (Long.MAX_VALUE: a lower bound near -2^63) it settles the check
    # without decoding the records.
    if before == _LONG_MAX and info.max_timestamp <= upper:
        return
    if decoded is None:
        decoded = decode_batch(records)
    errors = [
        (
            i,
            f"Timestamp {r.timestamp_ms} of message with offset {i} is out of range. "
            f"The timestamp should be within [{lower}, {upper}]",
        )
        for i, r in enumerate(decoded.records)
        if r.timestamp_ms != _NO_TIMESTAMP and not lower <= r.timestamp_ms <= upper
    ]
    if errors:
        raise PolicyRefusal(
            ErrorCode.INVALID_TIMESTAMP.code,
            "One or more records have been rejected due to invalid timestamp",
            errors,
        )


def _stamp(records: Any, info: BatchInfo, now: int) -> tuple[bytes, BatchInfo]:
    """The batch with LogAppendTime set: attribute bit 3, maxTimestamp = ``now``, new CRC."""
    buf = bytearray(records)
    attributes = info.attributes | LOG_APPEND_TIME_FLAG
    _I16.pack_into(buf, ATTRIBUTES_AT, attributes)
    _I64.pack_into(buf, MAX_TIMESTAMP_AT, now)
    crc = _impl.crc32c.crc32c(memoryview(buf)[CRC_START:])
    _U32.pack_into(buf, CRC_AT, crc)
    return bytes(buf), info._replace(attributes=attributes, max_timestamp=now, crc=crc)
