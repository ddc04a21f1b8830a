"""Blocking producer, consumer and admin client over the asyncio core.

Each runs its asyncio core on the shared client loop thread (``sync.loop_thread``).
``Producer.send`` appends to the accumulator in the calling thread and returns a
``concurrent.futures.Future`` at once; only batches, not records, cross to the
loop. Blocking calls made from a delivery or rebalance callback are safe: those
callbacks run on a callback thread, never on the loop thread.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from streamcore.client import admin as _admin
from streamcore.client.config import build_config
from streamcore.client.consumer import STOP, Callback, ConsumerCore, split_consumer_timeout
from streamcore.client.errors import BufferFullError
from streamcore.client.offsets import EARLIEST, LATEST
from streamcore.client.producer import ProducerCore
from streamcore.client.sync import DeliveryFuture, loop_thread
from streamcore.client.transactions import TransactionState
from streamcore.client.types import ConsumerGroupMetadata, OffsetAndMetadata, TopicPartition

__all__ = ["Producer", "Consumer", "AdminClient"]


class Producer:
    """Blocking producer.

    >>> p = Producer("127.0.0.1:9092", linger_ms=5)             # doctest: +SKIP
    >>> p.send("events", b"v", key=b"k").result()               # doctest: +SKIP
    RecordMetadata(topic='events', partition=1, offset=0, timestamp=...)
    >>> p.close()                                                # doctest: +SKIP

    Settings as for ``streamcore.aio.Producer``.
    """

    def __init__(
        self,
        bootstrap_servers: str | list[str] | None = None,
        config: Mapping[str, Any] | None = None,
        **settings: Any,
    ) -> None:
        self.config = build_config("producer", bootstrap_servers, config, settings)
        self._lt = loop_thread()
        self._core = ProducerCore(self.config)
        self._core._future_factory = DeliveryFuture
        self._loop_ident = self._lt.ident
        self._block_s = self.config.max_block_ms / 1000.0
        self._lt.run(self._core.start(), timeout=self._block_s + self.config.request_timeout_ms / 1000.0)
        self._core.enable_fast_path(DeliveryFuture, self._send_full)
        if self._core.fast is not None:
            # The whole send in one (native) call: the common record is appended there,
            # any other goes on to _send_full. The method below documents it.
            self.send = self._core.fast.send  # type: ignore[method-assign]

    def __enter__(self) -> Producer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _parts(self, topic: str) -> list[int]:
        parts = self._core.partitions.get(topic)
        if parts is None:
            parts = self._lt.run(self._core.partitions_of(topic), timeout=self._block_s + 1)
        return parts

    def send(
        self,
        topic: str,
        value: Any,
        key: Any = None,
        headers: list[tuple[str, bytes | None]] | None = None,
        partition: int | None = None,
        timestamp_ms: int | None = None,
    ) -> DeliveryFuture:
        """Queue one record; returns a concurrent.futures.Future of its RecordMetadata.

        Blocks up to ``max_block_ms`` for buffer space (then raises BufferFullError)
        or for the topic's metadata. Delivery errors are set on the future.
        """
        fast = self._core.fast
        if fast is not None:
            return fast.send(topic, value, key, headers, partition, timestamp_ms)
        return self._send_full(topic, value, key, headers, partition, timestamp_ms)

    def _send_full(
        self,
        topic: str,
        value: Any,
        key: Any,
        headers: list[tuple[str, bytes | None]] | None,
        partition: int | None,
        timestamp_ms: int | None,
    ) -> DeliveryFuture:
        """``send`` for a record the one-call path declined: serializers, memory to wait
        for, metadata to fetch, a new batch to open, a transaction to check."""
        core = self._core
        if type(value) is not bytes or key is not None or core.value_serializer is not None:
            value, key = core.serialize(topic, value, key)
        parts = core.partitions.get(topic) or self._parts(topic)
        # Never block the loop thread itself (only reachable by mixing APIs).
        block = 0.0 if threading.get_ident() == self._loop_ident else self._block_s
        fut = core.try_append(topic, parts, value, key, headers, partition, timestamp_ms, None, block)
        if fut is False:
            raise BufferFullError(
                f"buffer_memory ({self.config.buffer_memory} bytes) stayed full for max_block_ms "
                f"({self.config.max_block_ms} ms): the brokers are not taking records as fast as they come"
            )
        return fut

    def send_batch(
        self,
        topic: str,
        values: Sequence[Any],
        keys: Sequence[Any] | None = None,
        partition: int | None = None,
    ) -> DeliveryFuture:
        """Queue many records in one call; returns a Future of a list of BatchMetadata.

        Raises BufferFullError if memory stays full for ``max_block_ms`` (records
        appended before that point are still sent).
        """
        core = self._core
        if core.value_serializer is not None:
            values = [core.value_serializer(v) for v in values]
        if keys is not None and core.key_serializer is not None:
            keys = [core.key_serializer(k) if k is not None else None for k in keys]
        parts = core.partitions.get(topic) or self._parts(topic)
        fut: DeliveryFuture = DeliveryFuture()
        block = 0.0 if self._lt.on_loop_thread() else self._block_s
        for run in core.plan_batch(topic, parts, values, keys, partition, fut):
            if not core.append_run(topic, parts, run, block):
                raise BufferFullError(
                    f"buffer_memory ({self.config.buffer_memory} bytes) stayed full for max_block_ms "
                    f"({self.config.max_block_ms} ms)"
                )
        return fut

    def flush(self, timeout: float | None = None) -> None:
        """Block until every record sent so far is answered (``timeout`` in seconds)."""
        try:
            self._lt.run(self._core.flush(timeout))
        except asyncio.TimeoutError:
            raise TimeoutError(f"flush did not finish within {timeout} s") from None

    def partitions_for(self, topic: str) -> list[int]:
        """Partition ids of ``topic``."""
        return list(self._parts(topic))

    # ------------------------------------------------------------------ transactions

    def _txn_wait(self, timeout: float | None) -> float:
        # The operation bounds itself by ``timeout``; this only guards the thread.
        return (self._block_s if timeout is None else timeout) + self.config.request_timeout_ms / 1000.0

    def init_transactions(self, timeout: float | None = None) -> None:
        """Register ``transactional_id`` with its coordinator; see ``streamcore.aio.Producer.init_transactions``."""
        self._lt.run(self._core.init_transactions(timeout), self._txn_wait(timeout))

    def begin_transaction(self) -> None:
        """Open a transaction: records sent from now on belong to it."""
        # On the loop thread, where the transaction manager's operations live.
        self._lt.call(self._core.begin_transaction)

    def send_offsets_to_transaction(
        self,
        offsets: Mapping[TopicPartition | tuple[str, int], OffsetAndMetadata | int],
        group_metadata: ConsumerGroupMetadata | str,
        timeout: float | None = None,
    ) -> None:
        """Commit consumed offsets with the transaction; see ``streamcore.aio.Producer.send_offsets_to_transaction``."""
        self._lt.run(
            self._core.send_offsets_to_transaction(offsets, group_metadata, timeout), self._txn_wait(timeout)
        )

    def commit_transaction(self, timeout: float | None = None) -> None:
        """Send every record, then commit; see ``streamcore.aio.Producer.commit_transaction``."""
        self._lt.run(self._core.commit_transaction(timeout), self._txn_wait(timeout))

    def abort_transaction(self, timeout: float | None = None) -> None:
        """Abort the transaction; see ``streamcore.aio.Producer.abort_transaction``."""
        self._lt.run(self._core.abort_transaction(timeout), self._txn_wait(timeout))

    @property
    def transaction_state(self) -> TransactionState | None:
        """The ``TransactionState`` (None for a producer without ``transactional_id``)."""
        return self._core.transaction_state

    def close(self, timeout: float | None = None) -> None:
        """Flush (up to ``timeout`` seconds) and close."""
        self._lt.run(self._core.close(timeout))

    @property
    def metrics(self) -> dict[str, Any]:
        """A snapshot of the producer's counters: the same dict as ``streamcore.aio.Producer.metrics``
        (buffer bytes, outstanding batches, ``retry`` attempts by outcome and category,
        per-connection stats, throttle pauses)."""
        return self._core.metrics()


def _callback_on_thread(cb: Callback | None) -> Callback | None:
    """Wrap a rebalance callback so it runs on the callback thread while the loop awaits it."""
    if cb is None:
        return None
    lt = loop_thread()

    async def run(parts: list[TopicPartition]) -> None:
        await asyncio.wrap_future(lt.callbacks.submit(cb, parts))

    return run


class Consumer:
    """Blocking consumer.

    >>> c = Consumer("127.0.0.1:9092", group_id="g", auto_offset_reset="earliest")  # doctest: +SKIP
    >>> c.subscribe(["events"])                                                   # doctest: +SKIP
    >>> records = c.poll(timeout_ms=1000)                                          # doctest: +SKIP
    >>> for record in c:                                                           # doctest: +SKIP
    ...     print(record.offset, record.value)

    Iteration goes on until the consumer is closed or, with ``consumer_timeout_ms``
    (kafka-python's setting), until that many ms pass without a record.
    """

    def __init__(
        self,
        bootstrap_servers: str | list[str] | None = None,
        config: Mapping[str, Any] | None = None,
        **settings: Any,
    ) -> None:
        self._iteration_timeout_s, config, settings = split_consumer_timeout(config, settings)
        self.config = build_config("consumer", bootstrap_servers, config, settings)
        self._lt = loop_thread()
        self._core: ConsumerCore = self._lt.call(ConsumerCore, self.config)
        self._timeout = self.config.request_timeout_ms / 1000.0

    def __enter__(self) -> Consumer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Consumer:
        return self

    def __next__(self) -> Any:
        """The next record (PartitionColumns under ``columnar``); StopIteration when closed or
        after ``consumer_timeout_ms`` without one. Raises what poll() raises."""
        # Records already taken are handed out on this thread: one loop round trip per
        # poll's worth of records, not per record.
        item = self._core.take_lent()
        if item is None:
            item = self._lt.run(self._core.next_item(self._iteration_timeout_s))
        if item is STOP:
            raise StopIteration
        return item

    def subscribe(
        self, topics: Iterable[str], on_assign: Callback | None = None, on_revoke: Callback | None = None
    ) -> None:
        """Subscribe as a member of ``group_id``; callbacks run on the callback thread."""
        self._lt.call(
            self._core.subscribe, list(topics), _callback_on_thread(on_assign), _callback_on_thread(on_revoke)
        )

    def assign(self, partitions: Iterable[TopicPartition | tuple[str, int]]) -> None:
        """Consume exactly ``partitions`` without group membership."""
        self._lt.call(self._core.assign, list(partitions))

    def assignment(self) -> set[TopicPartition]:
        """Partitions assigned now."""
        return self._lt.call(self._core.assignment)

    def group_metadata(self) -> ConsumerGroupMetadata:
        """This consumer's group membership, for ``Producer.send_offsets_to_transaction``."""
        return self._lt.call(self._core.group_metadata)

    def poll(self, timeout_ms: int = 1000, max_records: int | None = None) -> list[Any]:
        """Up to ``max_records`` records (or columns), waiting up to ``timeout_ms`` for some."""
        return self._lt.run(self._core.poll(timeout_ms, max_records))

    def commit(self, offsets: Mapping[TopicPartition, OffsetAndMetadata | int] | None = None) -> None:
        """Commit ``offsets`` (default: current positions) and wait for the answer."""
        self._lt.run(self._commit(offsets), self._timeout + 1)

    async def _commit(self, offsets: Mapping[TopicPartition, OffsetAndMetadata | int] | None) -> None:
        if offsets is None:
            await self._core.commit_positions()
        else:
            await self._core.commit(offsets)

    def commit_async(self, offsets: Mapping[TopicPartition, OffsetAndMetadata | int] | None = None) -> Any:
        """Start a commit; returns a concurrent.futures.Future."""
        return asyncio.run_coroutine_threadsafe(self._commit(offsets), self._lt.loop)

    def committed(self, tp: TopicPartition) -> OffsetAndMetadata | None:
        """Committed offset of ``tp`` (None if none)."""
        return self._lt.run(self._core.committed(tp), self._timeout + 1)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        """Next poll returns records of ``tp`` from ``offset``."""
        self._lt.call(self._core.seek, tp, offset)

    def seek_to_beginning(self, *parts: TopicPartition) -> None:
        """Reset ``parts`` (default all assigned) to the log start."""
        self._lt.call(self._core.seek_to, parts, EARLIEST)

    def seek_to_end(self, *parts: TopicPartition) -> None:
        """Reset ``parts`` (default all assigned) to the log end."""
        self._lt.call(self._core.seek_to, parts, LATEST)

    def position(self, tp: TopicPartition) -> int:
        """Offset of the next record poll() returns for ``tp``."""
        return self._lt.run(self._core.position(tp), self._timeout + 1)

    def pause(self, *parts: TopicPartition) -> None:
        """Stop returning and fetching records of ``parts``."""
        self._lt.call(self._core.pause, parts)

    def resume(self, *parts: TopicPartition) -> None:
        """Undo pause()."""
        self._lt.call(self._core.resume, parts)

    def paused(self) -> set[TopicPartition]:
        """Partitions paused now."""
        return self._lt.call(self._core.paused)

    def wait_for_assignment(self, timeout: float = 30.0) -> set[TopicPartition]:
        """Wait for the first rebalance to finish (subscribe mode); returns the assignment."""
        return self._lt.run(self._core.wait_for_assignment(timeout))

    def close(self, autocommit: bool = True) -> None:
        """Commit (under auto-commit), leave the group and close."""
        self._lt.run(self._core.close(autocommit))


class AdminClient:
    """Blocking admin client: the methods of ``streamcore.aio.AdminClient``, waited for."""

    def __init__(
        self,
        bootstrap_servers: str | list[str] | None = None,
        config: Mapping[str, Any] | None = None,
        **settings: Any,
    ) -> None:
        self._lt = loop_thread()
        self._admin = _admin.AdminClient(bootstrap_servers, config, **settings)
        self.config = self._admin.config

    def __enter__(self) -> AdminClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def create_topics(self, topics: Iterable[_admin.NewTopic], **kw: Any) -> dict[str, Any]:
        """See streamcore.aio.AdminClient.create_topics."""
        return self._lt.run(self._admin.create_topics(list(topics), **kw))

    def create_topic(
        self,
        name: str,
        num_partitions: int = 1,
        replication_factor: int = 1,
        config: Mapping[str, str] | None = None,
    ) -> None:
        """Create one topic; raises KafkaError on failure."""
        self._lt.run(self._admin.create_topic(name, num_partitions, replication_factor, config))

    def delete_topics(self, names: Iterable[str], **kw: Any) -> dict[str, Any]:
        """See streamcore.aio.AdminClient.delete_topics."""
        return self._lt.run(self._admin.delete_topics(list(names), **kw))

    def create_partitions(self, new_counts: Mapping[str, int], **kw: Any) -> dict[str, Any]:
        """Grow topics to new partition counts; see streamcore.aio.AdminClient.create_partitions."""
        return self._lt.run(self._admin.create_partitions(dict(new_counts), **kw))

    def delete_records(self, before: Mapping[TopicPartition, int], **kw: Any) -> dict[TopicPartition, int]:
        """Delete records below offsets; returns new log start offsets (see the asyncio client)."""
        return self._lt.run(self._admin.delete_records(dict(before), **kw))

    def list_topics(self, include_internal: bool = False) -> dict[str, Any]:
        """Every topic: name -> TopicInfo."""
        return self._lt.run(self._admin.list_topics(include_internal=include_internal))

    def describe_topics(self, names: Iterable[str]) -> dict[str, Any]:
        """Metadata of ``names``."""
        return self._lt.run(self._admin.describe_topics(list(names)))

    def wait_for_topic(self, topic: str, timeout: float = 30.0) -> Any:
        """Wait (with retry backoff) until ``topic`` exists, up to ``timeout`` seconds."""
        return self._lt.run(self._admin.wait_for_topic(topic, timeout))

    def describe_configs(self, topics: Iterable[str] = (), brokers: Iterable[int] = ()) -> dict[Any, Any]:
        """Configs per (resource type, name)."""
        return self._lt.run(self._admin.describe_configs(list(topics), list(brokers)))

    def describe_config_entries(
        self, resources: Iterable[tuple[int, str]]
    ) -> dict[_admin.ConfigResource, dict[str, _admin.ConfigEntry]]:
        """Every config of each (resource type, name) with its source; see the asyncio client."""
        return self._lt.run(self._admin.describe_config_entries(list(resources)))

    def alter_configs(
        self, configs: Mapping[tuple[int, str], Mapping[str, str | None]], **kw: Any
    ) -> dict[_admin.ConfigResource, Any]:
        """Replace resources' configs (AlterConfigs); see streamcore.aio.AdminClient.alter_configs."""
        return self._lt.run(self._admin.alter_configs(configs, **kw))

    def incremental_alter_configs(
        self, changes: Mapping[tuple[int, str], Iterable[_admin.AlterConfig]], **kw: Any
    ) -> dict[_admin.ConfigResource, Any]:
        """SET/DELETE/APPEND/SUBTRACT configs; see streamcore.aio.AdminClient.incremental_alter_configs."""
        return self._lt.run(self._admin.incremental_alter_configs(changes, **kw))

    def list_groups(self) -> list[tuple[str, str, str]]:
        """(group_id, protocol_type, state) of every group."""
        return self._lt.run(self._admin.list_groups())

    def describe_groups(self, group_ids: Iterable[str]) -> list[_admin.GroupDescription]:
        """State and members of each group."""
        return self._lt.run(self._admin.describe_groups(list(group_ids)))

    def delete_groups(self, group_ids: Iterable[str]) -> dict[str, Any]:
        """Delete groups without members; group id -> None or KafkaError."""
        return self._lt.run(self._admin.delete_groups(list(group_ids)))

    def list_offsets(self, specs: Mapping[TopicPartition, int | str], **kw: Any) -> dict[TopicPartition, int]:
        """Offsets per partition for "earliest", "latest" or a timestamp (ms)."""
        return self._lt.run(self._admin.list_offsets(specs, **kw))

    def list_consumer_group_offsets(
        self, group_id: str, partitions: Iterable[TopicPartition] | None = None
    ) -> dict[TopicPartition, OffsetAndMetadata]:
        """Committed offsets of ``group_id`` (all partitions when ``partitions`` is None)."""
        parts = None if partitions is None else list(partitions)
        return self._lt.run(self._admin.list_consumer_group_offsets(group_id, parts))

    def alter_consumer_group_offsets(
        self, group_id: str, offsets: Mapping[TopicPartition, OffsetAndMetadata | int]
    ) -> dict[TopicPartition, Any]:
        """Commit ``offsets`` for an inactive group; TopicPartition -> None or KafkaError."""
        return self._lt.run(self._admin.alter_consumer_group_offsets(group_id, dict(offsets)))

    def close(self) -> None:
        """Close the connections."""
        self._lt.run(self._admin.close())
