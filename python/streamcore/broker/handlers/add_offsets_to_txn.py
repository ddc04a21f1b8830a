"""AddOffsetsToTxn (25): a consumer group's offsets partition joins a producer's transaction.

Advertised v0-v4 (Kafka's range). The ``__consumer_offsets`` partition joins the
transaction, so that the offsets the producer then commits with TxnOffsetCommit
become visible only if the transaction commits. v0-v1 get INVALID_PRODUCER_EPOCH
where later versions get PRODUCER_FENCED. Needs WRITE on the transactional id
(TRANSACTIONAL_ID_AUTHORIZATION_FAILED) and READ on the group
(GROUP_AUTHORIZATION_FAILED).
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING

from streamcore.broker.authorizer import AclOperation, ResourceType, denied
from streamcore.errors import ErrorCode
from streamcore.protocol.messages import AddOffsetsToTxnRequest, AddOffsetsToTxnResponse

if TYPE_CHECKING:
    from streamcore.broker.context import RequestContext
    from streamcore.broker.state import BrokerState

API_KEY = 25
REQUEST = AddOffsetsToTxnRequest

_E = ErrorCode


def handle(
    state: BrokerState, ctx: RequestContext, request: AddOffsetsToTxnRequest
) -> Awaitable[AddOffsetsToTxnResponse]:
    return _handle(state, ctx, request)


async def _handle(
    state: BrokerState, ctx: RequestContext, request: AddOffsetsToTxnRequest
) -> AddOffsetsToTxnResponse:
    if denied(state, ctx, AclOperation.WRITE, ResourceType.TRANSACTIONAL_ID, request.transactional_id):
        code = _E.TRANSACTIONAL_ID_AUTHORIZATION_FAILED.code
    elif denied(state, ctx, AclOperation.READ, ResourceType.GROUP, request.group_id):
        code = _E.GROUP_AUTHORIZATION_FAILED.code
    else:
        code = await state.transactions.add_offsets(
            request.transactional_id, request.producer_id, request.producer_epoch, request.group_id
        )
        if code == _E.PRODUCER_FENCED.code and ctx.api_version < 2:
            code = _E.INVALID_PRODUCER_EPOCH.code
    state.metrics.error(code)
    return AddOffsetsToTxnResponse(error_code=code)
