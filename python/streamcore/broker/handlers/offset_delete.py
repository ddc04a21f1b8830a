"""OffsetDelete (47): delete some committed offsets of a consumer group.

v0 only (Kafka's range; not flexible). As in Kafka: an unknown group is
GROUP_ID_NOT_FOUND; a group with members that does not speak the consumer protocol
is NON_EMPTY_GROUP; a partition whose topic a current member subscribes to is
GROUP_SUBSCRIBED_TO_TOPIC (when a member's subscription cannot be read, every topic
counts as subscribed, which is Kafka's cautious choice too); a partition of an
unknown topic is UNKNOWN_TOPIC_OR_PARTITION. The other partitions' offsets are
removed with tombstones in ``__consumer_offsets``, durable before the answer.

With an authorizer (as Kafka): without DELETE on the group the answer is
GROUP_AUTHORIZATION_FAILED; the partitions of a topic the sender may not READ answer
TOPIC_AUTHORIZATION_FAILED and keep their offsets.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from streamcore.broker.authorizer import AclOperation, ResourceType
from streamcore.errors import ErrorCode, ProtocolError, StreamcoreError
from streamcore.protocol.messages import (
    ConsumerProtocolSubscription,
    OffsetDeleteRequest,
    OffsetDeleteResponse,
    OffsetDeleteResponse_OffsetDeleteResponsePartition,
    OffsetDeleteResponse_OffsetDeleteResponseTopic,
)

if TYPE_CHECKING:
    from streamcore.broker.context import RequestContext
    from streamcore.broker.state import BrokerState

API_KEY = 47
REQUEST = OffsetDeleteRequest

_VERSION = struct.Struct(">h")


def subscribed_topics(metadata: list[bytes]) -> set[str] | None:
    """Topics the consumer-protocol members subscribe to; None when one subscription is unreadable."""
    topics: set[str] = set()
    for blob in metadata:
        try:
            (version,) = _VERSION.unpack_from(blob, 0)
            # Newer versions only append fields, so the highest known one reads them.
            known = min(version, ConsumerProtocolSubscription.MAX_VERSION)
            topics.update(ConsumerProtocolSubscription.decode(memoryview(blob)[2:], known).topics)
        except (struct.error, ProtocolError, ValueError):
            return None
    return topics


async def handle(
    state: BrokerState, ctx: RequestContext, request: OffsetDeleteRequest
) -> OffsetDeleteResponse:
    group_id = request.group_id
    authorizer = getattr(state, "authorizer", None)
    unreadable: set[str] = set()
    if authorizer is not None:
        if not authorizer.allows(ctx, AclOperation.DELETE, ResourceType.GROUP, group_id):
            code = ErrorCode.GROUP_AUTHORIZATION_FAILED.code
            state.metrics.error(code)
            return OffsetDeleteResponse(error_code=code)
        unreadable = {
            t.name
            for t in request.topics
            if not authorizer.allows(ctx, AclOperation.READ, ResourceType.TOPIC, t.name)
        }
    known = state.coordinator.state(group_id) is not None or state.offsets.has_group(group_id)
    if not known:
        code = ErrorCode.GROUP_ID_NOT_FOUND.code
        state.metrics.error(code)
        return OffsetDeleteResponse(error_code=code)
    protocol_type, metadata = state.coordinator.member_subscriptions(group_id)
    subscribed: set[str] | None = set()
    if metadata:
        if protocol_type != "consumer":
            code = ErrorCode.NON_EMPTY_GROUP.code
            state.metrics.error(code)
            return OffsetDeleteResponse(error_code=code)
        subscribed = subscribed_topics(metadata)
    topics_out = []
    doomed: list[tuple[str, int]] = []
    for t in request.topics:
        info = state.topics.get(t.name)
        parts = []
        for p in t.partitions:
            if t.name in unreadable:
                code = ErrorCode.TOPIC_AUTHORIZATION_FAILED.code
            elif info is None or not 0 <= p.partition_index < info.partitions:
                code = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION.code
            elif subscribed is None or t.name in subscribed:
                code = ErrorCode.GROUP_SUBSCRIBED_TO_TOPIC.code
            else:
                code = ErrorCode.NO_ERROR.code
                doomed.append((t.name, p.partition_index))
            state.metrics.error(code)
            parts.append(
                OffsetDeleteResponse_OffsetDeleteResponsePartition(
                    partition_index=p.partition_index, error_code=code
                )
            )
        topics_out.append(OffsetDeleteResponse_OffsetDeleteResponseTopic(name=t.name, partitions=parts))
    try:
        await state.offsets.delete_offsets_async(group_id, doomed)
    except StreamcoreError:
        # Retriable: nothing was forgotten, the client may send the request again.
        return OffsetDeleteResponse(error_code=ErrorCode.COORDINATOR_NOT_AVAILABLE.code)
    return OffsetDeleteResponse(error_code=ErrorCode.NO_ERROR.code, topics=topics_out)
