"""FindCoordinator (10): this broker coordinates every consumer group and transactional id.

v0-v3 take one key; v4+ a batch of ``coordinator_keys`` answered one by one. Key
type 0 is a group, 1 a transactional id (both answered with this broker); other types
(share groups) are INVALID_REQUEST.

With an authorizer, a key the sender may not DESCRIBE answers GROUP_AUTHORIZATION_FAILED
or TRANSACTIONAL_ID_AUTHORIZATION_FAILED (no node), as in Kafka.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from streamcore.broker.authorizer import AclOperation, ResourceType
from streamcore.errors import ErrorCode
from streamcore.protocol.messages import (
    FindCoordinatorRequest,
    FindCoordinatorResponse,
    FindCoordinatorResponse_Coordinator,
)

if TYPE_CHECKING:
    from streamcore.broker.context import RequestContext
    from streamcore.broker.state import BrokerState

API_KEY = 10
REQUEST = FindCoordinatorRequest

_TXN_DENIED = ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED.code
_GROUP_DENIED = ErrorCode.GROUP_AUTHORIZATION_FAILED.code
_INVALID = ErrorCode.INVALID_REQUEST.code
_DESCRIBE = int(AclOperation.DESCRIBE)
_GROUP = int(ResourceType.GROUP)
_TXN_ID = int(ResourceType.TRANSACTIONAL_ID)


def _refusal(ctx: RequestContext, key_type: int, key: str, authorizer: Any) -> int:
    """0, or the error code for one key: DESCRIBE on the group (type 0) or the
    transactional id (type 1), as in Kafka; other key types are not served here."""
    if key_type == 0:
        resource, code = _GROUP, _GROUP_DENIED
    elif key_type == 1:
        resource, code = _TXN_ID, _TXN_DENIED
    else:
        return _INVALID
    if authorizer is not None and not authorizer.allows(ctx, _DESCRIBE, resource, key):
        return code
    return 0


def handle(
    state: BrokerState, ctx: RequestContext, request: FindCoordinatorRequest
) -> FindCoordinatorResponse:
    host, port, node = state.advertised_host, state.advertised_port, state.node_id
    authorizer = getattr(state, "authorizer", None)
    if ctx.api_version >= 4:
        coordinators = []
        for key in request.coordinator_keys:
            code = _refusal(ctx, request.key_type, key, authorizer)
            if code:
                state.metrics.error(code)
                coordinators.append(
                    FindCoordinatorResponse_Coordinator(
                        key=key, node_id=-1, host="", port=-1, error_code=code, error_message=None
                    )
                )
            else:
                coordinators.append(
                    FindCoordinatorResponse_Coordinator(key=key, node_id=node, host=host, port=port)
                )
        return FindCoordinatorResponse(coordinators=coordinators)
    code = _refusal(ctx, request.key_type, request.key, authorizer)
    if code:
        state.metrics.error(code)
        return FindCoordinatorResponse(error_code=code, error_message=None, node_id=-1, host="", port=-1)
    return FindCoordinatorResponse(error_code=0, error_message=None, node_id=node, host=host, port=port)
