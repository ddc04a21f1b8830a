"""Classic consumer-group membership: FindCoordinator, JoinGroup, SyncGroup, Heartbeat, LeaveGroup,
plus OffsetCommit / OffsetFetch, and the consumer's group task that drives them.

Group requests go to the coordinator over a connection of their own (a pool
entry separate from the data connection to the same broker), so a heartbeat is
never stuck behind a long-polling fetch, whose answer the broker must send first.

``GroupMembership`` speaks the protocol; ``GroupLoop`` is the background task that
heartbeats, rejoins when the coordinator asks, runs rebalances with their
callbacks and commits positions every ``auto_commit_interval_ms``.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import struct
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from streamcore.client.assignors import ASSIGNORS, EAGER, MemberSubscription
from streamcore.client.cluster import Cluster
from streamcore.client.config import ClientConfig
from streamcore.client.connection import BrokerConnection
from streamcore.client.errors import broker_error
from streamcore.client.fetcher import PartitionState
from streamcore.client.retrying import coordinator_moved, is_retriable
from streamcore.client.types import OffsetAndMetadata, TopicPartition
from streamcore.errors import AuthenticationError, ErrorCode, KafkaError
from streamcore.protocol.messages import (
    ConsumerProtocolAssignment,
    ConsumerProtocolAssignment_TopicPartition,
    ConsumerProtocolSubscription,
    ConsumerProtocolSubscription_TopicPartition,
    HeartbeatRequest,
    JoinGroupRequest,
    JoinGroupRequest_JoinGroupRequestProtocol,
    LeaveGroupRequest,
    LeaveGroupRequest_MemberIdentity,
    OffsetCommitRequest,
    OffsetCommitRequest_OffsetCommitRequestPartition,
    OffsetCommitRequest_OffsetCommitRequestTopic,
    OffsetFetchRequest,
    OffsetFetchRequest_OffsetFetchRequestTopic,
    SyncGroupRequest,
    SyncGroupRequest_SyncGroupRequestAssignment,
)

__all__ = [
    "Callback",
    "GroupLoop",
    "GroupMembership",
    "encode_subscription",
    "decode_subscription",
    "encode_assignment",
    "decode_assignment",
]

_SUBSCRIPTION_VERSION = 1  # v1 carries owned partitions, which cooperative-sticky needs
_ASSIGNMENT_VERSION = 0
_COORDINATOR_CONN_BASE = -1_000_000  # pool ids of coordinator connections: base - node id

E = ErrorCode
_REBALANCE = {E.REBALANCE_IN_PROGRESS}
_RESET_MEMBER = {E.UNKNOWN_MEMBER_ID, E.ILLEGAL_GENERATION, E.FENCED_INSTANCE_ID}

log = logging.getLogger("streamcore.client.consumer")

#: A rebalance callback: called with the partitions; may return an awaitable.
Callback = Callable[[list[TopicPartition]], Any]


def _group(tps: list[TopicPartition]) -> dict[str, list[int]]:
    by: dict[str, list[int]] = defaultdict(list)
    for tp in tps:
        by[tp.topic].append(tp.partition)
    return {t: sorted(ps) for t, ps in sorted(by.items())}


def encode_subscription(topics: list[str], owned: list[TopicPartition], generation: int = -1) -> bytes:
    """ConsumerProtocolSubscription bytes: int16 version then the v1 struct."""
    sub = ConsumerProtocolSubscription(
        topics=sorted(topics),
        user_data=None,
        owned_partitions=[
            ConsumerProtocolSubscription_TopicPartition(topic=t, partitions=ps)
            for t, ps in _group(owned).items()
        ],
    )
    return struct.pack(">h", _SUBSCRIPTION_VERSION) + sub.encode(_SUBSCRIPTION_VERSION)


def decode_subscription(member_id: str, raw: bytes, instance_id: str | None = None) -> MemberSubscription:
    """Parse a member's JoinGroup metadata (any version 0-3; newer read as 3)."""
    version = min(struct.unpack_from(">h", raw)[0], ConsumerProtocolSubscription.MAX_VERSION)
    sub = ConsumerProtocolSubscription.decode(memoryview(raw)[2:], max(0, version))
    owned = [TopicPartition(t.topic, p) for t in sub.owned_partitions for p in t.partitions]
    return MemberSubscription(member_id, list(sub.topics), owned, sub.generation_id, instance_id)


def encode_assignment(tps: list[TopicPartition]) -> bytes:
    """ConsumerProtocolAssignment bytes: int16 version then the struct."""
    a = ConsumerProtocolAssignment(
        assigned_partitions=[
            ConsumerProtocolAssignment_TopicPartition(topic=t, partitions=ps) for t, ps in _group(tps).items()
        ],
        user_data=None,
    )
    return struct.pack(">h", _ASSIGNMENT_VERSION) + a.encode(_ASSIGNMENT_VERSION)


