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

Transactions (``transactional_id``): ``init_transactions``, ``begin_transaction``,
``send_offsets_to_transaction``, ``commit_transaction``, ``abort_transaction``; the
state machine and its requests are in ``transactions``. ``send`` is refused outside
a transaction.

Where each part lives: this module holds the public ``Producer`` and the
``ProducerCore`` shared with the blocking API (serializing, partitioning, appending);
``accumulator`` the per-partition batches and the memory budget; ``sender`` the
sender task and in-flight bookkeeping; ``sequencing`` the producer id and sequence
numbers (and why a partition sometimes has only one batch in flight).
"""

from __future__ import annotations

import asyncio
import functools
import random
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from streamcore._impl import accumulator as _accumulator
from streamcore._impl import partitioner as _partitioner
from streamcore.client.accumulator import RECORD_OVERHEAD, Accumulator
from streamcore.client.cluster import Cluster
from streamcore.client.config import ClientConfig, build_config
from streamcore.client.errors import BufferFullError, ClientClosedError
from streamcore.client.sender import Sender
from streamcore.client.sequencing import Sequencer
from streamcore.client.transactions import TransactionManager, TransactionState
from streamcore.client.types import (
    BatchMetadata,
    ConsumerGroupMetadata,
    OffsetAndMetadata,
    RecordMetadata,
    TopicPartition,
)

__all__ = ["Producer", "ProducerCore"]


def _to_bytes(x: Any, what: str) -> bytes | None:
    if x is None or isinstance(x, bytes):
        return x
    if isinstance(x, (bytearray, memoryview)):
        # Buffers pass through uncopied: the codec reads any buffer-protocol object.
        return x  # type: ignore[return-value]
    if isinstance(x, str):
        return x.encode()
    raise TypeError(f"{what} must be bytes, str or None without a {what}_serializer, got {type(x).__name__}")


class _SpanCollector:
    """Gathers BatchMetadata of one send_batch call across the batches it was split into.

    A span's order is a tuple: ``(n,)`` for the n-th run of the call, and a run that a
    too-large batch was split through (``client/splitting.py``) becomes parts ordered
    after it by the record offset where each part starts.
    """

    __slots__ = ("future", "left", "spans", "order")

    def __init__(self, future: Any, parts: int) -> None:
        self.future = future
        self.left = parts
        self.spans: list[tuple[tuple[int, ...], BatchMetadata]] = []
        self.order = 0

    def next_order(self) -> tuple[int, ...]:
        self.order += 1
        return (self.order,)

    def split(self, order: tuple[int, ...], offset: int) -> tuple[int, ...]:
        """The order of the part of span ``order`` that starts ``offset`` records into it;
        each cut makes one part more to wait for (the one with ``offset`` > 0)."""
        if offset > 0:
            self.left += 1
        return (*order, offset)

    def done(self, order: tuple[int, ...], meta: BatchMetadata | None, exc: BaseException | None) -> None:
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
        self.idempotent = c.enable_idempotence
        self.key_serializer = c.key_serializer
        self.value_serializer = c.value_serializer
        self.acc = Accumulator(c.batch_size, c.buffer_memory, c.linger_ms, c.delivery_timeout_ms)
        self.partitions: dict[str, list[int]] = {}
        self.sequencer = Sequencer() if self.idempotent else None
        self.sender = Sender(config, self.cluster, self.acc, self.sequencer, self.partitions)
        self.retry_metrics = self.sender.retry_metrics
        self.txn: TransactionManager | None = None
        if c.transactional_id is not None:
            assert self.sequencer is not None  # transactional_id implies idempotence (config)
            self.txn = TransactionManager(config, self.cluster, self.acc, self.sequencer, self.sender.backoff)
            self.txn.sender = self.sender
            self.sender.txn = self.txn
        self._sticky: dict[str, int] = {}
        self._tp_cache: dict[str, list[TopicPartition]] = {}
        self._future_factory: Callable[[], Any] = lambda: None  # set by the blocking API
        #: The one-call send path (``_impl.accumulator.Appender``) once started, else None.
        self.fast: Any = None
        self._closed = False

    def enable_fast_path(
        self, future_factory: Callable[[], Any] | None, fallback: Callable[..., Any] | None = None
    ) -> None:
        """Let ``send`` go through the one-call ``Appender`` (native when built).

        Not for a producer with serializers (they are Python calls) or a transactional
        one (each record checks the transaction state): those always take
        ``try_append``. ``future_factory`` makes a record's future (None: the caller
        passes one); ``fallback`` is what ``Appender.send`` calls with a record the one
        call declines.
        """
        if self.txn is None and self.key_serializer is None and self.value_serializer is None:
            self.fast = _accumulator.Appender(self, future_factory, fallback)

    def metrics(self) -> dict[str, Any]:
        """What ``Producer.metrics`` returns (both APIs); readable from any thread."""
        bundles = self.cluster.pool._bundles  # replaced, never mutated: a safe read
        return {
            "buffer_used_bytes": self.acc.used,
            "batches_outstanding": self.sender.outstanding,
            "batches_split": self.sender.batches_split,
            "retry": self.retry_metrics.snapshot(),
            "connections": {n: [c.stats.as_dict() for c in b.connections] for n, b in bundles.items()},
            "throttle_remaining_s": {n: b.throttle.remaining_s() for n, b in bundles.items()},
        }

    @property
    def producer_id(self) -> int:
        """The idempotent producer id (-1 before InitProducerId or without idempotence)."""
        return self.sequencer.producer_id if self.sequencer is not None else -1

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Bootstrap metadata, get a producer id (idempotence), start the sender task.

        A transactional producer gets its producer id from ``init_transactions``.
        """
        self.sender.bind_loop()
        await self.cluster.refresh()
        if self.sequencer is not None and self.txn is None:
            await self.sequencer.init_producer_id(
                self.cluster, self.sender.backoff, self.config.max_block_ms, self.acc
            )
        self.sender.start()

    async def flush(self, timeout: float | None = None) -> None:
        """Wait until every record appended so far is answered (``timeout`` in seconds)."""
        await self.sender.flush(timeout)

    async def close(self, timeout: float | None = None) -> None:
        """Send what is buffered (waiting up to ``timeout`` seconds, None = forever), then close."""
        if self._closed:
            return
        if self.fast is not None:
            # Records sent from now on take try_append, which refuses them once closed.
            self.fast.close()
            self.fast = None
        if self.txn is not None:
            await self.txn.close(timeout)
        try:
            await self.flush(timeout)
        except asyncio.TimeoutError:
            pass
        self._closed = True
        await self.sender.close(ClientClosedError("producer closed before the record was sent"))
        self.cluster.close()

    # ------------------------------------------------------------------ transactions

    def transaction_manager(self, what: str) -> TransactionManager:
        """The transaction manager; TransactionStateError naming ``what`` without ``transactional_id``."""
        if self.txn is None:
            from streamcore.client.errors import TransactionStateError

            raise TransactionStateError(f"{what} needs a producer built with transactional_id")
        return self.txn

    async def init_transactions(self, timeout: float | None = None) -> None:
        """See ``Producer.init_transactions``."""
        await self.transaction_manager("init_transactions").init(timeout)

    def begin_transaction(self) -> None:
        """See ``Producer.begin_transaction``."""
        txn = self.transaction_manager("begin_transaction")
        with self.acc.lock:
            txn.begin()

    async def send_offsets_to_transaction(
        self,
        offsets: Mapping[Any, OffsetAndMetadata | int],
        group_metadata: ConsumerGroupMetadata | str,
        timeout: float | None = None,
    ) -> None:
        """See ``Producer.send_offsets_to_transaction``."""
        await self.transaction_manager("send_offsets_to_transaction").send_offsets(
            offsets, group_metadata, timeout
        )

    async def commit_transaction(self, timeout: float | None = None) -> None:
        """See ``Producer.commit_transaction``."""
        await self.transaction_manager("commit_transaction").commit(timeout)

    async def abort_transaction(self, timeout: float | None = None) -> None:
        """See ``Producer.abort_transaction``."""
        await self.transaction_manager("abort_transaction").abort(timeout)

    @property
    def transaction_state(self) -> TransactionState | None:
        """The transaction state (None without ``transactional_id``)."""
        return self.txn.state if self.txn is not None else None

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
            return parts[_partitioner.default_partition(key, len(parts))]
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
        txn = self.txn
        with acc.lock:
            if txn is not None:
                txn.check_send()  # before anything is charged
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
            if txn is not None:
                txn.want(tp)
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
        # The runs below are slices (copies) of these lists, so a list is used as given.
        values = values if isinstance(values, list) else list(values)
        n = len(values)
        if keys is not None:
            keys = keys if isinstance(keys, list) else list(keys)
            if len(keys) != n:
                raise ValueError(f"keys has {len(keys)} entries but values has {n}")
        if n == 0:
            future.set_result([])
            return []
        total = _accumulator.total_len(values) + RECORD_OVERHEAD * n
        if keys is not None:
            total += _accumulator.total_len(keys)
        groups: list[tuple[int | None, list[Any], list[Any] | None]]
        if keys is not None and partition is None:
            by_p: dict[int, tuple[list[Any], list[Any]]] = {}
            np_ = len(parts)
            for v, k in zip(values, keys, strict=False):
                p = parts[_partitioner.default_partition(k, np_)] if k is not None else -1
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
        aim = max(self.acc.batch_size, self.config.send_batch_size)
        cap = self.sender.size_caps.get(topic)
        if cap is not None:
            aim = min(aim, cap)  # the topic refused bigger batches (client/splitting.py)
        per_batch = max(1, aim // avg)
        chunks: list[tuple[int | None, list[Any], list[Any] | None]] = []
        for group_p, vs, ks in groups:
            for i in range(0, len(vs), per_batch):
                chunks.append(
                    (group_p, vs[i : i + per_batch], ks[i : i + per_batch] if ks is not None else None)
                )
        collector = _SpanCollector(future, len(chunks))
        return [(cp, vs, ks, avg * len(vs), (collector, collector.next_order())) for cp, vs, ks in chunks]

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
        txn = self.txn
        with acc.lock:
            if txn is not None:
                txn.check_send()
            if not acc.try_reserve(size):
                if block_s <= 0 or not acc.reserve_blocking(size, block_s):
                    return False
            explicit = p is not None
            part = p if p is not None else self._pick_partition(topic, parts, None, None)
            tp = TopicPartition(topic, part)
            if txn is not None:
                txn.want(tp)
            cap = self.sender.size_caps.get(topic)
            batch, sealed = acc.batch_for(tp, size, time.monotonic(), cap)
            if sealed and not explicit:
                self._switch_sticky(topic, parts, part)
            batch.add_many(vs, ks, size, token)
            if acc.seal_if_full(tp, batch, cap) and not explicit:
                self._switch_sticky(topic, parts, part)
        return True


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
        self._new_future: Callable[[], asyncio.Future[Any]] | None = None
        # The core's one-call path once started (it declines everything once the
        # producer closes) and its sender, kept here to save look-ups per send.
        self._fast: Any = None
        self._sender = self._core.sender

    async def start(self) -> None:
        """Connect and fetch metadata (and a producer id when idempotent)."""
        if not self._started:
            await self._core.start()
            self._core.enable_fast_path(None)
            # A future of the producer's loop without a Python-level call per record.
            self._new_future = functools.partial(asyncio.Future, loop=asyncio.get_running_loop())
            self._fast = self._core.fast
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
        fast = self._fast
        if fast is not None:
            fut = self._new_future()  # type: ignore[misc]  # set with fast, in start()
            if fast.append(topic, value, key, headers, partition, timestamp_ms, fut) is not None:
                if self._sender._wake_pending:
                    # A batch was sealed (or the first one opened): let the sender task
                    # run now, not only when the caller's loop next waits, so a tight
                    # send loop has batches in flight and answered while it goes on.
                    await asyncio.sleep(0)
                return fut
        core = self._core
        if not self._started:
            await self.start()
        v, k = core.serialize(topic, value, key)
        parts = core.partitions.get(topic) or await core.partitions_of(topic)
        fut = asyncio.get_running_loop().create_future()
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
                await self._wait_space(functools.partial(core.append_run, topic, parts, run, 0))
        return fut

    async def flush(self, timeout: float | None = None) -> None:
        """Wait until every record sent so far is answered (``timeout`` in seconds, None = forever)."""
        await self._core.flush(timeout)

    async def partitions_for(self, topic: str) -> list[int]:
        """Partition ids of ``topic``."""
        return list(await self._core.partitions_of(topic))

    # ------------------------------------------------------------------ transactions

    async def init_transactions(self, timeout: float | None = None) -> None:
        """Register ``transactional_id`` with its transaction coordinator (call once, first).

        The coordinator fences any older producer with the same id (its open
        transaction is aborted, its later calls raise FatalTransactionError) and
        gives this one the id's next epoch. ``timeout`` in seconds (None:
        ``max_block_ms``); when it passes, TimeoutError is raised and the call may be
        made again to go on waiting. Raises FatalTransactionError if refused
        (TRANSACTIONAL_ID_AUTHORIZATION_FAILED, INVALID_TRANSACTION_TIMEOUT ...).
        """
        if not self._started:
            await self.start()
        await self._core.init_transactions(timeout)

    def begin_transaction(self) -> None:
        """Open a transaction: records sent from now on belong to it (no request is sent)."""
        self._core.begin_transaction()

    async def send_offsets_to_transaction(
        self,
        offsets: Mapping[TopicPartition | tuple[str, int], OffsetAndMetadata | int],
        group_metadata: ConsumerGroupMetadata | str,
        timeout: float | None = None,
    ) -> None:
        """Commit consumed ``offsets`` (next offset to read per partition) with the transaction.

        ``group_metadata`` is ``Consumer.group_metadata()`` (or a group id for a
        consumer without membership). The offsets become the group's committed
        offsets only if the transaction commits. Retriable coordinator answers are
        retried for up to ``timeout`` seconds (None: ``max_block_ms``), after which
        the transaction fails (AbortableTransactionError).
        """
        await self._core.send_offsets_to_transaction(offsets, group_metadata, timeout)

    async def commit_transaction(self, timeout: float | None = None) -> None:
        """Send every record of the transaction, then commit it (EndTxn).

        Raises AbortableTransactionError if a record or the offsets failed (call
        ``abort_transaction``), FatalTransactionError if the producer was fenced, and
        TimeoutError after ``timeout`` seconds (None: ``max_block_ms``): the commit
        goes on, call ``commit_transaction`` again to wait for it.
        """
        await self._core.commit_transaction(timeout)

    async def abort_transaction(self, timeout: float | None = None) -> None:
        """Abort the transaction: records not yet sent are dropped (their futures get
        TransactionAbortedError), those in flight are waited for, then EndTxn(abort).
        Also the way out of an AbortableTransactionError. ``timeout`` as for commit."""
        await self._core.abort_transaction(timeout)

    @property
    def transaction_state(self) -> TransactionState | None:
        """The ``TransactionState`` (None for a producer without ``transactional_id``)."""
        return self._core.transaction_state

    async def close(self, timeout: float | None = None) -> None:
        """Flush (up to ``timeout`` seconds), then close the connections."""
        if self._started:
            await self._core.close(timeout)
        else:
            self._core.cluster.close()

    @property
    def metrics(self) -> dict[str, Any]:
        """A snapshot of the producer's counters, the same dict as the blocking producer's:

        * ``buffer_used_bytes``: bytes of records not yet answered (``buffer_memory`` bound);
        * ``batches_outstanding``: batches sealed or in flight, not yet completed;
        * ``batches_split``: batches sent again as two halves after the broker refused
          them as too large (MESSAGE_TOO_LARGE: see ``client/splitting.py``);
        * ``retry``: produce attempts (``streamcore.retry.RetryMetrics.snapshot``):
          ``attempts``, ``successes``, ``failures``, ``timeouts``, ``success_rate`` and
          ``timeout_rate`` (fractions), ``by_category`` (ErrorCategory name -> failed
          attempts), ``retries`` scheduled and their total ``backoff_us``;
        * ``connections``: node id -> one ``ConnectionStats.as_dict()`` per open connection;
        * ``throttle_remaining_s``: node id -> seconds left of a broker's throttle pause.
        """
        return self._core.metrics()
