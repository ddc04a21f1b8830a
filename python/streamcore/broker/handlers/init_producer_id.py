"""InitProducerId (22): a producer id and epoch for an idempotent or transactional producer.

v0-v5. v2 is flexible; v3 lets a producer that lost track of its sequences ask for
its next epoch by naming its current id and epoch (KIP-360); v4 answers PRODUCER_FENCED
where older versions get INVALID_PRODUCER_EPOCH. A request without a transactional id
gets idempotence (a new producer id); one with a transactional id goes to the
transaction coordinator (``state.transactions``), which bumps the id's epoch (fencing
older producers of the id), aborts or completes its open transaction first, and checks
the transaction timeout against ``transactions.max_timeout_ms``.

With an authorizer, a transactional id needs WRITE on it (TRANSACTIONAL_ID_AUTHORIZATION_FAILED
otherwise); an idempotent producer needs IDEMPOTENT_WRITE on the cluster or WRITE on at
least one topic (CLUSTER_AUTHORIZATION_FAILED otherwise), as in Kafka.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING

from streamcore.broker.authorizer import AclOperation, ResourceType
from streamcore.errors import ErrorCode
from streamcore.protocol.messages import InitProducerIdRequest, InitProducerIdResponse

if TYPE_CHECKING:
    from streamcore.broker.context import RequestContext
    from streamcore.broker.state import BrokerState

API_KEY = 22
REQUEST = InitProducerIdRequest


def handle(
    state: BrokerState, ctx: RequestContext, request: InitProducerIdRequest
) -> InitProducerIdResponse | Awaitable[InitProducerIdResponse]:
    authorizer = getattr(state, "authorizer", None)
    if request.transactional_id is not None:
        if authorizer is not None and not authorizer.allows(
            ctx, AclOperation.WRITE, ResourceType.TRANSACTIONAL_ID, request.transactional_id
        ):
            code = ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED.code
            state.metrics.error(code)
            return InitProducerIdResponse(error_code=code, producer_id=-1, producer_epoch=-1)
        return _transactional(state, ctx, request)
    if (
        authorizer is not None
        and not authorizer.allows_cluster(ctx, AclOperation.IDEMPOTENT_WRITE)
        and not authorizer.allows_any(ctx, AclOperation.WRITE, ResourceType.TOPIC)
    ):
        code = ErrorCode.CLUSTER_AUTHORIZATION_FAILED.code
        state.metrics.error(code)
        return InitProducerIdResponse(error_code=code, producer_id=-1, producer_epoch=-1)
    result = state.producer_ids.init_producer_id(
        None, producer_id=request.producer_id, producer_epoch=request.producer_epoch
    )
    state.metrics.error(result.error_code)
    return InitProducerIdResponse(
        error_code=result.error_code, producer_id=result.producer_id, producer_epoch=result.producer_epoch
    )


async def _transactional(
    state: BrokerState, ctx: RequestContext, request: InitProducerIdRequest
) -> InitProducerIdResponse:
    assert request.transactional_id is not None
    v3 = ctx.api_version >= 3
    result = await state.transactions.init_producer_id(
        request.transactional_id,
        request.transaction_timeout_ms,
        request.producer_id if v3 else -1,
        request.producer_epoch if v3 else -1,
    )
    code = result.error_code
    if code == ErrorCode.PRODUCER_FENCED.code and ctx.api_version < 4:
        code = ErrorCode.INVALID_PRODUCER_EPOCH.code  # what clients before v4 understand
    state.metrics.error(code)
    return InitProducerIdResponse(
        error_code=code, producer_id=result.producer_id, producer_epoch=result.producer_epoch
    )
