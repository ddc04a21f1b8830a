"""Transactions across clients, on each broker: streamcore's transactional producer read by
confluent-kafka (librdkafka) consumers, and confluent-kafka's transactional producer read
by streamcore consumers, at both isolation levels."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest

confluent_kafka = pytest.importorskip("confluent_kafka")
from confluent_kafka import Consumer as CKConsumer  # noqa: E402
from confluent_kafka import Producer as CKProducer  # noqa: E402

from streamcore.aio import AdminClient, Consumer, Producer  # noqa: E402
from streamcore.client.types import TopicPartition  # noqa: E402

pytestmark = pytest.mark.interop

STEP_S = 30.0
QUIET_POLLS = 4


def ck_read(bootstrap: str, topic: str, isolation: str, expected: int) -> list[bytes]:
    """Values confluent-kafka reads from the start of ``topic`` (until ``expected`` came
    and a few polls stayed empty, or 60 s)."""
    consumer = CKConsumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "reader-" + uuid.uuid4().hex,
            "auto.offset.reset": "earliest",
            "isolation.level": isolation,
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    out: list[bytes] = []
    quiet = 0
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline and (len(out) < expected or quiet < QUIET_POLLS):
            msg = consumer.poll(0.5)
            if msg is None:
                quiet += 1
                continue
            assert msg.error() is None, msg.error()
            quiet = 0
            out.append(msg.value())
    finally:
        consumer.close()
    return sorted(out)


async def sc_read(bootstrap: str, topic: str, partitions: int, isolation: str, expected: int) -> list[bytes]:
    """Values a streamcore consumer reads from the start of ``topic``."""
    async with Consumer(bootstrap, auto_offset_reset="earliest", isolation_level=isolation) as c:
        c.assign([TopicPartition(topic, p) for p in range(partitions)])
        out: list[Any] = []
        quiet = 0
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (len(out) < expected or quiet < QUIET_POLLS):
            got = await c.poll(timeout_ms=250)
            quiet = 0 if got else quiet + 1
            out += got
    return sorted(r.value for r in out)


async def create(bootstrap: str, topic: str, partitions: int) -> None:
    async with AdminClient(bootstrap) as admin:
        await admin.create_topic(topic, num_partitions=partitions)


def test_streamcore_transactions_as_confluent_kafka_reads_them(kafka_bootstrap: str, topic_name: str) -> None:
    async def produce() -> None:
        await create(kafka_bootstrap, topic_name, 3)
        async with Producer(kafka_bootstrap, transactional_id="sc-" + uuid.uuid4().hex[:10]) as p:
            await p.init_transactions(STEP_S)
            p.begin_transaction()
            for i in range(15):
                await p.send(topic_name, b"c%d" % i, key=b"k%d" % i)
            batch = await p.send_batch(
                topic_name, [b"c%d" % i for i in range(15, 30)], keys=[b"k%d" % i for i in range(15, 30)]
            )
            await p.commit_transaction(STEP_S)
            assert sum(m.record_count for m in batch.result()) == 15
            p.begin_transaction()
            for i in range(30):
                await p.send(topic_name, b"a%d" % i, key=b"k%d" % i)
            await p.flush(STEP_S)
            await p.abort_transaction(STEP_S)

    asyncio.run(produce())
    committed = sorted(b"c%d" % i for i in range(30))
    assert ck_read(kafka_bootstrap, topic_name, "read_committed", 30) == committed
    assert ck_read(kafka_bootstrap, topic_name, "read_uncommitted", 60) == sorted(
        committed + [b"a%d" % i for i in range(30)]
    )


def test_confluent_kafka_transactions_as_streamcore_reads_them(kafka_bootstrap: str, topic_name: str) -> None:
    asyncio.run(create(kafka_bootstrap, topic_name, 3))
    producer = CKProducer(
        {"bootstrap.servers": kafka_bootstrap, "transactional.id": "ck-" + uuid.uuid4().hex[:10]}
    )
    producer.init_transactions(STEP_S)
    producer.begin_transaction()
    for i in range(30):
        producer.produce(topic_name, value=b"c%d" % i, key=b"k%d" % i)
    producer.commit_transaction(STEP_S)
    producer.begin_transaction()
    for i in range(30):
        producer.produce(topic_name, value=b"a%d" % i, key=b"k%d" % i)
    producer.flush(STEP_S)
    producer.abort_transaction(STEP_S)
    producer.begin_transaction()
    producer.produce(topic_name, value=b"late", key=b"k0")
    producer.commit_transaction(STEP_S)
    committed = sorted([b"c%d" % i for i in range(30)] + [b"late"])
    assert asyncio.run(sc_read(kafka_bootstrap, topic_name, 3, "read_committed", 31)) == committed
    assert asyncio.run(sc_read(kafka_bootstrap, topic_name, 3, "read_uncommitted", 61)) == sorted(
        committed + [b"a%d" % i for i in range(30)]
    )
