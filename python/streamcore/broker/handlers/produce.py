"""Produce (0): validate record batches and append them to the partition logs.

Advertised v0-v12. v0-v2 stay in the list because librdkafka before 2.11.1 looks for
Produce v0 before it enables compression; their message format (magic 0/1) is not
stored: such batches get UNSUPPORTED_FOR_MESSAGE_FORMAT. v3 adds transactional_id;
v9 is flexible; v13 would switch to topic ids.

Per partition: size check (MESSAGE_TOO_LARGE), magic check, full validation by the
record-batch codec (lengths, CRC32C, record count, varints, decompression within the
cap → CORRUPT_MESSAGE), the topic's config rules (the topic's max.message.bytes first, then
``broker.record_policy``: keys on compacted topics → INVALID_RECORD, timestamp range →
INVALID_TIMESTAMP, each with per-record errors from v8; LogAppendTime stamping, whose
time the response carries), idempotent-producer sequence check (a duplicate gets its
original offsets; a gap gets OUT_OF_ORDER_SEQUENCE_NUMBER), then the WAL append.
With an authorizer, a topic the sender may not WRITE is TOPIC_AUTHORIZATION_FAILED
for all its partitions before anything else is looked at (as in Kafka, whatever the
topic's existence), and a missing topic is auto-created only for a sender allowed
CREATE on the cluster or the topic (UNKNOWN_TOPIC_OR_PARTITION otherwise). An
idempotent producer needs no more than WRITE (Kafka dropped IDEMPOTENT_WRITE in 3.0);
a request carrying a transactional id needs WRITE on that id too, else every partition
is TRANSACTIONAL_ID_AUTHORIZATION_FAILED. Batches of idempotent and transactional
producers go through the transaction coordinator (``state.transactions.append``): a
transactional batch must belong to the producer's Ongoing transaction containing the
partition, a plain one must not come from a producer with a transaction open there.
Control batches (COMMIT/ABORT markers) are the coordinator's to write: a client's is
INVALID_RECORD.
acks=0 gets no response but the appends still happen in order; acks=1 and acks=-1
answer after the append, which under fsync=always means after the fsync covering it
(on one node the in-sync replica set is this broker, so both acks mean the same).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from streamcore.broker.authorizer import AclOperation, ResourceType
from streamcore.broker.record_policy import PolicyRefusal, apply_record_policy
from streamcore.broker.topics import TopicError
from streamcore.codec import validate_batch
from streamcore.codec.batch_header import CONTROL_FLAG, MAGIC, MAGIC_AT, TRANSACTIONAL_FLAG
from streamcore.errors import BackpressureError, CorruptRecordError, ErrorCode, KafkaError, StorageError
from streamcore.protocol.messages import (
    ProduceRequest,
    ProduceResponse,
    ProduceResponse_BatchIndexAndErrorMessage,
    ProduceResponse_PartitionProduceResponse,
    ProduceResponse_TopicProduceResponse,
)

if TYPE_CHECKING:
    from streamcore.broker.context import RequestContext
    from streamcore.broker.state import BrokerState
    from streamcore.storage import AppendResult, Log

API_KEY = 0
REQUEST = ProduceRequest

_NONE = 0
_CORRUPT = ErrorCode.CORRUPT_MESSAGE.code
_TOO_LARGE = ErrorCode.MESSAGE_TOO_LARGE.code
_FORMAT = ErrorCode.UNSUPPORTED_FOR_MESSAGE_FORMAT.code
_UNKNOWN = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION.code
_STORAGE = ErrorCode.KAFKA_STORAGE_ERROR.code
_TIMED_OUT = ErrorCode.REQUEST_TIMED_OUT.code
_INVALID_RECORD = ErrorCode.INVALID_RECORD.code
_TXN_DENIED = ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED.code
_TOPIC_DENIED = ErrorCode.TOPIC_AUTHORIZATION_FAILED.code
_WRITE = int(AclOperation.WRITE)
_TOPIC = int(ResourceType.TOPIC)
_TXN_ID = int(ResourceType.TRANSACTIONAL_ID)


def handle(
    state: BrokerState, ctx: RequestContext, request: ProduceRequest
) -> Awaitable[ProduceResponse | None]:
    return _produce(state, ctx, request)


async def _produce(
    state: BrokerState, ctx: RequestContext, request: ProduceRequest
) -> ProduceResponse | None:
    started = time.perf_counter()
    throttle_ms = 0
    topics_out = []
    # (response, append future, log, topic, batch bytes, batch records, log append time or -1)
    pending: list[
        tuple[ProduceResponse_PartitionProduceResponse, asyncio.Future[AppendResult], Log, str, int, int, int]
    ] = []
    authorizer = getattr(state, "authorizer", None)
    # Kafka: a transactional producer needs WRITE on its transactional id, else every
    # partition of the request is refused (and no topic is looked up or created).
    txn_denied = (
        request.transactional_id is not None
        and authorizer is not None
        and not authorizer.allows(ctx, _WRITE, _TXN_ID, request.transactional_id)
    )
    for topic_data in request.topic_data:
        name = topic_data.name
        parts_out = []
        topic_error = 0
        partitions = 0
        try:
            if txn_denied:
                topic_error = _TXN_DENIED
            elif authorizer is None:
                partitions = state.topics.ensure_topic(name).partitions
            elif not authorizer.allows(ctx, _WRITE, _TOPIC, name):
                topic_error = _TOPIC_DENIED
            else:
                info = state.topics.get(name)
                if info is None and authorizer.may_create_topic(ctx, name):
                    info = state.topics.ensure_topic(name)
                if info is None:
                    raise TopicError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"unknown topic {name!r}")
                partitions = info.partitions
        except TopicError as exc:
            topic_error = exc.error_code
        for pdata in topic_data.partition_data:
            resp = ProduceResponse_PartitionProduceResponse(
                index=pdata.index, error_code=_NONE, base_offset=-1
            )
            parts_out.append(resp)
            if topic_error or not 0 <= pdata.index < partitions:
                resp.error_code = topic_error or _UNKNOWN
                continue
            try:
                log = state.topics.log(name, pdata.index)
            except TopicError as exc:  # a partition kept offline: damaged data, failed disk
                resp.error_code, resp.error_message = exc.error_code, exc.message
                continue
            try:
                fut, records, append_time = _start_append(
                    state, name, pdata.index, log, pdata.records, request, ctx.api_version
                )
            except _Refused as exc:
                resp.error_code = exc.code
                resp.error_message = exc.message
                continue
            except PolicyRefusal as exc:
                resp.error_code, resp.error_message = exc.code, exc.message
                resp.record_errors = [
                    ProduceResponse_BatchIndexAndErrorMessage(batch_index=i, batch_index_error_message=m)
                    for i, m in exc.record_errors
                ]
                continue
            except BaseException as exc:
                code, message = _failure(state, exc)
                if code < 0:
                    raise
                resp.error_code, resp.error_message = code, message
                throttle_ms = max(throttle_ms, getattr(exc, "throttle_time_ms", 0))
                continue
            pending.append((resp, fut, log, name, len(pdata.records), records, append_time))
        topics_out.append(ProduceResponse_TopicProduceResponse(name=name, partition_responses=parts_out))

    for resp, fut, log, name, nbytes, records, append_time in pending:
        try:
            result = await fut
        except BaseException as exc:
            code, message = _failure(state, exc)
            if code < 0:
                raise
            resp.error_code, resp.error_message = code, message
            throttle_ms = max(throttle_ms, getattr(exc, "throttle_time_ms", 0))
        else:
            resp.base_offset = result.base_offset
            # -1 under CreateTime, as Kafka answers.
            resp.log_append_time_ms = append_time
            resp.log_start_offset = log.log_start_offset
            state.metrics.produced(name, nbytes, records)
    for t in topics_out:
        for p in t.partition_responses:
            if p.error_code:
                state.metrics.error(p.error_code)
    state.metrics.produce_latency_us.observe(int((time.perf_counter() - started) * 1e6))
    if request.acks == 0:
        return None
    return ProduceResponse(responses=topics_out, throttle_time_ms=throttle_ms)


class _Refused(Exception):
    """A batch refused before it reached the appender (size, format, corruption, control batches)."""

    def __init__(self, code: int, message: str) -> None:
        self.code = code
        self.message = message


def _failure(state: BrokerState, exc: BaseException) -> tuple[int, str]:
    """The (error code, message) a failed append is answered with; code -1 for anything else."""
    if isinstance(exc, BackpressureError):
        return _TIMED_OUT, str(exc)
    if isinstance(exc, StorageError):
        return _STORAGE, str(exc)
    if isinstance(exc, KafkaError):
        return exc.error.code, str(exc)
    return -1, ""


def _start_append(
    state: BrokerState,
    topic: str,
    partition: int,
    log: Log,
    records: Any,
    request: ProduceRequest,
    api_version: int,
) -> tuple[asyncio.Future[AppendResult], int, int]:
    """Check and validate one partition's batch and queue its append; returns the append's
    future, the batch's record count and its log append time (ms; -1 under CreateTime).

    Raises _Refused or PolicyRefusal for a batch that must not be appended, or what the
    appender raises.
    """
    if records is None or len(records) == 0:
        raise _Refused(_CORRUPT, "no record batch")
    try:
        cfg = state.topics.topic_config(topic)
    except TopicError as exc:  # deleted since the partition was looked up
        raise _Refused(exc.error_code, exc.message) from None
    size = len(records)
    # The topic's max.message.bytes (limits.max_message_bytes unless overridden), as in Kafka.
    if size > cfg.max_message_bytes:
        raise _Refused(
            _TOO_LARGE,
            f"batch of {size} bytes exceeds the topic's max.message.bytes ({cfg.max_message_bytes})",
        )
    if size <= MAGIC_AT:
        raise _Refused(_CORRUPT, f"record data of {size} bytes is shorter than a batch header")
    # Only the magic byte is read here, to tell an old message format from corruption;
    # the header itself is parsed once, by validate_batch.
    magic = records[MAGIC_AT]
    if magic != MAGIC:
        raise _Refused(_FORMAT, f"message format v{magic} is not supported; use record batch v2 (magic 2)")
    try:
        info = validate_batch(records)
    except CorruptRecordError as exc:
        raise _Refused(_CORRUPT, str(exc)) from None
    if info.attributes & CONTROL_FLAG:
        # Markers are the transaction coordinator's to write (Kafka's LogValidator rule).
        raise _Refused(_INVALID_RECORD, "clients may not write control batches")
    if info.attributes & TRANSACTIONAL_FLAG and info.producer_id < 0:
        raise _Refused(_INVALID_RECORD, "a transactional batch needs a producer id")
    accepted = apply_record_policy(cfg, topic, partition, records, info)
    # The request frame's memoryview is handed over as it is: the appender lends it to
    # the WAL, which writes it from the frame (no copy in user space at all).
    if accepted.info.producer_id >= 0:
        # The transaction checks (a transactional batch must belong to an Ongoing
        # transaction containing the partition; a plain one must not come from a producer
        # with a transaction open here), then the sequence check and the append.
        fut = state.transactions.append(
            topic,
            partition,
            log,
            accepted.records,
            accepted.info,
            transactional_id=request.transactional_id,
            api_version=api_version,
            appender=state.appender,
        )
    else:
        fut = state.appender.append(topic, partition, log, accepted.records, accepted.info)
    return fut, info.record_count, accepted.log_append_time_ms