def decode_assignment(raw: bytes | None) -> list[TopicPartition]:
    """Partitions in a SyncGroup assignment (empty bytes = nothing assigned)."""
    if not raw or len(raw) < 2:
        return []
    version = min(struct.unpack_from(">h", raw)[0], ConsumerProtocolAssignment.MAX_VERSION)
    a = ConsumerProtocolAssignment.decode(memoryview(raw)[2:], max(0, version))
    return [TopicPartition(t.topic, p) for t in a.assigned_partitions for p in t.partitions]


class GroupMembership:
    """One member of a consumer group (classic protocol)."""

    def __init__(self, cluster: Cluster, group_id: str, config: Any) -> None:
        self.cluster = cluster
        self.group_id = group_id
        self.instance_id: str | None = config.group_instance_id
        self.session_timeout_ms = config.session_timeout_ms
        self.rebalance_timeout_ms = config.max_poll_interval_ms
        self.heartbeat_interval_s = config.heartbeat_interval_ms / 1000.0
        self.strategies: tuple[str, ...] = tuple(config.partition_assignment_strategy)
        self.member_id = ""
        self.generation = -1
        self.protocol: str | None = None
        self.leader_id = ""
        self._coordinator: int | None = None

    @property
    def is_leader(self) -> bool:
        """True if this member led the last rebalance."""
        return bool(self.member_id) and self.member_id == self.leader_id

    # ------------------------------------------------------------------ coordinator connection

    async def coordinator_connection(self) -> BrokerConnection:
        """A connection to the coordinator reserved for group traffic."""
        if self._coordinator is None:
            self._coordinator = await self.cluster.coordinator(self.group_id)
        node = self._coordinator
        host, port = self.cluster.pool.bundle(node).host, self.cluster.pool.bundle(node).port
        private = _COORDINATOR_CONN_BASE - node
        self.cluster.pool.set_address(private, host, port)
        return await self.cluster.pool.get(private)

    def coordinator_lost(self) -> None:
        """Forget the coordinator (NOT_COORDINATOR, network failure): find it again next time."""
        self._coordinator = None
        self.cluster.forget_coordinator(self.group_id)

    async def _request(self, msg: Any) -> Any:
        try:
            conn = await self.coordinator_connection()
            return await conn.request(msg)
        except (ConnectionError, OSError, TimeoutError):
            self.coordinator_lost()
            raise

    def _check(self, code: int, what: str) -> None:
        if code:
            err = broker_error(code, f"{what} (group {self.group_id!r})")
            if coordinator_moved(err):
                self.coordinator_lost()
            raise err

    # ------------------------------------------------------------------ join / sync

    async def join(
        self, topics: list[str], owned: list[TopicPartition], partition_counts: Any
    ) -> tuple[list[TopicPartition], str]:
        """Run one rebalance: JoinGroup (retrying the usual transient errors) then SyncGroup.

        ``partition_counts`` is an async callable topic list -> {topic: partitions},
        used only when this member leads. Returns (assigned partitions, protocol).
        """
        metadata = encode_subscription(topics, owned, self.generation)
        deadline = time.monotonic() + self.rebalance_timeout_ms / 1000.0 + 30.0
        attempt = 0
        while True:
            try:
                return await self._join_once(metadata, partition_counts)
            except KafkaError as exc:
                code = exc.error
                if code in (E.UNKNOWN_MEMBER_ID, E.ILLEGAL_GENERATION):
                    self.member_id = "" if code is E.UNKNOWN_MEMBER_ID else self.member_id
                    self.generation = -1
                elif code is E.FENCED_INSTANCE_ID or not (
                    is_retriable(exc) or code is E.REBALANCE_IN_PROGRESS
                ):
                    raise
                if time.monotonic() >= deadline:
                    raise
            except (ConnectionError, OSError, TimeoutError):
                if time.monotonic() >= deadline:
                    raise
            attempt += 1
            await asyncio.sleep(min(1.0, 0.05 * attempt))

    async def _join_once(self, metadata: bytes, partition_counts: Any) -> tuple[list[TopicPartition], str]:
        req = JoinGroupRequest(
            group_id=self.group_id,
            session_timeout_ms=self.session_timeout_ms,
            rebalance_timeout_ms=self.rebalance_timeout_ms,
            member_id=self.member_id,
            group_instance_id=self.instance_id,
            protocol_type="consumer",
            protocols=[
                JoinGroupRequest_JoinGroupRequestProtocol(name=s, metadata=metadata) for s in self.strategies
            ],
            reason=None,
        )
        resp = await self._request(req)
        if resp.error_code == E.MEMBER_ID_REQUIRED.code:
            self.member_id = resp.member_id
            resp = await self._request(_with_member(req, resp.member_id))
        self._check(resp.error_code, "JoinGroup")
        self.member_id = resp.member_id
        self.generation = resp.generation_id
        self.protocol = resp.protocol_name
        self.leader_id = resp.leader
        assignments: list[SyncGroupRequest_SyncGroupRequestAssignment] = []
        if self.is_leader and not getattr(resp, "skip_assignment", False):
            subs = {
                m.member_id: decode_subscription(m.member_id, m.metadata, m.group_instance_id)
                for m in resp.members
            }
            wanted = sorted({t for s in subs.values() for t in s.topics})
            counts = await partition_counts(wanted)
            plan = ASSIGNORS[self.protocol or self.strategies[0]](subs, counts)
            assignments = [
                SyncGroupRequest_SyncGroupRequestAssignment(member_id=m, assignment=encode_assignment(tps))
                for m, tps in plan.items()
            ]
        sync = SyncGroupRequest(
            group_id=self.group_id,
            generation_id=self.generation,
            member_id=self.member_id,
            group_instance_id=self.instance_id,
            protocol_type="consumer",
            protocol_name=self.protocol,
            assignments=assignments,
        )
        sresp = await self._request(sync)
        self._check(sresp.error_code, "SyncGroup")
        return decode_assignment(sresp.assignment), self.protocol or ""

    # ------------------------------------------------------------------ heartbeat / leave

    async def heartbeat(self) -> None:
        """One heartbeat; raises KafkaError (e.g. REBALANCE_IN_PROGRESS means rejoin)."""
        resp = await self._request(
            HeartbeatRequest(
                group_id=self.group_id,
                generation_id=self.generation,
                member_id=self.member_id,
                group_instance_id=self.instance_id,
            )
        )
        self._check(resp.error_code, "Heartbeat")

    async def leave(self) -> None:
        """LeaveGroup so the others rebalance at once (skipped for static members, like Java)."""
        if not self.member_id or self.instance_id is not None:
            return
        conn = await self.coordinator_connection()
        version = conn.version_for(LeaveGroupRequest)
        if version >= 3:
            req = LeaveGroupRequest(
                group_id=self.group_id,
                members=[
                    LeaveGroupRequest_MemberIdentity(
                        member_id=self.member_id, group_instance_id=self.instance_id
                    )
                ],
            )
        else:
            req = LeaveGroupRequest(group_id=self.group_id, member_id=self.member_id)
        try:
            await conn.request(req, version)
        finally:
            self.member_id = ""
            self.generation = -1

    # ------------------------------------------------------------------ offsets

    async def commit(
        self, offsets: Mapping[TopicPartition, OffsetAndMetadata], *, member: bool = True
    ) -> None:
        """OffsetCommit ``offsets``; ``member`` False commits as a non-member (manual assignment)."""
        if not offsets:
            return
        by_topic: dict[str, list[OffsetCommitRequest_OffsetCommitRequestPartition]] = defaultdict(list)
        for tp, om in offsets.items():
            by_topic[tp.topic].append(
                OffsetCommitRequest_OffsetCommitRequestPartition(
                    partition_index=tp.partition,
                    committed_offset=om.offset,
                    committed_leader_epoch=-1,
                    commit_timestamp=-1,
                    committed_metadata=om.metadata,
                )
            )
        req = OffsetCommitRequest(
            group_id=self.group_id,
            generation_id_or_member_epoch=self.generation if member else -1,
            member_id=self.member_id if member else "",
            group_instance_id=self.instance_id if member else None,
            retention_time_ms=-1,
            topics=[
                OffsetCommitRequest_OffsetCommitRequestTopic(name=t, partitions=ps)
                for t, ps in by_topic.items()
            ],
        )
        resp = await self._request(req)
        for t in resp.topics:
            for p in t.partitions:
                self._check(p.error_code, f"OffsetCommit {t.name}-{p.partition_index}")

    async def fetch_committed(
        self, tps: list[TopicPartition]
    ) -> dict[TopicPartition, OffsetAndMetadata | None]:
        """Committed offsets of ``tps`` (None where nothing is committed)."""
        req = OffsetFetchRequest(
            group_id=self.group_id,
            topics=[
                OffsetFetchRequest_OffsetFetchRequestTopic(name=t, partition_indexes=ps)
                for t, ps in _group(tps).items()
            ],
            require_stable=False,
        )
        resp = await self._request(req)
        self._check(getattr(resp, "error_code", 0), "OffsetFetch")
        out: dict[TopicPartition, OffsetAndMetadata | None] = dict.fromkeys(tps)
        for t in resp.topics:
            for p in t.partitions:
                self._check(p.error_code, f"OffsetFetch {t.name}-{p.partition_index}")
                tp = TopicPartition(t.name, p.partition_index)
                out[tp] = (
                    OffsetAndMetadata(p.committed_offset, p.metadata or "")
                    if p.committed_offset >= 0
                    else None
                )
        return out


