"""A compacted topic, cleaned by the broker while real clients use it.

An idempotent confluent-kafka producer writes every key ten times (lz4, tombstones for
some keys at the end) to a one-partition `cleanup.policy=compact` topic with small
segments; the broker's cleaner compacts it; then confluent-kafka, kafka-python, aiokafka
and the Java client each read the whole partition, and must see the same records: offsets
increasing with gaps, the latest value of every key (None for a tombstone), one record per
key below the cleaned end. The broker is then restarted on the same port, and the same
idempotent producer (whose earlier batches were compacted) goes on writing without a
sequence error or a duplicate: the producer state rebuilt from the cleaned log is right.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition as AioTopicPartition
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaConsumer
from kafka import TopicPartition as KpTopicPartition

from streamcore import Broker
from streamcore.storage.cleaner import read_first_dirty_offset

from .conftest import JAVA_VERSIONS, JavaBuilds
from .test_java_client import client_check

pytestmark = pytest.mark.interop

TOPIC = "compacted"
KEYS = 200
ROUNDS = 10
TOMBSTONED = range(0, 20)
WAIT_S = 60.0

Seen = list[tuple[int, bytes | None, bytes | None]]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(data_dir: str, port: int) -> Broker:
    return Broker(data_dir, host="127.0.0.1", port=port, settings={"storage.cleaner_backoff_ms": 50}).start()


def _create_topic(bootstrap: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    configs = {
        "cleanup.policy": "compact",
        # Kafka's test-only override: segments of 8 KiB so that 2,000 records make many.
        "internal.segment.bytes": "8192",
        "min.cleanable.dirty.ratio": "0.01",
    }
    futures = admin.create_topics([NewTopic(TOPIC, 1, 1, config=configs)])
    futures[TOPIC].result(30)


def _produce_rounds(producer: Producer, rounds: range) -> list[tuple[bytes, bytes | None]]:
    """Every key once per round, in key order; returns the (key, value) pairs in produce order."""
    produced: list[tuple[bytes, bytes | None]] = []
    errors: list[Any] = []

    def delivered(err: Any, _msg: Any) -> None:
        if err is not None:
            errors.append(err)

    for r in rounds:
        for k in range(KEYS):
            key = b"key-%03d" % k
            value = None if r == ROUNDS - 1 and k in TOMBSTONED else b"r%d-k%d" % (r, k)
            producer.produce(TOPIC, key=key, value=value, on_delivery=delivered)
            produced.append((key, value))
            producer.poll(0)
        producer.flush(30)
    assert errors == [], f"{len(errors)} deliveries failed, e.g. {errors[:3]}"
    return produced


def _partition_dir(broker: Broker) -> str:
    return os.path.join(broker.config.data_dir, f"{TOPIC}-0")


def _wait_until_clean(broker: Broker) -> int:
    """Wait until the cleaner has cleaned every closed segment; returns the cleaned end."""
    directory = _partition_dir(broker)
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        bases = sorted(int(n[:20]) for n in os.listdir(directory) if n.endswith(".log") and len(n) == 24)
        done = read_first_dirty_offset(directory)
        if len(bases) > 1 and done is not None and done >= bases[-1]:
            return done
        time.sleep(0.05)
    raise AssertionError(f"the cleaner did not clean {directory} within {WAIT_S} s")


def _read_confluent(bootstrap: str) -> Seen:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "cf", "enable.auto.commit": False})
    _, high = consumer.get_watermark_offsets(TopicPartition(TOPIC, 0), timeout=30)
    consumer.assign([TopicPartition(TOPIC, 0, 0)])
    out: Seen = []
    deadline = time.monotonic() + WAIT_S
    try:
        while (not out or out[-1][0] < high - 1) and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            assert msg.error() is None, msg.error()
            out.append((msg.offset(), msg.key(), msg.value()))
    finally:
        consumer.close()
    return out


def _read_kafka_python(bootstrap: str) -> Seen:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    tp = KpTopicPartition(TOPIC, 0)
    consumer.assign([tp])
    consumer.seek_to_beginning(tp)
    high = consumer.end_offsets([tp])[tp]
    out: Seen = []
    deadline = time.monotonic() + WAIT_S
    try:
        while consumer.position(tp) < high and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                out.extend((r.offset, r.key, r.value) for r in records)
    finally:
        consumer.close()
    return out


async def _read_aiokafka(bootstrap: str) -> Seen:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    tp = AioTopicPartition(TOPIC, 0)
    out: Seen = []
    try:
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        high = (await consumer.end_offsets([tp]))[tp]
        deadline = time.monotonic() + WAIT_S
        while await consumer.position(tp) < high and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                out.extend((r.offset, r.key, r.value) for r in records)
    finally:
        await consumer.stop()
    return out


def _read_java(classpath: str, bootstrap: str, count: int) -> Seen:
    lines = client_check(classpath, "consume", bootstrap, TOPIC, "java-compacted", str(count), "60000")
    assert lines[-1] == f"consumed {count}", lines[-1]
    out: Seen = []
    for line in lines:
        if line.startswith("R "):
            _, _partition, offset, key, value, _seq = line.split(" ")
            out.append((int(offset), key.encode(), None if value == "null" else value.encode()))
    return out


def _expected(produced: list[tuple[bytes, bytes | None]], cleaned_end: int) -> Seen:
    """What the log holds once everything below ``cleaned_end`` is compacted: below it the
    latest record of each key (tombstones included: delete.retention.ms is a day), above
    it every record. One producer, one partition, no duplicates: record i is at offset i."""
    last_below = {key: offset for offset, (key, _) in enumerate(produced[:cleaned_end])}
    return [
        (offset, key, value)
        for offset, (key, value) in enumerate(produced)
        if offset >= cleaned_end or last_below[key] == offset
    ]


@pytest.mark.parametrize("java_version", JAVA_VERSIONS[-1:])
def test_a_compacted_topic_reads_the_same_in_every_client_and_idempotence_survives(
    tmp_path: Any, java_builds: JavaBuilds, java_version: str
) -> None:
    classpath = java_builds.classpath(java_version)
    port = _free_port()
    data_dir = str(tmp_path / "data")
    broker = _start(data_dir, port)
    try:
        bootstrap = broker.bootstrap_servers
        _create_topic(bootstrap)
        producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "enable.idempotence": True,
                "compression.type": "lz4",
                "linger.ms": 5,
                "batch.num.messages": 50,
                "retry.backoff.ms": 100,
            }
        )
        produced = _produce_rounds(producer, range(ROUNDS))
        cleaned_end = _wait_until_clean(broker)
        expected = _expected(produced, cleaned_end)
        assert len(expected) < len(produced) // 2
        assert _read_confluent(bootstrap) == expected
        assert _read_kafka_python(bootstrap) == expected
        assert asyncio.run(_read_aiokafka(bootstrap)) == expected
        assert _read_java(classpath, bootstrap, len(expected)) == expected
    finally:
        broker.stop()

    # The same idempotent producer goes on after a restart on the cleaned log: its
    # sequence numbers must still be accepted, and nothing may be written twice.
    broker = _start(data_dir, port)
    try:
        produced += _produce_rounds(producer, range(ROUNDS, ROUNDS + 2))
        producer.flush(30)
        cleaned_end = _wait_until_clean(broker)
        # Offsets are still one per produced record: no batch was refused or written twice.
        assert _read_confluent(broker.bootstrap_servers) == _expected(produced, cleaned_end)
    finally:
        broker.stop()
