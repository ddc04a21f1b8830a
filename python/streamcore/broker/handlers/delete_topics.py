"""DeleteTopics (20): delete topics by name (v1-v5) or by name or id (v6).

Advertised v1-v6. v4 is flexible; v5 adds error messages; v6 a list of
(name | topic id) states. The internal offsets topic cannot be deleted.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from streamcore.broker.topics import TopicError
from streamcore.protocol.messages import (
    DeleteTopicsRequest,
    DeleteTopicsResponse,
    DeleteTopicsResponse_DeletableTopicResult,
)

if TYPE_CHECKING:
    from streamcore.broker.context import RequestContext
    from streamcore.broker.state import BrokerState

API_KEY = 20
REQUEST = DeleteTopicsRequest

_ZERO_UUID = bytes(16)


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
        responses = [_delete(state, t.name, t.topic_id) for t in request.topics]
    else:
        responses = [_delete(state, name, _ZERO_UUID) for name in request.topic_names]
    return DeleteTopicsResponse(responses=responses)
