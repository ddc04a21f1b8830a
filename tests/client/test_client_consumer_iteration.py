"""Consumer iteration: ``for record in consumer`` (blocking) and ``async for`` (asyncio).

Iteration moves a partition's position only past the records it yielded, so
leaving the loop, committing in it, pausing, seeking or closing never skips a
record it took and did not yield. ``consumer_timeout_ms`` has kafka-python's
meaning: iteration ends after that long without a record.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from streamcore import aio
from streamcore.client import Consumer, Producer
from streamcore.client.consumer import split_consumer_timeout
from streamcore.client.types import ConsumerRecord, PartitionColumns, TopicPartition
from streamcore.errors import ConfigError

FAST_GROUP = {"session_timeout_ms": 6000, "heartbeat_interval_ms": 100, "max_poll_interval_ms": 10000}
# Every loop below is bounded by this many records even if iteration failed to stop.
GUARD = 1000
# Iteration ends after consumer_timeout_ms without a record, and a loaded machine can
# hold a fetch back that long (the first one also connects and looks up the offsets):
# a loop that ends early is then the timeout working, not records lost. The helpers
# below start a new loop until the records expected arrived, within this bound; each
# test then checks that one more loop ends with nothing.
DEADLINE_S = 60.0


def _produce(bootstrap: str, topic: str, n: int, partitions: int = 1) -> None:
    with Producer(bootstrap) as p:
        for part in range(partitions):
            p.send_batch(topic, [b"%d-%d" % (part, i) for i in range(n)], partition=part).result(30)


def _create(bootstrap: str, topic: str, partitions: int) -> None:
    from streamcore.client import AdminClient

    with AdminClient(bootstrap) as admin:
        admin.create_topic(topic, num_partitions=partitions)


def _size(item: ConsumerRecord | PartitionColumns) -> int:
    return len(item.columns["offset"]) if isinstance(item, PartitionColumns) else 1


def _take(consumer: Consumer, n: int) -> list[Any]:
    """The first ``n`` records (counted in rows under ``columnar``) that iteration yields,
    looping again if an iteration ends before them (see DEADLINE_S)."""
    out: list[Any] = []
    got = 0
    deadline = time.monotonic() + DEADLINE_S
    while got < n and time.monotonic() < deadline:
        for item in consumer:
            out.append(item)
            got += _size(item)
            if got >= n:
                break
    return out


async def _take_async(consumer: aio.Consumer, n: int) -> list[ConsumerRecord]:
    """``_take`` for ``async for``."""
    out: list[ConsumerRecord] = []
    deadline = time.monotonic() + DEADLINE_S
    while len(out) < n and time.monotonic() < deadline:
        async for record in consumer:
            out.append(record)
            if len(out) >= n:
                break
    return out


# ---------------------------------------------------------------- settings (no broker)


@pytest.mark.parametrize(
    ("given", "seconds"),
    [
        ({"consumer_timeout_ms": 1500}, 1.5),
        ({"consumer_timeout_ms": "2s"}, 2.0),
        ({"consumer_timeout_ms": 0}, 0.0),
        ({"consumer_timeout_ms": -1}, None),
        ({"consumer_timeout_ms": None}, None),
        ({"consumer_timeout_ms": float("inf")}, None),
        ({}, None),
    ],
)
def test_consumer_timeout_ms_takes_kafka_python_values(given: dict, seconds: float | None) -> None:
    timeout, config, settings = split_consumer_timeout(None, {**given, "group_id": "g"})
    assert timeout == seconds
    assert config is None
    assert settings == {"group_id": "g"}


def test_consumer_timeout_ms_is_read_from_dotted_properties_too() -> None:
    timeout, config, settings = split_consumer_timeout({"consumer.timeout.ms": 250, "group.id": "g"}, {})
    assert timeout == 0.25
    assert config == {"group.id": "g"}
    assert settings == {}


@pytest.mark.parametrize("bad", [-5, "soon", 1.5, True])
def test_consumer_timeout_ms_refuses_bad_values_by_name(bad: object) -> None:
    with pytest.raises(ConfigError, match="consumer_timeout_ms"):
        split_consumer_timeout(None, {"consumer_timeout_ms": bad})


def test_consumers_accept_consumer_timeout_ms_and_still_refuse_unknown_settings() -> None:
    # Building the client needs no broker; only the settings are checked here.
    c = aio.Consumer("127.0.0.1:1", consumer_timeout_ms=100)
    assert "consumer_timeout_ms" not in c.config.as_dict()
    with pytest.raises(ConfigError, match="consumer_timout_ms"):
        aio.Consumer("127.0.0.1:1", consumer_timout_ms=100)


# ---------------------------------------------------------------- blocking consumer


def test_for_loop_yields_every_record_in_order_and_ends_after_consumer_timeout(
    kafka_bootstrap: str, topic_name: str
) -> None:
    _create(kafka_bootstrap, topic_name, 2)
    _produce(kafka_bootstrap, topic_name, 40, partitions=2)
    with Consumer(
        kafka_bootstrap, auto_offset_reset="earliest", consumer_timeout_ms=1500, max_poll_records=7
    ) as c:
        c.assign([TopicPartition(topic_name, 0), TopicPartition(topic_name, 1)])
        records = _take(c, 80)
        # A new loop starts a new wait and ends after it: nothing is left.
        assert list(c) == []
    assert len(records) == 80
    for part in range(2):
        mine = [r for r in records if r.partition == part]
        assert [r.offset for r in mine] == list(range(40))
        assert [r.value for r in mine] == [b"%d-%d" % (part, i) for i in range(40)]


def test_leaving_the_loop_early_skips_nothing_for_poll_or_the_next_loop(
    kafka_bootstrap: str, topic_name: str
) -> None:
    tp = TopicPartition(topic_name, 0)
    _produce(kafka_bootstrap, topic_name, 30)
    with Consumer(
        kafka_bootstrap, auto_offset_reset="earliest", consumer_timeout_ms=1500, max_poll_records=10
    ) as c:
        c.assign([tp])
        assert [r.offset for r in _take(c, 3)] == [0, 1, 2]
        assert c.position(tp) == 3  # the 7 taken but not yielded do not count
        polled = c.poll(timeout_ms=5000)
        assert [r.offset for r in polled] == list(range(3, 10))
        assert [r.offset for r in _take(c, 5)] == list(range(10, 15))
        rest = _take(c, 15)
        assert list(c) == []
    assert [r.offset for r in rest] == list(range(15, 30))


def test_commit_inside_the_loop_commits_only_the_records_yielded(
    kafka_bootstrap: str, topic_name: str
) -> None:
    tp = TopicPartition(topic_name, 0)
    _produce(kafka_bootstrap, topic_name, 20)
    group = f"g-{topic_name}"
    with Consumer(
        kafka_bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=5000,
        max_poll_records=10,
    ) as c:
        c.assign([tp])
        committed_in_loop = False
        deadline = time.monotonic() + DEADLINE_S
        while not committed_in_loop and time.monotonic() < deadline:  # see DEADLINE_S
            for record in c:
                if record.offset == 3:
                    c.commit()
                    committed_in_loop = True
                    break
        assert committed_in_loop
        assert c.committed(tp).offset == 4


def test_close_during_iteration_auto_commits_only_the_records_yielded(
    kafka_bootstrap: str, topic_name: str
) -> None:
    tp = TopicPartition(topic_name, 0)
    _produce(kafka_bootstrap, topic_name, 20)
    kw = dict(group_id=f"g-{topic_name}", auto_offset_reset="earliest", max_poll_records=10)
    c = Consumer(kafka_bootstrap, consumer_timeout_ms=5000, **kw)
    c.assign([tp])
    assert [r.offset for r in _take(c, 6)] == list(range(6))
    c.close()  # auto-commit on: commits the position of the records yielded
    with Consumer(kafka_bootstrap, enable_auto_commit=False, consumer_timeout_ms=1500, **kw) as again:
        again.assign([tp])
        assert again.committed(tp).offset == 6
        assert [r.offset for r in _take(again, 14)] == list(range(6, 20))
        assert list(again) == []


def test_pause_during_iteration_gives_the_taken_records_back_until_resume(
    kafka_bootstrap: str, topic_name: str
) -> None:
    tp = TopicPartition(topic_name, 0)
    _produce(kafka_bootstrap, topic_name, 10)
    with Consumer(
        kafka_bootstrap, auto_offset_reset="earliest", consumer_timeout_ms=10_000, max_poll_records=10
    ) as c:
        c.assign([tp])
        assert [r.offset for r in _take(c, 2)] == [0, 1]
        c.pause(tp)
        assert c.poll(timeout_ms=300) == []
        assert c.position(tp) == 2
        c.resume(tp)
        assert [r.offset for r in _take(c, 8)] == list(range(2, 10))


def test_seek_during_iteration_drops_the_records_taken_before_it(
    kafka_bootstrap: str, topic_name: str
) -> None:
    tp = TopicPartition(topic_name, 0)
    _produce(kafka_bootstrap, topic_name, 10)
    with Consumer(
        kafka_bootstrap, auto_offset_reset="earliest", consumer_timeout_ms=10_000, max_poll_records=10
    ) as c:
        c.assign([tp])
        offsets = []
        for record in c:
            offsets.append(record.offset)
            if len(offsets) == 3:
                c.seek(tp, 1)
            if len(offsets) >= 8 or len(offsets) > GUARD:
                break
    assert offsets == [0, 1, 2, 1, 2, 3, 4, 5]


def test_iteration_without_timeout_runs_until_the_consumer_is_closed(
    kafka_bootstrap: str, topic_name: str
) -> None:
    tp = TopicPartition(topic_name, 0)
    _produce(kafka_bootstrap, topic_name, 5)
    c = Consumer(kafka_bootstrap, auto_offset_reset="earliest")
    c.assign([tp])
    got: list[ConsumerRecord] = []
    errors: list[BaseException] = []

    def iterate() -> None:
        try:
            for record in c:
                got.append(record)
                if len(got) > GUARD:
                    break
        except BaseException as exc:  # reported to the test thread below
            errors.append(exc)

    t = threading.Thread(target=iterate, daemon=True)
    t.start()
    deadline = time.monotonic() + 30
    while len(got) < 5 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert [r.offset for r in got] == list(range(5))
    assert t.is_alive()  # waiting for more, with no timeout
    c.close()
    t.join(30)
    assert not t.is_alive()
    assert errors == []
    assert list(c) == []  # a closed consumer's iteration ends at once


def test_subscribed_for_loop_reads_each_record_once(kafka_bootstrap: str, topic_name: str) -> None:
    _create(kafka_bootstrap, topic_name, 3)
    _produce(kafka_bootstrap, topic_name, 15, partitions=3)
    with Consumer(
        kafka_bootstrap,
        group_id=f"g-{topic_name}",
        auto_offset_reset="earliest",
        consumer_timeout_ms=3000,
        **FAST_GROUP,
    ) as c:
        c.subscribe([topic_name])
        c.wait_for_assignment(30)
        records = _take(c, 45)
        assert list(c) == []
    assert sorted((r.partition, r.offset) for r in records) == [(p, o) for p in range(3) for o in range(15)]


def test_columnar_iteration_yields_partition_columns(kafka_bootstrap: str, topic_name: str) -> None:
    tp = TopicPartition(topic_name, 0)
    _produce(kafka_bootstrap, topic_name, 50)
    with Consumer(
        kafka_bootstrap, auto_offset_reset="earliest", columnar=True, consumer_timeout_ms=1500
    ) as c:
        c.assign([tp])
        chunks = _take(c, 50)
        assert list(c) == []
    assert chunks and all(type(ch) is PartitionColumns for ch in chunks)
    assert [int(o) for ch in chunks for o in ch.columns["offset"]] == list(range(50))


# ---------------------------------------------------------------- asyncio consumer


def test_async_for_yields_every_record_in_order_and_ends_after_consumer_timeout(
    kafka_bootstrap: str, topic_name: str
) -> None:
    tp = TopicPartition(topic_name, 0)
    _produce(kafka_bootstrap, topic_name, 25)

    async def main() -> list[ConsumerRecord]:
        async with aio.Consumer(
            kafka_bootstrap, auto_offset_reset="earliest", consumer_timeout_ms=1500, max_poll_records=4
        ) as c:
            c.assign([tp])
            out = await _take_async(c, 25)
            assert [r async for r in c] == []
        return out

    records = asyncio.run(main())
    assert [r.offset for r in records] == list(range(25))
    assert [r.value for r in records] == [b"0-%d" % i for i in range(25)]


def test_async_for_break_then_commit_counts_only_the_records_yielded(
    kafka_bootstrap: str, topic_name: str
) -> None:
    tp = TopicPartition(topic_name, 0)
    _produce(kafka_bootstrap, topic_name, 20)

    async def main() -> None:
        async with aio.Consumer(
            kafka_bootstrap,
            group_id=f"g-{topic_name}",
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            consumer_timeout_ms=5000,
            max_poll_records=10,
        ) as c:
            c.assign([tp])
            assert [r.offset for r in await _take_async(c, 5)] == list(range(5))  # then break
            assert await c.position(tp) == 5
            await c.commit()
            assert (await c.committed(tp)).offset == 5
            rest = [r.offset for r in await _take_async(c, 15)]
            assert rest == list(range(5, 20))
            assert [r async for r in c] == []

    asyncio.run(main())


def test_async_for_without_timeout_ends_when_the_consumer_is_closed(
    kafka_bootstrap: str, topic_name: str
) -> None:
    tp = TopicPartition(topic_name, 0)
    _produce(kafka_bootstrap, topic_name, 3)

    async def main() -> None:
        c = aio.Consumer(kafka_bootstrap, auto_offset_reset="earliest")
        c.assign([tp])
        got: list[ConsumerRecord] = []
        three = asyncio.Event()

        async def iterate() -> None:
            async for record in c:
                got.append(record)
                if len(got) == 3:
                    three.set()
                if len(got) > GUARD:
                    break

        task = asyncio.ensure_future(iterate())
        await asyncio.wait_for(three.wait(), 30)
        assert not task.done()  # waiting for more, with no timeout
        await c.close()
        await asyncio.wait_for(task, 30)
        assert [r.offset for r in got] == [0, 1, 2]

    asyncio.run(main())
