"""aiokafka 0.14 against the broker: admin, every codec it can use, groups and resume."""

from __future__ import annotations

import asyncio
import time

import pytest

from streamcore import Broker

from .log_check import assert_compressed_with
from .records import MESSAGES, MORE, Consumed, check_consumed, key, partitions_used, value

aiokafka = pytest.importorskip("aiokafka")
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer  # noqa: E402
from aiokafka.admin import AIOKafkaAdminClient, NewTopic  # noqa: E402
from aiokafka.codec import has_gzip, has_lz4, has_snappy, has_zstd  # noqa: E402

pytestmark = pytest.mark.interop

CODEC_SUPPORT = {
    "none": lambda: True,
    "gzip": has_gzip,
    "snappy": has_snappy,
    "lz4": has_lz4,
    "zstd": has_zstd,
}
CONSUME_TIMEOUT_S = 90.0


async def create_topic(bootstrap: str, topic: str, partitions: int = 3) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30_000)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
        [described] = await admin.describe_topics([topic])
        assert described["error_code"] == 0
        assert len(described["partitions"]) == partitions
    finally:
        await admin.close()


async def produce(bootstrap: str, topic: str, seqs: range, compression: str | None) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, compression_type=compression, linger_ms=20)
    await producer.start()
    try:
        # send() queues and returns a future per record; awaiting them all batches the writes.
        futures = [
            await producer.send(topic, key=key(i), value=value(i), headers=[("seq", b"%d" % i)]) for i in seqs
        ]
        results = await asyncio.wait_for(asyncio.gather(*futures), 60)
        assert len(results) == len(seqs)
    finally:
        await producer.stop()


async def consume(bootstrap: str, topic: str, group: str, count: int) -> list[Consumed]:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    out: list[Consumed] = []
    deadline = time.monotonic() + CONSUME_TIMEOUT_S
    try:
        while len(out) < count and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500, max_records=5000)
            for records in batches.values():
                for r in records:
                    headers = dict(r.headers)
                    seq = int(headers["seq"]) if "seq" in headers else None
                    out.append((r.partition, r.offset, r.key, r.value, seq))
        if out:
            await consumer.commit()
    finally:
        await consumer.stop()
    return out


@pytest.mark.parametrize("codec", list(CODEC_SUPPORT))
def test_aiokafka_round_trip_and_group_resume(interop_broker: Broker, codec: str) -> None:
    if not CODEC_SUPPORT[codec]():
        pytest.skip(f"aiokafka has no {codec} codec installed")
    bootstrap = interop_broker.bootstrap_servers
    topic = f"aio-{codec}"
    compression = None if codec == "none" else codec

    async def scenario() -> None:
        await create_topic(bootstrap, topic)
        await produce(bootstrap, topic, range(MESSAGES), compression)
        first = await consume(bootstrap, topic, "aio-group", MESSAGES)
        check_consumed(first, range(MESSAGES), what=f"aiokafka {codec}")
        assert partitions_used(first) == {0, 1, 2}
        assert_compressed_with(bootstrap, topic, codec)
        await produce(bootstrap, topic, range(MESSAGES, MESSAGES + MORE), compression)
        resumed = await consume(bootstrap, topic, "aio-group", MORE)
        check_consumed(resumed, range(MESSAGES, MESSAGES + MORE), what=f"aiokafka {codec} after restart")

    asyncio.run(scenario())
