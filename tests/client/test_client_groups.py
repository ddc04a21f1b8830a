"""Consumer groups: rebalances between two members, commits and resume, static membership."""

from __future__ import annotations

import asyncio
import time

import pytest

from streamcore.aio import AdminClient, Consumer, Producer
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
