"""Heartbeat (12): a member says it is alive; REBALANCE_IN_PROGRESS tells it to rejoin.

v0-v4. v3 adds group.instance.id; v4 is flexible. Answered at once.

With an authorizer, a sender without READ on the group gets GROUP_AUTHORIZATION_FAILED.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from streamcore.broker.authorizer import AclOperation, ResourceType, denied
from streamcore.errors import ErrorCode
from streamcore.protocol.messages import HeartbeatRequest, HeartbeatResponse

if TYPE_CHECKING:
    from streamcore.broker.context import RequestContext
    from streamcore.broker.state import BrokerState

API_KEY = 12
REQUEST = HeartbeatRequest


def handle(state: BrokerState, ctx: RequestContext, request: HeartbeatRequest) -> HeartbeatResponse:
    if denied(state, ctx, AclOperation.READ, ResourceType.GROUP, request.group_id):
        code = ErrorCode.GROUP_AUTHORIZATION_FAILED.code
        state.metrics.error(code)
        return HeartbeatResponse(error_code=code)
    code = state.coordinator.heartbeat(
        request.group_id,
        request.generation_id,
        request.member_id,
        request.group_instance_id if ctx.api_version >= 3 else None,
    )
    state.metrics.error(code)
    return HeartbeatResponse(error_code=code)
