"""Asyncio consumer: subscriptions with group membership, or manual assignment.

Background tasks, all on the client's event loop:

* the fetch task (``client.fetcher.Fetcher``) resolves start offsets (committed
  offsets with one OffsetFetch, the rest with ONE batched ListOffsets per broker)
  and keeps a Fetch in flight per leader (prefetch);
* the group task (``client.group.GroupLoop``) heartbeats every
  ``heartbeat_interval_ms`` whatever the application does between polls, rejoins
  when the coordinator asks, and commits every ``auto_commit_interval_ms`` when
  auto-commit is on.

This module keeps the public ``Consumer`` and ``ConsumerCore``, which owns the
assignment and the positions and turns buffered batches into records.

Iteration (``for record in consumer`` on the blocking consumer, ``async for`` on
this one) takes records a poll at a time but moves a partition's position only
past the records it has yielded, as kafka-python does: leaving the loop early,
committing inside it or a rebalance never skips a record that was taken and not
yet yielded. ``consumer_timeout_ms`` ends an iteration that waited that long for
its next record (kafka-python's meaning); without it iteration goes on until the
consumer is closed.

Rebalance callbacks run on the group task: ``on_revoke(partitions)`` before
partitions go (after their positions are auto-committed), ``on_assign(partitions)``
once new ones arrive. Under "range" (eager) every partition is revoked before a
rejoin; under "cooperative-sticky" only those that move.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from streamcore import _units
from streamcore.client.cluster import Cluster
from streamcore.client.config import ClientConfig, _normalize_name, build_config
from streamcore.client.errors import ClientClosedError
from streamcore.client.fetcher import Fetcher, PartitionState
from streamcore.client.group import Callback, GroupLoop, GroupMembership
from streamcore.client.offsets import EARLIEST, LATEST
from streamcore.client.types import (
    ConsumerGroupMetadata,
    ConsumerRecord,
    OffsetAndMetadata,
    PartitionColumns,
    TopicPartition,
)
from streamcore.errors import AuthenticationError, ConfigError

__all__ = ["Consumer", "ConsumerCore", "Callback", "STOP", "split_consumer_timeout"]


#: What ``ConsumerCore.next_item`` returns when an iteration is over.
STOP: Any = object()
# Longest single wait of an iteration without consumer_timeout_ms: it then looks at
# the closed flag again, whatever woke it or not.
_ITERATION_SLICE_MS = 1000
_CONSUMER_TIMEOUT = "consumer_timeout_ms"


def split_consumer_timeout(
    config: Mapping[str, Any] | None, settings: Mapping[str, Any]
) -> tuple[float | None, dict[str, Any] | None, dict[str, Any]]:
    """Take ``consumer_timeout_ms`` (any spelling, e.g. ``consumer.timeout.ms``) out of the settings.

    Returns (seconds an iteration waits for its next record, or None for no limit;
    the dotted properties without it; the keyword settings without it). None,
    ``float("inf")`` (kafka-python's default) and -1 mean no limit; otherwise
    milliseconds as an int or a duration text (``"10s"``). A bad value raises
    ConfigError.
    """
    timeout: float | None = None
    rest: list[dict[str, Any]] = []
    for source in config or {}, settings:
        kept = {}
        for name, value in source.items():
            if _normalize_name(name) != _CONSUMER_TIMEOUT:
                kept[name] = value
            elif value is None or value == float("inf"):
                timeout = None
            else:
                try:
                    ms = _units.parse_duration_ms(value, _CONSUMER_TIMEOUT, allow_forever=True)
                except _units.UnitValueError as exc:
                    raise ConfigError(str(exc)) from None
                timeout = None if ms == _units.FOREVER else ms / 1000.0
        rest.append(kept)
    return timeout, (rest[0] if config is not None else None), rest[1]


def _item_tp(item: Any) -> TopicPartition:
    return TopicPartition(item.topic, item.partition)


def _item_offset(item: Any) -> int:
    """First offset of a ConsumerRecord or a PartitionColumns."""
    if type(item) is PartitionColumns:
        return int(item.columns["offset"][0])
    return int(item.offset)


class _Lent:
    """Records one poll took for iteration; ``next`` indexes the first one not yet yielded.

    The blocking consumer's iterating thread moves ``next``; the loop thread only
    reads it (a stale read gives a lower position: a record delivered twice, never
    one skipped). ``epochs`` is each partition's epoch when the records were taken:
    a seek, a pause or a revoke since makes that partition's remaining records stale.
    """

    __slots__ = ("items", "next", "epochs")

    def __init__(self, items: list[Any], epochs: dict[TopicPartition, int]) -> None:
        self.items = items
        self.next = 0
        self.epochs = epochs

    def first_unyielded(self, tp: TopicPartition) -> int | None:
        """Offset of the first record of ``tp`` not yet yielded (None if none)."""
        items = self.items
        for i in range(self.next, len(items)):
            item = items[i]
            if item.topic == tp.topic and item.partition == tp.partition:
                return _item_offset(item)
        return None


class ConsumerCore:
    """Event-loop side of a consumer, shared by the asyncio and the blocking API.

    It owns the assignment (``states``) and the positions; ``fetcher`` (client.fetcher)
    fills the partitions' buffers and ``group_loop`` (client.group, only with a
    ``group_id``) keeps the membership and changes the assignment on rebalances.
    """

    def __init__(self, config: ClientConfig) -> None:
        self.config = config
        self.cluster = Cluster(config)
        self.states: dict[TopicPartition, PartitionState] = {}
        self._committed_positions: dict[TopicPartition, int] = {}
        self._data = asyncio.Event()
        # An authentication failure in a background task ends the wait of poll().
        self.cluster.on_auth_failure.append(lambda _exc: self._data.set())
        self.group = GroupMembership(self.cluster, config.group_id, config) if config.group_id else None
        self.fetcher = Fetcher(
            self.cluster, config, self.states, self.group, self._committed_positions, self._data
        )
        self.group_loop = (
            GroupLoop(
                self.group,
                config,
                self.states,
                self._committed_positions,
                self.commit_positions,
                self.fetcher.wake,
                self._data,
            )
            if self.group is not None
            else None
        )
        self._tasks: list[asyncio.Task[Any]] = []
        self._closed = False
        self.lent: _Lent | None = None
        self._started = False
        self._rr = itertools.count()
        self.max_buffered = self.fetcher.max_buffered
        self.key_deserializer = config.key_deserializer
        self.value_deserializer = config.value_deserializer

    @property
    def closed(self) -> bool:
        """True once close() began."""
        return self._closed

    @property
    def subscription(self) -> list[str] | None:
        """Topics subscribed to (None under manual assignment)."""
        return self.group_loop.subscription if self.group_loop is not None else None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Start the background tasks (idempotent; call on the client's loop)."""
        if self._started:
            return
        self._started = True
        self._tasks.append(asyncio.ensure_future(self.fetcher.run()))
        if self.group_loop is not None:
            self._tasks.append(asyncio.ensure_future(self.group_loop.run()))

    async def close(self, autocommit: bool = True) -> None:
        """Commit (if auto-commit), leave the group, stop the tasks, close connections."""
        if self._closed:
            return
        try:
            if autocommit and self.group is not None and self.config.enable_auto_commit:
                with contextlib.suppress(Exception):
                    await self.commit_positions()
            self._mark_closed()
            for t in self._tasks:
                t.cancel()
            for t in self._tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t
            if self.group is not None and self.subscription is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self.group.leave(), self.config.request_timeout_ms / 1000.0)
        finally:
            self._mark_closed()
            self.cluster.close()
            self._data.set()

    def _mark_closed(self) -> None:
        self._closed = True
        self.fetcher.closed = True
        if self.group_loop is not None:
            self.group_loop.closed = True

    # ------------------------------------------------------------------ assignment

    def subscribe(
        self, topics: Iterable[str], on_assign: Callback | None = None, on_revoke: Callback | None = None
    ) -> None:
        """Join the group for ``topics``; partitions arrive through rebalances."""
        if self.group_loop is None:
            raise ValueError("subscribe() needs a group_id; use assign() without one")
        topics = sorted(set(topics))
        if not topics:
            raise ValueError("subscribe() needs at least one topic")
        self.group_loop.subscription = topics
        self.group_loop.on_assign, self.group_loop.on_revoke = on_assign, on_revoke
        self.cluster.want_topics(topics)
        self.group_loop.rejoin()
        self.start()

    def assign(self, partitions: Iterable[TopicPartition]) -> None:
        """Consume exactly ``partitions`` (no group membership; commits still go to group_id if set)."""
        if self.subscription is not None:
            raise ValueError("assign() cannot be mixed with subscribe() on one consumer")
        wanted = {TopicPartition(*tp) for tp in partitions}
        for tp in list(self.states):
            if tp not in wanted:
                del self.states[tp]
        for tp in wanted:
            if tp not in self.states:
                self.states[tp] = PartitionState(tp)
        self.cluster.want_topics({tp.topic for tp in wanted})
        self.start()
        self.fetcher.wake()

    def assignment(self) -> set[TopicPartition]:
        """Partitions assigned now."""
        return set(self.states)

    def group_metadata(self) -> ConsumerGroupMetadata:
        """Group id, generation, member id and instance id as of now (generation -1 and
        member "" when not a member: manual assignment, or before the first join).
        ValueError without a ``group_id``."""
        group = self.group
        if group is None:
            raise ValueError("group_metadata() needs a group_id")
        if group.generation < 0:
            return ConsumerGroupMetadata(group.group_id)
        return ConsumerGroupMetadata(group.group_id, group.generation, group.member_id, group.instance_id)

    def _state(self, tp: TopicPartition) -> PartitionState:
        st = self.states.get(TopicPartition(*tp))
        if st is None:
            raise ValueError(f"{tp} is not assigned to this consumer")
        return st

    async def wait_for_assignment(self, timeout: float) -> set[TopicPartition]:
        """Wait (up to ``timeout`` s) for the first rebalance to finish; returns the assignment."""
        if self.group_loop is not None:
            await self.group_loop.wait_for_assignment(timeout)
        else:
            await asyncio.sleep(timeout)  # no group: no rebalance will ever finish
        return self.assignment()

    # ------------------------------------------------------------------ offsets

    def positions_to_commit(
        self, parts: Iterable[TopicPartition] | None = None
    ) -> dict[TopicPartition, OffsetAndMetadata]:
        """Positions of ``parts`` (default all assigned) that differ from the last commit.

        A partition's position counts only the records an iteration has yielded.
        """
        out = {}
        for tp in parts if parts is not None else list(self.states):
            st = self.states.get(tp)
            if st is None:
                continue
            pos = self._delivered(tp, st)
            if pos is not None and self._committed_positions.get(tp) != pos:
                out[tp] = OffsetAndMetadata(pos)
        return out

    def _delivered(self, tp: TopicPartition, st: PartitionState) -> int | None:
        """Position of ``tp`` as the application has seen it: before any record taken but not yielded."""
        lent = self.lent
        if lent is not None and lent.epochs.get(tp) == st.epoch:
            first = lent.first_unyielded(tp)
            if first is not None:
                return first
        return st.position

    async def commit_positions(self, parts: Iterable[TopicPartition] | None = None) -> None:
        """Commit the current positions (auto-commit and commit() without offsets)."""
        await self.commit(self.positions_to_commit(parts))

    async def commit(self, offsets: Mapping[TopicPartition, OffsetAndMetadata | int]) -> None:
        """OffsetCommit ``offsets`` (next offset to consume per partition)."""
        if self.group is None or self.group_loop is None:
            raise ValueError("commit() needs a group_id")
        self.group_loop.last_commit = time.monotonic()
        norm = {
            TopicPartition(*tp): (o if isinstance(o, OffsetAndMetadata) else OffsetAndMetadata(int(o)))
            for tp, o in offsets.items()
        }
        if not norm:
            return
        member = self.subscription is not None and self.group.generation >= 0
        await self.group.commit(norm, member=member)
        for tp, om in norm.items():
            self._committed_positions[tp] = om.offset

    async def committed(self, tp: TopicPartition) -> OffsetAndMetadata | None:
        """The committed offset of ``tp`` in this consumer's group (None if none)."""
        if self.group is None:
            raise ValueError("committed() needs a group_id")
        return (await self.group.fetch_committed([TopicPartition(*tp)]))[TopicPartition(*tp)]

    # ------------------------------------------------------------------ polling

    def _raise_pending(self) -> None:
        if self.group_loop is not None and self.group_loop.error is not None:
            raise self.group_loop.error
        auth: AuthenticationError | None = self.cluster.take_auth_failure()
        if auth is not None:
            raise auth
        for st in self.states.values():
            if st.error is not None:
                err, st.error = st.error, None
                raise err

    def collect(self, max_records: int) -> list[Any]:
        """Take up to ``max_records`` buffered records (or columns), round-robin over partitions."""
        states = [st for st in self.states.values() if st.buffered and not st.paused]
        if not states:
            return []
        start = next(self._rr) % len(states)
        states = states[start:] + states[:start]
        out: list[Any] = []
        columnar = self.config.columnar
        kd, vd = self.key_deserializer, self.value_deserializer
        left = max_records
        for st in states:
            if left <= 0:
                break
            topic, part = st.tp
            prefix = (topic, part)
            while left > 0 and st.batches:
                b = st.batches[0]
                pos = st.position if st.position is not None else b.base_offset
                if columnar:
                    cols, taken, next_pos = _columns_from(b, pos, left)
                    if taken:
                        out.append(PartitionColumns(topic, part, cols))
                elif pos <= b.base_offset and len(b) <= left:
                    # The whole batch, made straight into ConsumerRecords (the batch's
                    # ``records`` list is never made).
                    whole = _consumer_records(b, prefix, kd, vd)
                    taken = len(whole)
                    out.extend(whole)
                    next_pos = b.last_offset + 1
                    if taken:
                        next_pos = max(next_pos, whole[-1].offset + 1)
                else:
                    n = len(b)
                    i = pos - b.base_offset
                    if not (0 <= i < n) or b.records_as(tuple, (), i, i + 1)[0][0] != pos:
                        # Offsets with gaps (a compacted batch): find the first >= pos.
                        recs = b.records
                        i = 0
                        while i < n and recs[i].offset < pos:
                            i += 1
                    chunk = _consumer_records(b, prefix, kd, vd, i, i + left)
                    taken = len(chunk)
                    out.extend(chunk)
                    next_pos = chunk[-1].offset + 1 if taken else b.last_offset + 1
                    if i + taken >= n:
                        next_pos = max(next_pos, b.last_offset + 1)
                if next_pos > b.last_offset:
                    st.batches.popleft()
                    if not st.batches and st.fetch_offset is not None and st.fetch_offset > next_pos:
                        # Everything fetched is delivered: what lay after this batch was
                        # skipped (transaction markers, aborted records).
                        next_pos = st.fetch_offset
                st.position = next_pos
                st.buffered = max(0, st.buffered - taken) if st.batches else 0
                left -= taken
        if any(st.buffered < self.max_buffered for st in states):
            self.fetcher.wake()
        return out

    async def poll(self, timeout_ms: int = 1000, max_records: int | None = None) -> list[Any]:
        """Records ready now, or wait up to ``timeout_ms`` for some.

        Returns at most ``max_records`` (default ``max_poll_records``) ConsumerRecords,
        or PartitionColumns under ``columnar=True``. Raises a partition's error (for
        example OFFSET_OUT_OF_RANGE under ``auto_offset_reset='none'``).
        """
        if self._closed:
            raise ClientClosedError("consumer is closed")
        self.start()
        n = max_records or self.config.max_poll_records
        deadline = time.monotonic() + timeout_ms / 1000.0
        out: list[Any] = []
        while len(out) < n:  # records an iteration took and did not yield come first
            item = self.take_lent()
            if item is None:
                break
            out.append(item)
        if out:
            return out
        while True:
            self._raise_pending()
            out = self.collect(n)
            if out:
                return out
            left = deadline - time.monotonic()
            if left <= 0 or self._closed:
                return []
            self._data.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._data.wait(), left)

    # ------------------------------------------------------------------ iteration

    def take_lent(self) -> Any | None:
        """The next record an iteration took and has not yielded, skipping stale ones; None if none.

        Safe to call from the blocking consumer's own thread: it reads the loop's
        state and writes only ``lent.next``.
        """
        lent = self.lent
        if lent is None:
            return None
        items, states, epochs = lent.items, self.states, lent.epochs
        while lent.next < len(items):
            item = items[lent.next]
            tp = _item_tp(item)
            st = states.get(tp)
            lent.next += 1
            if st is not None and st.epoch == epochs.get(tp):
                return item
        return None

    async def next_item(self, timeout_s: float | None) -> Any:
        """The next record of an iteration, waiting up to ``timeout_s`` (None: until closed).

        Returns STOP when the wait ran out or the consumer is closed; raises what
        poll() raises.
        """
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            item = self.take_lent()
            if item is not None:
                return item
            if self._closed:
                return STOP
            wait_ms = _ITERATION_SLICE_MS
            if deadline is not None:
                wait_ms = int(min(wait_ms, max(0.0, deadline - time.monotonic()) * 1000.0))
            items = await self.poll(wait_ms)
            if items:
                self.lent = _Lent(items, {tp: self.states[tp].epoch for tp in {_item_tp(i) for i in items}})
            elif deadline is not None and time.monotonic() >= deadline:
                return STOP

    # ------------------------------------------------------------------ positions

    def seek(self, tp: TopicPartition, offset: int) -> None:
        """Next poll returns ``tp`` records from ``offset``."""
        self._state(tp).seek(int(offset))
        self.fetcher.wake()

    def seek_to(self, parts: Iterable[TopicPartition], where: int) -> None:
        """Reset ``parts`` (default all assigned) to EARLIEST or LATEST, resolved in one ListOffsets."""
        for tp in parts or list(self.states):
            st = self._state(tp)
            st.seek(0)
            st.reset = where
        self.fetcher.wake()

    async def position(self, tp: TopicPartition, timeout: float = 30.0) -> int:
        """Offset of the next record poll() returns for ``tp`` (resolving it if needed)."""
        st = self._state(tp)
        self.start()
        deadline = time.monotonic() + timeout
        while st.needs_position():
            if st.error is not None:
                raise st.error
            if time.monotonic() >= deadline:
                raise TimeoutError(f"position of {tp} not resolved within {timeout:g} s")
            self.fetcher.wake()
            await asyncio.sleep(0.01)
        return self._delivered(st.tp, st)  # type: ignore[return-value]

    def pause(self, parts: Iterable[TopicPartition]) -> None:
        """Stop fetching and returning records of ``parts`` until resume()."""
        for tp in parts:
            st = self._state(tp)
            st.paused = True
            lent = self.lent
            if lent is not None and lent.epochs.get(st.tp) == st.epoch:
                first = lent.first_unyielded(st.tp)
                if first is not None:
                    # Records an iteration took and did not yield are fetched again
                    # after resume(); the seek makes the taken ones stale.
                    st.seek(first)

    def resume(self, parts: Iterable[TopicPartition]) -> None:
        """Undo pause()."""
        for tp in parts:
            self._state(tp).paused = False
        self.fetcher.wake()

    def paused(self) -> set[TopicPartition]:
        """Partitions paused now."""
        return {tp for tp, st in self.states.items() if st.paused}


