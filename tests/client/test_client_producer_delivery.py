"""Producer delivery guarantees: memory backpressure, idempotent retries, errors on futures."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest

from streamcore.aio import Consumer, Producer
from streamcore.client import BufferFullError
from streamcore.client import Producer as BlockingProducer
from streamcore.client.types import TopicPartition
from streamcore.errors import KafkaError
from streamcore.retry import ErrorCategory

from .helpers import consume_n


def test_blocking_send_raises_buffer_full_after_max_block_ms_when_the_broker_is_gone(
    streamcore_broker_factory: Callable[..., Any],
) -> None:
    broker = streamcore_broker_factory()
    p = BlockingProducer(
        broker.bootstrap_servers,
        buffer_memory=20_000,
        max_block_ms=300,
        linger_ms=0,
        delivery_timeout_ms=60_000,
        request_timeout_ms=2000,
    )
    try:
        p.send("bp", b"x").result(10)
        broker.stop()
        with pytest.raises(BufferFullError):
            for _ in range(1000):  # 1000 x 1 KiB cannot fit in 20 KB
                p.send("bp", b"x" * 1024)
        assert p.metrics["buffer_used_bytes"] <= 20_000 + 2000
    finally:
        p.close(timeout=0)


def test_async_send_awaits_buffer_space_then_raises_buffer_full(
    streamcore_broker_factory: Callable[..., Any],
) -> None:
    broker = streamcore_broker_factory()

    async def main() -> None:
        p = Producer(
            broker.bootstrap_servers,
            buffer_memory=20_000,
            max_block_ms=300,
            linger_ms=0,
            request_timeout_ms=2000,
        )
        await p.start()
        try:
            await (await p.send("bp", b"x"))
            broker.stop()
            with pytest.raises(BufferFullError):
                for _ in range(1000):
                    await p.send("bp", b"x" * 1024)
        finally:
            await p.close(timeout=0)

    asyncio.run(main())


def test_idempotent_retry_after_a_dropped_connection_writes_no_duplicates(
    kafka_bootstrap: str, topic_name: str, request: pytest.FixtureRequest
) -> None:
    n = 200

    async def main() -> None:
        async with Producer(kafka_bootstrap, linger_ms=5, retry_backoff_ms=20) as p:
            first = await (await p.send(topic_name, b"warm-up", partition=0))
            node = p._core.cluster.leader_for(topic_name, 0)
            conn = p._core.cluster.pool.bundle(node).connections[0]
            # The next Produce frame reaches the broker, then the connection drops
            # before its answer is read: the producer must resend the same batch.
            conn.drop_after_write.add(0)
            futs = [await p.send(topic_name, b"%d" % i, partition=0) for i in range(n)]
            await p.flush(30)
            metas = [f.result() for f in futs]
            assert conn.closed  # the hook fired
        assert {m.offset for m in metas} == set(range(first.offset + 1, first.offset + 1 + n))
        async with Consumer(kafka_bootstrap, auto_offset_reset="earliest") as c:
            c.assign([TopicPartition(topic_name, 0)])
            records = await consume_n(c, n + 1)
            assert await c.poll(timeout_ms=300) == []  # nothing beyond: no duplicate was written
        values = [r.value for r in records[1:]]
        assert values == [b"%d" % i for i in range(n)]

    asyncio.run(main())


def test_non_retriable_error_surfaces_on_the_future_with_its_category(
    kafka_bootstrap: str, topic_name: str
) -> None:
    async def main() -> None:
        async with Producer(kafka_bootstrap, batch_size=16_000_000, max_request_size=16_000_000) as p:
            fut = await p.send(topic_name, b"x" * 3_000_000)  # above the broker's max message size
            with pytest.raises(KafkaError) as info:
                await asyncio.wait_for(fut, 30)
        assert info.value.error.name in ("MESSAGE_TOO_LARGE", "RECORD_LIST_TOO_LARGE")
        assert info.value.category is ErrorCategory.FATAL

    asyncio.run(main())


def test_acks_zero_completes_without_offsets(kafka_bootstrap: str, topic_name: str) -> None:
    async def main() -> None:
        async with Producer(kafka_bootstrap, acks=0) as p:
            meta = await (await p.send(topic_name, b"fire-and-forget"))
        assert meta.offset == -1 and meta.topic == topic_name

    asyncio.run(main())


def test_flush_waits_for_every_lingering_record(kafka_bootstrap: str, topic_name: str) -> None:
    async def main() -> None:
        async with Producer(kafka_bootstrap, linger_ms=60_000, batch_size=1_000_000) as p:
            futs = [await p.send(topic_name, b"v") for _ in range(10)]
            assert not any(f.done() for f in futs)
            t0 = time.monotonic()
            await p.flush(20)
            assert all(f.done() for f in futs)
            assert time.monotonic() - t0 < 20

    asyncio.run(main())
