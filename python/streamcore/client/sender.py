"""The producer's sender: the event-loop task that turns sealed batches into Produce requests.

Each cycle it seals batches that are full or have lingered ``linger_ms``, picks per
partition the batches that may go now (a leader is known, backoff has passed, the
partition has a free in-flight slot, its broker is not pausing after a throttled
answer and the connection's normal channel has room), encodes each once with ONE
``streamcore.codec.encode_batch`` call (the producer id, epoch and base sequence go
into the batch header; see ``sequencing``), groups them per leader and connection
slot into Produce requests, and completes the records' futures from the answers.
A failed batch is requeued with backoff (``Backoff.from_config``: the client's
``retry_*`` settings) while retries and ``delivery_timeout_ms`` allow, else failed
with its error tagged with an ``ErrorCategory``; ``retry_metrics`` counts every
attempt by outcome and every retry with the backoff it waits.

Transactions: with a ``TransactionManager`` (``txn``), a partition's batches wait until
AddPartitionsToTxn added the partition to the transaction, leave only while the
transaction is open or committing, carry the transactional flag and go in Produce
requests (at most v11) naming the transactional id; a batch that fails for good
makes the transaction fail (``TransactionManager.record_failed``).

Backpressure: batches for a broker whose throttle pause runs, or whose connection
channel is full, stay in the accumulator (where ``buffer_memory`` bounds them and
makes ``send`` wait) instead of queueing in the connection.

In-flight bookkeeping: ``outstanding`` counts batches sealed or in flight and not yet
completed (flush waits for it to reach 0); per partition, the number of batches in
flight is bounded by ``max_in_flight_per_partition``. Batches of one partition always
use the same connection of a bundle so they arrive in order.
"""

from __future__ import annotations

import asyncio
import struct
import threading
import time
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from streamcore.client.accumulator import Accumulator, ProducerBatch
from streamcore.client.cluster import Cluster
from streamcore.client.config import ClientConfig
from streamcore.client.connection import Priority
from streamcore.client.errors import broker_error
from streamcore.client.retrying import (
    Backoff,
    RetryMetrics,
    connection_failed,
    is_retriable,
    metadata_is_stale,
    tag,
)
from streamcore.client.sequencing import Sequencer
from streamcore.client.splitting import SplitOutcome, is_too_large, split_batch
from streamcore.client.sync import complete_batch
from streamcore.client.transactions import PRODUCE_MAX_VERSION, TransactionManager, TransactionState
from streamcore.client.types import BatchMetadata, RecordMetadata, TopicPartition
from streamcore.codec import encode_batch
from streamcore.errors import ErrorCode, KafkaError
from streamcore.protocol.messages import (
    ProduceRequest,
    ProduceRequest_PartitionProduceData,
    ProduceRequest_TopicProduceData,
)

__all__ = ["Sender"]

_DUPLICATE = ErrorCode.DUPLICATE_SEQUENCE_NUMBER.code
_OUT_OF_ORDER = ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER.code
# Transaction states in which batches are sent (and failed ones retried).
_SENDING = (TransactionState.IN_TRANSACTION, TransactionState.COMMITTING)

#: Record batch v2: baseOffset i64, batchLength i32, partitionLeaderEpoch i32, magic i8,
#: crc u32, attributes i16, lastOffsetDelta i32, then baseTimestamp i64 at byte 27.
_BASE_TIMESTAMP_AT = 27
_BASE_TIMESTAMP = struct.Struct(">q")


