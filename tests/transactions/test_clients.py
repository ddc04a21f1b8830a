"""confluent-kafka and kafka-python transactions against the broker: commit and abort as
read_committed and read_uncommitted consumers see them, send_offsets_to_transaction,
fencing of a zombie producer, and an open transaction surviving a broker restart."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

confluent_kafka = pytest.importorskip("confluent_kafka")
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

from streamcore.broker.embedded import Broker  # noqa: E402

pytestmark = pytest.mark.interop

STEP_TIMEOUT_S = 30.0
CONSUME_TIMEOUT_S = 60.0


def create_topics(bootstrap: str, **partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(name, n, 1) for name, n in partitions.items()])
    for future in futures.values():
        future.result(STEP_TIMEOUT_S)


def consume(bootstrap: str, topic: str, isolation: str, expected: int) -> list[bytes]:
    """Values read from the start of ``topic`` until ``expected`` arrived and the topic
    stayed quiet a few polls more (so that extra records would be seen too)."""
    consumer = Consumer(
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
    deadline = time.monotonic() + CONSUME_TIMEOUT_S
    try:
        while time.monotonic() < deadline and (len(out) < expected or quiet < 4):
            msg = consumer.poll(0.5)
            if msg is None:
                quiet += 1
                continue
            assert msg.error() is None, msg.error()
            quiet = 0
            out.append(msg.value())
    finally:
        consumer.close()
    return out


def test_commit_and_abort_as_each_isolation_level_sees_them(streamcore_broker_factory: Any) -> None:
    bootstrap = streamcore_broker_factory().bootstrap_servers
    create_topics(bootstrap, out=2)
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": "tx-1"})
    producer.init_transactions(STEP_TIMEOUT_S)
    producer.begin_transaction()
    for i in range(10):
        producer.produce("out", value=b"c%d" % i, partition=i % 2)
    producer.commit_transaction(STEP_TIMEOUT_S)
    producer.begin_transaction()
    for i in range(10):
        producer.produce("out", value=b"a%d" % i, partition=i % 2)
    producer.flush(STEP_TIMEOUT_S)
    producer.abort_transaction(STEP_TIMEOUT_S)
    producer.begin_transaction()
    producer.produce("out", value=b"open", partition=0)
    producer.flush(STEP_TIMEOUT_S)
    committed = [b"c%d" % i for i in range(10)]
    assert sorted(consume(bootstrap, "out", "read_committed", 10)) == sorted(committed)
    assert len(consume(bootstrap, "out", "read_uncommitted", 21)) == 21
    producer.commit_transaction(STEP_TIMEOUT_S)
    assert sorted(consume(bootstrap, "out", "read_committed", 11)) == sorted([*committed, b"open"])


def test_send_offsets_fencing_and_a_restart(tmp_path: Any) -> None:
    data_dir = str(tmp_path / "data")
    with Broker(data_dir, host="127.0.0.1", port=0) as broker:
        bootstrap = broker.bootstrap_servers
        create_topics(bootstrap, inp=1, out=1)
        source = Producer({"bootstrap.servers": bootstrap})
        for i in range(5):
            source.produce("inp", value=b"%d" % i)
        source.flush(STEP_TIMEOUT_S)
        consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": "g",
                "auto.offset.reset": "earliest",
                "isolation.level": "read_committed",
                "enable.auto.commit": False,
            }
        )
        consumer.subscribe(["inp"])
        messages = []
        deadline = time.monotonic() + CONSUME_TIMEOUT_S
        while len(messages) < 5 and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                messages.append(msg)
        assert len(messages) == 5
        producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": "tx-2"})
        producer.init_transactions(STEP_TIMEOUT_S)
        producer.begin_transaction()
        for msg in messages:
            producer.produce("out", value=msg.value() * 2)
        producer.send_offsets_to_transaction(
            [TopicPartition("inp", 0, 5)], consumer.consumer_group_metadata(), STEP_TIMEOUT_S
        )
        producer.commit_transaction(STEP_TIMEOUT_S)
        assert consumer.committed([TopicPartition("inp", 0)], STEP_TIMEOUT_S)[0].offset == 5
        # A zombie: a second producer of the same id fences the first, whose open
        # transaction is aborted.
        producer.begin_transaction()
        producer.produce("out", value=b"zombie")
        producer.flush(STEP_TIMEOUT_S)
        successor = Producer({"bootstrap.servers": bootstrap, "transactional.id": "tx-2"})
        successor.init_transactions(STEP_TIMEOUT_S)
        with pytest.raises(KafkaException) as info:
            producer.commit_transaction(STEP_TIMEOUT_S)
        assert info.value.args[0].fatal()
        # The successor leaves a transaction open across the restart.
        successor.begin_transaction()
        successor.produce("out", value=b"left-open")
        successor.flush(STEP_TIMEOUT_S)
        consumer.close()
    with Broker(data_dir, host="127.0.0.1", port=0) as broker:
        bootstrap = broker.bootstrap_servers
        # The open transaction was recovered: the next producer of the id aborts it.
        producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": "tx-2"})
        producer.init_transactions(STEP_TIMEOUT_S)
        producer.begin_transaction()
        producer.produce("out", value=b"final")
        producer.commit_transaction(STEP_TIMEOUT_S)
        got = consume(bootstrap, "out", "read_committed", 6)
        assert sorted(got) == sorted([b"00", b"11", b"22", b"33", b"44", b"final"])


def test_kafka_python_commit_and_abort(streamcore_broker_factory: Any) -> None:
    kafka = pytest.importorskip("kafka")
    bootstrap = streamcore_broker_factory().bootstrap_servers
    create_topics(bootstrap, kp=1)
    producer = kafka.KafkaProducer(bootstrap_servers=bootstrap, transactional_id="kp-tx")
    try:
        producer.init_transactions()
        producer.begin_transaction()
        producer.send("kp", b"yes")
        producer.commit_transaction()
        producer.begin_transaction()
        producer.send("kp", b"no")
        producer.flush()
        producer.abort_transaction()
    finally:
        producer.close(timeout=5)
    consumer = kafka.KafkaConsumer(
        "kp",
        bootstrap_servers=bootstrap,
        isolation_level="read_committed",
        auto_offset_reset="earliest",
        consumer_timeout_ms=3000,
    )
    try:
        assert [msg.value for msg in consumer] == [b"yes"]
    finally:
        consumer.close()
