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
from collections.abc import Iterable, Mapping
from typing import Any

from streamcore.client.cluster import Cluster
from streamcore.client.config import ClientConfig, build_config
from streamcore.client.errors import ClientClosedError
from streamcore.client.fetcher import Fetcher, PartitionState
from streamcore.client.group import Callback, GroupLoop, GroupMembership
from streamcore.client.offsets import EARLIEST, LATEST
from streamcore.client.types import ConsumerRecord, OffsetAndMetadata, PartitionColumns, TopicPartition

__all__ = ["Consumer", "ConsumerCore", "Callback"]

_tuple_new = tuple.__new__


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
        self._started = False
        self._rr = itertools.count()
        self.max_buffered = self.fetcher.max_buffered
        self.key_deserializer = config.key_deserializer
        self.value_deserializer = config.value_deserializer

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
        """Positions of ``parts`` (default all assigned) that differ from the last commit."""
        out = {}
        for tp in parts if parts is not None else list(self.states):
            st = self.states.get(tp)
            if (
                st is not None
                and st.position is not None
                and self._committed_positions.get(tp) != st.position
            ):
                out[tp] = OffsetAndMetadata(st.position)
        return out

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
                else:
                    recs = b.records
                    i = pos - b.base_offset
                    if not (0 <= i < len(recs)) or recs[i][0] != pos:
                        i = 0
                        while i < len(recs) and recs[i][0] < pos:
                            i += 1
                    chunk = recs[i : i + left]
                    taken = len(chunk)
                    if taken:
                        if kd is None and vd is None:
                            out.extend([_tuple_new(ConsumerRecord, prefix + r) for r in chunk])
                        else:
                            out.extend(
                                [
                                    ConsumerRecord(
                                        topic,
                                        part,
                                        r[0],
                                        r[1],
                                        kd(r[2]) if kd is not None and r[2] is not None else r[2],
                                        vd(r[3]) if vd is not None and r[3] is not None else r[3],
                                        r[4],
                                    )
                                    for r in chunk
                                ]
                            )
                    next_pos = chunk[-1][0] + 1 if taken else b.last_offset + 1
                    if i + taken >= len(recs):
                        next_pos = max(next_pos, b.last_offset + 1)
                if next_pos > b.last_offset:
                    st.batches.popleft()
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
        return st.position  # type: ignore[return-value]

    def pause(self, parts: Iterable[TopicPartition]) -> None:
        """Stop fetching and returning records of ``parts`` until resume()."""
        for tp in parts:
            self._state(tp).paused = True

    def resume(self, parts: Iterable[TopicPartition]) -> None:
        """Undo pause()."""
        for tp in parts:
            self._state(tp).paused = False
        self.fetcher.wake()

    def paused(self) -> set[TopicPartition]:
        """Partitions paused now."""
        return {tp for tp, st in self.states.items() if st.paused}


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
    """

    def __init__(
        self,
        bootstrap_servers: str | list[str] | None = None,
        config: Mapping[str, Any] | None = None,
        **settings: Any,
    ) -> None:
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
