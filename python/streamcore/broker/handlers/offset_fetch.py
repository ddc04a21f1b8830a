"""OffsetFetch (9): a group's committed positions.

Advertised v1-v9. v2 lets the topic list be null (every partition the group
committed) and adds a top-level error; v5 leader epochs; v6 is flexible; v7
require_stable (always stable here: no transactions); v8 batches several groups;
v9 adds the member id/epoch of the new consumer protocol (ignored: classic groups).
A partition without a committed offset answers offset -1 with no error.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

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
    from streamcore.broker.context import RequestContext
    from streamcore.broker.state import BrokerState

API_KEY = 9
REQUEST = OffsetFetchRequest


def _lookup(
    state: BrokerState, group_id: str, topics: list[Any] | None
) -> dict[str, list[tuple[int, int, int, str]]]:
    """topic -> [(partition, offset, leader_epoch, metadata)] in request order (or all)."""
    wanted = None if topics is None else [(t.name, p) for t in topics for p in t.partition_indexes]
    found = state.offsets.fetch(group_id, wanted)
    out: dict[str, list[tuple[int, int, int, str]]] = {}
    for (topic, partition), entry in found.items():
        row = (
            (partition, -1, -1, "")
            if entry is None
            else (partition, entry.offset, entry.leader_epoch, entry.metadata)
        )
        out.setdefault(topic, []).append(row)
    return out


def handle(state: BrokerState, ctx: RequestContext, request: OffsetFetchRequest) -> OffsetFetchResponse:
    version = ctx.api_version
    if version >= 8:
        groups = []
        for g in request.groups:
            found = _lookup(state, g.group_id, g.topics)
            groups.append(
                OffsetFetchResponse_OffsetFetchResponseGroup(
                    group_id=g.group_id,
                    topics=[
                        OffsetFetchResponse_OffsetFetchResponseTopics(
                            name=topic,
                            partitions=[
                                OffsetFetchResponse_OffsetFetchResponsePartitions(
                                    partition_index=p,
                                    committed_offset=o,
                                    committed_leader_epoch=e,
                                    metadata=m,
                                )
                                for p, o, e, m in rows
                            ],
                        )
                        for topic, rows in found.items()
                    ],
                )
            )
        return OffsetFetchResponse(groups=groups)
    found = _lookup(state, request.group_id, request.topics)
    return OffsetFetchResponse(
        topics=[
            OffsetFetchResponse_OffsetFetchResponseTopic(
                name=topic,
                partitions=[
                    OffsetFetchResponse_OffsetFetchResponsePartition(
                        partition_index=p, committed_offset=o, committed_leader_epoch=e, metadata=m
                    )
                    for p, o, e, m in rows
                ],
            )
            for topic, rows in found.items()
        ]
    )
