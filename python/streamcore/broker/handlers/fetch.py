"""Fetch (1): read record batches, long-polling until min_bytes or max_wait.

Advertised v4-v12. v4 is the first version whose records are message format v2 and
carries last_stable_offset (reported whatever the isolation level: the offset of the
first open transaction's first batch, else the high watermark) and aborted
transactions: with isolation_level read_committed (1) a partition answers only whole
batches starting below its last stable offset, with the aborted transactions among
them (producer id, first offset) so that the consumer drops their batches; v5 log
start offsets; v7 incremental fetch sessions
(KIP-227); v11 rack ids / preferred read replica (always -1: one broker); v12 is
flexible. v13 would name topics by id.

Limits, as Kafka applies them: each partition gets at most partition_max_bytes and
the response at most max_bytes (itself at most the broker's ``limits.fetch_max_bytes``,
Kafka's fetch.max.bytes), except that the first batch of the first partition
with data is returned whole even when it is larger (KIP-74), so a consumer can
always make progress.

With a consumer byte-rate quota (``streamcore.broker.quotas``), max_bytes is also capped
at what the quota allows over its measuring span, and a fetch whose record bytes would
bring the client over its quota is answered without any partition (the bytes are not
counted; an incremental session stays where it was) with the throttle time in
throttle_time_ms, as Kafka's throttled response; the server mutes the connection for it.

With an authorizer, a partition of a topic the sender may not READ (a replica's fetch:
without CLUSTER_ACTION on the cluster) answers TOPIC_AUTHORIZATION_FAILED and is not
read; the other partitions are served, long poll included, as in Kafka.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable
from typing import TYPE_CHECKING, cast

from streamcore.broker.authorizer import AclOperation, ResourceType
from streamcore.broker.fetch_sessions import FetchContext, FetchPartition
from streamcore.broker.quotas import FETCH, user_of
from streamcore.broker.topics import TopicError
from streamcore.broker.transactions import committed_prefix
from streamcore.errors import ErrorCode, OffsetOutOfRangeError, StorageError
from streamcore.protocol.messages import (
    FetchRequest,
    FetchResponse,
    FetchResponse_AbortedTransaction,
    FetchResponse_FetchableTopicResponse,
    FetchResponse_PartitionData,
)

if TYPE_CHECKING:
    from streamcore.broker.context import RequestContext
    from streamcore.broker.state import BrokerState

API_KEY = 1
REQUEST = FetchRequest

_OUT_OF_RANGE = ErrorCode.OFFSET_OUT_OF_RANGE.code
_CORRUPT = ErrorCode.CORRUPT_MESSAGE.code
_STORAGE = ErrorCode.KAFKA_STORAGE_ERROR.code
_UNKNOWN = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION.code
_DENIED = ErrorCode.TOPIC_AUTHORIZATION_FAILED.code
_READ = int(AclOperation.READ)
_TOPIC = int(ResourceType.TOPIC)


def handle(state: BrokerState, ctx: RequestContext, request: FetchRequest) -> Awaitable[FetchResponse]:
    return _fetch(state, ctx, request)


def _read(
    state: BrokerState,
    wanted: list[tuple[tuple[str, int], FetchPartition]],
    max_bytes: int,
    denied: set[str] | None = None,
    read_committed: bool = False,
) -> tuple[list[FetchResponse_PartitionData], int, bool]:
    """Read every wanted partition once.

    ``wanted`` is a list of ((topic, partition), FetchPartition); partitions of the
    ``denied`` topics get TOPIC_AUTHORIZATION_FAILED without being read;
    ``read_committed`` stops each partition at its last stable offset. Returns
    (partition data in the same order, bytes of records, whether any partition read
    had an error).
    """
    out: list[FetchResponse_PartitionData] = []
    total = 0
    error = False
    tm = state.topics
    transactions = state.transactions
    for (topic, partition), req in wanted:
        pd = FetchResponse_PartitionData(partition_index=partition, records=b"")
        out.append(pd)
        if denied and topic in denied:
            # Not an error of the read: the allowed partitions still long-poll, as in Kafka.
            pd.error_code = _DENIED
            pd.high_watermark = pd.last_stable_offset = pd.log_start_offset = -1
            continue
        try:
            plog = tm.log(topic, partition)
        except TopicError as exc:
            pd.error_code = exc.error_code
            pd.high_watermark = pd.last_stable_offset = pd.log_start_offset = -1
            error = True
            continue
        if plog.is_offline:
            # Kafka answers an offline log's partitions with the storage error, data or not.
            pd.error_code = _STORAGE
            pd.high_watermark = pd.last_stable_offset = pd.log_start_offset = -1
            error = True
            continue
        hw = plog.high_watermark
        # Kafka reports the last stable offset whatever the isolation level.
        lso = transactions.lso(topic, partition, hw)
        pd.high_watermark, pd.last_stable_offset = hw, lso
        pd.log_start_offset = plog.log_start_offset
        offset = req.fetch_offset
        if offset == hw:
            continue
        if read_committed and lso <= offset < hw:
            continue  # nothing stable to read yet: the fetch waits for a marker
        limit = min(req.partition_max_bytes, max_bytes - total)
        if limit <= 0 and total > 0:
            continue
        try:
            data = plog.read(offset, max(limit, 1))
        except OffsetOutOfRangeError:
            pd.error_code = _OUT_OF_RANGE
            error = True
            continue
        except StorageError as exc:
            pd.error_code = _STORAGE
            error = True
            # A log that went offline or was replaced meanwhile is not damage; anything
            # else (an I/O error reading a segment) is reported once and counted.
            if not plog.is_offline and tm.logs.get((topic, partition)) is plog:
                tm.logs.report_read_failure((topic, partition), offset, exc)
            continue
        if total > 0 and len(data) > limit:
            # Only the response's first batch may exceed the limits (KIP-74).
            continue
        # Damage is never passed on: a consumer would fail on it with a less useful error.
        damage = tm.logs.check_read((topic, partition), plog, offset, max(limit, 1), data)
        if damage is not None:
            pd.error_code = _STORAGE if damage.missing else _CORRUPT
            error = True
            continue
        if read_committed:
            # Only whole batches below the LSO, and the aborted transactions among them
            # (the consumer drops their batches).
            data, upper = committed_prefix(data, lso)
            pd.aborted_transactions = [
                FetchResponse_AbortedTransaction(producer_id=pid, first_offset=first)
                for pid, first in transactions.aborted_transactions(topic, partition, offset, upper)
            ]
        pd.records = data
        total += len(data)
    return out, total, error


async def _fetch(state: BrokerState, ctx: RequestContext, request: FetchRequest) -> FetchResponse:
    started = time.perf_counter()
    version = ctx.api_version
    requested = [
        (
            (t.topic, p.partition),
            FetchPartition(
                fetch_offset=p.fetch_offset,
                partition_max_bytes=p.partition_max_bytes,
                current_leader_epoch=p.current_leader_epoch,
                log_start_offset=p.log_start_offset,
                last_fetched_epoch=p.last_fetched_epoch,
            ),
        )
        for t in request.topics
        for p in t.partitions
    ]
    if version >= 7:
        context = state.fetch_sessions.new_context(
            request.session_id,
            request.session_epoch,
            requested,
            [(f.topic, p) for f in request.forgotten_topics_data for p in f.partitions],
        )
        if context.error_code:
            state.metrics.error(context.error_code)
            return FetchResponse(error_code=context.error_code, session_id=0, responses=[])
    else:
        context = FetchContext(partitions=requested)
    # Sessions key partitions by any hashable; Fetch's keys are always (topic, partition).
    wanted = cast("list[tuple[tuple[str, int], FetchPartition]]", context.partitions())

    # Kafka clamps the client's max_bytes to the broker's fetch.max.bytes: a client cannot
    # make one response hold more than the operator allows.
    max_bytes = min(
        request.max_bytes if request.max_bytes > 0 else 0x7FFFFFFF, state.config.limits.fetch_max_bytes
    )
    quotas = state.quotas
    quota_user = user_of(ctx.principal)
    limited = quotas.enabled[FETCH] and request.replica_id < 0
    if limited:
        window_bytes = quotas.max_fetch_bytes(quota_user, ctx.client_id)
        if window_bytes is not None:
            max_bytes = min(max_bytes, window_bytes)
    denied: set[str] | None = None
    authorizer = getattr(state, "authorizer", None)
    if authorizer is not None:
        denied = set()
        if request.replica_id >= 0 and not authorizer.allows_cluster(ctx, AclOperation.CLUSTER_ACTION):
            denied.update(topic for (topic, _), _ in wanted)
        else:
            for topic in {topic for (topic, _), _ in wanted}:
                if not authorizer.allows(ctx, _READ, _TOPIC, topic):
                    denied.add(topic)
    read_committed = request.isolation_level == 1
    data, total, error = _read(state, wanted, max_bytes, denied, read_committed)
    # Only partitions the sender may read are waited on (none: answer at once, as Kafka does).
    readable = [w for w in wanted if w[0][0] not in denied] if denied else wanted
    if total < request.min_bytes and request.max_wait_ms > 0 and not error and readable:
        deadline = time.monotonic() + request.max_wait_ms / 1000.0
        keys = [key for key, _ in readable]
        while True:
            remaining_ms = int((deadline - time.monotonic()) * 1000)
            if remaining_ms <= 0:
                break
            woken = await state.delayed.wait_for(keys, None, remaining_ms)
            data, total, error = _read(state, wanted, max_bytes, denied, read_committed)
            if not woken or total >= request.min_bytes or error:
                break

    if limited and total:
        throttle_ms = quotas.record(FETCH, quota_user, ctx.client_id, total)
        if throttle_ms:
            # Kafka's throttled answer: no partitions, the bytes not counted, a session
            # opened by this request not kept.
            quotas.unrecord(FETCH, quota_user, ctx.client_id, total)
            ctx.throttle_ms = throttle_ms
            session_id = context.session_id
            if not context.incremental and session_id:
                state.fetch_sessions.remove(session_id)
                session_id = 0
            state.metrics.fetch_latency_us.observe(int((time.perf_counter() - started) * 1e6))
            return FetchResponse(
                throttle_time_ms=throttle_ms, error_code=0, session_id=session_id, responses=[]
            )

    responses: list[FetchResponse_FetchableTopicResponse] = []
    last_topic = None
    current: FetchResponse_FetchableTopicResponse | None = None
    for ((topic, _partition), _req), pd in zip(wanted, data, strict=True):
        if not context.should_include(
            (topic, pd.partition_index),
            error_code=pd.error_code,
            high_watermark=pd.high_watermark,
            last_stable_offset=pd.last_stable_offset,
            log_start_offset=pd.log_start_offset,
            has_records=bool(pd.records),
        ):
            continue
        if pd.error_code:
            state.metrics.error(pd.error_code)
        elif pd.records:
            state.metrics.fetched(topic, pd.records)
        if topic != last_topic or current is None:
            current = FetchResponse_FetchableTopicResponse(topic=topic, partitions=[])
            responses.append(current)
            last_topic = topic
        current.partitions.append(pd)
    state.metrics.fetch_latency_us.observe(int((time.perf_counter() - started) * 1e6))
    return FetchResponse(error_code=0, session_id=context.session_id, responses=responses)
