"""DeleteTopics (20): delete topics by name (v1-v5) or by name or id (v6).

Advertised v1-v6. v4 is flexible; v5 adds error messages; v6 a list of
(name | topic id) states. The internal offsets topic cannot be deleted.

With an authorizer (Kafka's KRaft rules): DELETE on the cluster allows every deletion;
otherwise a topic named without DESCRIBE on it is TOPIC_AUTHORIZATION_FAILED (whether
it exists or not), a missing one UNKNOWN_TOPIC_OR_PARTITION, and one without DELETE
TOPIC_AUTHORIZATION_FAILED; a topic given by id without DELETE is
TOPIC_AUTHORIZATION_FAILED, with its name only for a sender that may DESCRIBE it.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from streamcore.broker.authorizer import AclOperation, ResourceType
from streamcore.broker.topics import TopicError
from streamcore.errors import ErrorCode
from streamcore.protocol.messages import (
    DeleteTopicsRequest,
    DeleteTopicsResponse,
    DeleteTopicsResponse_DeletableTopicResult,
)

if TYPE_CHECKING:
    from streamcore.broker.authorizer import AclAuthorizer
    from streamcore.broker.context import RequestContext
    from streamcore.broker.state import BrokerState

API_KEY = 20
REQUEST = DeleteTopicsRequest

_ZERO_UUID = bytes(16)
_DENIED = ErrorCode.TOPIC_AUTHORIZATION_FAILED.code
_TOPIC = int(ResourceType.TOPIC)


def _refusal(
    state: BrokerState, ctx: RequestContext, authorizer: AclAuthorizer, name: str | None, topic_id: bytes
) -> DeleteTopicsResponse_DeletableTopicResult | None:
    """The answer for a deletion the sender may not make, None when it may (or when the
    topic is unknown, which the deletion itself reports)."""
    if name:
        if not authorizer.allows(ctx, AclOperation.DESCRIBE, _TOPIC, name):
            return DeleteTopicsResponse_DeletableTopicResult(
                name=name, topic_id=_ZERO_UUID, error_code=_DENIED, error_message=None
            )
        if state.topics.get(name) is None or authorizer.allows(ctx, AclOperation.DELETE, _TOPIC, name):
            return None
        return DeleteTopicsResponse_DeletableTopicResult(
            name=name, topic_id=_ZERO_UUID, error_code=_DENIED, error_message=None
        )
    info = state.topics.get_by_id(uuid.UUID(bytes=bytes(topic_id)))
    if info is None or authorizer.allows(ctx, AclOperation.DELETE, _TOPIC, info.name):
        return None
    shown = info.name if authorizer.allows(ctx, AclOperation.DESCRIBE, _TOPIC, info.name) else None
    return DeleteTopicsResponse_DeletableTopicResult(
        name=shown, topic_id=topic_id, error_code=_DENIED, error_message=None
    )


def _delete(
    state: BrokerState, name: str | None, topic_id: bytes
) -> DeleteTopicsResponse_DeletableTopicResult:
    result = DeleteTopicsResponse_DeletableTopicResult(name=name, topic_id=topic_id, error_message=None)
    try:
        if name:
            info = state.topics.delete_topic(name)
        else:
            info = state.topics.delete_topic_by_id(uuid.UUID(bytes=bytes(topic_id)))
        result.name = info.name
        result.topic_id = info.topic_id.bytes
        state.forget_topic(info.name, info.partitions)
    except TopicError as exc:
        result.error_code = exc.error_code
        result.error_message = exc.message
        state.metrics.error(exc.error_code)
    return result


def handle(state: BrokerState, ctx: RequestContext, request: DeleteTopicsRequest) -> DeleteTopicsResponse:
    if ctx.api_version >= 6:
        wanted = [(t.name, t.topic_id) for t in request.topics]
    else:
        wanted = [(name, _ZERO_UUID) for name in request.topic_names]
    authorizer = getattr(state, "authorizer", None)
    if authorizer is None or authorizer.allows_cluster(ctx, AclOperation.DELETE):
        return DeleteTopicsResponse(responses=[_delete(state, name, topic_id) for name, topic_id in wanted])
    responses = []
    for name, topic_id in wanted:
        refused = _refusal(state, ctx, authorizer, name, topic_id)
        if refused is not None:
            state.metrics.error(_DENIED)
            responses.append(refused)
        else:
            responses.append(_delete(state, name, topic_id))
    return DeleteTopicsResponse(responses=responses)
