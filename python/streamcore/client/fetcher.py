"""Consumer fetching: per-partition state, incremental fetch sessions (KIP-227), prefetch.

A background task keeps one Fetch in flight per leader broker for the partitions
whose buffer is below ``max_poll_records``, so the next records are on their way
while the application processes the current ones. Answers are decoded with
``streamcore.codec.decode_batches`` (one native call per partition) and buffered
as record batches; ``poll`` turns them into records (or numpy columns) on demand.

From Fetch v7 each broker gets a fetch session: the first request lists every
partition, later ones only the partitions whose fetch offset changed, plus the
ones to forget. A session error resets it to a full fetch.

Transactions: control batches (COMMIT/ABORT markers) are never buffered; the
partition's position moves past them. Under ``isolation_level="read_committed"``
the broker returns records up to the last stable offset with the list of aborted
transactions (producer id, first offset) overlapping them, and the batches of each
aborted transaction, from its first offset to its ABORT marker, are dropped here
(``committed_batches``, Kafka's consumer algorithm).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import struct
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from streamcore.client.cluster import Cluster
from streamcore.client.config import ClientConfig
from streamcore.client.errors import broker_error
from streamcore.client.offsets import EARLIEST, LATEST, list_offsets
from streamcore.client.retrying import metadata_is_stale
from streamcore.client.types import TopicPartition
from streamcore.codec import decode_batches
from streamcore.errors import AuthenticationError, ErrorCode, OffsetOutOfRangeError
from streamcore.protocol.messages import (
    FetchRequest,
    FetchRequest_FetchPartition,
    FetchRequest_FetchTopic,
    FetchRequest_ForgottenTopic,
)

if TYPE_CHECKING:
    from streamcore.client.group import GroupMembership

__all__ = ["Fetcher", "PartitionState", "FetchSession", "BACKOFF_BASE_S", "BACKOFF_CAP_S"]

log = logging.getLogger("streamcore.client.consumer")

#: Per-partition error backoff: 100 ms doubling to a 30 s cap.
BACKOFF_BASE_S = 0.1
BACKOFF_CAP_S = 30.0

_E = ErrorCode
_SESSION_ERRORS = {_E.FETCH_SESSION_ID_NOT_FOUND.code, _E.INVALID_FETCH_SESSION_EPOCH.code}


class PartitionState:
    """Where one assigned partition stands: position, fetch offset, buffered batches, backoff."""

    __slots__ = (
        "tp",
        "position",
        "fetch_offset",
        "paused",
        "batches",
        "buffered",
        "epoch",
        "backoff_until",
        "attempts",
        "reset",
        "committed_checked",
        "high_watermark",
        "error",
    )

    def __init__(self, tp: TopicPartition) -> None:
        self.tp = tp
        self.position: int | None = None  # next offset poll() returns
        self.fetch_offset: int | None = None  # next offset to fetch (ahead of position by the buffer)
        self.paused = False
        self.batches: collections.deque[Any] = collections.deque()
        self.buffered = 0  # records in ``batches`` at or after position
        self.epoch = 0  # bumped by seek: answers to older fetches are dropped
        self.backoff_until = 0.0
        self.attempts = 0
        self.reset: int | None = None  # EARLIEST/LATEST to resolve, or None
        self.committed_checked = False
        self.high_watermark = -1
        self.error: BaseException | None = None  # raised by the next poll()

    def seek(self, offset: int) -> None:
        """Move to ``offset``: drop the buffer and anything in flight."""
        self.position = offset
        self.fetch_offset = offset
        self.batches.clear()
        self.buffered = 0
        self.epoch += 1
        self.reset = None
        self.error = None

    def needs_position(self) -> bool:
        """True until an offset is known (committed, reset or seek)."""
        return self.position is None or self.reset is not None

    def fetchable(self, now: float, max_buffered: int) -> bool:
        """True if a fetch for this partition should be in the next request."""
        return (
            not self.paused
            and self.fetch_offset is not None
            and self.reset is None
            and self.error is None
            and self.buffered < max_buffered
            and self.backoff_until <= now
        )

    def failed(self, now: float) -> None:
        """Back off exponentially after a partition error."""
        self.backoff_until = now + min(BACKOFF_CAP_S, BACKOFF_BASE_S * (2 ** min(self.attempts, 16)))
        self.attempts += 1


class FetchSession:
    """Client side of one broker's incremental fetch session."""

    def __init__(self) -> None:
        self.session_id = 0
        self.epoch = 0
        self.sent: dict[TopicPartition, int] = {}
        self.requests_full = 0
        self.requests_incremental = 0

    def reset(self) -> None:
        """Start over with a full fetch (after a session error or a lost connection)."""
        self.session_id = 0
        self.epoch = 0
        self.sent.clear()

    def build(
        self, wanted: dict[TopicPartition, int], version: int, config: Any
    ) -> tuple[FetchRequest, dict[TopicPartition, int], list[TopicPartition]]:
        """The request for ``wanted`` (partition -> fetch offset).

        Returns (request, partitions included, partitions forgotten).
        """
        incremental = version >= 7 and self.session_id != 0
        if incremental:
            include = {tp: off for tp, off in wanted.items() if self.sent.get(tp) != off}
            forgotten = [tp for tp in self.sent if tp not in wanted]
            self.requests_incremental += 1
        else:
            include = dict(wanted)
            forgotten = []
            self.requests_full += 1
        by_topic: dict[str, list[FetchRequest_FetchPartition]] = collections.defaultdict(list)
        pmax = config.max_partition_fetch_bytes
        for tp, off in include.items():
            by_topic[tp.topic].append(
                FetchRequest_FetchPartition(
                    partition=tp.partition,
                    current_leader_epoch=-1,
                    fetch_offset=off,
                    last_fetched_epoch=-1,
                    log_start_offset=-1,
                    partition_max_bytes=pmax,
                )
            )
        forgot: dict[str, list[int]] = collections.defaultdict(list)
        for tp in forgotten:
            forgot[tp.topic].append(tp.partition)
        req = FetchRequest(
            replica_id=-1,
            max_wait_ms=config.fetch_max_wait_ms,
            min_bytes=config.fetch_min_bytes,
            max_bytes=config.fetch_max_bytes,
            isolation_level=1 if config.isolation_level == "read_committed" else 0,
            session_id=self.session_id if version >= 7 else 0,
            session_epoch=(self.epoch if incremental else 0) if version >= 7 else -1,
            topics=[FetchRequest_FetchTopic(topic=t, partitions=ps) for t, ps in by_topic.items()],
            forgotten_topics_data=[
                FetchRequest_ForgottenTopic(topic=t, partitions=ps) for t, ps in forgot.items()
            ],
            rack_id="",
        )
        return req, include, forgotten

    def answered(
        self, resp: Any, version: int, include: dict[TopicPartition, int], forgotten: list[TopicPartition]
    ) -> None:
        """Advance the session after a successful answer."""
        if version < 7:
            return
        if self.session_id == 0:
            self.session_id = resp.session_id
            self.sent = dict(include) if resp.session_id else {}
            self.epoch = 1
        else:
            for tp in forgotten:
                self.sent.pop(tp, None)
            self.sent.update(include)
            self.epoch = self.epoch + 1 if self.epoch < 0x7FFFFFFF else 1

    def forget(self, tp: TopicPartition) -> None:
        """Make the next request carry ``tp`` again (after a partition error)."""
        self.sent.pop(tp, None)


