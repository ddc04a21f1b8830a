"""kafka-python 3 against the broker: admin, every codec it can use, groups, default idempotence."""

from __future__ import annotations

import time

import pytest

from streamcore import Broker

from .log_check import assert_compressed_with, check_exactly_once_log
from .records import MESSAGES, MORE, Consumed, check_consumed, key, partitions_used, value

kafka = pytest.importorskip("kafka")
from kafka import KafkaConsumer, KafkaProducer  # noqa: E402
from kafka.admin import KafkaAdminClient, NewTopic  # noqa: E402
from kafka.codec import has_gzip, has_lz4, has_snappy, has_zstd  # noqa: E402

pytestmark = pytest.mark.interop

CODEC_SUPPORT = {
    "none": lambda: True,
    "gzip": has_gzip,
    "snappy": has_snappy,
    "lz4": has_lz4,
    "zstd": has_zstd,
}
CONSUME_TIMEOUT_S = 90.0


def create_topic(bootstrap: str, topic: str, partitions: int = 3) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30_000)
    try:
        admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
        [described] = admin.describe_topics([topic])
        assert described["error_code"] == 0
        assert len(described["partitions"]) == partitions
    finally:
        admin.close()


def produce(bootstrap: str, topic: str, seqs: range, compression: str | None = None) -> KafkaProducer:
    """Produce ``seqs`` with the library's defaults (idempotence on) apart from compression/linger."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, compression_type=compression, linger_ms=20)
    try:
        futures = [
            producer.send(topic, key=key(i), value=value(i), headers=[("seq", b"%d" % i)]) for i in seqs
        ]
        producer.flush(timeout=60)
        failed = [f.exception for f in futures if not f.succeeded()]
        assert failed == [], f"{len(failed)} sends failed, e.g. {failed[:3]}"
    finally:
        producer.close(timeout=30)
    return producer


def consume(bootstrap: str, topic: str, group: str, count: int) -> list[Consumed]:
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    out: list[Consumed] = []
    deadline = time.monotonic() + CONSUME_TIMEOUT_S
    try:
        while len(out) < count and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500, max_records=5000).values():
                for r in records:
                    headers = dict(r.headers)
                    seq = int(headers["seq"]) if "seq" in headers else None
                    out.append((r.partition, r.offset, r.key, r.value, seq))
        if out:
            consumer.commit()
    finally:
        consumer.close()
    return out


@pytest.mark.parametrize("codec", list(CODEC_SUPPORT))
def test_kafka_python_round_trip_and_group_resume(interop_broker: Broker, codec: str) -> None:
    if not CODEC_SUPPORT[codec]():
        pytest.skip(f"kafka-python has no {codec} codec installed")
    bootstrap = interop_broker.bootstrap_servers
    topic = f"kp-{codec}"
    compression = None if codec == "none" else codec
    create_topic(bootstrap, topic)
    produce(bootstrap, topic, range(MESSAGES), compression)
    first = consume(bootstrap, topic, "kp-group", MESSAGES)
    check_consumed(first, range(MESSAGES), what=f"kafka-python {codec}")
    assert partitions_used(first) == {0, 1, 2}
    assert_compressed_with(bootstrap, topic, codec)

    produce(bootstrap, topic, range(MESSAGES, MESSAGES + MORE), compression)
    resumed = consume(bootstrap, topic, "kp-group", MORE)
    check_consumed(resumed, range(MESSAGES, MESSAGES + MORE), what=f"kafka-python {codec} after restart")


def test_kafka_python_default_idempotent_producer_writes_exactly_once(interop_broker: Broker) -> None:
    bootstrap = interop_broker.bootstrap_servers
    create_topic(bootstrap, "kp-idem")
    producer = produce(bootstrap, "kp-idem", range(3000))
    assert producer.config["enable_idempotence"] is True, "kafka-python turned idempotence off"
    check_exactly_once_log(bootstrap, "kp-idem", [key(i) for i in range(3000)])
