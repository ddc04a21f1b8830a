"""DescribeClientQuotas (48): the client quotas matching a filter (KIP-546).

Each filter component names an entity type (``user``, ``client-id``, ``ip``) and matches
one name exactly (match type 0), the type's default entity (1) or any entity of the
type (2); an entity matches when it matches every component, and with ``strict`` it must
have no other types (``streamcore.broker.quotas.describe_quotas``). No components list
every quota (none when strict). A malformed filter is answered as Apache Kafka 4.1
answers it: INVALID_REQUEST (a type named twice, an empty type, a match string where the
match type takes none or none where it needs one, ``ip`` together with ``user`` or
``client-id``) or UNSUPPORTED_VERSION (another entity type), with Kafka's message and no
entries. With an authorizer the sender needs DESCRIBE_CONFIGS on the cluster, else
CLUSTER_AUTHORIZATION_FAILED. v1 is flexible.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from streamcore.broker.authorizer import CLUSTER_NAME, AclOperation, ResourceType, denied
from streamcore.broker.quotas import QuotaRequestError, describe_quotas
from streamcore.errors import ErrorCode
from streamcore.protocol.messages import (
    DescribeClientQuotasRequest,
    DescribeClientQuotasResponse,
    DescribeClientQuotasResponse_EntityData,
    DescribeClientQuotasResponse_EntryData,
    DescribeClientQuotasResponse_ValueData,
)

if TYPE_CHECKING:
    from streamcore.broker.context import RequestContext
    from streamcore.broker.state import BrokerState

API_KEY = 48
REQUEST = DescribeClientQuotasRequest


def handle(
    state: BrokerState, ctx: RequestContext, request: DescribeClientQuotasRequest
) -> DescribeClientQuotasResponse:
    if denied(state, ctx, AclOperation.DESCRIBE_CONFIGS, ResourceType.CLUSTER, CLUSTER_NAME):
        code = ErrorCode.CLUSTER_AUTHORIZATION_FAILED.code
        state.metrics.error(code)
        return DescribeClientQuotasResponse(
            error_code=code, error_message="Cluster authorization failed.", entries=None
        )
    try:
        found = describe_quotas(
            state.quota_store.quotas,
            [(c.entity_type, c.match_type, c.match) for c in request.components],
            request.strict,
        )
    except QuotaRequestError as exc:
        state.metrics.error(exc.code)
        return DescribeClientQuotasResponse(error_code=exc.code, error_message=exc.message, entries=None)
    entries = [
        DescribeClientQuotasResponse_EntryData(
            entity=[DescribeClientQuotasResponse_EntityData(entity_type=k, entity_name=n) for k, n in entity],
            values=[
                DescribeClientQuotasResponse_ValueData(key=k, value=v) for k, v in sorted(values.items())
            ],
        )
        for entity, values in found
    ]
    # Kafka answers an empty message, not a null one.
    return DescribeClientQuotasResponse(error_code=0, error_message="", entries=entries)
