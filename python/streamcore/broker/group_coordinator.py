"""Classic consumer-group protocol (JoinGroup / SyncGroup / Heartbeat / LeaveGroup).

One :class:`GroupCoordinator` holds every group of the broker in memory. It is
asyncio-based: ``join_group`` and ``sync_group`` are coroutines that return when
the rebalance step they wait for completes; session and rebalance timeouts are
``loop.call_later`` timers. It never touches the wire format: the handlers
convert requests to these calls and the returned result types
(:mod:`streamcore.broker.group_types`, re-exported here) to responses.

States (as Kafka names them): Empty -> PreparingRebalance -> CompletingRebalance
-> Stable, back to PreparingRebalance on any membership or subscription change,
and Dead once deleted.

Promptness (see DESIGN "Joins must be prompt"): a rebalance completes as soon as
every known member has (re)joined and no member id handed out with
MEMBER_ID_REQUIRED is still outstanding, or when the rebalance timeout (the
largest of the members' rebalance timeouts) expires, whichever comes first.
With ``initial_rebalance_delay_ms == 0`` a new group's first join is answered at
once.

Each member keeps the protocol list it sent in its own latest JoinGroup; a
member's subscription is never replaced by another member's.

All methods must be called from the event loop's thread.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from streamcore.broker.group_types import (
    GroupDescription,
    GroupListing,
    GroupState,
    JoinMemberInfo,
    JoinResult,
    LeaveMemberResult,
    MemberDescription,
    SyncResult,
)
from streamcore.errors import ErrorCode

__all__ = [
    "GroupState",
    "GroupCoordinator",
    "JoinResult",
    "JoinMemberInfo",
    "SyncResult",
    "LeaveMemberResult",
    "GroupDescription",
    "MemberDescription",
    "GroupListing",
]

_NONE = ErrorCode.NO_ERROR.code
_UNKNOWN_MEMBER_ID = ErrorCode.UNKNOWN_MEMBER_ID.code
_ILLEGAL_GENERATION = ErrorCode.ILLEGAL_GENERATION.code
_REBALANCE_IN_PROGRESS = ErrorCode.REBALANCE_IN_PROGRESS.code
_FENCED_INSTANCE_ID = ErrorCode.FENCED_INSTANCE_ID.code
_INCONSISTENT_GROUP_PROTOCOL = ErrorCode.INCONSISTENT_GROUP_PROTOCOL.code
_COORDINATOR_NOT_AVAILABLE = ErrorCode.COORDINATOR_NOT_AVAILABLE.code


@dataclass
class _Member:
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    session_timeout_ms: int
    rebalance_timeout_ms: int
    protocol_type: str
    protocols: list[tuple[str, bytes]]
    assignment: bytes = b""
    join_future: asyncio.Future[JoinResult] | None = None
    sync_future: asyncio.Future[SyncResult] | None = None
    heartbeat_timer: asyncio.TimerHandle | None = None

    @property
    def awaiting_join(self) -> bool:
        return self.join_future is not None and not self.join_future.done()

    @property
    def awaiting_sync(self) -> bool:
        return self.sync_future is not None and not self.sync_future.done()

    def protocol_names(self) -> set[str]:
        return {name for name, _ in self.protocols}

    def metadata_for(self, protocol: str) -> bytes:
        for name, meta in self.protocols:
            if name == protocol:
                return meta
        return b""


@dataclass
class _Group:
    group_id: str
    state: GroupState = GroupState.EMPTY
    generation_id: int = 0
    protocol_type: str | None = None
    protocol_name: str | None = None
    leader_id: str | None = None
    # insertion order = join order; the first member becomes leader
    members: dict[str, _Member] = field(default_factory=dict)
    static_members: dict[str, str] = field(default_factory=dict)  # instance id -> member id
    pending_members: dict[str, asyncio.TimerHandle] = field(default_factory=dict)
    rebalance_timer: asyncio.TimerHandle | None = None
    initial_delay_done: bool = True
    #: Wall-clock ms when the group last became Empty (offset expiry uses it).
    empty_since_ms: int | None = None

    def supported_protocols(self) -> set[str]:
        """Protocols every current member supports."""
        names: set[str] | None = None
        for m in self.members.values():
            names = m.protocol_names() if names is None else names & m.protocol_names()
        return names or set()

    def select_protocol(self) -> str:
        """Kafka's rule: each member votes for its first listed protocol all members support;
        most votes wins, ties broken by the order of the first voter's preference."""
        candidates = self.supported_protocols()
        votes: dict[str, int] = {}
        for m in self.members.values():
            for name, _ in m.protocols:
                if name in candidates:
                    votes[name] = votes.get(name, 0) + 1
                    break
        best = max(votes.values())
        return next(name for name, count in votes.items() if count == best)

    def all_joined(self) -> bool:
        return not self.pending_members and all(m.awaiting_join for m in self.members.values())

    def is_static_fenced(self, member_id: str, group_instance_id: str | None) -> bool:
        if group_instance_id is None:
            return False
        known = self.static_members.get(group_instance_id)
        return known is not None and known != member_id


