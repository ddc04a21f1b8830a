"""EndTxn (26): commit or abort a producer's transaction.

Advertised v0-v4: transaction protocol 1, where the epoch stays the same across
transactions (v5 belongs to KIP-890 part 2, which bumps it at every EndTxn and is not
implemented). The coordinator persists the decision, writes the markers and answers
once they are written (or, if that takes long, once the decision is durable: the
markers are then completed in the background). v0-v1 get INVALID_PRODUCER_EPOCH
where later versions get PRODUCER_FENCED. Needs WRITE on the transactional id.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING

from streamcore.broker.authorizer import AclOperation, ResourceType, denied
from streamcore.errors import ErrorCode
from streamcore.protocol.messages import EndTxnRequest, EndTxnResponse

if TYPE_CHECKING:
    from streamcore.broker.context import RequestContext
    from streamcore.broker.state import BrokerState

API_KEY = 26
REQUEST = EndTxnRequest

_E = ErrorCode


def handle(state: BrokerState, ctx: RequestContext, request: EndTxnRequest) -> Awaitable[EndTxnResponse]:
    return _handle(state, ctx, request)


async def _handle(state: BrokerState, ctx: RequestContext, request: EndTxnRequest) -> EndTxnResponse:
    if denied(state, ctx, AclOperation.WRITE, ResourceType.TRANSACTIONAL_ID, request.transactional_id):
        code = _E.TRANSACTIONAL_ID_AUTHORIZATION_FAILED.code
    else:
        code = await state.transactions.end_transaction(
            request.transactional_id, request.producer_id, request.producer_epoch, request.committed
        )
        if code == _E.PRODUCER_FENCED.code and ctx.api_version < 2:
            code = _E.INVALID_PRODUCER_EPOCH.code
    state.metrics.error(code)
    response = EndTxnResponse(error_code=code)
    if code == _E.NO_ERROR.code and ctx.api_version >= 5:
        # (Only reachable if v5 is ever advertised: the producer keeps its id and epoch.)
        response.producer_id, response.producer_epoch = request.producer_id, request.producer_epoch
    return response
