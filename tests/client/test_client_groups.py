"""Consumer groups: rebalances between two members, commits and resume, static membership;
the group task's rebalances (GroupLoop) without a broker."""

from __future__ import annotations

import asyncio
import time

import pytest

from streamcore.aio import AdminClient, Consumer, Producer
from streamcore.client.config import build_config
from streamcore.client.fetcher import PartitionState
from streamcore.client.group import GroupLoop
from streamcore.client.types import TopicPartition

from .helpers import consume_n

FAST_GROUP = {"session_timeout_ms": 6000, "heartbeat_interval_ms": 100, "max_poll_interval_ms": 10000}


async def _wait(cond, timeout_s: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return True
        await asyncio.sleep(0.05)
    return cond()


@pytest.mark.parametrize("strategy", ["range", "cooperative-sticky"])
def test_second_member_splits_partitions_and_the_survivor_gets_all_after_a_leave(
    kafka_bootstrap: str, topic_name: str, strategy: str
) -> None:
    everything = {TopicPartition(topic_name, p) for p in range(4)}

    async def main() -> None:
        async with AdminClient(kafka_bootstrap) as admin:
            await admin.create_topic(topic_name, num_partitions=4)
        revoked: list[TopicPartition] = []
        kw = dict(group_id=f"g-{topic_name}", partition_assignment_strategy=[strategy], **FAST_GROUP)
        c1 = Consumer(kafka_bootstrap, **kw)
        c1.subscribe([topic_name], on_revoke=revoked.extend)
        assert await c1.wait_for_assignment(20) == everything
        c2 = Consumer(kafka_bootstrap, **kw)
        c2.subscribe([topic_name])
        try:
            split = await _wait(lambda: len(c1.assignment()) == 2 and len(c2.assignment()) == 2)
            assert split, (c1.assignment(), c2.assignment())
            assert c1.assignment() | c2.assignment() == everything
            assert not c1.assignment() & c2.assignment()
            assert revoked  # c1 gave partitions up through its callback
        finally:
            await c2.close()
        try:
            assert await _wait(lambda: c1.assignment() == everything)
        finally:
            await c1.close()

    asyncio.run(main())


def test_committed_offsets_let_a_new_member_resume_where_the_last_stopped(
    kafka_bootstrap: str, topic_name: str
) -> None:
    async def main() -> None:
        async with Producer(kafka_bootstrap) as p:
            await (await p.send_batch(topic_name, [b"%d" % i for i in range(30)], partition=0))
        group = f"g-{topic_name}"
        tp = TopicPartition(topic_name, 0)
        async with Consumer(
            kafka_bootstrap,
            group_id=group,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            max_poll_records=10,
            **FAST_GROUP,
        ) as c:
            c.subscribe([topic_name])
            first = await consume_n(c, 10)
            assert [r.offset for r in first] == list(range(10))
            c.seek(tp, 10)
            await c.commit()
            assert (await c.committed(tp)).offset == 10
        async with Consumer(kafka_bootstrap, group_id=group, auto_offset_reset="earliest", **FAST_GROUP) as c:
            c.subscribe([topic_name])
            rest = await consume_n(c, 20)
            assert [r.offset for r in rest] == list(range(10, 30))
            await c.commit_async({tp: 25})
            assert (await c.committed(tp)).offset == 25

    asyncio.run(main())


def test_auto_commit_on_close_records_the_position(kafka_bootstrap: str, topic_name: str) -> None:
    async def main() -> None:
        async with Producer(kafka_bootstrap) as p:
            await (await p.send_batch(topic_name, [b"x"] * 7, partition=0))
        group = f"g-{topic_name}"
        async with Consumer(kafka_bootstrap, group_id=group, auto_offset_reset="earliest", **FAST_GROUP) as c:
            c.subscribe([topic_name])
            assert len(await consume_n(c, 7)) == 7
        async with Consumer(kafka_bootstrap, group_id=group) as c:
            assert (await c.committed(TopicPartition(topic_name, 0))).offset == 7

    asyncio.run(main())


def test_static_member_keeps_its_instance_id(kafka_bootstrap: str, topic_name: str) -> None:
    async def main() -> None:
        async with AdminClient(kafka_bootstrap) as admin:
            await admin.create_topic(topic_name, num_partitions=2)
            group = f"g-{topic_name}"
            c = Consumer(kafka_bootstrap, group_id=group, group_instance_id="instance-a", **FAST_GROUP)
            c.subscribe([topic_name])
            try:
                assert len(await c.wait_for_assignment(20)) == 2
                (desc,) = await admin.describe_groups([group])
                assert [m.group_instance_id for m in desc.members] == ["instance-a"]
                assert sorted(desc.members[0].assignment) == sorted(c.assignment())
            finally:
                await c.close()

    asyncio.run(main())


# ---------------------------------------------------------------- GroupLoop without a broker


class _ScriptedMembership:
    """Stands in for GroupMembership: each join() answers the next planned assignment."""

    def __init__(self, protocol: str, plan: list[list[TopicPartition]]) -> None:
        self.protocol: str | None = None
        self.strategies = (protocol,)
        self.generation = -1
        self.heartbeat_interval_s = 0.05
        self.group_id = "g"
        self.cluster = None
        self._protocol = protocol
        self._plan = plan
        self.owned_at_join: list[list[TopicPartition]] = []

    async def join(self, topics, owned, partition_counts):
        self.owned_at_join.append(list(owned))
        self.protocol = self._protocol
        self.generation += 1
        return self._plan.pop(0), self._protocol


def _group_loop(protocol: str, plan: list[list[TopicPartition]]):
    config = build_config("consumer", "127.0.0.1:1", None, {"group_id": "g"})
    states: dict[TopicPartition, PartitionState] = {}
    committed: dict[TopicPartition, int] = {}
    commits: list[list[TopicPartition]] = []
    events: list[tuple[str, list[TopicPartition]]] = []
    wakes: list[bool] = []

    async def commit_positions(parts):
        commits.append(sorted(parts))

    membership = _ScriptedMembership(protocol, plan)
    loop = GroupLoop(
        membership, config, states, committed, commit_positions, lambda: wakes.append(True), asyncio.Event()
    )
    loop.subscription = ["t"]
    loop.on_assign = lambda parts: events.append(("assign", list(parts)))
    loop.on_revoke = lambda parts: events.append(("revoke", list(parts)))
    return loop, membership, states, committed, commits, events, wakes


def test_group_loop_eager_rebalance_commits_and_revokes_everything_before_joining() -> None:
    t0, t1, t2 = (TopicPartition("t", p) for p in range(3))

    async def main() -> None:
        loop, membership, states, committed, commits, events, wakes = _group_loop("range", [[t0, t1], [t2]])
        await loop._rebalance()
        assert set(states) == {t0, t1} and wakes
        committed[t0] = 5
        await loop._rebalance()
        # Eager: both owned partitions go (positions committed first) before the join,
        # which therefore reports nothing owned; the callback gets the whole new set.
        assert membership.owned_at_join == [[], []]
        assert commits == [[t0, t1]]
        assert events == [("assign", [t0, t1]), ("revoke", [t0, t1]), ("assign", [t2])]
        assert set(states) == {t2} and t0 not in committed

    asyncio.run(main())


def test_group_loop_cooperative_rebalance_revokes_only_moved_partitions_and_rejoins() -> None:
    t0, t1, t2 = (TopicPartition("t", p) for p in range(3))

    async def main() -> None:
        loop, membership, states, _committed, commits, events, _wakes = _group_loop(
            "cooperative-sticky", [[t0, t1], [t1, t2]]
        )
        await loop._rebalance()
        loop._rejoin.clear()
        await loop._rebalance()
        assert membership.owned_at_join == [[], [t0, t1]]
        assert commits == [[t0]]
        assert events == [("assign", [t0, t1]), ("revoke", [t0]), ("assign", [t2])]
        assert set(states) == {t1, t2}
        assert loop._rejoin.is_set()  # a follow-up round hands t0 to its new owner

    asyncio.run(main())