class GroupCoordinator:
    """Every consumer group of the broker.

    ``min_session_timeout_ms`` / ``max_session_timeout_ms`` bound what a member may ask
    (INVALID_SESSION_TIMEOUT otherwise). ``initial_rebalance_delay_ms`` holds the first
    rebalance of an empty group that long (0 = answer at once). ``on_rebalance`` is
    called with ``(group_id, generation_id)`` each time a rebalance completes;
    ``rebalance_count`` counts them too. ``member_id_prefix`` is put before generated
    member ids when a client id is missing.
    """

    def __init__(
        self,
        *,
        min_session_timeout_ms: int = 6000,
        max_session_timeout_ms: int = 1_800_000,
        initial_rebalance_delay_ms: int = 0,
        on_rebalance: Callable[[str, int], None] | None = None,
        wall_clock_ms: Callable[[], int] | None = None,
    ) -> None:
        self.min_session_timeout_ms = min_session_timeout_ms
        self.max_session_timeout_ms = max_session_timeout_ms
        self.initial_rebalance_delay_ms = initial_rebalance_delay_ms
        self.on_rebalance = on_rebalance
        self.rebalance_count = 0
        self._wall_ms = wall_clock_ms or (lambda: int(time.time() * 1000))
        self._groups: dict[str, _Group] = {}

    @classmethod
    def from_config(cls, groups_config: object, **kwargs: object) -> GroupCoordinator:
        """Build from a :class:`streamcore.broker.config.GroupsConfig`."""
        return cls(
            min_session_timeout_ms=groups_config.min_session_timeout_ms,  # type: ignore[attr-defined]
            max_session_timeout_ms=groups_config.max_session_timeout_ms,  # type: ignore[attr-defined]
            initial_rebalance_delay_ms=groups_config.initial_rebalance_delay_ms,  # type: ignore[attr-defined]
            **kwargs,  # type: ignore[arg-type]
        )

    # ------------------------------------------------------------------ queries

    def state(self, group_id: str) -> GroupState | None:
        """Current state of a group, None if unknown."""
        g = self._groups.get(group_id)
        return g.state if g else None

    def generation(self, group_id: str) -> int:
        """Current generation id of a group (0 for a new one, -1 if unknown)."""
        g = self._groups.get(group_id)
        return g.generation_id if g else -1

    def member_ids(self, group_id: str) -> list[str]:
        """Member ids of a group in join order."""
        g = self._groups.get(group_id)
        return list(g.members) if g else []

    def has_members(self, group_id: str) -> bool:
        """True when the group exists and has at least one member."""
        g = self._groups.get(group_id)
        return bool(g and g.members)

    def empty_since_ms(self, group_id: str) -> int | None:
        """Wall-clock ms since which a group has had no members: None while it has some, 0 if unknown."""
        g = self._groups.get(group_id)
        if g is None:
            return 0
        return g.empty_since_ms if not g.members else None

    def member_subscriptions(self, group_id: str) -> tuple[str, list[bytes]]:
        """(protocol type, each member's protocol metadata) of a group; ("", []) without members.

        The metadata is the member's for the group's selected protocol, or its first
        (preferred) protocol while none is selected; for a consumer group it is a
        ConsumerProtocolSubscription, which says the topics the member consumes.
        """
        g = self._groups.get(group_id)
        if g is None or not g.members:
            return "", []
        out = []
        for m in g.members.values():
            name = g.protocol_name or (m.protocols[0][0] if m.protocols else "")
            out.append(m.metadata_for(name))
        return g.protocol_type or "", out

    def describe_group(self, group_id: str) -> GroupDescription:
        """DescribeGroups data; an unknown group is reported Dead with no members."""
        g = self._groups.get(group_id)
        if g is None:
            return GroupDescription(group_id, _NONE, GroupState.DEAD.value, "", "", ())
        stable = g.state is GroupState.STABLE
        members = tuple(
            MemberDescription(
                member_id=m.member_id,
                group_instance_id=m.group_instance_id,
                client_id=m.client_id,
                client_host=m.client_host,
                metadata=m.metadata_for(g.protocol_name or "") if stable else b"",
                assignment=m.assignment if stable else b"",
            )
            for m in g.members.values()
        )
        return GroupDescription(
            group_id=group_id,
            error_code=_NONE,
            state=g.state.value,
            protocol_type=g.protocol_type or "",
            protocol_name=(g.protocol_name or "") if stable else "",
            members=members,
        )

    def list_groups(self, states: Iterable[str] | None = None) -> list[GroupListing]:
        """ListGroups data, optionally only groups in the given states (names as Kafka spells them)."""
        wanted = {s.lower() for s in states} if states else None
        out = []
        for g in self._groups.values():
            if g.state is GroupState.DEAD:
                continue
            if wanted is not None and g.state.value.lower() not in wanted:
                continue
            out.append(GroupListing(g.group_id, g.protocol_type or "", g.state.value))
        return out

    # ------------------------------------------------------------------ JoinGroup

    async def join_group(
        self,
        group_id: str,
        member_id: str,
        group_instance_id: str | None,
        client_id: str,
        client_host: str,
        session_timeout_ms: int,
        rebalance_timeout_ms: int,
        protocol_type: str,
        protocols: Sequence[tuple[str, bytes]],
        *,
        require_known_member_id: bool = False,
    ) -> JoinResult:
        """Handle one JoinGroup; returns when the member's rebalance completes.

        ``require_known_member_id`` is True for JoinGroup v4+: a dynamic member joining
        with an empty id gets MEMBER_ID_REQUIRED and a fresh id to rejoin with.
        ``rebalance_timeout_ms`` of -1 (JoinGroup v0) means "same as the session timeout".
        """
        if rebalance_timeout_ms < 0:
            rebalance_timeout_ms = session_timeout_ms
        protocols = [(str(name), bytes(meta)) for name, meta in protocols]
        if not group_id:
            return JoinResult(ErrorCode.INVALID_GROUP_ID.code, member_id=member_id)
        if not (self.min_session_timeout_ms <= session_timeout_ms <= self.max_session_timeout_ms):
            return JoinResult(ErrorCode.INVALID_SESSION_TIMEOUT.code, member_id=member_id)
        g = self._groups.get(group_id)
        if g is None:
            if member_id:
                return JoinResult(_UNKNOWN_MEMBER_ID, member_id=member_id)
            g = _Group(group_id, empty_since_ms=self._wall_ms())
            self._groups[group_id] = g
        if g.state is GroupState.DEAD:
            # The group was deleted while the request was queued; the client re-discovers.
            return JoinResult(_COORDINATOR_NOT_AVAILABLE, member_id=member_id)
        if not self._protocols_compatible(g, protocol_type, protocols):
            return JoinResult(_INCONSISTENT_GROUP_PROTOCOL, member_id=member_id)

        loop = asyncio.get_running_loop()
        new_member_args = (
            group_instance_id,
            client_id,
            client_host,
            session_timeout_ms,
            rebalance_timeout_ms,
            protocol_type,
            protocols,
        )
        if not member_id or (member_id in g.pending_members):
            if group_instance_id is not None and group_instance_id in g.static_members:
                return await self._rejoin_static_with_new_id(g, loop, group_instance_id, *new_member_args[1:])
            if not member_id and require_known_member_id and group_instance_id is None:
                new_id = self._new_member_id(client_id)
                g.pending_members[new_id] = loop.call_later(
                    session_timeout_ms / 1000.0, self._expire_pending_member, g, new_id
                )
                return JoinResult(ErrorCode.MEMBER_ID_REQUIRED.code, member_id=new_id)
            if member_id:
                g.pending_members.pop(member_id).cancel()
            else:
                member_id = self._new_member_id(client_id)
            member = _Member(member_id, *new_member_args)
            return await self._add_member_and_rebalance(g, loop, member)

        # a known member id
        if g.is_static_fenced(member_id, group_instance_id):
            return JoinResult(_FENCED_INSTANCE_ID, member_id=member_id)
        known = g.members.get(member_id)
        if known is None or g.state is GroupState.EMPTY:
            return JoinResult(_UNKNOWN_MEMBER_ID, member_id=member_id)
        member = known
        member.client_id, member.client_host = client_id, client_host
        member.session_timeout_ms, member.rebalance_timeout_ms = session_timeout_ms, rebalance_timeout_ms
        unchanged = member.protocols == protocols
        if g.state is GroupState.PREPARING_REBALANCE:
            return await self._update_member_and_wait(g, loop, member, protocols)
        if g.state is GroupState.COMPLETING_REBALANCE:
            if unchanged:
                # The member lost our previous answer: repeat it.
                self._schedule_heartbeat(g, member)
                return self._join_answer(g, member)
            return await self._update_member_and_rebalance(g, loop, member, protocols)
        # Stable
        if member_id == g.leader_id or not unchanged:
            # The leader rejoining (e.g. metadata change seen by it) or a new subscription.
            return await self._update_member_and_rebalance(g, loop, member, protocols)
        self._schedule_heartbeat(g, member)
        return self._join_answer(g, member, with_members=False)

    def _protocols_compatible(
        self, g: _Group, protocol_type: str, protocols: list[tuple[str, bytes]]
    ) -> bool:
        if not protocol_type or not protocols:
            return False
        if not g.members:
            return True
        if g.protocol_type != protocol_type:
            return False
        return bool(g.supported_protocols() & {name for name, _ in protocols})

    @staticmethod
    def _new_member_id(client_id: str) -> str:
        return f"{client_id or 'member'}-{uuid.uuid4()}"

    async def _await_join(self, fut: asyncio.Future[JoinResult]) -> JoinResult:
        # shield: a cancelled request (client went away) must not cancel the group's bookkeeping
        return await asyncio.shield(fut)

    async def _add_member_and_rebalance(
        self, g: _Group, loop: asyncio.AbstractEventLoop, member: _Member
    ) -> JoinResult:
        if not g.members:
            g.protocol_type = member.protocol_type
        g.members[member.member_id] = member
        g.empty_since_ms = None
        if member.group_instance_id is not None:
            g.static_members[member.group_instance_id] = member.member_id
        if g.leader_id is None:
            g.leader_id = member.member_id
        fut: asyncio.Future[JoinResult] = loop.create_future()
        member.join_future = fut
        self._cancel_heartbeat(member)
        self._prepare_rebalance(g, loop)
        self._maybe_complete_join(g)
        return await self._await_join(fut)

    async def _update_member_and_wait(
        self, g: _Group, loop: asyncio.AbstractEventLoop, member: _Member, protocols: list[tuple[str, bytes]]
    ) -> JoinResult:
        member.protocols = protocols
        if member.awaiting_join:
            # a duplicate join while waiting: the older request gets a retriable answer
            assert member.join_future is not None
            member.join_future.set_result(JoinResult(_REBALANCE_IN_PROGRESS, member_id=member.member_id))
        fut: asyncio.Future[JoinResult] = loop.create_future()
        member.join_future = fut
        self._cancel_heartbeat(member)
        self._maybe_complete_join(g)
        return await self._await_join(fut)

    async def _update_member_and_rebalance(
        self, g: _Group, loop: asyncio.AbstractEventLoop, member: _Member, protocols: list[tuple[str, bytes]]
    ) -> JoinResult:
        self._prepare_rebalance(g, loop)
        return await self._update_member_and_wait(g, loop, member, protocols)

    async def _rejoin_static_with_new_id(
        self,
        g: _Group,
        loop: asyncio.AbstractEventLoop,
        group_instance_id: str,
        client_id: str,
        client_host: str,
        session_timeout_ms: int,
        rebalance_timeout_ms: int,
        protocol_type: str,
        protocols: list[tuple[str, bytes]],
    ) -> JoinResult:
        """KIP-345: a known static member restarts; its new id replaces (and fences) the old one."""
        old_id = g.static_members[group_instance_id]
        old = g.members[old_id]
        new_id = self._new_member_id(client_id)
        if old.awaiting_join:
            assert old.join_future is not None
            old.join_future.set_result(JoinResult(_FENCED_INSTANCE_ID, member_id=old_id))
        if old.awaiting_sync:
            assert old.sync_future is not None
            old.sync_future.set_result(SyncResult(_FENCED_INSTANCE_ID))
        self._cancel_heartbeat(old)
        member = _Member(
            new_id,
            group_instance_id,
            client_id,
            client_host,
            session_timeout_ms,
            rebalance_timeout_ms,
            protocol_type,
            old.protocols,
            assignment=old.assignment,
        )
        # the new id takes the old one's place in join order (leader choice depends on it)
        g.members = {
            (new_id if mid == old_id else mid): (member if mid == old_id else m)
            for mid, m in g.members.items()
        }
        g.static_members[group_instance_id] = new_id
        previous_leader = g.leader_id
        if g.leader_id == old_id:
            g.leader_id = new_id
        unchanged = old.protocols == protocols
        member.protocols = protocols
        if g.state is GroupState.STABLE and unchanged:
            # No rebalance: answer with the current generation. The old leader id is
            # returned so that a restarted leader does not run a trivial assignment
            # that a Stable group would never distribute.
            self._schedule_heartbeat(g, member)
            return JoinResult(
                _NONE,
                generation_id=g.generation_id,
                protocol_type=g.protocol_type,
                protocol_name=g.protocol_name,
                leader_id=previous_leader or "",
                member_id=new_id,
            )
        fut: asyncio.Future[JoinResult] = loop.create_future()
        member.join_future = fut
        if g.state is not GroupState.PREPARING_REBALANCE:
            self._prepare_rebalance(g, loop)
        self._maybe_complete_join(g)
        return await self._await_join(fut)

    # ------------------------------------------------------------------ rebalance machinery

    def _prepare_rebalance(self, g: _Group, loop: asyncio.AbstractEventLoop) -> None:
        if g.state is GroupState.PREPARING_REBALANCE:
            return
        if g.state is GroupState.COMPLETING_REBALANCE:
            # members waiting on SyncGroup must rejoin
            for m in g.members.values():
                if m.awaiting_sync:
                    assert m.sync_future is not None
                    m.sync_future.set_result(SyncResult(_REBALANCE_IN_PROGRESS))
        was_empty = g.state is GroupState.EMPTY
        g.state = GroupState.PREPARING_REBALANCE
        timeout_ms = max((m.rebalance_timeout_ms for m in g.members.values()), default=0)
        if was_empty and self.initial_rebalance_delay_ms > 0:
            g.initial_delay_done = False
            delay = self.initial_rebalance_delay_ms
            loop.call_later(delay / 1000.0, self._initial_delay_over, g)
            timeout_ms = max(timeout_ms, delay)
        if g.rebalance_timer is not None:
            g.rebalance_timer.cancel()
        g.rebalance_timer = loop.call_later(timeout_ms / 1000.0, self._rebalance_timeout, g)

    def _initial_delay_over(self, g: _Group) -> None:
        g.initial_delay_done = True
        self._maybe_complete_join(g)

    def _maybe_complete_join(self, g: _Group) -> None:
        if g.state is GroupState.PREPARING_REBALANCE and g.initial_delay_done and g.all_joined():
            self._complete_join(g)

    def _rebalance_timeout(self, g: _Group) -> None:
        if g.state is not GroupState.PREPARING_REBALANCE:
            return
        # members that did not rejoin in time are dropped, static ones included
        for mid, m in list(g.members.items()):
            if not m.awaiting_join:
                self._remove_member(g, mid)
        for handle in g.pending_members.values():
            handle.cancel()
        g.pending_members.clear()
        g.initial_delay_done = True
        self._complete_join(g)

    def _complete_join(self, g: _Group) -> None:
        if g.rebalance_timer is not None:
            g.rebalance_timer.cancel()
            g.rebalance_timer = None
        g.generation_id += 1
        self.rebalance_count += 1
        if not g.members:
            g.state = GroupState.EMPTY
            g.protocol_name = None
            g.protocol_type = None
            g.leader_id = None
            g.empty_since_ms = self._wall_ms()
        else:
            g.state = GroupState.COMPLETING_REBALANCE
            g.protocol_name = g.select_protocol()
            if g.leader_id not in g.members:
                g.leader_id = next(iter(g.members))
            for m in g.members.values():
                m.assignment = b""
                fut = m.join_future
                if fut is not None and not fut.done():
                    fut.set_result(self._join_answer(g, m))
                self._schedule_heartbeat(g, m)
        if self.on_rebalance is not None:
            self.on_rebalance(g.group_id, g.generation_id)

    def _join_answer(self, g: _Group, m: _Member, *, with_members: bool = True) -> JoinResult:
        is_leader = m.member_id == g.leader_id
        members: tuple[JoinMemberInfo, ...] = ()
        if is_leader and with_members:
            members = tuple(
                JoinMemberInfo(x.member_id, x.group_instance_id, x.metadata_for(g.protocol_name or ""))
                for x in g.members.values()
            )
        return JoinResult(
            _NONE,
            generation_id=g.generation_id,
            protocol_type=g.protocol_type,
            protocol_name=g.protocol_name,
            leader_id=g.leader_id or "",
            member_id=m.member_id,
            members=members,
        )

    def _remove_member(self, g: _Group, member_id: str) -> None:
        m = g.members.pop(member_id)
        self._cancel_heartbeat(m)
        if m.group_instance_id is not None and g.static_members.get(m.group_instance_id) == member_id:
            del g.static_members[m.group_instance_id]
        if m.awaiting_join:
            assert m.join_future is not None
            m.join_future.set_result(JoinResult(_UNKNOWN_MEMBER_ID, member_id=member_id))
        if m.awaiting_sync:
            assert m.sync_future is not None
            m.sync_future.set_result(SyncResult(_UNKNOWN_MEMBER_ID))
        if g.leader_id == member_id:
            g.leader_id = next(iter(g.members), None)

    def _member_gone(self, g: _Group, member_id: str) -> None:
        """Remove a member (expiry or LeaveGroup) and move the group on."""
        self._remove_member(g, member_id)
        if g.state in (GroupState.STABLE, GroupState.COMPLETING_REBALANCE):
            self._prepare_rebalance(g, asyncio.get_running_loop())
        self._maybe_complete_join(g)

    # ------------------------------------------------------------------ session timers

    def _schedule_heartbeat(self, g: _Group, m: _Member) -> None:
        self._cancel_heartbeat(m)
        loop = asyncio.get_running_loop()
        m.heartbeat_timer = loop.call_later(
            m.session_timeout_ms / 1000.0, self._session_expired, g, m.member_id
        )

    @staticmethod
    def _cancel_heartbeat(m: _Member) -> None:
        if m.heartbeat_timer is not None:
            m.heartbeat_timer.cancel()
            m.heartbeat_timer = None

    def _session_expired(self, g: _Group, member_id: str) -> None:
        m = g.members.get(member_id)
        if m is None:
            return
        if m.awaiting_join or m.awaiting_sync:
            # a member parked in a join/sync is alive by definition (Kafka keeps it too);
            # its session clock starts again once it is answered
            self._schedule_heartbeat(g, m)
            return
        self._member_gone(g, member_id)

    def _expire_pending_member(self, g: _Group, member_id: str) -> None:
        if g.pending_members.pop(member_id, None) is not None:
            self._maybe_complete_join(g)

    # ------------------------------------------------------------------ SyncGroup

    async def sync_group(
        self,
        group_id: str,
        generation_id: int,
        member_id: str,
        group_instance_id: str | None,
        assignments: Sequence[tuple[str, bytes]],
        *,
        protocol_type: str | None = None,
        protocol_name: str | None = None,
    ) -> SyncResult:
        """Handle one SyncGroup; followers wait until the leader has sent the assignment.

        ``assignments`` (member id, assignment bytes) is only read from the leader;
        members it leaves out get an empty assignment. ``protocol_type``/``protocol_name``
        (SyncGroup v5+) must match the group's when given.
        """
        g = self._groups.get(group_id)
        if g is None or g.state is GroupState.DEAD:
            return SyncResult(_UNKNOWN_MEMBER_ID if g is None else _COORDINATOR_NOT_AVAILABLE)
        if g.is_static_fenced(member_id, group_instance_id):
            return SyncResult(_FENCED_INSTANCE_ID)
        member = g.members.get(member_id)
        if member is None:
            return SyncResult(_UNKNOWN_MEMBER_ID)
        if generation_id != g.generation_id:
            return SyncResult(_ILLEGAL_GENERATION)
        if (protocol_type is not None and protocol_type != g.protocol_type) or (
            protocol_name is not None and protocol_name != g.protocol_name
        ):
            return SyncResult(_INCONSISTENT_GROUP_PROTOCOL)
        if g.state is GroupState.PREPARING_REBALANCE:
            return SyncResult(_REBALANCE_IN_PROGRESS)
        if g.state is GroupState.STABLE:
            self._schedule_heartbeat(g, member)
            return self._sync_answer(g, member)
        # CompletingRebalance
        loop = asyncio.get_running_loop()
        if member.awaiting_sync:
            assert member.sync_future is not None
            member.sync_future.set_result(SyncResult(_REBALANCE_IN_PROGRESS))
        fut: asyncio.Future[SyncResult] = loop.create_future()
        member.sync_future = fut
        self._schedule_heartbeat(g, member)
        if member_id == g.leader_id:
            given = {mid: bytes(a) for mid, a in assignments}
            for mid, m in g.members.items():
                m.assignment = given.get(mid, b"")
            g.state = GroupState.STABLE
            for m in g.members.values():
                if m.awaiting_sync:
                    assert m.sync_future is not None
                    m.sync_future.set_result(self._sync_answer(g, m))
        return await asyncio.shield(fut)

    @staticmethod
    def _sync_answer(g: _Group, m: _Member) -> SyncResult:
        return SyncResult(_NONE, m.assignment, g.protocol_type, g.protocol_name)

    # ------------------------------------------------------------------ Heartbeat

    def heartbeat(
        self, group_id: str, generation_id: int, member_id: str, group_instance_id: str | None
    ) -> int:
        """Handle one Heartbeat; returns the error code (REBALANCE_IN_PROGRESS asks the member to rejoin)."""
        g = self._groups.get(group_id)
        if g is None:
            return _UNKNOWN_MEMBER_ID
        if g.state is GroupState.DEAD:
            return _COORDINATOR_NOT_AVAILABLE
        if g.is_static_fenced(member_id, group_instance_id):
            return _FENCED_INSTANCE_ID
        member = g.members.get(member_id)
        if member is None or g.state is GroupState.EMPTY:
            return _UNKNOWN_MEMBER_ID
        if generation_id != g.generation_id:
            return _ILLEGAL_GENERATION
        if not (member.awaiting_join or member.awaiting_sync):
            self._schedule_heartbeat(g, member)
        if g.state is GroupState.PREPARING_REBALANCE:
            return _REBALANCE_IN_PROGRESS
        return _NONE

    # ------------------------------------------------------------------ LeaveGroup

    def leave_group(
        self, group_id: str, members: Sequence[tuple[str, str | None]]
    ) -> tuple[int, list[LeaveMemberResult]]:
        """Handle LeaveGroup for (member_id, group_instance_id) pairs.

        Returns (top-level error, per-member results). For v0-2 the handler sends the one
        member's error as the top-level error. A static member may leave by instance id
        with an empty member id.
        """
        g = self._groups.get(group_id)
        if g is None:
            return _NONE, [LeaveMemberResult(mid, iid, _UNKNOWN_MEMBER_ID) for mid, iid in members]
        if g.state is GroupState.DEAD:
            return _COORDINATOR_NOT_AVAILABLE, []
        results = []
        for mid, iid in members:
            if iid is not None:
                known = g.static_members.get(iid)
                if known is None:
                    results.append(LeaveMemberResult(mid, iid, _UNKNOWN_MEMBER_ID))
                    continue
                if mid and mid != known:
                    results.append(LeaveMemberResult(mid, iid, _FENCED_INSTANCE_ID))
                    continue
                self._member_gone(g, known)
                results.append(LeaveMemberResult(mid, iid, _NONE))
            elif mid in g.pending_members:
                g.pending_members.pop(mid).cancel()
                self._maybe_complete_join(g)
                results.append(LeaveMemberResult(mid, iid, _NONE))
            elif mid in g.members:
                self._member_gone(g, mid)
                results.append(LeaveMemberResult(mid, iid, _NONE))
            else:
                results.append(LeaveMemberResult(mid, iid, _UNKNOWN_MEMBER_ID))
        return _NONE, results

    # ------------------------------------------------------------------ OffsetCommit validation, DeleteGroups

    def validate_commit(
        self, group_id: str, generation_id: int, member_id: str, group_instance_id: str | None
    ) -> int:
        """Error code for an OffsetCommit (the offset store calls this before storing).

        A commit with generation -1 (and usually an empty member id) is a "simple"
        commit, accepted for an unknown group or a group without members.
        """
        g = self._groups.get(group_id)
        if g is None:
            return _NONE if generation_id < 0 else _ILLEGAL_GENERATION
        if g.state is GroupState.DEAD:
            return _COORDINATOR_NOT_AVAILABLE
        if generation_id < 0 and g.state is GroupState.EMPTY:
            return _NONE
        if g.state is GroupState.COMPLETING_REBALANCE:
            return _REBALANCE_IN_PROGRESS
        if g.is_static_fenced(member_id, group_instance_id):
            return _FENCED_INSTANCE_ID
        member = g.members.get(member_id)
        if member is None:
            return _UNKNOWN_MEMBER_ID
        if generation_id != g.generation_id:
            return _ILLEGAL_GENERATION
        if not (member.awaiting_join or member.awaiting_sync):
            self._schedule_heartbeat(g, member)
        return _NONE

    def delete_groups(self, group_ids: Iterable[str]) -> dict[str, int]:
        """DeleteGroups: only groups without members (NON_EMPTY_GROUP), unknown -> GROUP_ID_NOT_FOUND.

        The caller also deletes the group's committed offsets for each NO_ERROR entry.
        """
        out: dict[str, int] = {}
        for gid in group_ids:
            g = self._groups.get(gid)
            if g is None or g.state is GroupState.DEAD:
                out[gid] = ErrorCode.GROUP_ID_NOT_FOUND.code
            elif g.members or g.state is not GroupState.EMPTY:
                out[gid] = ErrorCode.NON_EMPTY_GROUP.code
            else:
                g.state = GroupState.DEAD
                for handle in g.pending_members.values():
                    handle.cancel()
                del self._groups[gid]
                out[gid] = _NONE
        return out

    def close(self) -> None:
        """Cancel every timer and answer every parked request with COORDINATOR_NOT_AVAILABLE."""
        for g in self._groups.values():
            if g.rebalance_timer is not None:
                g.rebalance_timer.cancel()
            for handle in g.pending_members.values():
                handle.cancel()
            for m in g.members.values():
                self._cancel_heartbeat(m)
                if m.awaiting_join:
                    assert m.join_future is not None
                    m.join_future.set_result(JoinResult(_COORDINATOR_NOT_AVAILABLE, member_id=m.member_id))
                if m.awaiting_sync:
                    assert m.sync_future is not None
                    m.sync_future.set_result(SyncResult(_COORDINATOR_NOT_AVAILABLE))
            g.state = GroupState.DEAD
        self._groups.clear()