def _consumer_records(
    batch: Any,
    prefix: tuple[str, int],
    kd: Callable[[bytes], Any] | None,
    vd: Callable[[bytes], Any] | None,
    start: int = 0,
    stop: int | None = None,
) -> list[ConsumerRecord]:
    """ConsumerRecords of ``batch``'s records ``start`` up to ``stop`` (indexes; None: to
    the end) of partition ``prefix`` (topic, partition), keys and values run through the
    deserializers when set."""
    if kd is None and vd is None:
        # Made by the codec in one step: (topic, partition) + the record's five fields.
        return batch.records_as(ConsumerRecord, prefix, start, stop)
    topic, part = prefix
    return [
        ConsumerRecord(
            topic,
            part,
            offset,
            ts,
            kd(key) if kd is not None and key is not None else key,
            vd(value) if vd is not None and value is not None else value,
            headers,
        )
        for offset, ts, key, value, headers in batch.records_as(tuple, (), start, stop)
    ]


def _columns_from(batch: Any, pos: int, limit: int) -> tuple[dict[str, Any], int, int]:
    """Columns of ``batch`` from offset ``pos``, at most ``limit`` rows; (columns, rows, next position)."""
    cols = batch.to_columns()
    offs = cols["offset"]
    start = int((offs < pos).sum())
    end = min(len(offs), start + limit)
    if start == 0 and end == len(offs):
        sliced = cols
    else:
        sliced = {k: (v[start:end] if k != "buffer" else v) for k, v in cols.items()}
    taken = end - start
    next_pos = int(offs[end - 1]) + 1 if taken else batch.last_offset + 1
    if end == len(offs):
        next_pos = max(next_pos, batch.last_offset + 1)
    return sliced, taken, next_pos


