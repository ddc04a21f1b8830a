"""SyncGroup (14): the leader hands out assignments; every member receives its own.

v0-v5. v3 adds group.instance.id; v4 is flexible; v5 carries protocol type and name,
which must match the group's. Followers wait here until the leader's SyncGroup
arrives (or the group rebalances again).

With an authorizer, a sender without READ on the group gets GROUP_AUTHORIZATION_FAILED.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from streamcore.broker.authorizer import AclOperation, ResourceType, denied
from streamcore.errors import ErrorCode
from streamcore.protocol.messages import SyncGroupRequest, SyncGroupResponse

if TYPE_CHECKING:
    from streamcore.broker.context import RequestContext
    from streamcore.broker.state import BrokerState

API_KEY = 14
REQUEST = SyncGroupRequest


async def handle(state: BrokerState, ctx: RequestContext, request: SyncGroupRequest) -> SyncGroupResponse:
    version = ctx.api_version
    if denied(state, ctx, AclOperation.READ, ResourceType.GROUP, request.group_id):
        code = ErrorCode.GROUP_AUTHORIZATION_FAILED.code
        state.metrics.error(code)
        return SyncGroupResponse(error_code=code, assignment=b"")
    result = await state.coordinator.sync_group(
        request.group_id,
        request.generation_id,
        request.member_id,
        request.group_instance_id if version >= 3 else None,
        [(a.member_id, a.assignment) for a in request.assignments],
        protocol_type=request.protocol_type if version >= 5 else None,
        protocol_name=request.protocol_name if version >= 5 else None,
    )
    state.metrics.error(result.error_code)
    return SyncGroupResponse(
        error_code=result.error_code,
        protocol_type=result.protocol_type,
        protocol_name=result.protocol_name,
        assignment=result.assignment,
    )
