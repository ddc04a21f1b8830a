"""FindCoordinator (10): this broker coordinates every consumer group.

v0-v3 take one key; v4+ a batch of ``coordinator_keys`` answered one by one. Key
type 0 is a group, 1 a transactional id. streamcore has no transactions, so a
transactional key gets TRANSACTIONAL_ID_AUTHORIZATION_FAILED with a message saying
so (v1+ carry it). That code is the one librdkafka, the Java client and kafka-python
all treat as fatal for a transaction-coordinator lookup, so ``init_transactions()``
fails at once; a retriable code such as COORDINATOR_NOT_AVAILABLE made them retry
for their whole timeout.

With an authorizer, a group key the sender may not DESCRIBE answers
GROUP_AUTHORIZATION_FAILED (no node), as in Kafka.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

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

_NO_TXN = (
    "streamcore does not support transactions; use an idempotent producer "
    "(enable.idempotence) without transactional.id"
)
_TXN_ERROR = ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED.code
_GROUP_DENIED = ErrorCode.GROUP_AUTHORIZATION_FAILED.code
_DESCRIBE = int(AclOperation.DESCRIBE)
_GROUP = int(ResourceType.GROUP)


def handle(
    state: BrokerState, ctx: RequestContext, request: FindCoordinatorRequest
) -> FindCoordinatorResponse:
    host, port, node = state.advertised_host, state.advertised_port, state.node_id
    authorizer = getattr(state, "authorizer", None)
    if ctx.api_version >= 4:
        coordinators = []
        for key in request.coordinator_keys:
            if (
                request.key_type == 0
                and authorizer is not None
                and not authorizer.allows(ctx, _DESCRIBE, _GROUP, key)
            ):
                state.metrics.error(_GROUP_DENIED)
                coordinators.append(
                    FindCoordinatorResponse_Coordinator(
                        key=key, node_id=-1, host="", port=-1, error_code=_GROUP_DENIED, error_message=None
                    )
                )
            elif request.key_type == 0:
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
                        error_code=_TXN_ERROR,
                        error_message=_NO_TXN,
                    )
                )
        return FindCoordinatorResponse(coordinators=coordinators)
    if request.key_type != 0:
        state.metrics.error(_TXN_ERROR)
        return FindCoordinatorResponse(
            error_code=_TXN_ERROR,
            error_message=_NO_TXN,
            node_id=-1,
            host="",
            port=-1,
        )
    if authorizer is not None and not authorizer.allows(ctx, _DESCRIBE, _GROUP, request.key):
        state.metrics.error(_GROUP_DENIED)
        return FindCoordinatorResponse(
            error_code=_GROUP_DENIED, error_message=None, node_id=-1, host="", port=-1
        )
    return FindCoordinatorResponse(error_code=0, error_message=None, node_id=node, host=host, port=port)
