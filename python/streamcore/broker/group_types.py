"""What the group coordinator answers: group states and the results of its calls.

Plain frozen dataclasses the handlers turn into responses; the state machine that
produces them is :mod:`streamcore.broker.group_coordinator`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = [
    "GroupDescription",
    "GroupListing",
    "GroupState",
    "JoinMemberInfo",
    "JoinResult",
    "LeaveMemberResult",
    "MemberDescription",
    "SyncResult",
]


class GroupState(enum.Enum):
    """Group states; ``.value`` is the name Kafka reports in DescribeGroups/ListGroups."""

    EMPTY = "Empty"
    PREPARING_REBALANCE = "PreparingRebalance"
    COMPLETING_REBALANCE = "CompletingRebalance"
    STABLE = "Stable"
    DEAD = "Dead"


@dataclass(frozen=True)
class JoinMemberInfo:
    """One member as listed to the leader in a JoinGroup response."""

    member_id: str
    group_instance_id: str | None
    metadata: bytes


@dataclass(frozen=True)
class JoinResult:
    """What a JoinGroup response carries. ``members`` is filled only for the leader."""

    error_code: int
    generation_id: int = -1
    protocol_type: str | None = None
    protocol_name: str | None = None
    leader_id: str = ""
    member_id: str = ""
    members: tuple[JoinMemberInfo, ...] = ()
    skip_assignment: bool = False


@dataclass(frozen=True)
class SyncResult:
    """What a SyncGroup response carries."""

    error_code: int
    assignment: bytes = b""
    protocol_type: str | None = None
    protocol_name: str | None = None


@dataclass(frozen=True)
class LeaveMemberResult:
    """Per-member outcome of LeaveGroup (v3+ lists members)."""

    member_id: str
    group_instance_id: str | None
    error_code: int


@dataclass(frozen=True)
class MemberDescription:
    """One member in DescribeGroups; metadata/assignment are filled only when Stable."""

    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    metadata: bytes
    assignment: bytes


@dataclass(frozen=True)
class GroupDescription:
    """DescribeGroups answer for one group (a missing group is reported as Dead, no error)."""

    group_id: str
    error_code: int
    state: str
    protocol_type: str
    protocol_name: str
    members: tuple[MemberDescription, ...]


@dataclass(frozen=True)
class GroupListing:
    """ListGroups answer for one group."""

    group_id: str
    protocol_type: str
    state: str
