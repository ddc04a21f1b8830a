"""DeleteRecords (21): move partitions' log start offsets forward.

v0-v2 (Kafka's range); v2 is flexible. Per partition, ``offset`` becomes the new log
start (-1 = the high watermark); the answer's low watermark is the log start
afterwards. As in Kafka: an offset below the current log start changes nothing, one
above the high watermark is OFFSET_OUT_OF_RANGE, the internal ``__consumer_offsets``
is INVALID_TOPIC_EXCEPTION, a topic whose cleanup.policy lacks ``delete`` (compact only)
POLICY_VIOLATION, an unknown partition UNKNOWN_TOPIC_OR_PARTITION. From
then on fetches below the new start get OFFSET_OUT_OF_RANGE and ListOffsets earliest
returns it; it is in the partition's checkpoint (written before the answer), so it
survives a restart. Closed segments wholly below it are deleted at once.

With an authorizer, the partitions of a topic the sender may not DELETE answer
TOPIC_AUTHORIZATION_FAILED, whether it exists or not.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from streamcore.broker.authorizer import AclOperation, ResourceType, denied
from streamcore.broker.topics import TopicError
from streamcore.errors import ErrorCode, OffsetOutOfRangeError, StreamcoreError
from streamcore.protocol.messages import (
    DeleteRecordsRequest,
    DeleteRecordsResponse,
    DeleteRecordsResponse_DeleteRecordsPartitionResult,
    DeleteRecordsResponse_DeleteRecordsTopicResult,
)

if TYPE_CHECKING:
    from streamcore.broker.context import RequestContext
    from streamcore.broker.state import BrokerState

API_KEY = 21
REQUEST = DeleteRecordsRequest

_HIGH_WATERMARK = -1


def _delete(state: BrokerState, topic: str, partition: int, offset: int) -> tuple[int, int]:
    """(error code, low watermark) for one partition; runs off the event loop (it fsyncs)."""
    info = state.topics.get(topic)
    if info is None or not 0 <= partition < info.partitions:
        return ErrorCode.UNKNOWN_TOPIC_OR_PARTITION.code, -1
    if info.internal:
        return ErrorCode.INVALID_TOPIC_EXCEPTION.code, -1
    if not state.topics.topic_config(topic).delete:
        # Kafka: records of a topic whose policy lacks delete "can not be deleted due to
        # the configured policy" (a compacted log keeps every key's latest record).
        return ErrorCode.POLICY_VIOLATION.code, -1
    try:
        log = state.topics.log(topic, partition)
        if offset == _HIGH_WATERMARK:
            offset = log.high_watermark
        return ErrorCode.NO_ERROR.code, log.delete_records(offset)
    except OffsetOutOfRangeError:
        return ErrorCode.OFFSET_OUT_OF_RANGE.code, -1
    except TopicError as exc:
        return exc.error_code, -1
    except StreamcoreError:
        return ErrorCode.KAFKA_STORAGE_ERROR.code, -1


async def handle(
    state: BrokerState, ctx: RequestContext, request: DeleteRecordsRequest
) -> DeleteRecordsResponse:
    topics_out = []
    for t in request.topics:
        parts = []
        refused = denied(state, ctx, AclOperation.DELETE, ResourceType.TOPIC, t.name)
        for p in t.partitions:
            if refused:
                code, low = ErrorCode.TOPIC_AUTHORIZATION_FAILED.code, -1
            else:
                code, low = await asyncio.to_thread(_delete, state, t.name, p.partition_index, p.offset)
            state.metrics.error(code)
            parts.append(
                DeleteRecordsResponse_DeleteRecordsPartitionResult(
                    partition_index=p.partition_index, low_watermark=low, error_code=code
                )
            )
        topics_out.append(DeleteRecordsResponse_DeleteRecordsTopicResult(name=t.name, partitions=parts))
    return DeleteRecordsResponse(topics=topics_out)