_ABORT_MARKER = 0  # control record type of an ABORT marker (1 is COMMIT)


def is_abort_marker(batch: Any) -> bool:
    """True if control batch ``batch`` holds an ABORT marker (key: int16 version, int16 type)."""
    for record in batch.records:
        key = record[2]
        if key is not None and len(key) >= 4:
            return bool(struct.unpack_from(">h", key, 2)[0] == _ABORT_MARKER)
    return False


def committed_batches(batches: Iterable[Any], aborted: Iterable[Any] | None) -> list[Any]:
    """The data batches of ``batches`` a read_committed consumer returns.

    ``aborted`` is the Fetch answer's aborted transactions (``producer_id``,
    ``first_offset``). A transaction's batches are dropped from its first offset until
    its producer's ABORT marker; control batches are never returned. (For
    read_uncommitted pass ``aborted=None``: only control batches go.)
    """
    pending = sorted(((a.first_offset, a.producer_id) for a in aborted or ()), reverse=True)
    aborting: set[int] = set()
    out = []
    for b in batches:
        # Transactions that began at or before this batch's last offset are open for it.
        while pending and pending[-1][0] <= b.last_offset:
            aborting.add(pending.pop()[1])
        if b.is_control:
            if aborting and b.producer_id in aborting and is_abort_marker(b):
                aborting.discard(b.producer_id)
            continue
        if b.is_transactional and b.producer_id in aborting:
            continue
        out.append(b)
    return out