class Consumer:
    """Asyncio consumer.

    >>> async with Consumer("127.0.0.1:9092", group_id="g", auto_offset_reset="earliest") as c:  # doctest: +SKIP
    ...     c.subscribe(["events"])
    ...     for record in await c.poll(timeout_ms=1000):
    ...         print(record.offset, record.value)
    ...     async for record in c:      # until closed, or consumer_timeout_ms without a record
    ...         print(record.offset, record.value)

    Settings as in docs/client.md, plus ``consumer_timeout_ms``: how long (ms) an
    iteration waits for its next record before it ends (default: no limit).
    """

    def __init__(
        self,
        bootstrap_servers: str | list[str] | None = None,
        config: Mapping[str, Any] | None = None,
        **settings: Any,
    ) -> None:
        self._iteration_timeout_s, config, settings = split_consumer_timeout(config, settings)
        self.config = build_config("consumer", bootstrap_servers, config, settings)
        self._core: ConsumerCore | None = None

    @property
    def core(self) -> ConsumerCore:
        """The event-loop side (created on first use, on the running loop)."""
        if self._core is None:
            self._core = ConsumerCore(self.config)
        return self._core

    async def __aenter__(self) -> Consumer:
        self.core  # noqa: B018  (binds the core to this loop)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __aiter__(self) -> Consumer:
        return self

    async def __anext__(self) -> Any:
        """The next record (PartitionColumns under ``columnar``); ends when closed or after
        ``consumer_timeout_ms`` without one. Raises what poll() raises."""
        item = await self.core.next_item(self._iteration_timeout_s)
        if item is STOP:
            raise StopAsyncIteration
        return item

    def subscribe(
        self, topics: Iterable[str], on_assign: Callback | None = None, on_revoke: Callback | None = None
    ) -> None:
        """Subscribe to ``topics`` as a member of ``group_id``; callbacks may be coroutine functions."""
        self.core.subscribe(topics, on_assign, on_revoke)

    def assign(self, partitions: Iterable[TopicPartition | tuple[str, int]]) -> None:
        """Consume exactly ``partitions`` without group membership."""
        self.core.assign(partitions)  # type: ignore[arg-type]

    def assignment(self) -> set[TopicPartition]:
        """Partitions assigned now."""
        return self.core.assignment()

    def group_metadata(self) -> ConsumerGroupMetadata:
        """This consumer's group membership, for ``Producer.send_offsets_to_transaction``."""
        return self.core.group_metadata()

    async def poll(self, timeout_ms: int = 1000, max_records: int | None = None) -> list[Any]:
        """See ConsumerCore.poll."""
        return await self.core.poll(timeout_ms, max_records)

    async def commit(self, offsets: Mapping[TopicPartition, OffsetAndMetadata | int] | None = None) -> None:
        """Commit ``offsets`` (default: the current positions) and wait for the answer."""
        core = self.core
        if offsets is None:
            await core.commit_positions()
        else:
            await core.commit(offsets)

    def commit_async(
        self, offsets: Mapping[TopicPartition, OffsetAndMetadata | int] | None = None
    ) -> asyncio.Future[None]:
        """Start a commit and return its future without waiting."""
        return asyncio.ensure_future(self.commit(offsets))

    async def committed(self, tp: TopicPartition) -> OffsetAndMetadata | None:
        """Committed offset of ``tp`` (None if none)."""
        return await self.core.committed(tp)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        """Next poll returns records of ``tp`` from ``offset``."""
        self.core.seek(tp, offset)

    def seek_to_beginning(self, *parts: TopicPartition) -> None:
        """Reset ``parts`` (default all assigned) to the log start."""
        self.core.seek_to(parts, EARLIEST)

    def seek_to_end(self, *parts: TopicPartition) -> None:
        """Reset ``parts`` (default all assigned) to the log end."""
        self.core.seek_to(parts, LATEST)

    async def position(self, tp: TopicPartition) -> int:
        """Offset of the next record poll() returns for ``tp``."""
        return await self.core.position(tp)

    def pause(self, *parts: TopicPartition) -> None:
        """Stop returning and fetching records of ``parts``."""
        self.core.pause(parts)

    def resume(self, *parts: TopicPartition) -> None:
        """Undo pause()."""
        self.core.resume(parts)

    def paused(self) -> set[TopicPartition]:
        """Partitions paused now."""
        return self.core.paused()

    async def wait_for_assignment(self, timeout: float = 30.0) -> set[TopicPartition]:
        """Wait for the first rebalance to finish (subscribe mode); returns the assignment."""
        return await self.core.wait_for_assignment(timeout)

    async def close(self, autocommit: bool = True) -> None:
        """Commit (under auto-commit), leave the group and close."""
        if self._core is not None:
            await self._core.close(autocommit)
