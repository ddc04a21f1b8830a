"""OffsetFetch (9): a group's committed positions.

Advertised v1-v9. v2 lets the topic list be null (every partition the group
committed) and adds a top-level error; v5 leader epochs; v6 is flexible; v7
require_stable: a partition with a transactional offset commit still pending (its
transaction not yet ended) answers UNSTABLE_OFFSET_COMMIT, which the consumer retries,
instead of an offset about to change; v8 batches several groups;
v9 adds the member id/epoch of the new consumer protocol (ignored: classic groups).
A partition without a committed offset answers offset -1 with no error.

With an authorizer (as Kafka): a group the sender may not DESCRIBE answers
GROUP_AUTHORIZATION_FAILED (v1: on every partition asked for; v2-v7: top-level;
v8+: for that group); the partitions of a topic named in the request that it may not
DESCRIBE answer TOPIC_AUTHORIZATION_FAILED, and when every committed partition is
asked for (null topics) such topics are left out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from streamcore.broker.authorizer import AclOperation, ResourceType
from streamcore.errors import ErrorCode
from streamcore.protocol.messages import (
    OffsetFetchRequest,
    OffsetFetchResponse,
    OffsetFetchResponse_OffsetFetchResponseGroup,
    OffsetFetchResponse_OffsetFetchResponsePartition,
    OffsetFetchResponse_OffsetFetchResponsePartitions,
    OffsetFetchResponse_OffsetFetchResponseTopic,
    OffsetFetchResponse_OffsetFetchResponseTopics,
)

if TYPE_CHECKING:
    from streamcore.broker.authorizer import AclAuthorizer
    from streamcore.broker.context import RequestContext
    from streamcore.broker.state import BrokerState

API_KEY = 9
REQUEST = OffsetFetchRequest

_TOPIC_DENIED = ErrorCode.TOPIC_AUTHORIZATION_FAILED.code
_GROUP_DENIED = ErrorCode.GROUP_AUTHORIZATION_FAILED.code
_UNSTABLE = ErrorCode.UNSTABLE_OFFSET_COMMIT.code
_DESCRIBE = int(AclOperation.DESCRIBE)
_TOPIC = int(ResourceType.TOPIC)

#: (partition, committed offset, leader epoch, metadata, error code)
_Row = tuple[int, int, int, str, int]


def _lookup(state: BrokerState, group_id: str, topics: list[Any] | None) -> dict[str, list[_Row]]:
    """topic -> rows in request order (or all)."""
    wanted = None if topics is None else [(t.name, p) for t in topics for p in t.partition_indexes]
    found = state.offsets.fetch(group_id, wanted)
    out: dict[str, list[_Row]] = {}
    for (topic, partition), entry in found.items():
        row = (
            (partition, -1, -1, "", 0)
            if entry is None
            else (partition, entry.offset, entry.leader_epoch, entry.metadata, 0)
        )
        out.setdefault(topic, []).append(row)
    return out


def _group(
    state: BrokerState,
    ctx: RequestContext,
    authorizer: AclAuthorizer | None,
    group_id: str,
    topics: list[Any] | None,
) -> tuple[int, dict[str, list[_Row]]]:
    """(group error code, topic -> rows) for one group, as the sender may see them."""
    if authorizer is None:
        return 0, _lookup(state, group_id, topics)
    if not authorizer.allows(ctx, _DESCRIBE, ResourceType.GROUP, group_id):
        state.metrics.error(_GROUP_DENIED)
        return _GROUP_DENIED, {}
    if topics is None:
        found = _lookup(state, group_id, None)
        return 0, {t: rows for t, rows in found.items() if authorizer.allows(ctx, _DESCRIBE, _TOPIC, t)}
    allowed = [t for t in topics if authorizer.allows(ctx, _DESCRIBE, _TOPIC, t.name)]
    found = _lookup(state, group_id, allowed) if allowed else {}
    for t in topics:
        if t.name not in found and not authorizer.allows(ctx, _DESCRIBE, _TOPIC, t.name):
            found[t.name] = [(p, -1, -1, "", _TOPIC_DENIED) for p in t.partition_indexes]
            state.metrics.error(_TOPIC_DENIED)
    return 0, found


def _stable(state: BrokerState, group_id: str, found: dict[str, list[_Row]]) -> dict[str, list[_Row]]:
    """require_stable: the rows of partitions with a transactional commit still pending
    become UNSTABLE_OFFSET_COMMIT (retriable; offset -1), as in Kafka."""
    pending = state.offsets.pending_partitions(group_id)
    if not pending:
        return found
    out: dict[str, list[_Row]] = {}
    for topic, rows in found.items():
        out[topic] = []
        for row in rows:
            if (topic, row[0]) in pending and not row[4]:
                state.metrics.error(_UNSTABLE)
                row = (row[0], -1, -1, "", _UNSTABLE)
            out[topic].append(row)
    return out


def handle(state: BrokerState, ctx: RequestContext, request: OffsetFetchRequest) -> OffsetFetchResponse:
    version = ctx.api_version
    authorizer = getattr(state, "authorizer", None)
    if version >= 8:
        groups = []
        for g in request.groups:
            code, found = _group(state, ctx, authorizer, g.group_id, g.topics)
            if request.require_stable:
                found = _stable(state, g.group_id, found)
            groups.append(
                OffsetFetchResponse_OffsetFetchResponseGroup(
                    group_id=g.group_id,
                    error_code=code,
                    topics=[
                        OffsetFetchResponse_OffsetFetchResponseTopics(
                            name=topic,
                            partitions=[
                                OffsetFetchResponse_OffsetFetchResponsePartitions(
                                    partition_index=p,
                                    committed_offset=o,
                                    committed_leader_epoch=e,
                                    metadata=m,
                                    error_code=err,
                                )
                                for p, o, e, m, err in rows
                            ],
                        )
                        for topic, rows in found.items()
                    ],
                )
            )
        return OffsetFetchResponse(groups=groups)
    code, found = _group(state, ctx, authorizer, request.group_id, request.topics)
    if version >= 7 and request.require_stable:
        found = _stable(state, request.group_id, found)
    if code and version < 2:
        # v1 has no top-level error: every partition asked for carries it.
        found = {t.name: [(p, -1, -1, "", code) for p in t.partition_indexes] for t in request.topics or ()}
        code = 0
    return OffsetFetchResponse(
        error_code=code,
        topics=[
            OffsetFetchResponse_OffsetFetchResponseTopic(
                name=topic,
                partitions=[
                    OffsetFetchResponse_OffsetFetchResponsePartition(
                        partition_index=p,
                        committed_offset=o,
                        committed_leader_epoch=e,
                        metadata=m,
                        error_code=err,
                    )
                    for p, o, e, m, err in rows
                ],
            )
            for topic, rows in found.items()
        ],
    )
