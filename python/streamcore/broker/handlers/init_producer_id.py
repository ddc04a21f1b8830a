"""InitProducerId (22): a producer id and epoch for an idempotent producer.

v0-v5. v2 is flexible; v3 lets a producer that lost track of its sequences ask for
its next epoch by naming its current id and epoch (KIP-360). A transactional id is
refused with TRANSACTIONAL_ID_AUTHORIZATION_FAILED, a fatal error for the client,
since streamcore has no transactions; a producer without one gets idempotence.

With an authorizer, an idempotent producer needs IDEMPOTENT_WRITE on the cluster or
WRITE on at least one topic (CLUSTER_AUTHORIZATION_FAILED otherwise), as in Kafka.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from streamcore.broker.authorizer import AclOperation, ResourceType
from streamcore.errors import ErrorCode
from streamcore.protocol.messages import InitProducerIdRequest, InitProducerIdResponse

if TYPE_CHECKING:
    from streamcore.broker.context import RequestContext
    from streamcore.broker.state import BrokerState

API_KEY = 22
REQUEST = InitProducerIdRequest


def handle(state: BrokerState, ctx: RequestContext, request: InitProducerIdRequest) -> InitProducerIdResponse:
    if request.transactional_id:
        code = ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED.code
        state.metrics.error(code)
        return InitProducerIdResponse(error_code=code, producer_id=-1, producer_epoch=-1)
    authorizer = getattr(state, "authorizer", None)
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
