"""A broker's ``throttle_time_ms`` pauses writes to it for that long (KIP-219), on every
connection of its bundle; answers to old versions, which the broker delayed itself, do
not pause again. Gaps are checked from below only: a pause never ends early.
"""

from __future__ import annotations

import asyncio

import streamcore.aio as aio
from streamcore.client.connection import BrokerConnection
from streamcore.client.pool import ConnectionBundle
from streamcore.protocol.messages import ProduceRequest

from .fake_broker import FakeBroker

THROTTLE_MS = 300


def _empty_produce() -> ProduceRequest:
    return ProduceRequest(transactional_id=None, acks=1, timeout_ms=1000, topic_data=[])


async def _connect(broker: FakeBroker) -> BrokerConnection:
    return await BrokerConnection.connect("127.0.0.1", broker.port)


def test_throttled_answer_pauses_the_next_writes_for_the_throttle_time() -> None:
    async def main(broker: FakeBroker) -> None:
        conn = await _connect(broker)
        try:
            await conn.request(_empty_produce())
            assert conn.throttled and conn.stats.throttled == 1
            assert conn.stats.throttle_time_ms == THROTTLE_MS
            bypass = conn.stats.bypass
            later = [conn.send(_empty_produce()) for _ in range(3)]
            assert conn.queued == 3 and conn.in_flight == 0  # queued, nothing written
            await asyncio.wait_for(asyncio.gather(*later), 10)
            assert conn.stats.bypass == bypass
            assert not conn.throttled
        finally:
            conn.close()

    with FakeBroker() as broker:
        broker.produce_script.append((0, THROTTLE_MS))
        asyncio.run(main(broker))
        arrivals = broker.produce_arrivals
    assert len(arrivals) == 4
    assert arrivals[1] - arrivals[0] >= THROTTLE_MS / 1000


def test_a_throttle_pauses_every_connection_of_the_broker() -> None:
    async def main(broker: FakeBroker) -> None:
        async def factory(host: str, port: int, node_id: int) -> BrokerConnection:
            return await BrokerConnection.connect(host, port, node_id=node_id)

        bundle = ConnectionBundle(0, "127.0.0.1", broker.port, 2, factory)
        try:
            await bundle.connect_all()
            first, second = bundle.get(0), bundle.get(1)
            assert first is not None and second is not None
            await first.request(_empty_produce())
            assert second.throttled and bundle.throttle.remaining_s() > 0
            fut = second.send(_empty_produce())
            assert second.queued == 1
            await asyncio.wait_for(fut, 10)
        finally:
            bundle.close()

    with FakeBroker() as broker:
        broker.produce_script.append((0, THROTTLE_MS))
        asyncio.run(main(broker))
        arrivals = broker.produce_arrivals
    assert arrivals[1] - arrivals[0] >= THROTTLE_MS / 1000


def test_old_versions_whose_answer_the_broker_delayed_do_not_pause_again() -> None:
    async def main() -> None:
        conn = await _connect(broker)
        try:
            await conn.request(_empty_produce(), version=5)  # KIP-219 client throttling starts at v6
            assert conn.stats.throttled == 1
            assert not conn.throttled
        finally:
            conn.close()

    with FakeBroker() as broker:
        broker.produce_script.append((0, 5_000))
        asyncio.run(main())


def test_producer_holds_batches_for_a_throttled_broker_until_the_pause_ends() -> None:
    async def main(broker: FakeBroker) -> dict[str, object]:
        async with aio.Producer(broker.bootstrap, linger_ms=0, retry_jitter=0) as p:
            await asyncio.wait_for(await p.send("t", b"first"), 10)
            paused = p.metrics["throttle_remaining_s"]
            assert any(v > 0 for v in paused.values())  # type: ignore[attr-defined]
            meta = await asyncio.wait_for(await p.send("t", b"second"), 10)
            assert meta.offset == 1
            return p.metrics

    with FakeBroker() as broker:
        broker.produce_script.append((0, THROTTLE_MS))
        metrics = asyncio.run(main(broker))
        arrivals = broker.produce_arrivals
    assert len(arrivals) == 2
    assert arrivals[1] - arrivals[0] >= THROTTLE_MS / 1000
    conns = [c for per_node in metrics["connections"].values() for c in per_node]  # type: ignore[attr-defined]
    assert sum(c["throttled"] for c in conns) == 1
