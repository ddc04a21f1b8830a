"""Partition assignors run by the group leader: range and cooperative-sticky.

Both take every member's subscription (topics, and for sticky the partitions it
owns now) and the partition count of each topic, and return member -> partitions.
Members are ordered by member id so every leader computes the same answer.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field

from streamcore.client.types import TopicPartition

__all__ = ["MemberSubscription", "range_assign", "cooperative_sticky_assign", "ASSIGNORS", "EAGER"]


@dataclass
class MemberSubscription:
    """What one member sent in JoinGroup: topics, owned partitions, its generation."""

    member_id: str
    topics: list[str]
    owned: list[TopicPartition] = field(default_factory=list)
    generation: int = -1
    group_instance_id: str | None = None


def range_assign(
    members: Mapping[str, MemberSubscription], partitions: Mapping[str, int]
) -> dict[str, list[TopicPartition]]:
    """Per topic, split partitions into contiguous ranges over the subscribed members.

    With P partitions and M members, each gets P // M and the first P % M one more
    (Java's RangeAssignor); members sorted by instance id if static, else member id.
    """
    out: dict[str, list[TopicPartition]] = {m: [] for m in members}
    by_topic: dict[str, list[str]] = defaultdict(list)
    for mid, sub in members.items():
        for t in sub.topics:
            by_topic[t].append(mid)
    for topic, mids in by_topic.items():
        n = partitions.get(topic, 0)
        if not n:
            continue
        mids.sort(key=lambda m: (members[m].group_instance_id or m, m))
        per, extra = divmod(n, len(mids))
        start = 0
        for i, mid in enumerate(mids):
            count = per + (1 if i < extra else 0)
            out[mid].extend(TopicPartition(topic, p) for p in range(start, start + count))
            start += count
    return out


def cooperative_sticky_assign(
    members: Mapping[str, MemberSubscription], partitions: Mapping[str, int]
) -> dict[str, list[TopicPartition]]:
    """Balanced assignment that keeps as many owned partitions in place as it can.

    Cooperative: a partition that moves from one member to another is left out of
    this round (its old owner sees it revoked and rejoins; the next round hands it
    to the new owner), so no partition is ever owned by two members at once.
    """
    mids = sorted(members)
    if not mids:
        return {}
    all_parts = [
        TopicPartition(t, p)
        for t in sorted(partitions)
        for p in range(partitions[t])
        if any(t in members[m].topics for m in mids)
    ]
    subscribed = {m: set(members[m].topics) for m in mids}
    # Previous owner per partition: the claim from the highest generation wins.
    prev_owner: dict[TopicPartition, str] = {}
    prev_gen: dict[TopicPartition, int] = {}
    for m in mids:
        for tp in members[m].owned:
            if tp.topic in subscribed[m] and tp.partition < partitions.get(tp.topic, 0):
                if tp not in prev_owner or members[m].generation > prev_gen[tp]:
                    prev_owner[tp] = m
                    prev_gen[tp] = members[m].generation
    n, k = len(all_parts), len(mids)
    floor_q, n_ceil = divmod(n, k)  # n_ceil members may hold floor_q + 1
    target: dict[str, list[TopicPartition]] = {m: [] for m in mids}
    # 1. Keep owned partitions, up to the quota.
    ceil_used = 0
    for m in mids:
        owned = sorted(
            (tp for tp, o in prev_owner.items() if o == m), key=lambda tp: (tp.topic, tp.partition)
        )
        keep = floor_q
        if len(owned) > floor_q and ceil_used < n_ceil:
            keep = floor_q + 1
            ceil_used += 1
        target[m] = owned[:keep]
    taken = {tp for ps in target.values() for tp in ps}
    # 2. Hand out the rest to the least loaded subscribed member.
    for tp in all_parts:
        if tp in taken:
            continue
        eligible = [m for m in mids if tp.topic in subscribed[m]]
        if not eligible:
            continue
        m = min(eligible, key=lambda x: (len(target[x]), x))
        target[m].append(tp)
    # 3. Cooperative: withhold partitions still owned by someone else this round.
    out: dict[str, list[TopicPartition]] = {}
    for m in mids:
        out[m] = [tp for tp in target[m] if prev_owner.get(tp, m) == m]
    return out


#: Assignor name (as sent in JoinGroup) -> function.
ASSIGNORS = {"range": range_assign, "cooperative-sticky": cooperative_sticky_assign}

#: Assignors under which a member gives up every partition before rejoining.
EAGER = frozenset({"range"})