def is_session_error(code: int) -> bool:
    """True for the top-level errors that mean "start a new session"."""
    return code in _SESSION_ERRORS


class Fetcher:
    """The consumer's fetch task: start offsets, one Fetch in flight per leader, buffering.

    ``states`` is the consumer's own dict of assigned partitions: the consumer adds
    and removes entries, the fetcher moves their fetch offsets and fills their
    buffers. ``committed`` (partition -> last committed offset) is shared the same
    way, so that a start offset read with OffsetFetch is not committed again.
    ``data`` is set whenever records or a partition error are ready for ``poll``.
    """

    def __init__(
        self,
        cluster: Cluster,
        config: ClientConfig,
        states: dict[TopicPartition, PartitionState],
        group: GroupMembership | None,
        committed: dict[TopicPartition, int],
        data: asyncio.Event,
    ) -> None:
        self.cluster = cluster
        self.config = config
        self.states = states
        self.group = group
        self.committed = committed
        self.data = data
        self.sessions: dict[int, FetchSession] = {}
        #: Records buffered per partition before its fetches pause (``max_poll_records``).
        self.max_buffered = max(config.max_poll_records, 1)
        self.closed = False
        self.read_committed = config.isolation_level == "read_committed"
        self._fetching: set[int] = set()
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Look at the partitions again now (assignment, seek, resume or a drained buffer)."""
        self._wake.set()

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
                        self.committed[st.tp] = om.offset
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
                    self.data.set()
                    continue
                strategy = EARLIEST if policy == "earliest" else LATEST
            specs[st.tp] = strategy
        if not specs:
            return
        missing = [t for t in {tp.topic for tp in specs} if self.cluster.partitions_for(t) is None]
        if missing:
            with contextlib.suppress(Exception):
                await self.cluster.refresh(missing)
        # Under read_committed "latest" is the last stable offset.
        offsets, errors = await list_offsets(self.cluster, specs, 1 if self.read_committed else 0)
        for tp, off in offsets.items():
            found = self.states.get(tp)
            if found is not None and found.needs_position():
                found.seek(off)
                found.attempts = 0
        if errors:
            for tp in errors:
                found = self.states.get(tp)
                if found is not None:
                    found.failed(now)
            with contextlib.suppress(Exception):
                await self.cluster.refresh(list({tp.topic for tp in errors}))

    async def run(self) -> None:
        """The fetch task: runs until ``closed`` is set or the task is cancelled."""
        while not self.closed:
            self._wake.clear()
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
                await asyncio.wait_for(self._wake.wait(), timeout)

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
            except (ConnectionError, OSError, TimeoutError, AuthenticationError) as exc:
                # An authentication failure reaches poll() through cluster.auth_failure.
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
            self._wake.set()

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
                    fresh = [
                        b for b in decode_batches(records, verify_crc=verify) if b.last_offset >= fetch_offset
                    ]
                    if fresh:
                        # Batches skipped (markers, aborted data) still move the fetch offset.
                        fetch_offset = fresh[-1].last_offset + 1
                    aborted = p.aborted_transactions if self.read_committed else None
                    for b in committed_batches(fresh, aborted):
                        if b.record_count:
                            st.batches.append(b)
                            added += b.record_count
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
            self.data.set()

    async def _refresh_quietly(self, topics: set[str]) -> None:
        with contextlib.suppress(Exception):
            await self.cluster.refresh(list(topics))
