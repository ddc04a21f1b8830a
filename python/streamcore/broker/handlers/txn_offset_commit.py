"""TxnOffsetCommit (28): commit a consumer group's offsets as part of a producer's transaction.

Advertised v0-v4 (v5 belongs to KIP-890 part 2). v2 adds leader epochs; v3 the
member id, generation and group instance id, checked as OffsetCommit checks them;
v4 lets the coordinator answer TRANSACTION_ABORTABLE (older versions get
INVALID_TXN_STATE) when the group's offsets partition was not added to the
transaction with AddOffsetsToTxn. The producer must be the current one of an
Ongoing transaction (INVALID_PRODUCER_ID_MAPPING, INVALID_PRODUCER_EPOCH for a
fenced one, CONCURRENT_TRANSACTIONS while it is being ended).

The offsets are appended to ``__consumer_offsets`` as a transactional batch of the
producer and stay invisible to OffsetFetch until the transaction commits (the
COMMIT marker); an abort drops them. Unknown partitions get
UNKNOWN_TOPIC_OR_PARTITION. Needs WRITE on the transactional id, READ on the group
(GROUP_AUTHORIZATION_FAILED) and READ on each topic (TOPIC_AUTHORIZATION_FAILED).
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING

from streamcore.broker.authorizer import AclOperation, ResourceType, denied
from streamcore.broker.transactions import OFFSETS_PARTITION, verification_error
from streamcore.errors import ErrorCode
from streamcore.protocol.messages import (
    TxnOffsetCommitRequest,
    TxnOffsetCommitResponse,
    TxnOffsetCommitResponse_TxnOffsetCommitResponsePartition,
    TxnOffsetCommitResponse_TxnOffsetCommitResponseTopic,
)

if TYPE_CHECKING:
    from streamcore.broker.context import RequestContext
    from streamcore.broker.state import BrokerState

API_KEY = 28
REQUEST = TxnOffsetCommitRequest

_E = ErrorCode
_NONE = _E.NO_ERROR.code


def handle(
    state: BrokerState, ctx: RequestContext, request: TxnOffsetCommitRequest
) -> Awaitable[TxnOffsetCommitResponse]:
    return _handle(state, ctx, request)


def _response(request: TxnOffsetCommitRequest, codes: dict[tuple[str, int], int]) -> TxnOffsetCommitResponse:
    topics = []
    for t in request.topics:
        topics.append(
            TxnOffsetCommitResponse_TxnOffsetCommitResponseTopic(
                name=t.name,
                partitions=[
                    TxnOffsetCommitResponse_TxnOffsetCommitResponsePartition(
                        partition_index=p.partition_index,
                        error_code=codes.get((t.name, p.partition_index), _NONE),
                    )
                    for p in t.partitions
                ],
            )
        )
    return TxnOffsetCommitResponse(topics=topics)


async def _handle(
    state: BrokerState, ctx: RequestContext, request: TxnOffsetCommitRequest
) -> TxnOffsetCommitResponse:
    version = ctx.api_version
    every = [(t.name, p.partition_index) for t in request.topics for p in t.partitions]
    codes = await _commit(state, ctx, request, version, every)
    for code in codes.values():
        state.metrics.error(code)
    return _response(request, codes)


async def _commit(
    state: BrokerState,
    ctx: RequestContext,
    request: TxnOffsetCommitRequest,
    version: int,
    every: list[tuple[str, int]],
) -> dict[tuple[str, int], int]:
    if denied(state, ctx, AclOperation.WRITE, ResourceType.TRANSACTIONAL_ID, request.transactional_id):
        return dict.fromkeys(every, _E.TRANSACTIONAL_ID_AUTHORIZATION_FAILED.code)
    if denied(state, ctx, AclOperation.READ, ResourceType.GROUP, request.group_id):
        return dict.fromkeys(every, _E.GROUP_AUTHORIZATION_FAILED.code)
    codes: dict[tuple[str, int], int] = {}
    items = []
    for t in request.topics:
        topic_denied = denied(state, ctx, AclOperation.READ, ResourceType.TOPIC, t.name)
        info = state.topics.get(t.name)
        for p in t.partitions:
            key = (t.name, p.partition_index)
            if topic_denied:
                codes[key] = _E.TOPIC_AUTHORIZATION_FAILED.code
            elif info is None or not 0 <= p.partition_index < info.partitions:
                codes[key] = _E.UNKNOWN_TOPIC_OR_PARTITION.code
            else:
                items.append(
                    (
                        t.name,
                        p.partition_index,
                        p.committed_offset,
                        p.committed_leader_epoch if version >= 2 else -1,
                        p.committed_metadata,
                    )
                )
    if not items:
        return codes
    coordinator = state.transactions
    check = coordinator.verify(
        request.transactional_id, request.producer_id, request.producer_epoch, OFFSETS_PARTITION
    )
    if check:
        code = verification_error(check, generic=version >= 4, produce=False)
        codes.update({(t, p): code for t, p, *_ in items})
        return codes
    # The offsets log gets a transactional batch of this producer: the partition state
    # must hold its transaction open there until the marker (read_committed readers
    # of __consumer_offsets), from the offset the batch cannot land below.
    token = coordinator.partitions.begin_append(*OFFSETS_PARTITION, request.producer_id, True)
    stored = await state.offsets.commit_transactional_async(
        request.group_id,
        request.producer_id,
        request.producer_epoch,
        items,
        generation_id=request.generation_id if version >= 3 else -1,
        member_id=request.member_id if version >= 3 else "",
        group_instance_id=request.group_instance_id if version >= 3 else None,
    )
    if any(code == _NONE for code in stored.values()):
        coordinator.partitions.finish_append_unknown(token)
        if coordinator.crash_at is not None:  # test only (transactions/crash_points.py)
            coordinator.crash_at.reached("after_txn_offset_commit")
    else:
        coordinator.partitions.finish_append(token, None)
    codes.update(stored)
    return codes
