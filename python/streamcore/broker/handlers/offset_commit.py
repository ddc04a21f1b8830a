"""OffsetCommit (8): store a group's consumed positions durably.

Advertised v2-v9 (the spec's floor; librdkafka needs overlap with v1-v2). v2-v4 carry
a retention time (ignored: offsets of empty groups expire after the broker's
offsets retention); v6 leader epochs; v7 group.instance.id; v8 is flexible; v10 would
use topic ids. Commits are checked against the group's generation and member (a
"simple" commit with generation -1 is accepted for a group without members) and
appended to the internal offsets log before the answer.

With an authorizer (as Kafka): without READ on the group every partition answers
GROUP_AUTHORIZATION_FAILED; without READ on a topic its partitions answer
TOPIC_AUTHORIZATION_FAILED (before its existence is looked at) and the rest is committed.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING

from streamcore.broker.authorizer import AclOperation, ResourceType
from streamcore.errors import ErrorCode
from streamcore.protocol.messages import (
    OffsetCommitRequest,
    OffsetCommitResponse,
    OffsetCommitResponse_OffsetCommitResponsePartition,
    OffsetCommitResponse_OffsetCommitResponseTopic,
)

if TYPE_CHECKING:
    from streamcore.broker.context import RequestContext
    from streamcore.broker.state import BrokerState

API_KEY = 8
REQUEST = OffsetCommitRequest

_UNKNOWN = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION.code
_TOPIC_DENIED = ErrorCode.TOPIC_AUTHORIZATION_FAILED.code
_GROUP_DENIED = ErrorCode.GROUP_AUTHORIZATION_FAILED.code
_READ = int(AclOperation.READ)


def handle(
    state: BrokerState, ctx: RequestContext, request: OffsetCommitRequest
) -> Awaitable[OffsetCommitResponse]:
    return _commit(state, ctx, request)


async def _commit(
    state: BrokerState, ctx: RequestContext, request: OffsetCommitRequest
) -> OffsetCommitResponse:
    version = ctx.api_version
    denied: set[str] = set()
    authorizer = getattr(state, "authorizer", None)
    if authorizer is not None:
        if not authorizer.allows(ctx, _READ, ResourceType.GROUP, request.group_id):
            return _every_partition(state, request, _GROUP_DENIED)
        denied = {
            t.name for t in request.topics if not authorizer.allows(ctx, _READ, ResourceType.TOPIC, t.name)
        }
    items = []
    unknown: set[tuple[str, int]] = set()
    for t in request.topics:
        if t.name in denied:
            continue
        info = state.topics.get(t.name)
        for p in t.partitions:
            if info is None or not 0 <= p.partition_index < info.partitions:
                unknown.add((t.name, p.partition_index))
                continue
            items.append(
                (
                    t.name,
                    p.partition_index,
                    p.committed_offset,
                    p.committed_leader_epoch if version >= 6 else -1,
                    p.committed_metadata,
                )
            )
    codes = (
        await state.offsets.commit_async(
            request.group_id,
            items,
            generation_id=request.generation_id_or_member_epoch,
            member_id=request.member_id,
            group_instance_id=request.group_instance_id if version >= 7 else None,
        )
        if items
        else {}
    )
    topics = []
    for t in request.topics:
        parts = []
        for p in t.partitions:
            key = (t.name, p.partition_index)
            code = _TOPIC_DENIED if t.name in denied else _UNKNOWN if key in unknown else codes.get(key, 0)
            state.metrics.error(code)
            parts.append(
                OffsetCommitResponse_OffsetCommitResponsePartition(
                    partition_index=p.partition_index, error_code=code
                )
            )
        topics.append(OffsetCommitResponse_OffsetCommitResponseTopic(name=t.name, partitions=parts))
    return OffsetCommitResponse(topics=topics)


def _every_partition(state: BrokerState, request: OffsetCommitRequest, code: int) -> OffsetCommitResponse:
    """Every partition of the request answering ``code``."""
    state.metrics.error(code)
    return OffsetCommitResponse(
        topics=[
            OffsetCommitResponse_OffsetCommitResponseTopic(
                name=t.name,
                partitions=[
                    OffsetCommitResponse_OffsetCommitResponsePartition(
                        partition_index=p.partition_index, error_code=code
                    )
                    for p in t.partitions
                ],
            )
            for t in request.topics
        ]
    )
