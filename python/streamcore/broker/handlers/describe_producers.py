"""DescribeProducers (61): the idempotent and transactional producers active on partitions.

v0 only (Kafka's range; flexible). Per partition, each producer the broker tracks
for sequence checks: id, epoch, last sequence written and last timestamp (the
newest batch's max timestamp when rebuilt from the log at start, else the broker's
clock at the producer's last write, ms) and the first offset of its transaction open
in the partition (-1 when none; what Kafka's tools use to find hanging transactions).
The coordinator epoch is always -1 (markers are not tracked per producer). Producers
idle past the expiry (one day) are forgotten, as in Kafka. An unknown partition is
UNKNOWN_TOPIC_OR_PARTITION.

With an authorizer, the partitions of a topic the sender may not READ answer
TOPIC_AUTHORIZATION_FAILED, whether it exists or not.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from streamcore.broker.authorizer import AclOperation, ResourceType, denied
from streamcore.errors import ErrorCode
from streamcore.protocol.messages import (
    DescribeProducersRequest,
    DescribeProducersResponse,
    DescribeProducersResponse_PartitionResponse,
    DescribeProducersResponse_ProducerState,
    DescribeProducersResponse_TopicResponse,
)

if TYPE_CHECKING:
    from streamcore.broker.context import RequestContext
    from streamcore.broker.state import BrokerState

API_KEY = 61
REQUEST = DescribeProducersRequest


def handle(
    state: BrokerState, ctx: RequestContext, request: DescribeProducersRequest
) -> DescribeProducersResponse:
    topics_out = []
    for t in request.topics:
        info = state.topics.get(t.name)
        parts = []
        refused = denied(state, ctx, AclOperation.READ, ResourceType.TOPIC, t.name)
        for index in t.partition_indexes:
            out = DescribeProducersResponse_PartitionResponse(partition_index=index)
            parts.append(out)
            if refused:
                out.error_code, out.error_message = ErrorCode.TOPIC_AUTHORIZATION_FAILED.code, None
                state.metrics.error(out.error_code)
                continue
            if info is None or not 0 <= index < info.partitions:
                out.error_code = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION.code
                out.error_message = f"topic {t.name!r} has no partition {index}"
                state.metrics.error(out.error_code)
                continue
            open_txns = state.transactions.partitions.ongoing(t.name, index)
            out.active_producers = [
                DescribeProducersResponse_ProducerState(
                    producer_id=pid,
                    producer_epoch=epoch,
                    last_sequence=last_sequence,
                    last_timestamp=last_timestamp,
                    coordinator_epoch=-1,
                    current_txn_start_offset=open_txns.get(pid, -1),
                )
                for pid, epoch, last_sequence, last_timestamp in state.producers.describe((t.name, index))
            ]
        topics_out.append(DescribeProducersResponse_TopicResponse(name=t.name, partitions=parts))
    return DescribeProducersResponse(topics=topics_out)
