"""ListOffsets (2): offsets by time — earliest, latest, or the first record at or
after a timestamp.

Advertised v1-v10 (v0's multi-offset form is gone from the spec). v2 adds the
isolation level (read_committed: latest is the last stable offset, and a timestamp
query finds nothing at or past it, as in Kafka); v4 leader epochs; v6 is flexible; v7 the
max-timestamp query (-3); v8 earliest-local (-4, the same as earliest here: there is
no tiered storage); v9 latest-tiered (-5: none, so -1/-1); v10 a timeout.

With an authorizer, the partitions of a topic the sender may not DESCRIBE answer
TOPIC_AUTHORIZATION_FAILED (timestamp and offset -1), whether it exists or not.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from streamcore.broker.authorizer import AclOperation, ResourceType
from streamcore.broker.topics import TopicError
from streamcore.codec import decode_batches
from streamcore.errors import CorruptRecordError, ErrorCode
from streamcore.protocol.messages import (
    ListOffsetsRequest,
    ListOffsetsResponse,
    ListOffsetsResponse_ListOffsetsPartitionResponse,
    ListOffsetsResponse_ListOffsetsTopicResponse,
)

if TYPE_CHECKING:
    from streamcore.broker.context import RequestContext
    from streamcore.broker.state import BrokerState
    from streamcore.storage import Log

API_KEY = 2
REQUEST = ListOffsetsRequest

_LATEST, _EARLIEST, _MAX_TIMESTAMP, _EARLIEST_LOCAL, _LATEST_TIERED = -1, -2, -3, -4, -5
_UNKNOWN = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION.code
_DENIED = ErrorCode.TOPIC_AUTHORIZATION_FAILED.code
_DESCRIBE = int(AclOperation.DESCRIBE)
_TOPIC = int(ResourceType.TOPIC)


def _by_timestamp(log: Log, ts: int) -> tuple[int, int]:
    """First record with timestamp >= ts: the time index finds the batch, its records the offset."""
    found = log.offset_for_timestamp(ts)
    if found is None:
        return -1, -1
    offset, _batch_ts = found
    # DeleteRecords may have moved the log start into the middle of the batch found.
    offset = max(offset, log.log_start_offset)
    try:
        for batch in decode_batches(log.read(offset, 1)):
            for record in batch.records:
                if record.offset >= offset and record.timestamp_ms >= ts:
                    return record.timestamp_ms, record.offset
    except CorruptRecordError:
        pass
    return _batch_ts, offset


def _max_timestamp(log: Log) -> tuple[int, int]:
    """The record with the largest timestamp (the earliest such record if tied)."""
    best_ts, best_offset = -1, -1
    offset = log.log_start_offset
    end = log.high_watermark
    while offset < end:
        data = log.read(offset, 1 << 20)
        if not data:
            break
        batches = decode_batches(data)
        if not batches:
            break
        for batch in batches:
            if batch.max_timestamp > best_ts:
                for record in batch.records:
                    if record.timestamp_ms > best_ts:
                        best_ts, best_offset = record.timestamp_ms, record.offset
            offset = batch.last_offset + 1
    return best_ts, best_offset


def handle(state: BrokerState, ctx: RequestContext, request: ListOffsetsRequest) -> ListOffsetsResponse:
    topics_out = []
    authorizer = getattr(state, "authorizer", None)
    for t in request.topics:
        parts = []
        if authorizer is not None and not authorizer.allows(ctx, _DESCRIBE, _TOPIC, t.name):
            for p in t.partitions:
                parts.append(
                    ListOffsetsResponse_ListOffsetsPartitionResponse(
                        partition_index=p.partition_index, error_code=_DENIED
                    )
                )
                state.metrics.error(_DENIED)
            topics_out.append(ListOffsetsResponse_ListOffsetsTopicResponse(name=t.name, partitions=parts))
            continue
        info = state.topics.get(t.name)
        for p in t.partitions:
            resp = ListOffsetsResponse_ListOffsetsPartitionResponse(partition_index=p.partition_index)
            parts.append(resp)
            if info is None or not 0 <= p.partition_index < info.partitions:
                resp.error_code = _UNKNOWN
                state.metrics.error(_UNKNOWN)
                continue
            try:
                log = state.topics.log(t.name, p.partition_index)
            except TopicError as exc:
                resp.error_code = exc.error_code
                continue
            ts = p.timestamp
            # read_committed (v2+) sees offsets below the last stable offset only.
            committed = ctx.api_version >= 2 and request.isolation_level == 1
            hw = log.high_watermark
            end = state.transactions.lso(t.name, p.partition_index, hw) if committed else hw
            if ts == _LATEST:
                resp.timestamp, resp.offset = -1, end
            elif ts in (_EARLIEST, _EARLIEST_LOCAL):
                resp.timestamp, resp.offset = -1, log.log_start_offset
            elif ts == _LATEST_TIERED:
                resp.timestamp, resp.offset = -1, -1
            elif ts == _MAX_TIMESTAMP:
                resp.timestamp, resp.offset = _max_timestamp(log)
            else:
                resp.timestamp, resp.offset = _by_timestamp(log, ts)
            if committed and ts not in (_LATEST, _EARLIEST, _EARLIEST_LOCAL) and resp.offset >= end:
                resp.timestamp, resp.offset = -1, -1  # Kafka: no answer at or past the LSO
            resp.leader_epoch = 0
        topics_out.append(ListOffsetsResponse_ListOffsetsTopicResponse(name=t.name, partitions=parts))
    return ListOffsetsResponse(topics=topics_out)
