"""DeleteGroups (42): delete consumer groups that have no members, and their offsets.

v0-v2 (Kafka's range); v2 is flexible. A group with members (or mid-rebalance) is
NON_EMPTY_GROUP; one neither the coordinator nor the offset store knows is
GROUP_ID_NOT_FOUND. A group known only by its committed offsets (a "simple" consumer
that committed without joining) is Empty for Kafka and is deleted too. The
committed offsets are removed with tombstones in ``__consumer_offsets``, durable
before the answer, so they stay gone after a restart.

With an authorizer, a group the sender may not DELETE answers GROUP_AUTHORIZATION_FAILED.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from streamcore.broker.authorizer import AclOperation, ResourceType, denied
from streamcore.errors import ErrorCode, StreamcoreError
from streamcore.protocol.messages import (
    DeleteGroupsRequest,
    DeleteGroupsResponse,
    DeleteGroupsResponse_DeletableGroupResult,
)

if TYPE_CHECKING:
    from streamcore.broker.context import RequestContext
    from streamcore.broker.state import BrokerState

API_KEY = 42
REQUEST = DeleteGroupsRequest

_NOT_FOUND = ErrorCode.GROUP_ID_NOT_FOUND.code


async def handle(
    state: BrokerState, ctx: RequestContext, request: DeleteGroupsRequest
) -> DeleteGroupsResponse:
    results = []
    for group_id in dict.fromkeys(request.groups_names):
        if denied(state, ctx, AclOperation.DELETE, ResourceType.GROUP, group_id):
            code = ErrorCode.GROUP_AUTHORIZATION_FAILED.code
            state.metrics.error(code)
            results.append(DeleteGroupsResponse_DeletableGroupResult(group_id=group_id, error_code=code))
            continue
        code = state.coordinator.delete_groups([group_id])[group_id]
        if code == _NOT_FOUND and state.offsets.has_group(group_id):
            code = ErrorCode.NO_ERROR.code
        if code == ErrorCode.NO_ERROR.code:
            try:
                await state.offsets.delete_group_async(group_id)
            except StreamcoreError:
                code = ErrorCode.COORDINATOR_NOT_AVAILABLE.code
        state.metrics.error(code)
        results.append(DeleteGroupsResponse_DeletableGroupResult(group_id=group_id, error_code=code))
    return DeleteGroupsResponse(results=results)
