"""Asyncio consumer: subscriptions with group membership, or manual assignment.

Background tasks, all on the client's event loop:

* the fetch manager resolves start offsets (committed offsets with one OffsetFetch,
  the rest with ONE batched ListOffsets per broker) and keeps a Fetch in flight per
  leader (prefetch, see ``fetcher``);
* the group task heartbeats every ``heartbeat_interval_ms`` whatever the
  application does between polls, rejoins when the coordinator asks, and commits
  every ``auto_commit_interval_ms`` when auto-commit is on.

Rebalance callbacks run on the group task: ``on_revoke(partitions)`` before
partitions go (after their positions are auto-committed), ``on_assign(partitions)``
once new ones arrive. Under "range" (eager) every partition is revoked before a
rejoin; under "cooperative-sticky" only those that move.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from streamcore.client.assignors import EAGER
from streamcore.client.cluster import Cluster
from streamcore.client.config import ClientConfig, build_config
from streamcore.client.errors import ClientClosedError, broker_error
from streamcore.client.fetcher import FetchSession, PartitionState, is_session_error
from streamcore.client.group import GroupMembership
from streamcore.client.offsets import EARLIEST, LATEST, list_offsets
from streamcore.client.retrying import coordinator_moved, metadata_is_stale
from streamcore.client.types import ConsumerRecord, OffsetAndMetadata, PartitionColumns, TopicPartition
from streamcore.codec import decode_batches
from streamcore.errors import ErrorCode, KafkaError, OffsetOutOfRangeError
from streamcore.protocol.messages import FetchRequest

__all__ = ["Consumer", "ConsumerCore"]

log = logging.getLogger("streamcore.client.consumer")

_tuple_new = tuple.__new__
_E = ErrorCode
_REBALANCE = {_E.REBALANCE_IN_PROGRESS}
_RESET_MEMBER = {_E.UNKNOWN_MEMBER_ID, _E.ILLEGAL_GENERATION, _E.FENCED_INSTANCE_ID}

Callback = Callable[[list[TopicPartition]], Any]


async def _call(cb: Callback | None, parts: list[TopicPartition]) -> None:
    if cb is None:
        return
    res = cb(parts)
    if inspect.isawaitable(res):
        await res


class ConsumerCore:
    """Event-loop side of a consumer, shared by the asyncio and the blocking API."""

    def __init__(self, config: ClientConfig) -> None:
        self.config = config
        self.cluster = Cluster(config)
        self.group = GroupMembership(self.cluster, config.group_id, config) if config.group_id else None
        self.states: dict[TopicPartition, PartitionState] = {}
        self.subscription: list[str] | None = None
        self.on_assign: Callback | None = None
        self.on_revoke: Callback | None = None
        self.sessions: dict[int, FetchSession] = {}
        self._fetching: set[int] = set()
        self._data = asyncio.Event()
        self._fetch_wake = asyncio.Event()
        self._rejoin = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []
        self._closed = False
        self._started = False
        self._rr = itertools.count()
        self._last_commit = time.monotonic()
        self._committed_positions: dict[TopicPartition, int] = {}
        self._group_error: BaseException | None = None
        self._joined = asyncio.Event()
        self.max_buffered = max(config.max_poll_records, 1)
        self.key_deserializer = config.key_deserializer
        self.value_deserializer = config.value_deserializer

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Start the background tasks (idempotent; call on the client's loop)."""
        if self._started:
            return
        self._started = True
        self._tasks.append(asyncio.ensure_future(self._fetch_manager()))
        if self.group is not None:
            self._tasks.append(asyncio.ensure_future(self._group_loop()))

    async def close(self, autocommit: bool = True) -> None:
        """Commit (if auto-commit), leave the group, stop the tasks, close connections."""
        if self._closed:
            return
        try:
            if autocommit and self.group is not None and self.config.enable_auto_commit:
                with contextlib.suppress(Exception):
                    await self.commit_positions()
            self._closed = True
            for t in self._tasks:
                t.cancel()
            for t in self._tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t
            if self.group is not None and self.subscription is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self.group.leave(), self.config.request_timeout_ms / 1000.0)
        finally:
            self._closed = True
            self.cluster.close()
            self._data.set()

    # ------------------------------------------------------------------ assignment

    def subscribe(
        self, topics: Iterable[str], on_assign: Callback | None = None, on_revoke: Callback | None = None
    ) -> None:
        """Join the group for ``topics``; partitions arrive through rebalances."""
        if self.group is None:
            raise ValueError("subscribe() needs a group_id; use assign() without one")
        topics = sorted(set(topics))
        if not topics:
            raise ValueError("subscribe() needs at least one topic")
        self.subscription = topics
        self.on_assign, self.on_revoke = on_assign, on_revoke
        self.cluster.want_topics(topics)
        self._rejoin.set()
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
        self._fetch_wake.set()

    def assignment(self) -> set[TopicPartition]:
        """Partitions assigned now."""
        return set(self.states)

    def _state(self, tp: TopicPartition) -> PartitionState:
        st = self.states.get(TopicPartition(*tp))
        if st is None:
            raise ValueError(f"{tp} is not assigned to this consumer")
        return st

    # ------------------------------------------------------------------ group

    async def _partition_counts(self, topics: list[str]) -> dict[str, int]:
        out = {}
        for t in topics:
            try:
                out[t] = len(
                    await self.cluster.wait_for_partitions(t, self.config.request_timeout_ms / 1000.0)
                )
            except (KafkaError, TimeoutError):
                out[t] = 0
        return out

    async def _group_loop(self) -> None:
        assert self.group is not None
        interval = self.group.heartbeat_interval_s
        while not self._closed:
            try:
                if self._rejoin.is_set() and self.subscription is not None:
                    self._rejoin.clear()
                    await self._rebalance()
                elif self.group.generation >= 0:
                    await self.group.heartbeat()
                if self.config.enable_auto_commit and time.monotonic() - self._last_commit >= (
                    self.config.auto_commit_interval_ms / 1000.0
                ):
                    await self.commit_positions()
            except asyncio.CancelledError:
                raise
            except KafkaError as exc:
                if exc.error in _REBALANCE:
                    self._rejoin.set()
                elif exc.error in _RESET_MEMBER:
                    if exc.error is _E.FENCED_INSTANCE_ID:
                        self._group_error = exc
                        self._data.set()
                        return
                    self.group.member_id = "" if exc.error is _E.UNKNOWN_MEMBER_ID else self.group.member_id
                    self.group.generation = -1
                    await self._revoke(list(self.states), lost=True)
                    self._rejoin.set()
                elif coordinator_moved(exc):
                    self.group.coordinator_lost()
                else:
                    log.warning("consumer group %s: %s", self.group.group_id, exc)
            except (ConnectionError, OSError, TimeoutError) as exc:
                log.info(
                    "consumer group %s: coordinator unreachable (%s), retrying", self.group.group_id, exc
                )
                self.group.coordinator_lost()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._rejoin.wait(), interval)

    async def _rebalance(self) -> None:
        assert self.group is not None and self.subscription is not None
        owned = sorted(self.states)
        eager = (self.group.protocol or self.group.strategies[0]) in EAGER
        if eager and owned:
            await self._revoke(owned)
            owned = []
        assigned, protocol = await self.group.join(self.subscription, owned, self._partition_counts)
        new = set(assigned)
        revoked = [tp for tp in owned if tp not in new]
        added = sorted(tp for tp in new if tp not in self.states)
        if revoked:
            await self._revoke(revoked)
            if protocol not in EAGER:
                self._rejoin.set()  # cooperative: a follow-up round hands them to their new owner
        for tp in added:
            self.states[tp] = PartitionState(tp)
        self._joined.set()
        self._fetch_wake.set()
        await _call(self.on_assign, added if protocol not in EAGER else sorted(new))

    async def _revoke(self, parts: list[TopicPartition], lost: bool = False) -> None:
        if not parts:
            return
        if not lost and self.config.enable_auto_commit:
            with contextlib.suppress(Exception):
                await self.commit_positions(parts)
        await _call(self.on_revoke, sorted(parts))
        for tp in parts:
            self.states.pop(tp, None)
            self._committed_positions.pop(tp, None)

    async def wait_for_assignment(self, timeout: float) -> set[TopicPartition]:
        """Wait (up to ``timeout`` s) for the first rebalance to finish; returns the assignment."""
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._joined.wait(), timeout)
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
        if self.group is None:
            raise ValueError("commit() needs a group_id")
        self._last_commit = time.monotonic()
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

    async def _resolve_positions(self) -> None:
        now = time.monotonic()
        pending = [st for st in self.states.values() if st.needs_position() and st.backoff_until <= now]
        if not pending:
            return
        if self.group is not None:
            unchecked = [st for st in pending if not st.committed_checked and st.reset is None]
            if unchecked:
                try:
                    committed = await self.group.fetch_committed([st.tp for st in unchecked])
                except Exception as exc:
                    log.info("OffsetFetch failed (%s); retrying", exc)
                    for st in unchecked:
                        st.failed(now)
                    return
                for st in unchecked:
                    st.committed_checked = True
                    om = committed.get(st.tp)
                    if om is not None and self.states.get(st.tp) is st:
                        st.seek(om.offset)
                        self._committed_positions[st.tp] = om.offset
        pending = [st for st in pending if st.needs_position()]
        if not pending:
            return
        specs: dict[TopicPartition, int] = {}
        for st in pending:
            strategy = st.reset
            if strategy is None:
                policy = self.config.auto_offset_reset
                if policy == "none":
                    st.error = OffsetOutOfRangeError(
                        f"{st.tp}: no committed offset and auto_offset_reset='none'"
                    )
                    self._data.set()
                    continue
                strategy = EARLIEST if policy == "earliest" else LATEST
            specs[st.tp] = strategy
        if not specs:
            return
        missing = [t for t in {tp.topic for tp in specs} if self.cluster.partitions_for(t) is None]
        if missing:
            with contextlib.suppress(Exception):
                await self.cluster.refresh(missing)
        offsets, errors = await list_offsets(self.cluster, specs)
        for tp, off in offsets.items():
            st = self.states.get(tp)
            if st is not None and st.needs_position():
                st.seek(off)
                st.attempts = 0
        if errors:
            for tp in errors:
                st = self.states.get(tp)
                if st is not None:
                    st.failed(now)
            with contextlib.suppress(Exception):
                await self.cluster.refresh(list({tp.topic for tp in errors}))

    # ------------------------------------------------------------------ fetching

    async def _fetch_manager(self) -> None:
        while not self._closed:
            self._fetch_wake.clear()
            try:
                await self._resolve_positions()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.info("offset resolution failed: %s", exc)
            now = time.monotonic()
            by_node: dict[int, list[PartitionState]] = {}
            next_due: float | None = None
            unknown: set[str] = set()
            for st in self.states.values():
                if st.fetchable(now, self.max_buffered):
                    leader = self.cluster.leader_for(st.tp.topic, st.tp.partition)
                    if leader is None:
                        unknown.add(st.tp.topic)
                        st.failed(now)
                        continue
                    by_node.setdefault(leader, []).append(st)
                elif st.backoff_until > now:
                    next_due = st.backoff_until if next_due is None else min(next_due, st.backoff_until)
                elif st.needs_position():
                    next_due = now + 0.05 if next_due is None else min(next_due, now + 0.05)
            if unknown:
                with contextlib.suppress(Exception):
                    await self.cluster.refresh(list(unknown))
            for node, sts in by_node.items():
                if node not in self._fetching:
                    self._fetching.add(node)
                    asyncio.ensure_future(self._fetch(node, sts))
            timeout = 1.0 if next_due is None else max(0.0, min(1.0, next_due - time.monotonic()))
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._fetch_wake.wait(), timeout)

    async def _fetch(self, node: int, sts: list[PartitionState]) -> None:
        session = self.sessions.get(node)
        if session is None:
            session = self.sessions[node] = FetchSession()
        try:
            wanted = {st.tp: st.fetch_offset for st in sts}
            epochs = {st.tp: st.epoch for st in sts}
            try:
                conn = await self.cluster.connection(node)
                version = conn.version_for(FetchRequest)
                req, include, forgotten = session.build(wanted, version, self.config)  # type: ignore[arg-type]
                resp = await conn.request(req, version)
            except (ConnectionError, OSError, TimeoutError) as exc:
                log.info("fetch from node %s failed: %s", node, exc)
                session.reset()
                now = time.monotonic()
                for st in sts:
                    st.failed(now)
                with contextlib.suppress(Exception):
                    await self.cluster.refresh()
                return
            if resp.error_code:
                session.reset()
                if not is_session_error(resp.error_code):
                    now = time.monotonic()
                    for st in sts:
                        st.failed(now)
                return
            session.answered(resp, version, include, forgotten)
            self._handle_fetch(resp, epochs, session)
        finally:
            self._fetching.discard(node)
            self._fetch_wake.set()

    def _handle_fetch(self, resp: Any, epochs: dict[TopicPartition, int], session: FetchSession) -> None:
        verify = self.config.check_crcs
        got_data = False
        refresh: set[str] = set()
        now = time.monotonic()
        for t in resp.responses:
            topic = t.topic
            for p in t.partitions:
                tp = TopicPartition(topic, p.partition_index)
                st = self.states.get(tp)
                if st is None or epochs.get(tp) != st.epoch:
                    session.forget(tp)
                    continue  # revoked or seeked while the fetch was in flight
                code = p.error_code
                if code == 0:
                    st.high_watermark = p.high_watermark
                    records = p.records
                    if not records:
                        continue
                    fetch_offset = st.fetch_offset
                    added = 0
                    for b in decode_batches(records, verify_crc=verify):
                        last = b.last_offset
                        if last < fetch_offset:  # type: ignore[operator]
                            continue
                        if not b.is_control and b.record_count:
                            st.batches.append(b)
                            added += b.record_count
                        fetch_offset = last + 1
                    if fetch_offset != st.fetch_offset:
                        st.fetch_offset = fetch_offset
                        st.buffered += added
                        st.attempts = 0
                        got_data = True
                        if not st.batches:
                            st.position = fetch_offset  # only control batches: skip past them
                elif code == _E.OFFSET_OUT_OF_RANGE.code:
                    session.forget(tp)
                    policy = self.config.auto_offset_reset
                    if policy == "none":
                        st.error = broker_error(
                            code, f"{tp.topic}-{tp.partition} at offset {st.fetch_offset}"
                        )
                        got_data = True
                    else:
                        st.reset = EARLIEST if policy == "earliest" else LATEST
                else:
                    session.forget(tp)
                    st.failed(now)
                    err = broker_error(code, f"fetch {tp.topic}-{tp.partition}")
                    if metadata_is_stale(err):
                        refresh.add(topic)
        if refresh:
            asyncio.ensure_future(self._refresh_quietly(refresh))
        if got_data:
            self._data.set()

    async def _refresh_quietly(self, topics: set[str]) -> None:
        with contextlib.suppress(Exception):
            await self.cluster.refresh(list(topics))

    # ------------------------------------------------------------------ polling

    def _raise_pending(self) -> None:
        if self._group_error is not None:
            raise self._group_error
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
            self._fetch_wake.set()
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
        self._fetch_wake.set()

    def seek_to(self, parts: Iterable[TopicPartition], where: int) -> None:
        """Reset ``parts`` (default all assigned) to EARLIEST or LATEST, resolved in one ListOffsets."""
        for tp in parts or list(self.states):
            st = self._state(tp)
            st.seek(0)
            st.reset = where
        self._fetch_wake.set()

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
            self._fetch_wake.set()
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
        self._fetch_wake.set()

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
