"""ListTransactions (66): the transactional ids the coordinator knows, filtered.

Advertised v0-v2 (Kafka's range; flexible). Filters: states by Kafka's names
(unknown names are echoed in ``unknown_state_filters``), producer ids, and from v1
a duration (transactions running longer than it, ms; ids without a transaction
have no start time and pass it, as in Kafka), from v2 a regular expression the
whole transactional id must match (INVALID_REGULAR_EXPRESSION, code 128, when it
does not compile; Python's ``re`` dialect). Only ids the sender may DESCRIBE are
listed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from streamcore.broker.authorizer import AclOperation, ResourceType, denied
from streamcore.protocol.messages import (
    ListTransactionsRequest,
    ListTransactionsResponse,
    ListTransactionsResponse_TransactionState,
)

if TYPE_CHECKING:
    from streamcore.broker.context import RequestContext
    from streamcore.broker.state import BrokerState

API_KEY = 66
REQUEST = ListTransactionsRequest


def handle(
    state: BrokerState, ctx: RequestContext, request: ListTransactionsRequest
) -> ListTransactionsResponse:
    version = ctx.api_version
    code, unknown, listed = state.transactions.list_transactions(
        states=request.state_filters,
        producer_ids=request.producer_id_filters,
        duration_ms=request.duration_filter if version >= 1 else -1,
        pattern=request.transactional_id_pattern if version >= 2 else None,
    )
    state.metrics.error(code)
    return ListTransactionsResponse(
        error_code=code,
        unknown_state_filters=unknown,
        transaction_states=[
            ListTransactionsResponse_TransactionState(
                transactional_id=t.transactional_id, producer_id=t.producer_id, transaction_state=t.state
            )
            for t in listed
            if not denied(
                state, ctx, AclOperation.DESCRIBE, ResourceType.TRANSACTIONAL_ID, t.transactional_id
            )
        ],
    )
