"""Produce (0): validate record batches and append them to the partition logs.

Advertised v0-v12. v0-v2 stay in the list because librdkafka before 2.11.1 looks for
Produce v0 before it enables compression; their message format (magic 0/1) is not
stored: such batches get UNSUPPORTED_FOR_MESSAGE_FORMAT. v3 adds transactional_id;
v9 is flexible; v13 would switch to topic ids.

Per partition: size check (MESSAGE_TOO_LARGE), magic check, full validation by the
record-batch codec (lengths, CRC32C, record count, varints, decompression within the
cap → CORRUPT_MESSAGE), idempotent-producer sequence check (a duplicate gets its
original offsets; a gap gets OUT_OF_ORDER_SEQUENCE_NUMBER), then the WAL append.
acks=0 gets no response but the appends still happen in order; acks=1 and acks=-1
answer after the append, which under fsync=always means after the fsync covering it
(on one node the in-sync replica set is this broker, so both acks mean the same).
"""

from __future__ import annotations

import asyncio
import time

from streamcore.broker.topics import TopicError
from streamcore.codec import validate_batch
from streamcore.errors import BackpressureError, CorruptRecordError, ErrorCode, KafkaError, StorageError
from streamcore.protocol.messages import (
    ProduceRequest,
    ProduceResponse,
    ProduceResponse_PartitionProduceResponse,
    ProduceResponse_TopicProduceResponse,
)

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
_TXN_UNSUPPORTED = ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED.code


def handle(state, ctx, request: ProduceRequest):
    return _produce(state, ctx, request)


async def _produce(state, ctx, request: ProduceRequest):
    started = time.perf_counter()
    version = ctx.api_version
    throttle_ms = 0
    topics_out = []
    pending: list[tuple[ProduceResponse_PartitionProduceResponse, asyncio.Future]] = []
    for topic_data in request.topic_data:
        name = topic_data.name
        parts_out = []
        topic_error = 0
        partitions = 0
        try:
            partitions = state.topics.ensure_topic(name).partitions
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
            log = state.topics.log(name, pdata.index)
            code, work = _start_append(state, name, pdata.index, log, pdata.records, version, request)
            if code:
                resp.error_code = code
                resp.error_message = work if isinstance(work, str) else None
                continue
            pending.append((resp, work))
        topics_out.append(ProduceResponse_TopicProduceResponse(name=name, partition_responses=parts_out))

    for resp, fut in pending:
        try:
            base_offset, log_append_time_ms, log_start = await fut
        except BackpressureError as exc:
            resp.error_code = _TIMED_OUT
            resp.error_message = str(exc)
            throttle_ms = max(throttle_ms, exc.throttle_time_ms)
            state.metrics.backpressure_rejections.inc()
        except StorageError as exc:
            resp.error_code = _STORAGE
            resp.error_message = str(exc)
        except KafkaError as exc:
            resp.error_code = exc.error.code
            resp.error_message = str(exc)
        else:
            resp.base_offset = base_offset
            resp.log_append_time_ms = log_append_time_ms
            resp.log_start_offset = log_start
    for t in topics_out:
        for p in t.partition_responses:
            if p.error_code:
                state.metrics.error(p.error_code)
    state.metrics.produce_latency_us.observe(int((time.perf_counter() - started) * 1e6))
    if request.acks == 0:
        return None
    return ProduceResponse(responses=topics_out, throttle_time_ms=throttle_ms)


def _start_append(state, topic: str, partition: int, log, records, version: int, request: ProduceRequest):
    """Validate one partition's batch and queue its append.

    Returns (error_code, message) on a refusal, else (0, future of
    (base_offset, log_append_time_ms, log_start_offset)).
    """
    if records is None or len(records) == 0:
        return _CORRUPT, "no record batch"
    size = len(records)
    if size > state.config.limits.max_message_bytes:
        return _TOO_LARGE, f"batch of {size} bytes exceeds max_message_bytes"
    if size < 17:
        return _CORRUPT, f"record data of {size} bytes is shorter than a batch header"
    magic = records[16]
    if magic != 2:
        return _FORMAT, f"message format v{magic} is not supported; use record batch v2 (magic 2)"
    try:
        info = validate_batch(records)
    except CorruptRecordError as exc:
        return _CORRUPT, str(exc)
    if request.transactional_id is not None or info[4] & 0x30:
        # Transactional or control batches would need the transaction protocol.
        return _TXN_UNSUPPORTED, "streamcore does not support transactions"
    state.metrics.bytes_in(size)
    # The WAL copies the batch into its queue when the append is submitted, so the
    # request frame's memoryview is handed over as it is (one copy, not two).
    batch = records
    producer_id = info[8]
    if producer_id >= 0:
        fut = asyncio.ensure_future(
            state.append_idempotent(topic, partition, log, batch, producer_id, info[9], info[10], info[5])
        )
    else:
        fut = asyncio.ensure_future(state.append(topic, partition, log, batch))
    return 0, fut
