"""CreatePartitions (37): grow topics to a larger partition count.

v0-v3 (Kafka's range); v2 is flexible. ``count`` is the new total; it must be larger
than the current one (INVALID_PARTITIONS otherwise, as in Kafka). Manual assignments
must list one replica per new partition, on this broker (INVALID_REPLICA_ASSIGNMENT
otherwise: streamcore is one broker). A topic named twice is INVALID_REQUEST. The
catalogue is written before the new partitions are visible; their logs open on
first use. ``validate_only`` checks and changes nothing.

With an authorizer, a topic the sender may not ALTER answers TOPIC_AUTHORIZATION_FAILED.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from streamcore.broker.authorizer import AclOperation, ResourceType, denied
from streamcore.broker.topics import TopicError
from streamcore.errors import ErrorCode
from streamcore.protocol.messages import (
    CreatePartitionsRequest,
    CreatePartitionsResponse,
    CreatePartitionsResponse_CreatePartitionsTopicResult,
)

if TYPE_CHECKING:
    from streamcore.broker.context import RequestContext
    from streamcore.broker.state import BrokerState

API_KEY = 37
REQUEST = CreatePartitionsRequest


def handle(
    state: BrokerState, ctx: RequestContext, request: CreatePartitionsRequest
) -> CreatePartitionsResponse:
    named = Counter(t.name for t in request.topics)
    results = []
    for t in request.topics:
        result = CreatePartitionsResponse_CreatePartitionsTopicResult(name=t.name, error_message=None)
        results.append(result)
        if named[t.name] > 1:
            result.error_code = ErrorCode.INVALID_REQUEST.code
            result.error_message = f"topic {t.name!r} is named more than once in the request"
            continue
        if denied(state, ctx, AclOperation.ALTER, ResourceType.TOPIC, t.name):
            result.error_code = ErrorCode.TOPIC_AUTHORIZATION_FAILED.code
            state.metrics.error(result.error_code)
            continue
        try:
            if t.assignments is not None:
                _check_assignments(state, t.name, t.count, t.assignments)
            state.topics.create_partitions(t.name, t.count, validate_only=request.validate_only)
        except TopicError as exc:
            result.error_code, result.error_message = exc.error_code, exc.message
        state.metrics.error(result.error_code)
    return CreatePartitionsResponse(results=results)


def _check_assignments(state: BrokerState, name: str, count: int, assignments: list) -> None:
    info = state.topics.get(name)
    if info is None:
        return  # create_partitions answers UNKNOWN_TOPIC_OR_PARTITION
    if len(assignments) != count - info.partitions:
        raise TopicError(
            ErrorCode.INVALID_REPLICA_ASSIGNMENT,
            f"{len(assignments)} assignments given for {count - info.partitions} new partitions of {name!r}",
        )
    if any(list(a.broker_ids) != [state.node_id] for a in assignments):
        raise TopicError(
            ErrorCode.INVALID_REPLICA_ASSIGNMENT,
            f"streamcore is a single broker (node {state.node_id}): each new partition has that one replica",
        )
