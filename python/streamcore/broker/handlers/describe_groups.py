"""DescribeGroups (15): state, protocol and members of groups.

v0-v6. v3 adds authorized operations (not computed: left at the "not requested"
sentinel); v4 adds group.instance.id; v5 is flexible; v6 adds an error message. A
group we do not know is described as Dead with no error, as Kafka does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

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


def handle(state: BrokerState, ctx: RequestContext, request: DescribeGroupsRequest) -> DescribeGroupsResponse:
    groups = []
    for group_id in request.groups:
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
    return DescribeGroupsResponse(groups=groups)
