"""JoinGroup (11): a member joins (or rejoins) a classic consumer group.

v0-v9. v1 adds rebalance_timeout_ms (v0: the session timeout); v4 makes a member with
an empty id rejoin with the id we hand out (MEMBER_ID_REQUIRED); v5 adds
group.instance.id (static membership); v6 is flexible; v7 returns protocol_type and
a nullable protocol_name; v8 adds a reason; v9 skip_assignment (always False: the
classic protocol assigns on the client's leader).

The answer waits until the rebalance completes — as soon as every known member has
rejoined, or the rebalance timeout ends — so a second and third member joining get
through in well under a second when every member answers promptly.

With an authorizer, a sender without READ on the group gets GROUP_AUTHORIZATION_FAILED.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from streamcore.broker.authorizer import AclOperation, ResourceType, denied
from streamcore.errors import ErrorCode
from streamcore.protocol.messages import (
    JoinGroupRequest,
    JoinGroupResponse,
    JoinGroupResponse_JoinGroupResponseMember,
)

if TYPE_CHECKING:
    from streamcore.broker.context import RequestContext
    from streamcore.broker.state import BrokerState

API_KEY = 11
REQUEST = JoinGroupRequest


async def handle(state: BrokerState, ctx: RequestContext, request: JoinGroupRequest) -> JoinGroupResponse:
    version = ctx.api_version
    if denied(state, ctx, AclOperation.READ, ResourceType.GROUP, request.group_id):
        code = ErrorCode.GROUP_AUTHORIZATION_FAILED.code
        state.metrics.error(code)
        return JoinGroupResponse(
            error_code=code,
            generation_id=-1,
            protocol_name=None if version >= 7 else "",
            leader="",
            member_id="",
            members=[],
        )
    result = await state.coordinator.join_group(
        request.group_id,
        request.member_id,
        request.group_instance_id if version >= 5 else None,
        ctx.client_id,
        ctx.client_host,
        request.session_timeout_ms,
        request.rebalance_timeout_ms if version >= 1 else -1,
        request.protocol_type,
        [(p.name, p.metadata) for p in request.protocols],
        require_known_member_id=version >= 4,
    )
    state.metrics.error(result.error_code)
    protocol_name = result.protocol_name
    if version < 7 and protocol_name is None:
        protocol_name = ""
    return JoinGroupResponse(
        error_code=result.error_code,
        generation_id=result.generation_id,
        protocol_type=result.protocol_type,
        protocol_name=protocol_name,
        leader=result.leader_id,
        skip_assignment=result.skip_assignment,
        member_id=result.member_id,
        members=[
            JoinGroupResponse_JoinGroupResponseMember(
                member_id=m.member_id, group_instance_id=m.group_instance_id, metadata=m.metadata
            )
            for m in result.members
        ],
    )
