"""ListGroups (16): every group, optionally filtered by state (v4+) and type (v5+).

v0-v5. v3 is flexible; v4 adds states_filter; v5 types_filter (all our groups are
"classic").

With an authorizer, a sender with DESCRIBE on the cluster sees every group, any
other sender only the groups it may DESCRIBE (as in Kafka).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from streamcore.broker.authorizer import AclOperation, ResourceType
from streamcore.protocol.messages import ListGroupsRequest, ListGroupsResponse, ListGroupsResponse_ListedGroup

if TYPE_CHECKING:
    from streamcore.broker.context import RequestContext
    from streamcore.broker.state import BrokerState

API_KEY = 16
REQUEST = ListGroupsRequest


def handle(state: BrokerState, ctx: RequestContext, request: ListGroupsRequest) -> ListGroupsResponse:
    version = ctx.api_version
    states = request.states_filter if version >= 4 and request.states_filter else None
    types = {t.lower() for t in request.types_filter} if version >= 5 and request.types_filter else None
    if types is not None and "classic" not in types:
        return ListGroupsResponse(error_code=0, groups=[])
    listed = state.coordinator.list_groups(states)
    authorizer = getattr(state, "authorizer", None)
    if authorizer is not None and not authorizer.allows_cluster(ctx, AclOperation.DESCRIBE):
        listed = [
            g for g in listed if authorizer.allows(ctx, AclOperation.DESCRIBE, ResourceType.GROUP, g.group_id)
        ]
    return ListGroupsResponse(
        error_code=0,
        groups=[
            ListGroupsResponse_ListedGroup(
                group_id=g.group_id, protocol_type=g.protocol_type, group_state=g.state, group_type="classic"
            )
            for g in listed
        ],
    )
