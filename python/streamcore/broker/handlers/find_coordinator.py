"""FindCoordinator (10): this broker coordinates every consumer group.

v0-v3 take one key; v4+ a batch of ``coordinator_keys`` answered one by one. Key
type 0 is a group, 1 a transactional id. streamcore has no transactions, so a
transactional key gets COORDINATOR_NOT_AVAILABLE with a message saying so, rather
than a coordinator that would then fail every transactional request.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

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

_NO_TXN = "streamcore does not support transactions"


def handle(
    state: BrokerState, ctx: RequestContext, request: FindCoordinatorRequest
) -> FindCoordinatorResponse:
    host, port, node = state.advertised_host, state.advertised_port, state.node_id
    if ctx.api_version >= 4:
        coordinators = []
        for key in request.coordinator_keys:
            if request.key_type == 0:
                coordinators.append(
                    FindCoordinatorResponse_Coordinator(key=key, node_id=node, host=host, port=port)
                )
            else:
                coordinators.append(
                    FindCoordinatorResponse_Coordinator(
                        key=key,
                        node_id=-1,
                        host="",
                        port=-1,
                        error_code=ErrorCode.COORDINATOR_NOT_AVAILABLE.code,
                        error_message=_NO_TXN,
                    )
                )
        return FindCoordinatorResponse(coordinators=coordinators)
    if request.key_type != 0:
        return FindCoordinatorResponse(
            error_code=ErrorCode.COORDINATOR_NOT_AVAILABLE.code,
            error_message=_NO_TXN,
            node_id=-1,
            host="",
            port=-1,
        )
    return FindCoordinatorResponse(error_code=0, error_message=None, node_id=node, host=host, port=port)
