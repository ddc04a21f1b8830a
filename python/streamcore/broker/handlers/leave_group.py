"""LeaveGroup (13): members leave, which starts a rebalance for the rest.

v0-v5. v0-v2 name one member_id; v3+ a batch of (member_id, group.instance.id) with a
per-member answer; v4 is flexible; v5 adds a reason.

With an authorizer, a sender without READ on the group gets GROUP_AUTHORIZATION_FAILED.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from streamcore.broker.authorizer import AclOperation, ResourceType, denied
from streamcore.errors import ErrorCode
from streamcore.protocol.messages import (
    LeaveGroupRequest,
    LeaveGroupResponse,
    LeaveGroupResponse_MemberResponse,
)

if TYPE_CHECKING:
    from streamcore.broker.context import RequestContext
    from streamcore.broker.state import BrokerState

API_KEY = 13
REQUEST = LeaveGroupRequest


def handle(state: BrokerState, ctx: RequestContext, request: LeaveGroupRequest) -> LeaveGroupResponse:
    if denied(state, ctx, AclOperation.READ, ResourceType.GROUP, request.group_id):
        code = ErrorCode.GROUP_AUTHORIZATION_FAILED.code
        state.metrics.error(code)
        return LeaveGroupResponse(error_code=code)
    if ctx.api_version < 3:
        top, results = state.coordinator.leave_group(request.group_id, [(request.member_id, None)])
        code = top or (results[0].error_code if results else 0)
        state.metrics.error(code)
        return LeaveGroupResponse(error_code=code)
    top, results = state.coordinator.leave_group(
        request.group_id, [(m.member_id, m.group_instance_id) for m in request.members]
    )
    state.metrics.error(top)
    return LeaveGroupResponse(
        error_code=top,
        members=[
            LeaveGroupResponse_MemberResponse(
                member_id=r.member_id, group_instance_id=r.group_instance_id, error_code=r.error_code
            )
            for r in results
        ],
    )
