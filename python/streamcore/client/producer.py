"""Asyncio producer: batching, partitioning, compression, idempotence, retries.

The path of a record: ``send`` serializes key and value, picks the partition
(murmur2 of the key like the Java client; sticky for unkeyed records, switching
when a batch fills), charges ``buffer_memory`` and appends to the partition's open
batch. The sender task on the event loop seals batches that are full or have
lingered ``linger_ms``, encodes each with ONE ``streamcore.codec.encode_batch``
call (the producer id, epoch and base sequence go into the batch header), groups
them per leader into Produce requests and completes the records' futures from the
answer.

Idempotence (on by default): InitProducerId gives a producer id; each partition's
batches get consecutive sequence numbers when first sent, at most
``max_in_flight_per_partition`` (<= 5) in flight. A batch is encoded once and a
retry resends the same bytes, so the broker recognises a retry of a batch it
already wrote and answers with the original offsets instead of writing it again.
Batches of one partition always use the same connection of a bundle so they
arrive in order.

Sequence bookkeeping, per partition, reasons like the Java client:

* Until the broker has acknowledged one batch of the current producer id on a
  partition, that partition has ONE batch in flight. A broker accepts any
  sequence from a producer it holds no state for, so if the first batch failed
  (NOT_LEADER_OR_FOLLOWER is common right after a topic is created: the
  broker's metadata lists the partition before its log exists) a second batch
  in flight behind it would be written first, leaving a hole no retry can fill.
* A batch whose sequence is not the lowest one still unacknowledged gets
  OUT_OF_ORDER_SEQUENCE_NUMBER because an earlier batch failed or is being
  retried; it is retried after that one, in sequence order, one at a time.
  Only the lowest unacknowledged batch's OUT_OF_ORDER is fatal.
* A batch that fails for good after getting a sequence leaves a hole: nothing
  more is sent until every answer is in, then the producer takes a new producer
  id and the batches still queued are sequenced again under it.
"""

from __future__ import annotations

import asyncio
import collections
import random
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from streamcore.client.accumulator import RECORD_OVERHEAD, Accumulator, ProducerBatch
from streamcore.client.cluster import Cluster
from streamcore.client.config import ClientConfig, build_config
from streamcore.client.errors import BufferFullError, ClientClosedError, broker_error
from streamcore.client.retrying import (
    Backoff,
    RetryMetrics,
    connection_failed,
    is_retriable,
    metadata_is_stale,
    tag,
)
from streamcore.client.sync import complete_batch
from streamcore.client.types import BatchMetadata, RecordMetadata, TopicPartition
from streamcore.codec import encode_batch
from streamcore.codec.partitioner import default_partition
from streamcore.errors import ErrorCode, KafkaError
from streamcore.protocol.messages import (
    InitProducerIdRequest,
    ProduceRequest,
    ProduceRequest_PartitionProduceData,
    ProduceRequest_TopicProduceData,
)

__all__ = ["Producer", "ProducerCore"]

_DUPLICATE = ErrorCode.DUPLICATE_SEQUENCE_NUMBER.code
_OUT_OF_ORDER = ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER.code


def _to_bytes(x: Any, what: str) -> bytes | None:
    if x is None or isinstance(x, (bytes, bytearray, memoryview)):
        return x
    if isinstance(x, str):
        return x.encode()
    raise TypeError(f"{what} must be bytes, str or None without a {what}_serializer, got {type(x).__name__}")


class _SpanCollector:
    """Gathers BatchMetadata of one send_batch call across the batches it was split into."""

    __slots__ = ("future", "left", "spans", "order")

    def __init__(self, future: Any, parts: int) -> None:
        self.future = future
        self.left = parts
        self.spans: list[tuple[int, BatchMetadata]] = []
        self.order = 0

    def next_order(self) -> int:
        self.order += 1
        return self.order

    def done(self, order: int, meta: BatchMetadata | None, exc: BaseException | None) -> None:
        f = self.future
        if f.done():
            return
        if exc is not None:
            f.set_exception(exc)
            return
        self.spans.append((order, meta))  # type: ignore[arg-type]
        self.left -= 1
        if self.left == 0:
            self.spans.sort(key=lambda s: s[0])
            f.set_result([m for _, m in self.spans])


