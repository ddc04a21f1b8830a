"""DescribeGroups (15): state, protocol and members of groups.

v0-v6. v3 adds authorized operations (not computed: left at the "not requested"
sentinel); v4 adds group.instance.id; v5 is flexible; v6 adds an error message. A
group we do not know is described as Dead with no error, as Kafka does.

With an authorizer, a group the sender may not DESCRIBE answers
GROUP_AUTHORIZATION_FAILED, and v3+ fills in the authorized operations asked for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from streamcore.broker.authorizer import AclOperation, ResourceType
from streamcore.errors import ErrorCode
from streamcore.protocol.messages import (
    DescribeGroupsRequest,
    DescribeGroupsResponse,
    DescribeGroupsResponse_DescribedGroup,
    DescribeGroupsResponse_DescribedGroupMember,
)

if TYPE_CHECKING:
    from streamcore.broker.context import RequestContext
    from streamcore.broker.state import BrokerState

API_KEY = 15
REQUEST = DescribeGroupsRequest

_DENIED = ErrorCode.GROUP_AUTHORIZATION_FAILED.code
_DESCRIBE = int(AclOperation.DESCRIBE)
_GROUP = int(ResourceType.GROUP)


def handle(state: BrokerState, ctx: RequestContext, request: DescribeGroupsRequest) -> DescribeGroupsResponse:
    groups = []
    authorizer = getattr(state, "authorizer", None)
    for group_id in request.groups:
        if authorizer is not None and not authorizer.allows(ctx, _DESCRIBE, _GROUP, group_id):
            state.metrics.error(_DENIED)
            groups.append(
                DescribeGroupsResponse_DescribedGroup(error_code=_DENIED, group_id=group_id, members=[])
            )
            continue
        d = state.coordinator.describe_group(group_id)
        groups.append(
            DescribeGroupsResponse_DescribedGroup(
                error_code=d.error_code,
                group_id=d.group_id,
                group_state=d.state,
                protocol_type=d.protocol_type,
                protocol_data=d.protocol_name,
                members=[
                    DescribeGroupsResponse_DescribedGroupMember(
                        member_id=m.member_id,
                        group_instance_id=m.group_instance_id,
                        client_id=m.client_id,
                        client_host=m.client_host,
                        member_metadata=m.metadata,
                        member_assignment=m.assignment,
                    )
                    for m in d.members
                ],
            )
        )
    if authorizer is not None and ctx.api_version >= 3 and request.include_authorized_operations:
        for g in groups:
            if not g.error_code:
                g.authorized_operations = authorizer.authorized_operations(ctx, _GROUP, g.group_id)
    return DescribeGroupsResponse(groups=groups)
