"""AddPartitionsToTxn (24): partitions join a producer's transaction.

Advertised v0-v5. v0-v3 come from clients: one transaction, one error code for all
its partitions (v0-v1 get INVALID_PRODUCER_EPOCH where later versions get
PRODUCER_FENCED). v4+ (KIP-890) batch several transactions and add ``verify_only``:
brokers use it to ask whether partitions are already in a transaction; it needs
CLUSTER_ACTION on the cluster, as in Kafka, and answers NONE or TRANSACTION_ABORTABLE
per partition. v5 only adds that error code for clients.

A partition that does not exist fails the whole transaction's request:
UNKNOWN_TOPIC_OR_PARTITION for it, OPERATION_NOT_ATTEMPTED for the others; so does
a topic the sender may not WRITE (TOPIC_AUTHORIZATION_FAILED). The transactional id
needs WRITE (v0-v3). The coordinator is ``state.transactions``.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from streamcore.broker.authorizer import CLUSTER_NAME, AclOperation, ResourceType, denied
from streamcore.errors import ErrorCode
from streamcore.protocol.messages import (
    AddPartitionsToTxnRequest,
    AddPartitionsToTxnResponse,
    AddPartitionsToTxnResponse_AddPartitionsToTxnPartitionResult,
    AddPartitionsToTxnResponse_AddPartitionsToTxnResult,
    AddPartitionsToTxnResponse_AddPartitionsToTxnTopicResult,
)

if TYPE_CHECKING:
    from streamcore.broker.context import RequestContext
    from streamcore.broker.state import BrokerState

API_KEY = 24
REQUEST = AddPartitionsToTxnRequest

_E = ErrorCode
_NONE = _E.NO_ERROR.code


def handle(
    state: BrokerState, ctx: RequestContext, request: AddPartitionsToTxnRequest
) -> Awaitable[AddPartitionsToTxnResponse]:
    return _handle(state, ctx, request)


def _partitions(topics: list[Any]) -> list[tuple[str, int]]:
    # A partition named twice is one partition.
    return list(dict.fromkeys((t.name, p) for t in topics for p in t.partitions))


def _topic_results(
    errors: dict[tuple[str, int], int],
) -> list[AddPartitionsToTxnResponse_AddPartitionsToTxnTopicResult]:
    by_topic: dict[str, list[AddPartitionsToTxnResponse_AddPartitionsToTxnPartitionResult]] = {}
    for (topic, partition), code in errors.items():
        by_topic.setdefault(topic, []).append(
            AddPartitionsToTxnResponse_AddPartitionsToTxnPartitionResult(
                partition_index=partition, partition_error_code=code
            )
        )
    return [
        AddPartitionsToTxnResponse_AddPartitionsToTxnTopicResult(name=topic, results_by_partition=parts)
        for topic, parts in by_topic.items()
    ]


def _exists(state: BrokerState, topic: str, partition: int) -> bool:
    info = state.topics.get(topic)
    return info is not None and 0 <= partition < info.partitions


async def _one(
    state: BrokerState,
    ctx: RequestContext,
    transactional_id: str,
    producer_id: int,
    producer_epoch: int,
    verify_only: bool,
    partitions: list[tuple[str, int]],
) -> dict[tuple[str, int], int]:
    """The per-partition errors of one transaction of the request."""
    version = ctx.api_version
    if version < 4 and denied(
        state, ctx, AclOperation.WRITE, ResourceType.TRANSACTIONAL_ID, transactional_id
    ):
        return dict.fromkeys(partitions, _E.TRANSACTIONAL_ID_AUTHORIZATION_FAILED.code)
    refused: dict[tuple[str, int], int] = {}
    for topic, partition in partitions:
        # Requests from brokers (v4+) were authorized by CLUSTER_ACTION already.
        if version < 4 and denied(state, ctx, AclOperation.WRITE, ResourceType.TOPIC, topic):
            refused[(topic, partition)] = _E.TOPIC_AUTHORIZATION_FAILED.code
        elif not _exists(state, topic, partition):
            refused[(topic, partition)] = _E.UNKNOWN_TOPIC_OR_PARTITION.code
    if refused:
        return {tp: refused.get(tp, _E.OPERATION_NOT_ATTEMPTED.code) for tp in partitions}
    coordinator = state.transactions
    if verify_only:
        return coordinator.verify_partitions(transactional_id, producer_id, producer_epoch, partitions)
    code = await coordinator.add_partitions(transactional_id, producer_id, producer_epoch, partitions)
    if code == _E.PRODUCER_FENCED.code and version < 2:
        code = _E.INVALID_PRODUCER_EPOCH.code
    return dict.fromkeys(partitions, code)


async def _handle(
    state: BrokerState, ctx: RequestContext, request: AddPartitionsToTxnRequest
) -> AddPartitionsToTxnResponse:
    if ctx.api_version < 4:
        errors = await _one(
            state,
            ctx,
            request.v3_and_below_transactional_id,
            request.v3_and_below_producer_id,
            request.v3_and_below_producer_epoch,
            False,
            _partitions(request.v3_and_below_topics),
        )
        for code in errors.values():
            state.metrics.error(code)
        return AddPartitionsToTxnResponse(results_by_topic_v3_and_below=_topic_results(errors))
    if denied(state, ctx, AclOperation.CLUSTER_ACTION, ResourceType.CLUSTER, CLUSTER_NAME):
        code = _E.CLUSTER_AUTHORIZATION_FAILED.code
        state.metrics.error(code)
        return AddPartitionsToTxnResponse(error_code=code)
    results = []
    for txn in request.transactions:
        errors = await _one(
            state,
            ctx,
            txn.transactional_id,
            txn.producer_id,
            txn.producer_epoch,
            txn.verify_only,
            _partitions(txn.topics),
        )
        for code in errors.values():
            state.metrics.error(code)
        results.append(
            AddPartitionsToTxnResponse_AddPartitionsToTxnResult(
                transactional_id=txn.transactional_id, topic_results=_topic_results(errors)
            )
        )
    return AddPartitionsToTxnResponse(error_code=_NONE, results_by_transaction=results)
