"""OffsetForLeaderEpoch (23): where a leader epoch ends.

Advertised v2-v4 (the spec's floor). Every partition has had one leader epoch, 0,
since this broker is the only leader it will ever have; so epoch 0 ends at the high
watermark, and a consumer validating its position after a "leader change" finds its
offset intact. Asking for a later epoch than 0 is answered with the current end too
(the client then compares offsets), an earlier one with UNDEFINED (-1).

With an authorizer, a sender with neither CLUSTER_ACTION on the cluster nor DESCRIBE
on a topic gets TOPIC_AUTHORIZATION_FAILED for its partitions (KIP-320's rule).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from streamcore.broker.authorizer import AclOperation, ResourceType
from streamcore.broker.topics import TopicError
from streamcore.errors import ErrorCode
from streamcore.protocol.messages import (
    OffsetForLeaderEpochRequest,
    OffsetForLeaderEpochResponse,
    OffsetForLeaderEpochResponse_EpochEndOffset,
    OffsetForLeaderEpochResponse_OffsetForLeaderTopicResult,
)

if TYPE_CHECKING:
    from streamcore.broker.context import RequestContext
    from streamcore.broker.state import BrokerState

API_KEY = 23
REQUEST = OffsetForLeaderEpochRequest

_UNKNOWN = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION.code


def handle(
    state: BrokerState, ctx: RequestContext, request: OffsetForLeaderEpochRequest
) -> OffsetForLeaderEpochResponse:
    topics = []
    authorizer = getattr(state, "authorizer", None)
    if authorizer is not None and authorizer.allows_cluster(ctx, AclOperation.CLUSTER_ACTION):
        authorizer = None
    for t in request.topics:
        parts = []
        refused = authorizer is not None and not authorizer.allows(
            ctx, AclOperation.DESCRIBE, ResourceType.TOPIC, t.topic
        )
        for p in t.partitions:
            out = OffsetForLeaderEpochResponse_EpochEndOffset(partition=p.partition)
            parts.append(out)
            if refused:
                out.error_code = ErrorCode.TOPIC_AUTHORIZATION_FAILED.code
                state.metrics.error(out.error_code)
                continue
            try:
                log = state.topics.log(t.topic, p.partition)
            except TopicError as exc:
                out.error_code = exc.error_code
                continue
            if p.leader_epoch < 0:
                out.leader_epoch, out.end_offset = -1, -1
            else:
                out.leader_epoch, out.end_offset = 0, log.high_watermark
        topics.append(
            OffsetForLeaderEpochResponse_OffsetForLeaderTopicResult(topic=t.topic, partitions=parts)
        )
    return OffsetForLeaderEpochResponse(topics=topics)
