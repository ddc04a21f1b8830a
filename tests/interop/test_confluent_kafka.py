"""confluent-kafka (librdkafka 2.16) against the broker: every codec, groups, restarts."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from streamcore import Broker

from .log_check import assert_compressed_with
from .records import MESSAGES, MORE, Consumed, check_consumed, key, partitions_used, value

ck = pytest.importorskip("confluent_kafka")
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

pytestmark = pytest.mark.interop

CODECS = ("none", "gzip", "snappy", "lz4", "zstd")
CONSUME_TIMEOUT_S = 60.0


def create_topic(bootstrap: str, topic: str, partitions: int = 3) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
    futures[topic].result(timeout=30)
    meta = admin.list_topics(topic, timeout=30)
    assert len(meta.topics[topic].partitions) == partitions


def produce(bootstrap: str, topic: str, seqs: range, compression: str = "none", **conf: Any) -> None:
    """Produce records ``seqs`` in batches (no per-message flush); every delivery must succeed."""
    failures: list[str] = []
    delivered = 0

    def on_delivery(err: Any, msg: Any) -> None:
        nonlocal delivered
        if err is not None:
            failures.append(str(err))
        else:
            delivered += 1

    producer = ck.Producer(
        {"bootstrap.servers": bootstrap, "compression.type": compression, "linger.ms": 20, **conf}
    )
    for i in seqs:
        producer.produce(
            topic, key=key(i), value=value(i), headers=[("seq", b"%d" % i)], on_delivery=on_delivery
        )
        if i % 1000 == 0:
            producer.poll(0)
    assert producer.flush(60) == 0, "records still undelivered after 60 s"
    assert failures == []
    assert delivered == len(seqs)


def to_consumed(msg: Any) -> Consumed:
    headers = dict(msg.headers() or [])
    seq = int(headers["seq"]) if "seq" in headers else None
    return (msg.partition(), msg.offset(), msg.key(), msg.value(), seq)


def consume(bootstrap: str, topic: str, group: str, count: int, **conf: Any) -> list[Consumed]:
    """Consume ``count`` records in ``group``, commit synchronously, close."""
    consumer = ck.Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            **conf,
        }
    )
    consumer.subscribe([topic])
    out: list[Consumed] = []
    deadline = time.monotonic() + CONSUME_TIMEOUT_S
    try:
        while len(out) < count and time.monotonic() < deadline:
            for msg in consumer.consume(1000, 0.5):
                assert msg.error() is None, msg.error()
                out.append(to_consumed(msg))
        if out:
            consumer.commit(asynchronous=False)
    finally:
        consumer.close()
    return out


@pytest.mark.parametrize("codec", CODECS)
def test_confluent_kafka_round_trip_and_group_resume(interop_broker: Broker, codec: str) -> None:
    bootstrap = interop_broker.bootstrap_servers
    topic = f"ck-{codec}"
    create_topic(bootstrap, topic)
    produce(bootstrap, topic, range(MESSAGES), codec)
    first = consume(bootstrap, topic, "ck-group", MESSAGES)
    check_consumed(first, range(MESSAGES), what=f"confluent-kafka {codec}")
    assert partitions_used(first) == {0, 1, 2}
    assert_compressed_with(bootstrap, topic, codec)

    produce(bootstrap, topic, range(MESSAGES, MESSAGES + MORE), codec)
    resumed = consume(bootstrap, topic, "ck-group", MORE)
    check_consumed(resumed, range(MESSAGES, MESSAGES + MORE), what=f"confluent-kafka {codec} after restart")


def _assigned(consumer: Any) -> set[int]:
    return {tp.partition for tp in consumer.assignment()}


@pytest.mark.parametrize("strategy", ["range", "cooperative-sticky"])
def test_three_member_group_shares_the_topic(interop_broker: Broker, strategy: str) -> None:
    bootstrap = interop_broker.bootstrap_servers
    topic = f"shared-{strategy}"
    partitions = 6
    create_topic(bootstrap, topic, partitions)
    members = [
        ck.Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"trio-{strategy}",
                "auto.offset.reset": "earliest",
                "partition.assignment.strategy": strategy,
                "enable.auto.commit": False,
            }
        )
        for _ in range(3)
    ]
    try:
        for c in members[:2]:
            c.subscribe([topic])
            c.poll(0.1)
        members[2].subscribe([topic])
        third_subscribed = time.monotonic()
        deadline = third_subscribed + 30.0
        settled = False
        while time.monotonic() < deadline:
            for c in members:
                msg = c.poll(0.05)
                assert msg is None or msg.error() is None
            shares = [_assigned(c) for c in members]
            if (
                all(shares)
                and sum(len(s) for s in shares) == partitions
                and set().union(*shares) == set(range(partitions))
            ):
                settled = True
                break
        elapsed = time.monotonic() - third_subscribed
        print(f"three-member {strategy} rebalance settled in {elapsed:.2f} s: {shares}")
        assert settled, f"no complete three-way assignment within 30 s; last seen {shares}"

        produce(bootstrap, topic, range(600))
        got: list[list[Consumed]] = [[], [], []]
        deadline = time.monotonic() + CONSUME_TIMEOUT_S
        while sum(map(len, got)) < 600 and time.monotonic() < deadline:
            for i, c in enumerate(members):
                for msg in c.consume(200, 0.05):
                    assert msg.error() is None, msg.error()
                    got[i].append(to_consumed(msg))
        check_consumed([r for g in got for r in g], range(600), what=f"three-member group ({strategy})")
        for i, share in enumerate(shares):
            assert got[i], f"member {i} got no records"
            assert partitions_used(got[i]) <= share
    finally:
        for c in members:
            c.close()


def test_data_survives_a_broker_restart(streamcore_broker_factory: Callable[..., Any]) -> None:
    first = streamcore_broker_factory(default_partitions=3)
    data_dir = first.config.data_dir
    produce(first.bootstrap_servers, "durable", range(2000), "lz4")
    before = _read_all(first.bootstrap_servers, "durable", "before", 2000)
    check_consumed([r[:5] for r in before], range(2000), what="before restart")
    first.stop()

    second = streamcore_broker_factory(data_dir=data_dir, default_partitions=3)
    after = _read_all(second.bootstrap_servers, "durable", "after", 2000)
    assert after == before


def _read_all(bootstrap: str, topic: str, group: str, count: int) -> list[tuple[Any, ...]]:
    """Every record from the beginning with its timestamp, sorted by (partition, offset)."""
    consumer = ck.Consumer(
        {"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([topic])
    out: list[tuple[Any, ...]] = []
    deadline = time.monotonic() + CONSUME_TIMEOUT_S
    try:
        while len(out) < count and time.monotonic() < deadline:
            for msg in consumer.consume(1000, 0.5):
                assert msg.error() is None, msg.error()
                out.append((*to_consumed(msg), msg.timestamp()))
    finally:
        consumer.close()
    return sorted(out)