class ProducerCore:
    """Event-loop side of a producer, shared by the asyncio and the blocking API.

    Created and started on the event loop that runs it; ``append``/``append_many``
    may be called from any thread.
    """

    def __init__(self, config: ClientConfig) -> None:
        self.config = config
        c = config
        self.cluster = Cluster(config)
        self.acks = c.acks
        self.compression = c.compression_type
        self.idempotent = c.enable_idempotence
        self.max_in_flight_per_partition = (
            min(c.max_in_flight_per_partition, 5) if self.idempotent else (c.max_in_flight_per_partition)
        )
        self.key_serializer = c.key_serializer
        self.value_serializer = c.value_serializer
        self.acc = Accumulator(c.batch_size, c.buffer_memory, c.linger_ms, c.delivery_timeout_ms)
        self.acc.on_sealed = self._wake_from_any_thread
        self.acc.on_first_open = self._wake_from_any_thread
        self.backoff = Backoff(c.retry_backoff_ms, c.retry_backoff_max_ms)
        self.retry_metrics = RetryMetrics()
        self.partitions: dict[str, list[int]] = {}
        self._sticky: dict[str, int] = {}
        self._tp_cache: dict[str, list[TopicPartition]] = {}
        self._future_factory: Callable[[], Any] = lambda: None  # set by the blocking API
        self.producer_id = -1
        self.producer_epoch = -1
        self._next_seq: dict[TopicPartition, int] = defaultdict(int)
        self._in_flight: dict[TopicPartition, int] = defaultdict(int)
        # Batches with a sequence of the current producer id, not yet acknowledged
        # nor failed for good, in sequence order (in flight or queued for a retry).
        self._unacked: dict[TopicPartition, collections.deque[ProducerBatch]] = defaultdict(collections.deque)
        # Partitions where the broker acknowledged a batch of the current producer id.
        self._confirmed: set[TopicPartition] = set()
        self._reset_pid = False
        self.loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread_id: int | None = None
        self._wake: asyncio.Event | None = None  # created in start(), on the loop
        self._wake_pending = False
        self._flush_requested = 0
        self._flush_waiters: list[asyncio.Future[None]] = []
        self._sender: asyncio.Task[None] | None = None
        self._closed = False
        self._outstanding = 0  # batches sealed or in flight, not yet completed

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Bootstrap metadata, get a producer id (idempotence), start the sender task."""
        import threading

        self.loop = asyncio.get_running_loop()
        self._loop_thread_id = threading.get_ident()
        self._wake = asyncio.Event()
        await self.cluster.refresh()
        if self.idempotent:
            await self._init_producer_id()
        self._sender = asyncio.ensure_future(self._run_sender())

    async def _init_producer_id(self) -> None:
        deadline = time.monotonic() + self.config.max_block_ms / 1000.0
        attempt = 0
        while True:
            try:
                conn = await self.cluster.any_connection()
                resp = await conn.request(
                    InitProducerIdRequest(
                        transactional_id=None, transaction_timeout_ms=-1, producer_id=-1, producer_epoch=-1
                    )
                )
                if resp.error_code:
                    raise broker_error(resp.error_code, "InitProducerId")
                self.producer_id, self.producer_epoch = resp.producer_id, resp.producer_epoch
                self._resequence()
                return
            except Exception as exc:
                if not is_retriable(exc) or time.monotonic() >= deadline:
                    raise
                await asyncio.sleep(self.backoff.delay_ms(attempt) / 1000.0)
                attempt += 1

    def _resequence(self) -> None:
        """Start every partition's sequence over for a new producer id.

        Queued batches that had a sequence of the previous id are encoded again
        when next sent (called when nothing is in flight).
        """
        self._next_seq.clear()
        self._unacked.clear()
        self._confirmed.clear()
        with self.acc.lock:
            for q in self.acc.sealed.values():
                for b in q:
                    if b.base_sequence >= 0:
                        b.encoded = None
                        b.base_sequence = b.producer_id = b.producer_epoch = -1

    async def close(self, timeout: float | None = None) -> None:
        """Send what is buffered (waiting up to ``timeout`` seconds, None = forever), then close."""
        if self._closed:
            return
        try:
            await self.flush(timeout)
        except asyncio.TimeoutError:
            pass
        self._closed = True
        self._fail_all(ClientClosedError("producer closed before the record was sent"))
        if self._sender is not None:
            self._sender.cancel()
            try:
                await self._sender
            except (asyncio.CancelledError, Exception):
                pass
        self.cluster.close()

    # ------------------------------------------------------------------ partitioning

    async def partitions_of(self, topic: str) -> list[int]:
        """Partitions of ``topic``, fetching metadata (up to max_block_ms) when unknown."""
        parts = self.partitions.get(topic)
        if parts is None:
            parts = await self.cluster.wait_for_partitions(topic, self.config.max_block_ms / 1000.0)
            self.partitions[topic] = parts
        return parts

    def _pick_partition(self, topic: str, parts: list[int], key: bytes | None, partition: int | None) -> int:
        if partition is not None:
            if partition not in parts:
                raise ValueError(f"topic {topic!r} has no partition {partition} (it has {len(parts)})")
            return partition
        if key is not None:
            return parts[default_partition(key, len(parts))]
        p = self._sticky.get(topic)
        if p is None:
            p = self._sticky[topic] = random.choice(parts)
        return p

    def _switch_sticky(self, topic: str, parts: list[int], old: int) -> None:
        if len(parts) > 1:
            choices = [p for p in parts if p != old]
            self._sticky[topic] = random.choice(choices)

    # ------------------------------------------------------------------ appending (any thread)

    def serialize(self, topic: str, value: Any, key: Any) -> tuple[bytes | None, bytes | None]:
        """Run the configured serializers (or accept bytes/str) for one record."""
        if self.value_serializer is not None:
            value = self.value_serializer(value)
        else:
            value = _to_bytes(value, "value")
        if self.key_serializer is not None and key is not None:
            key = self.key_serializer(key)
        else:
            key = _to_bytes(key, "key")
        return value, key

    def try_append(
        self,
        topic: str,
        parts: list[int],
        value: bytes | None,
        key: bytes | None,
        headers: Any,
        partition: int | None,
        timestamp_ms: int | None,
        future: Any,
        block_s: float,
    ) -> Any:
        """Append one record; returns its future, or False if memory stayed full for ``block_s`` s.

        ``future`` None makes one with ``future_factory`` under the lock (a record's
        future exists only once it is accepted). ``block_s`` > 0 blocks the calling
        thread (never the event loop's).
        """
        if self._closed:
            raise ClientClosedError("producer is closed")
        size = (
            (len(value) if value is not None else 0) + (len(key) if key is not None else 0) + RECORD_OVERHEAD
        )
        if headers:
            headers = [(k, _to_bytes(v, "header value")) for k, v in headers]
            size += sum(len(k) + (len(v) if v else 0) for k, v in headers)
        else:
            headers = None
        acc = self.acc
        with acc.lock:
            used = acc.used + size
            if used > acc.buffer_memory and acc.used > 0:
                if block_s <= 0 or not acc.reserve_blocking(size, block_s):
                    return False
            else:
                acc.used = used
            unkeyed = key is None and partition is None
            if unkeyed:
                p = self._sticky.get(topic)
                if p is None:
                    p = self._pick_partition(topic, parts, None, None)
            else:
                p = self._pick_partition(topic, parts, key, partition)
            tps = self._tp_cache.get(topic)
            if tps is None or len(tps) <= p:
                tps = self._tp_cache[topic] = [TopicPartition(topic, i) for i in range(max(parts) + 1)]
            tp = tps[p]
            batch = acc.open.get(tp)
            if batch is None or batch.size + size > acc.batch_size:
                batch, sealed = acc.batch_for(tp, size, time.monotonic())
                if sealed and unkeyed:
                    # Sticky partitioning: the batch for this partition filled, move on; the
                    # record still joins this partition's new batch so nothing reorders.
                    self._switch_sticky(topic, parts, p)
            if future is None:
                # A bound future: it reads its RecordMetadata from the batch outcome.
                future = self._future_factory()
                future._batch = batch
                future._index = batch.count
                batch.bound += 1
                record_future = None
            else:
                record_future = future
            if (
                key is None
                and headers is None
                and timestamp_ms is None
                and batch.keys is None
                and (batch.headers is None and batch.timestamps is None)
            ):
                # The common record: value only; the full ProducerBatch.add handles the rest.
                if record_future is not None:
                    batch.record_futures.append((batch.count, record_future))
                batch.values.append(value)
                batch.size += size
                batch.count += 1
            else:
                batch.add(value, key, headers, timestamp_ms, size, record_future)
            if batch.size >= acc.batch_size:
                acc.seal_if_full(tp, batch)
                if unkeyed:
                    self._switch_sticky(topic, parts, p)
        return future

    def plan_batch(
        self,
        topic: str,
        parts: list[int],
        values: Sequence[bytes | None],
        keys: Sequence[bytes | None] | None,
        partition: int | None,
        future: Any,
    ) -> list[tuple[int | None, list[Any], list[Any] | None, int, Any]]:
        """Cut a send_batch call into runs of about batch_size bytes, each for one partition.

        Keyed records are grouped by murmur2 partition first (keeping their relative
        order); unkeyed runs go to the sticky partition when appended. Returns the
        runs as (partition or None, values, keys, bytes, span token).
        """
        if self._closed:
            raise ClientClosedError("producer is closed")
        values = list(values)
        n = len(values)
        if keys is not None:
            keys = list(keys)
            if len(keys) != n:
                raise ValueError(f"keys has {len(keys)} entries but values has {n}")
        if n == 0:
            future.set_result([])
            return []
        total = sum(len(v) for v in values if v is not None) + RECORD_OVERHEAD * n
        if keys is not None:
            total += sum(len(k) for k in keys if k is not None)
        groups: list[tuple[int | None, list[Any], list[Any] | None]]
        if keys is not None and partition is None:
            by_p: dict[int, tuple[list[Any], list[Any]]] = {}
            np_ = len(parts)
            for v, k in zip(values, keys, strict=False):
                p = parts[default_partition(k, np_)] if k is not None else -1
                entry = by_p.get(p)
                if entry is None:
                    entry = by_p[p] = ([], [])
                entry[0].append(v)
                entry[1].append(k)
            groups = [(None if p == -1 else p, vs, ks) for p, (vs, ks) in by_p.items()]
        else:
            if partition is not None and partition not in parts:
                raise ValueError(f"topic {topic!r} has no partition {partition} (it has {len(parts)})")
            groups = [(partition, values, keys)]
        avg = max(1, total // n)
        per_batch = max(1, max(self.acc.batch_size, self.config.send_batch_size) // avg)
        chunks = []
        for p, vs, ks in groups:
            for i in range(0, len(vs), per_batch):
                chunks.append((p, vs[i : i + per_batch], ks[i : i + per_batch] if ks is not None else None))
        collector = _SpanCollector(future, len(chunks))
        return [(p, vs, ks, avg * len(vs), (collector, collector.next_order())) for p, vs, ks in chunks]

    def append_run(
        self,
        topic: str,
        parts: list[int],
        run: tuple[int | None, list[Any], list[Any] | None, int, Any],
        block_s: float,
    ) -> bool:
        """Append one run from plan_batch; False if memory stayed full for ``block_s`` seconds."""
        if self._closed:
            raise ClientClosedError("producer is closed")
        p, vs, ks, size, token = run
        acc = self.acc
        with acc.lock:
            if not acc.try_reserve(size):
                if block_s <= 0 or not acc.reserve_blocking(size, block_s):
                    return False
            explicit = p is not None
            part = p if explicit else self._pick_partition(topic, parts, None, None)
            tp = TopicPartition(topic, part)
            batch, sealed = acc.batch_for(tp, size, time.monotonic())
            if sealed and not explicit:
                self._switch_sticky(topic, parts, part)
            batch.add_many(vs, ks, size, token)
            if acc.seal_if_full(tp, batch) and not explicit:
                self._switch_sticky(topic, parts, part)
        return True

    # ------------------------------------------------------------------ sender

    def _wake_from_any_thread(self) -> None:
        # Called with the accumulator lock held; one wake-up per sender cycle at most.
        if self._wake_pending or self.loop is None:
            return
        self._wake_pending = True
        import threading

        if threading.get_ident() == self._loop_thread_id:
            self._wake.set()  # type: ignore[union-attr]
        else:
            self.loop.call_soon_threadsafe(self._wake.set)  # type: ignore[union-attr]

    async def flush(self, timeout: float | None = None) -> None:
        """Wait until every record appended so far is answered (``timeout`` in seconds)."""
        if not self.acc.has_data() and self._outstanding == 0:
            return
        fut = asyncio.get_running_loop().create_future()
        self._flush_waiters.append(fut)
        self._flush_requested += 1
        self._wake.set()  # type: ignore[union-attr]
        try:
            await asyncio.wait_for(asyncio.shield(fut), timeout)
        finally:
            self._flush_requested -= 1

    def _check_flushed(self) -> None:
        if self._flush_waiters and self._outstanding == 0 and not self.acc.has_data():
            waiters, self._flush_waiters = self._flush_waiters, []
            for f in waiters:
                if not f.done():
                    f.set_result(None)

    async def _run_sender(self) -> None:
        wake = self._wake
        assert wake is not None
        while not self._closed:
            self._wake_pending = False
            wake.clear()
            now = time.monotonic()
            next_linger = self.acc.seal_expired(
                now, force=self._flush_requested > 0 or self.acc.linger_s == 0
            )
            if self._reset_pid and not any(self._in_flight.values()):
                self._reset_pid = False
                try:
                    await self._init_producer_id()
                except Exception as exc:  # cannot continue idempotently: fail what is waiting
                    self._fail_all(exc)
            next_retry = await self._drain(now)
            self._expire(now)
            self._check_flushed()
            timeout = None
            for t in (next_linger, next_retry):
                if t is not None:
                    d = max(0.0, t - time.monotonic())
                    timeout = d if timeout is None else min(timeout, d)
            if self.acc.sealed and any(self.acc.sealed.values()) and timeout is None:
                timeout = 0.05  # blocked on in-flight limits or metadata: look again soon
            try:
                if timeout is None:
                    await wake.wait()
                elif timeout > 0:
                    await asyncio.wait_for(wake.wait(), timeout)
            except asyncio.TimeoutError:
                pass

    async def _drain(self, now: float) -> float | None:
        """Send sealed batches whose partition has a leader and a free in-flight slot.

        Returns the earliest retry time of a batch held back by backoff, or None.
        """
        next_retry: float | None = None
        need_metadata: set[str] = set()
        acc = self.acc
        rounds: list[dict[tuple[int, int], list[ProducerBatch]]] = []
        if self._reset_pid:
            # A sequence hole: send nothing under the old producer id; the sender
            # takes a new one once every answer is in.
            return None
        idempotent = self.idempotent
        with acc.lock:
            # One batch per partition per request (as the protocol expects); further
            # ready batches of a partition go in the following requests, pipelined.
            while True:
                by_node: dict[tuple[int, int], list[ProducerBatch]] = defaultdict(list)
                for tp, q in acc.sealed.items():
                    if not q:
                        continue
                    batch = q[0]
                    if batch.retry_at > now:
                        next_retry = batch.retry_at if next_retry is None else min(next_retry, batch.retry_at)
                        continue
                    if idempotent and (batch.base_sequence >= 0 or tp not in self._confirmed):
                        # A retry goes alone (it is then the lowest unacknowledged
                        # sequence); so does the first batch of a producer id.
                        limit = 1
                    else:
                        limit = self.max_in_flight_per_partition
                    if self._in_flight[tp] >= limit:
                        continue
                    leader = self.cluster.leader_for(tp.topic, tp.partition)
                    if leader is None:
                        need_metadata.add(tp.topic)
                        continue
                    q.popleft()
                    self._in_flight[tp] += 1
                    self._outstanding += 1
                    batch.node = leader
                    by_node[(leader, hash(tp) % self.config.connections_per_broker)].append(batch)
                if not by_node:
                    break
                rounds.append(by_node)
        if need_metadata:
            asyncio.ensure_future(self._refresh_quietly(need_metadata))
        # Encode outside the lock: one native call per batch.
        for by_node in rounds:
            for (node, slot), batches in by_node.items():
                for b in batches:
                    if b.encoded is None:
                        self._encode(b)
                self._send_request(node, slot, batches)
        return next_retry

    def _encode(self, b: ProducerBatch) -> None:
        ts: list[Any]
        now_ms = int(time.time() * 1000)
        if b.explicit_ts:
            ts = [t if t is not None else now_ms for t in b.timestamps]  # type: ignore[union-attr]
        else:
            ts = [now_ms] * b.count
        b.first_ts = ts[0]
        if self.idempotent:
            seq = self._next_seq[b.tp]
            b.base_sequence = seq
            self._next_seq[b.tp] = (seq + b.count) & 0x7FFFFFFF
            b.producer_id, b.producer_epoch = self.producer_id, self.producer_epoch
            self._unacked[b.tp].append(b)
        b.encoded = encode_batch(
            b.values,
            b.keys,
            b.headers,
            ts if b.explicit_ts else ts,
            compression=self.compression,
            producer_id=b.producer_id,
            producer_epoch=b.producer_epoch,
            base_sequence=b.base_sequence,
        )
        if b.explicit_ts:
            b.timestamps = ts

    def _send_request(self, node: int, slot: int, batches: list[ProducerBatch]) -> None:
        topics: dict[str, list[ProduceRequest_PartitionProduceData]] = defaultdict(list)
        for b in batches:
            topics[b.tp.topic].append(
                ProduceRequest_PartitionProduceData(index=b.tp.partition, records=b.encoded)
            )
        req = ProduceRequest(
            transactional_id=None,
            acks=self.acks,
            timeout_ms=self.config.request_timeout_ms,
            topic_data=[ProduceRequest_TopicProduceData(name=t, partition_data=p) for t, p in topics.items()],
        )
        asyncio.ensure_future(self._do_request(node, slot, req, batches))

    async def _do_request(
        self, node: int, slot: int, req: ProduceRequest, batches: list[ProducerBatch]
    ) -> None:
        try:
            bundle = self.cluster.pool.bundle(node)
            conn = bundle.get(slot)
            if conn is None:
                conn = await self.cluster.connection(node)
                conn = bundle.get(slot) or conn
            if self.acks == 0:
                conn.send(req, expect_response=False)
                for b in batches:
                    self._complete(b, -1, -1)
                return
            resp = await conn.request(req)
        except Exception as exc:
            for b in batches:
                self._failed(b, exc)
            self._wake.set()  # type: ignore[union-attr]
            return
        by_tp = {}
        for t in resp.responses:
            for p in t.partition_responses:
                by_tp[(t.name, p.index)] = p
        for b in batches:
            p = by_tp.get((b.tp.topic, b.tp.partition))
            if p is None:
                self._failed(
                    b, broker_error(ErrorCode.UNKNOWN_SERVER_ERROR.code, "partition missing from answer")
                )
            elif p.error_code == 0:
                self._complete(b, p.base_offset, p.log_append_time_ms)
            elif p.error_code == _DUPLICATE:
                self._complete(b, -1, -1)
            else:
                conn.record_outcome(False)
                self._failed(
                    b, broker_error(p.error_code, p.error_message or f"{b.tp.topic}-{b.tp.partition}")
                )
        self._wake.set()  # type: ignore[union-attr]

    async def _refresh_quietly(self, topics: Iterable[str]) -> None:
        try:
            await self.cluster.refresh(list(topics))
        except Exception:
            return  # the batches stay queued; the next drain asks again
        for t in topics:
            parts = self.cluster.partitions_for(t)
            if parts is not None:
                self.partitions[t] = parts
        self._wake.set()  # type: ignore[union-attr]

    # ------------------------------------------------------------------ completion

    def _complete(self, b: ProducerBatch, base_offset: int, log_append_time: int) -> None:
        tp = b.tp
        self._in_flight[tp] -= 1
        self._outstanding -= 1
        if b.base_sequence >= 0:
            self._forget_sequence(b)
            if b.producer_id == self.producer_id:
                self._confirmed.add(tp)
        self.retry_metrics.record_success()
        topic, part = tp
        if b.record_futures:
            ts_list = b.timestamps
            first = b.first_ts if log_append_time in (-1, None) else log_append_time
            for i, f in b.record_futures:
                if f.done():
                    continue
                off = base_offset + i if base_offset >= 0 else -1
                ts = first if ts_list is None or log_append_time not in (-1, None) else ts_list[i]
                f.set_result(RecordMetadata(topic, part, off, ts))
        if b.bound:
            complete_batch(b, (base_offset, log_append_time))
        for start, count, (collector, order) in b.span_futures:
            off = base_offset + start if base_offset >= 0 else -1
            collector.done(order, BatchMetadata(topic, part, off, count, b.first_ts), None)
        self.acc.release(b.size)
        b.values = []

    def _failed(self, b: ProducerBatch, exc: BaseException) -> None:
        tp = b.tp
        self._in_flight[tp] -= 1
        self._outstanding -= 1
        tag(exc)
        self.retry_metrics.record_exception(exc)
        if isinstance(exc, KafkaError) and exc.error.code == _OUT_OF_ORDER:
            # The broker waits for a lower sequence of this partition: a batch sent
            # before this one failed or is being retried (or a hole is about to be
            # closed by a new producer id). Only for the lowest unacknowledged
            # batch does it mean the broker lost what it acknowledged: fatal.
            retriable = self._reset_pid or not self._is_first_unacked(b)
        else:
            retriable = is_retriable(exc)
        now = time.monotonic()
        if retriable and b.attempts < self.config.retries and now < b.deadline and not self._closed:
            b.attempts += 1
            b.retry_at = now + self.backoff.delay_ms(b.attempts - 1) / 1000.0
            if metadata_is_stale(exc) or connection_failed(exc):
                asyncio.ensure_future(self._refresh_quietly([tp.topic]))
            self.acc.requeue(b)
            return
        self._outstanding += 1  # _fail_batch decrements
        self._fail_batch(b, exc)
        self._sequence_hole(b)

    def _is_first_unacked(self, b: ProducerBatch) -> bool:
        q = self._unacked.get(b.tp)
        return bool(q) and q[0] is b

    def _forget_sequence(self, b: ProducerBatch) -> None:
        q = self._unacked.get(b.tp)
        if q:
            if q[0] is b:  # the usual case: answers come in sequence order
                q.popleft()
            else:
                try:
                    q.remove(b)
                except ValueError:
                    pass  # a batch of an earlier producer id

    def _sequence_hole(self, b: ProducerBatch) -> None:
        """``b`` failed for good after getting a sequence: later ones cannot follow it."""
        if self.idempotent and b.base_sequence >= 0:
            self._forget_sequence(b)
            # Every later batch of the partition would be out of order: start over
            # with a fresh producer id once nothing is in flight.
            self._reset_pid = True

    def _fail_batch(self, b: ProducerBatch, exc: BaseException) -> None:
        self._outstanding -= 1
        for _, f in b.record_futures:
            if not f.done():
                f.set_exception(exc)
        if b.bound:
            complete_batch(b, exc)
        for _, _, (collector, order) in b.span_futures:
            collector.done(order, None, exc)
        self.acc.release(b.size)
        b.values = []

    def _expire(self, now: float) -> None:
        expired: list[ProducerBatch] = []
        with self.acc.lock:
            for q in self.acc.sealed.values():
                while q and q[0].deadline <= now:
                    expired.append(q.popleft())
        for b in expired:
            self._sequence_hole(b)  # a retry that ran out of time
            self._outstanding += 1
            self._fail_batch(
                b,
                KafkaError(
                    ErrorCode.REQUEST_TIMED_OUT,
                    f"{b.tp.topic}-{b.tp.partition}: not delivered within delivery_timeout_ms",
                ),
            )

    def _fail_all(self, exc: BaseException) -> None:
        with self.acc.lock:
            batches = list(self.acc.open.values())
            self.acc.open.clear()
            for q in self.acc.sealed.values():
                batches.extend(q)
                q.clear()
        for b in batches:
            self._outstanding += 1
            self._fail_batch(b, exc)
        self._check_flushed()


class Producer:
    """Asyncio producer.

    >>> async with Producer("127.0.0.1:9092", linger_ms=5) as p:     # doctest: +SKIP
    ...     fut = await p.send("events", b"value", key=b"k")
    ...     meta = await fut          # RecordMetadata(topic, partition, offset, timestamp)

    Settings: snake_case keywords or a dict of dotted Kafka properties (see
    ``streamcore.client.config.SETTINGS``); unknown ones raise ConfigError.
    """

    def __init__(
        self,
        bootstrap_servers: str | list[str] | None = None,
        config: Mapping[str, Any] | None = None,
        **settings: Any,
    ) -> None:
        self.config = build_config("producer", bootstrap_servers, config, settings)
        self._core = ProducerCore(self.config)
        self._started = False

    async def start(self) -> None:
        """Connect and fetch metadata (and a producer id when idempotent)."""
        if not self._started:
            await self._core.start()
            self._started = True

    async def __aenter__(self) -> Producer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def send(
        self,
        topic: str,
        value: Any,
        key: Any = None,
        headers: list[tuple[str, bytes | None]] | None = None,
        partition: int | None = None,
        timestamp_ms: int | None = None,
    ) -> asyncio.Future[RecordMetadata]:
        """Queue one record; returns a future of its RecordMetadata.

        Awaits buffer space for up to ``max_block_ms`` (then raises BufferFullError)
        and the topic's metadata when unknown. Delivery errors are set on the
        future as KafkaError (with ``.error`` the ErrorCode and ``.category``).
        """
        core = self._core
        if not self._started:
            await self.start()
        v, k = core.serialize(topic, value, key)
        parts = core.partitions.get(topic) or await core.partitions_of(topic)
        fut: asyncio.Future[RecordMetadata] = asyncio.get_running_loop().create_future()
        if core.try_append(topic, parts, v, k, headers, partition, timestamp_ms, fut, 0):
            return fut
        await self._wait_space(
            lambda: core.try_append(topic, parts, v, k, headers, partition, timestamp_ms, fut, 0)
        )
        return fut

    async def _wait_space(self, attempt: Callable[[], bool]) -> None:
        core = self._core
        deadline = time.monotonic() + self.config.max_block_ms / 1000.0
        while True:
            with core.acc.lock:
                waiter = core.acc.space_future()
            if attempt():
                return
            left = deadline - time.monotonic()
            if left <= 0:
                raise BufferFullError(
                    f"buffer_memory ({core.acc.buffer_memory} bytes) stayed full for max_block_ms "
                    f"({self.config.max_block_ms} ms): the brokers are not taking records as fast as they come"
                )
            try:
                await asyncio.wait_for(waiter, left)
            except asyncio.TimeoutError:
                pass

    async def send_and_wait(self, topic: str, value: Any, key: Any = None, **kw: Any) -> RecordMetadata:
        """``send`` and await the RecordMetadata."""
        return await (await self.send(topic, value, key, **kw))

    async def send_batch(
        self,
        topic: str,
        values: Sequence[Any],
        keys: Sequence[Any] | None = None,
        partition: int | None = None,
    ) -> asyncio.Future[list[BatchMetadata]]:
        """Queue many records in one call; returns a future of a list of BatchMetadata.

        Each BatchMetadata covers a run of consecutive input records written to one
        partition (keyed records are grouped by partition, keeping their relative
        order). Far cheaper per record than ``send``.
        """
        core = self._core
        if not self._started:
            await self.start()
        if core.value_serializer is not None:
            values = [core.value_serializer(v) for v in values]
        if keys is not None and core.key_serializer is not None:
            keys = [core.key_serializer(k) if k is not None else None for k in keys]
        parts = core.partitions.get(topic) or await core.partitions_of(topic)
        fut: asyncio.Future[list[BatchMetadata]] = asyncio.get_running_loop().create_future()
        for run in core.plan_batch(topic, parts, values, keys, partition, fut):
            if not core.append_run(topic, parts, run, 0):
                await self._wait_space(lambda run=run: core.append_run(topic, parts, run, 0))
        return fut

    async def flush(self, timeout: float | None = None) -> None:
        """Wait until every record sent so far is answered (``timeout`` in seconds, None = forever)."""
        await self._core.flush(timeout)

    async def partitions_for(self, topic: str) -> list[int]:
        """Partition ids of ``topic``."""
        return list(await self._core.partitions_of(topic))

    async def close(self, timeout: float | None = None) -> None:
        """Flush (up to ``timeout`` seconds), then close the connections."""
        if self._started:
            await self._core.close(timeout)
        else:
            self._core.cluster.close()

    @property
    def metrics(self) -> dict[str, Any]:
        """Counters: buffer bytes used, batches outstanding, per-connection stats."""
        core = self._core
        return {
            "buffer_used_bytes": core.acc.used,
            "batches_outstanding": core._outstanding,
            "produce_attempts": core.retry_metrics.snapshot(),
            "connections": {
                n: [c.stats.as_dict() for c in b.connections] for n, b in core.cluster.pool._bundles.items()
            },
        }
