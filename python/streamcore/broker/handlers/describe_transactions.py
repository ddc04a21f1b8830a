"""DescribeTransactions (65): the state of transactional ids, for tools (kafka-transactions.sh).

v0 (Kafka's range; flexible). Per id: Kafka's state name, producer id and epoch,
timeout, start time and the partitions of the open transaction. An unknown id is
TRANSACTIONAL_ID_NOT_FOUND, an empty one INVALID_REQUEST. Needs DESCRIBE on the id
(TRANSACTIONAL_ID_AUTHORIZATION_FAILED); topics the sender may not DESCRIBE are left
out of the partitions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from streamcore.broker.authorizer import AclOperation, ResourceType, denied
from streamcore.errors import ErrorCode
from streamcore.protocol.messages import (
    DescribeTransactionsRequest,
    DescribeTransactionsResponse,
    DescribeTransactionsResponse_TopicData,
    DescribeTransactionsResponse_TransactionState,
)

if TYPE_CHECKING:
    from streamcore.broker.context import RequestContext
    from streamcore.broker.state import BrokerState

API_KEY = 65
REQUEST = DescribeTransactionsRequest


def handle(
    state: BrokerState, ctx: RequestContext, request: DescribeTransactionsRequest
) -> DescribeTransactionsResponse:
    out = []
    for txn_id in request.transactional_ids:
        if denied(state, ctx, AclOperation.DESCRIBE, ResourceType.TRANSACTIONAL_ID, txn_id):
            code = ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED.code
            state.metrics.error(code)
            out.append(
                DescribeTransactionsResponse_TransactionState(error_code=code, transactional_id=txn_id)
            )
            continue
        d = state.transactions.describe(txn_id)
        state.metrics.error(d.error_code)
        if d.error_code:
            out.append(
                DescribeTransactionsResponse_TransactionState(
                    error_code=d.error_code, transactional_id=txn_id
                )
            )
            continue
        out.append(
            DescribeTransactionsResponse_TransactionState(
                error_code=0,
                transactional_id=txn_id,
                transaction_state=d.state,
                transaction_timeout_ms=d.timeout_ms,
                transaction_start_time_ms=d.start_ms,
                producer_id=d.producer_id,
                producer_epoch=d.producer_epoch,
                topics=[
                    DescribeTransactionsResponse_TopicData(topic=topic, partitions=parts)
                    for topic, parts in (d.topics or {}).items()
                    if not denied(state, ctx, AclOperation.DESCRIBE, ResourceType.TOPIC, topic)
                ],
            )
        )
    return DescribeTransactionsResponse(transaction_states=out)