def _with_member(req: JoinGroupRequest, member_id: str) -> JoinGroupRequest:
    req.member_id = member_id
    return req


async def _call(cb: Callback | None, parts: list[TopicPartition]) -> None:
    if cb is None:
        return
    res = cb(parts)
    if inspect.isawaitable(res):
        await res


class GroupLoop:
    """The consumer's group task: heartbeats, rebalances, rebalance callbacks, auto-commit.

    ``states`` and ``committed`` are the consumer's own dicts (assigned partitions,
    last committed offset per partition): a rebalance adds and removes entries.
    ``commit_positions(parts)`` commits the consumer's positions of ``parts`` (all
    assigned when None); ``wake_fetcher`` tells the fetch task the assignment
    changed; ``data`` is set when an error must reach ``poll`` (a fenced member).
    """

    def __init__(
        self,
        membership: GroupMembership,
        config: ClientConfig,
        states: dict[TopicPartition, PartitionState],
        committed: dict[TopicPartition, int],
        commit_positions: Callable[[Iterable[TopicPartition] | None], Awaitable[None]],
        wake_fetcher: Callable[[], None],
        data: asyncio.Event,
    ) -> None:
        self.membership = membership
        self.config = config
        self.states = states
        self.committed = committed
        self.commit_positions = commit_positions
        self.wake_fetcher = wake_fetcher
        self.data = data
        self.subscription: list[str] | None = None
        self.on_assign: Callback | None = None
        self.on_revoke: Callback | None = None
        #: Monotonic time of the last commit (auto-commit waits an interval after any commit).
        self.last_commit = time.monotonic()
        #: A fatal group error (FENCED_INSTANCE_ID) for the next poll to raise.
        self.error: BaseException | None = None
        self.closed = False
        self._rejoin = asyncio.Event()
        self._joined = asyncio.Event()

    def rejoin(self) -> None:
        """Run a rebalance at the next turn of the loop (after subscribe)."""
        self._rejoin.set()

    async def _partition_counts(self, topics: list[str]) -> dict[str, int]:
        out = {}
        cluster = self.membership.cluster
        for t in topics:
            try:
                out[t] = len(await cluster.wait_for_partitions(t, self.config.request_timeout_ms / 1000.0))
            except (KafkaError, TimeoutError):
                out[t] = 0
        return out

    async def run(self) -> None:
        """The group task: runs until ``closed`` is set or the task is cancelled."""
        group = self.membership
        interval = group.heartbeat_interval_s
        while not self.closed:
            try:
                if self._rejoin.is_set() and self.subscription is not None:
                    self._rejoin.clear()
                    await self._rebalance()
                elif group.generation >= 0:
                    await group.heartbeat()
                if self.config.enable_auto_commit and time.monotonic() - self.last_commit >= (
                    self.config.auto_commit_interval_ms / 1000.0
                ):
                    await self.commit_positions(None)
            except asyncio.CancelledError:
                raise
            except KafkaError as exc:
                if exc.error in _REBALANCE:
                    self._rejoin.set()
                elif exc.error in _RESET_MEMBER:
                    if exc.error is E.FENCED_INSTANCE_ID:
                        self.error = exc
                        self.data.set()
                        return
                    group.member_id = "" if exc.error is E.UNKNOWN_MEMBER_ID else group.member_id
                    group.generation = -1
                    await self._revoke(list(self.states), lost=True)
                    self._rejoin.set()
                elif coordinator_moved(exc):
                    group.coordinator_lost()
                else:
                    log.warning("consumer group %s: %s", group.group_id, exc)
            except (ConnectionError, OSError, TimeoutError) as exc:
                log.info("consumer group %s: coordinator unreachable (%s), retrying", group.group_id, exc)
                group.coordinator_lost()
            except AuthenticationError as exc:
                # poll() raises it (cluster.auth_failure); try again after a heartbeat interval.
                log.warning("consumer group %s: %s", group.group_id, exc)
                group.coordinator_lost()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._rejoin.wait(), interval)

    async def _rebalance(self) -> None:
        group = self.membership
        assert self.subscription is not None
        owned = sorted(self.states)
        eager = (group.protocol or group.strategies[0]) in EAGER
        if eager and owned:
            await self._revoke(owned)
            owned = []
        assigned, protocol = await group.join(self.subscription, owned, self._partition_counts)
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
        self.wake_fetcher()
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
            self.committed.pop(tp, None)

    async def wait_for_assignment(self, timeout: float) -> None:
        """Wait (up to ``timeout`` s) for the first rebalance to finish."""
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._joined.wait(), timeout)