class Sender:
    """Sends the accumulator's sealed batches and completes them; one per producer, on its loop.

    ``sequencer`` is None for a producer without idempotence. ``partitions`` is the
    producer's topic -> partition ids cache, updated when metadata is refreshed.
    """

    def __init__(
        self,
        config: ClientConfig,
        cluster: Cluster,
        acc: Accumulator,
        sequencer: Sequencer | None,
        partitions: dict[str, list[int]],
    ) -> None:
        c = config
        self.config = config
        self.cluster = cluster
        self.acc = acc
        self.sequencer = sequencer
        self.partitions = partitions
        self.acks = c.acks
        self.compression = c.compression_type
        self.max_in_flight_per_partition = (
            min(c.max_in_flight_per_partition, 5) if sequencer is not None else c.max_in_flight_per_partition
        )
        self.backoff = Backoff.from_config(c)
        self.retry_metrics = RetryMetrics()
        #: The transaction manager of a transactional producer (set by the producer).
        self.txn: TransactionManager | None = None
        self._in_flight: dict[TopicPartition, int] = defaultdict(int)
        self.outstanding = 0  # batches sealed or in flight, not yet completed
        self.closed = False
        self.loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread_id: int | None = None
        self._wake: asyncio.Event | None = None  # created in start(), on the loop
        self._wake_pending = False
        self._flush_requested = 0
        self._flush_waiters: list[asyncio.Future[None]] = []
        self._task: asyncio.Task[None] | None = None
        #: id(batch) -> (the batch its records were appended to, the first record's index
        #: there, that batch's SplitOutcome) for the halves of split batches whose
        #: blocking-API futures read their result from the batch they came from.
        self._split_parts: dict[int, tuple[ProducerBatch, int, SplitOutcome]] = {}
        #: Batches split in two after a too-large answer (``client/splitting.py``).
        self.batches_split = 0
        #: topic -> bytes (as ``ProducerBatch.size`` counts them) of the smallest half made
        #: by a split: ``send_batch`` cuts its runs no bigger for that topic, so that a
        #: topic with a small ``max.message.bytes`` is not refused batch after batch.
        self.size_caps: dict[str, int] = {}
        acc.on_sealed = self.wake_from_any_thread
        acc.on_first_open = self.wake_from_any_thread

    def bind_loop(self) -> None:
        """Remember the running loop (wake-ups from other threads go through it)."""
        self.loop = asyncio.get_running_loop()
        self._loop_thread_id = threading.get_ident()
        self._wake = asyncio.Event()

    def start(self) -> None:
        """Start the sender task on the running loop (after ``bind_loop``)."""
        self._task = asyncio.ensure_future(self._run_sender())

    async def close(self, exc: BaseException) -> None:
        """Fail what is still queued with ``exc`` and stop the task."""
        self.closed = True
        self.fail_all(exc)
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass

    def wake_from_any_thread(self) -> None:
        # Called with the accumulator lock held; one wake-up per sender cycle at most.
        if self._wake_pending or self.loop is None:
            return
        self._wake_pending = True
        if threading.get_ident() == self._loop_thread_id:
            self._wake.set()  # type: ignore[union-attr]
        else:
            self.loop.call_soon_threadsafe(self._wake.set)  # type: ignore[union-attr]

    def wake(self) -> None:
        """Run a sender cycle soon (from the loop thread)."""
        if self._wake is not None:
            self._wake.set()

    async def flush(self, timeout: float | None = None) -> None:
        """Wait until every record appended so far is answered (``timeout`` in seconds)."""
        if not self.acc.has_data() and self.outstanding == 0:
            return
        fut = asyncio.get_running_loop().create_future()
        self._flush_waiters.append(fut)
        self._flush_requested += 1
        self._wake.set()  # type: ignore[union-attr]
        try:
            await asyncio.wait_for(asyncio.shield(fut), timeout)
        finally:
            self._flush_requested -= 1

    def check_flushed(self) -> None:
        if self._flush_waiters and self.outstanding == 0 and not self.acc.has_data():
            waiters, self._flush_waiters = self._flush_waiters, []
            for f in waiters:
                if not f.done():
                    f.set_result(None)

    async def _run_sender(self) -> None:
        wake = self._wake
        assert wake is not None
        seq = self.sequencer
        while not self.closed:
            self._wake_pending = False
            wake.clear()
            now = time.monotonic()
            next_linger = self.acc.seal_expired(
                now, force=self._flush_requested > 0 or self.acc.linger_s == 0
            )
            if (
                seq is not None
                and seq.needs_new_id
                and self.txn is None
                and not any(self._in_flight.values())
            ):
                seq.needs_new_id = False
                try:
                    await seq.init_producer_id(self.cluster, self.backoff, self.config.max_block_ms, self.acc)
                except Exception as exc:  # cannot continue idempotently: fail what is waiting
                    self.fail_all(exc)
            next_add = self.txn.poll_adds(now) if self.txn is not None else None
            next_retry = await self._drain(now)
            self._expire(now)
            self.check_flushed()
            timeout = None
            for t in (next_linger, next_retry, next_add):
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
        seq = self.sequencer
        if seq is not None and seq.needs_new_id:
            # A sequence hole: send nothing under the old producer id; the sender
            # takes a new one once every answer is in (a transactional producer when
            # its transaction is aborted).
            return None
        txn = self.txn
        if txn is not None and txn.state not in _SENDING:
            return None
        added = txn.added if txn is not None else None
        # Requests each (broker, connection slot) may still queue in this drain: each
        # round makes one request per slot.
        room: dict[tuple[int, int], int] = {}
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
                    if added is not None and tp not in added:
                        continue  # waits for AddPartitionsToTxn (the sender loop sends it)
                    if seq is not None and seq.must_go_alone(tp, batch):
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
                    key = (leader, hash(tp) % self.config.connections_per_broker)
                    if key not in by_node:
                        left = room.get(key)
                        if left is None:
                            left, resume_at = self._slot_room(key)
                            if resume_at is not None:
                                next_retry = resume_at if next_retry is None else min(next_retry, resume_at)
                        if left <= 0:
                            room[key] = 0
                            continue
                        room[key] = left - 1
                    q.popleft()
                    self._in_flight[tp] += 1
                    self.outstanding += 1
                    batch.node = leader
                    by_node[key].append(batch)
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

    def _slot_room(self, key: tuple[int, int]) -> tuple[int, float | None]:
        """(requests the slot's connection may queue now, when a throttle pause ends or None).

        No room while the broker's throttle pause runs; a slot not yet connected has
        room for one request, which opens it.
        """
        node, slot = key
        try:
            bundle = self.cluster.pool.bundle(node)
        except KeyError:
            return 1, None
        if bundle.throttle.remaining_s() > 0:
            return 0, bundle.throttle.until
        conn = bundle.get(slot)
        return (1 if conn is None else conn.room(Priority.NORMAL)), None

    def _encode(self, b: ProducerBatch) -> None:
        ts: list[Any] | None = None
        if b.explicit_ts:
            now_ms = int(time.time() * 1000)
            ts = [t if t is not None else now_ms for t in b.timestamps]  # type: ignore[union-attr]
            b.first_ts = ts[0]
        if self.sequencer is not None and b.base_sequence < 0:
            self.sequencer.assign(b)  # the halves of a split batch have theirs already
        # Without explicit timestamps the codec stamps every record with the current
        # time itself: no list of ``count`` ints to build and convert per batch.
        b.encoded = encode_batch(
            b.values,
            b.keys,
            b.headers,
            ts,
            compression=self.compression,
            producer_id=b.producer_id,
            producer_epoch=b.producer_epoch,
            base_sequence=b.base_sequence,
            transactional=self.txn is not None,
        )
        if ts is None:
            # The time it used is the batch's base timestamp (always uncompressed).
            b.first_ts = _BASE_TIMESTAMP.unpack_from(b.encoded, _BASE_TIMESTAMP_AT)[0]
        else:
            b.timestamps = ts

    def _send_request(self, node: int, slot: int, batches: list[ProducerBatch]) -> None:
        topics: dict[str, list[ProduceRequest_PartitionProduceData]] = defaultdict(list)
        for b in batches:
            topics[b.tp.topic].append(
                ProduceRequest_PartitionProduceData(index=b.tp.partition, records=b.encoded)
            )
        req = ProduceRequest(
            transactional_id=self.txn.transactional_id if self.txn is not None else None,
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
                if conn.room(Priority.NORMAL) <= 0:
                    await conn.wait_for_room(Priority.NORMAL)
                conn.send(req, expect_response=False)
                for b in batches:
                    self._complete(b, -1, -1)
                return
            version = conn.version_for(ProduceRequest)
            if self.txn is not None:
                version = min(version, PRODUCE_MAX_VERSION)
            resp = await conn.request(req, version)
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
        self.outstanding -= 1
        if self.sequencer is not None:
            self.sequencer.acknowledged(b)
        self.retry_metrics.record_success()
        topic, part = tp
        # One call for the batch's send() futures (asyncio); _encode filled every None
        # timestamp before the batch was sent.
        b.resolve_records(base_offset, log_append_time, RecordMetadata)
        if b.bound:
            complete_batch(b, (base_offset, log_append_time))
        for start, count, (collector, order) in b.span_futures:
            off = base_offset + start if base_offset >= 0 else -1
            collector.done(order, BatchMetadata(topic, part, off, count, b.first_ts), None)
        if self._split_parts:
            self._part_answered(b, (base_offset, log_append_time))
        self.acc.release(b.size)
        b.values = []

    def _failed(self, b: ProducerBatch, exc: BaseException) -> None:
        tp = b.tp
        self._in_flight[tp] -= 1
        self.outstanding -= 1
        tag(exc)
        self.retry_metrics.record_exception(exc)
        if isinstance(exc, KafkaError) and exc.error.code == _OUT_OF_ORDER and self.sequencer is not None:
            retriable = self.sequencer.out_of_order_is_retriable(b)
        else:
            retriable = is_retriable(exc)
        now = time.monotonic()
        txn = self.txn
        if txn is not None and txn.state not in _SENDING:
            retriable = False  # the transaction is being aborted or has failed: no retry
        elif b.count > 1 and is_too_large(exc) and now < b.deadline and not self.closed:
            self._split(b)
            return
        if retriable and b.attempts < self.config.retries and now < b.deadline and not self.closed:
            b.attempts += 1
            delay_us = self.backoff.delay_us(b.attempts - 1)
            self.retry_metrics.record_backoff(delay_us)
            b.retry_at = now + delay_us / 1_000_000
            if metadata_is_stale(exc) or connection_failed(exc):
                asyncio.ensure_future(self._refresh_quietly([tp.topic]))
            self.acc.requeue(b)
            return
        self.outstanding += 1  # _fail_batch decrements
        self._fail_batch(b, exc)
        self._sequence_hole(b)
        if txn is not None:
            txn.record_failed(exc)

    def _split(self, b: ProducerBatch) -> None:
        """Send ``b``'s records as two batches in its place (it was refused as too large)."""
        first, second = self._halves(b)
        topic = b.tp.topic
        cap = self.size_caps.get(topic)
        if cap is None or first.size < cap:
            cap = self.size_caps[topic] = max(1, first.size)
            self._presplit(topic, cap)
        # Requeued in front of the partition's queue, the first half ahead of the second.
        self.acc.requeue(second)
        self.acc.requeue(first)

    def _halves(self, b: ProducerBatch) -> tuple[ProducerBatch, ProducerBatch]:
        """``b`` as two batches, with its sequences and its blocking futures' bookkeeping."""
        first, second = split_batch(b, _split_span)
        if self.sequencer is not None and b.base_sequence >= 0:
            self.sequencer.split(b, first, second)
        parent = self._split_parts.pop(id(b), None)
        if parent is None and b.bound:
            parent = (b, 0, SplitOutcome(b.count))
        if parent is not None:
            root, at, outcome = parent
            self._split_parts[id(first)] = (root, at, outcome)
            self._split_parts[id(second)] = (root, at + first.count, outcome)
        self.batches_split += 1
        b.values = []
        b.encoded = None  # kept only for what its blocking futures read (outcome, timestamps)
        return first, second

    def _presplit(self, topic: str, cap: int) -> None:
        """Cut the batches of ``topic`` waiting to be sent for the first time to ``cap``
        bytes or less, so that each need not be refused (a round trip) first."""
        with self.acc.lock:
            for tp, q in self.acc.sealed.items():
                if tp.topic != topic or not any(_oversized(x, cap) for x in q):
                    continue
                kept: list[ProducerBatch] = []
                for x in q:
                    kept.extend(self._cut(x, cap) if _oversized(x, cap) else (x,))
                q.clear()
                q.extend(kept)

    def _cut(self, b: ProducerBatch, cap: int) -> list[ProducerBatch]:
        if b.count < 2 or b.size <= cap:
            return [b]
        first, second = self._halves(b)
        return self._cut(first, cap) + self._cut(second, cap)

    def _part_answered(self, b: ProducerBatch, outcome: Any) -> None:
        """``b`` (a half of a split batch, or not) is answered: complete its source batch's
        blocking-API futures once every part of that batch is."""
        parent = self._split_parts.pop(id(b), None)
        if parent is None:
            return
        root, at, split = parent
        if split.add(at, b.count, outcome, b.first_ts):
            complete_batch(root, split)

    def _sequence_hole(self, b: ProducerBatch) -> None:
        if self.sequencer is not None:
            self.sequencer.hole(b)

    def _fail_batch(self, b: ProducerBatch, exc: BaseException) -> None:
        self.outstanding -= 1
        for f in b.record_futures:
            if not f.done():
                f.set_exception(exc)
        if b.bound:
            complete_batch(b, exc)
        for _, _, (collector, order) in b.span_futures:
            collector.done(order, None, exc)
        if self._split_parts:
            self._part_answered(b, exc)
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
            self.outstanding += 1
            exc = KafkaError(
                ErrorCode.REQUEST_TIMED_OUT,
                f"{b.tp.topic}-{b.tp.partition}: not delivered within delivery_timeout_ms",
            )
            self._fail_batch(b, exc)
            if self.txn is not None:
                self.txn.record_failed(exc)

    def fail_undrained(self, exc: BaseException) -> None:
        """Fail every batch not in flight (open, sealed, waiting for a retry) with ``exc``;
        one that had a sequence number leaves a hole (transactions: the batches of a
        transaction that failed or is being aborted)."""
        with self.acc.lock:
            batches = list(self.acc.open.values())
            self.acc.open.clear()
            for q in self.acc.sealed.values():
                batches.extend(q)
                q.clear()
        for b in batches:
            self._sequence_hole(b)
            self.outstanding += 1
            self._fail_batch(b, exc)
        self.check_flushed()

    def fail_all(self, exc: BaseException) -> None:
        with self.acc.lock:
            batches = list(self.acc.open.values())
            self.acc.open.clear()
            for q in self.acc.sealed.values():
                batches.extend(q)
                q.clear()
        for b in batches:
            self.outstanding += 1
            self._fail_batch(b, exc)
        self.check_flushed()


def _split_span(token: tuple[Any, Any], offset: int) -> tuple[Any, Any]:
    """The token of the part of a send_batch span that starts ``offset`` records into it."""
    collector, order = token
    return collector, collector.split(order, offset)


def _oversized(b: ProducerBatch, cap: int) -> bool:
    """A batch of two records or more over ``cap`` bytes, not encoded yet (so never sent as
    it is: a half of a split keeps its sequence number, which a further split shares out)."""
    return b.count > 1 and b.size > cap and b.encoded is None
