"""Broker connections: version negotiation, priority channels, adaptive window, bundles."""

from __future__ import annotations

import asyncio
import collections

import pytest

from streamcore.client.cluster import Cluster
from streamcore.client.config import build_config
from streamcore.client.connection import BrokerConnection, Priority
from streamcore.client.errors import ConnectionLostError
from streamcore.protocol.messages import HeartbeatRequest, MetadataRequest, ProduceRequest


def _addr(bootstrap: str) -> tuple[str, int]:
    host, port = bootstrap.rsplit(":", 1)
    return host, int(port)


def test_api_versions_negotiation_picks_highest_common_version(kafka_bootstrap: str) -> None:
    async def main() -> None:
        conn = await BrokerConnection.connect(*_addr(kafka_bootstrap))
        try:
            lo, hi = conn.api_versions[3]
            v = conn.version_for(MetadataRequest)
            assert lo <= v <= hi and v <= MetadataRequest.MAX_VERSION
            assert conn.version_for(ProduceRequest) >= 3  # record batch v2
            resp = await conn.request(MetadataRequest(topics=[]))
            assert resp.brokers
        finally:
            conn.close()

    asyncio.run(main())


def test_heartbeat_queued_behind_produce_requests_is_written_first(kafka_bootstrap: str) -> None:
    async def main() -> None:
        conn = await BrokerConnection.connect(*_addr(kafka_bootstrap))
        conn.write_log = collections.deque()
        try:
            conn.hold_writes()
            produce = ProduceRequest(transactional_id=None, acks=1, timeout_ms=1000, topic_data=[])
            normal = [conn.send(produce) for _ in range(20)]
            hb = conn.send(HeartbeatRequest(group_id="g", generation_id=-1, member_id="x"))
            assert conn.queued == 21
            conn.release_writes()
            await asyncio.wait_for(asyncio.gather(hb, *normal), 10)
            assert conn.write_log[0] == HeartbeatRequest.API_KEY
            assert list(conn.write_log)[1:] == [ProduceRequest.API_KEY] * 20
            assert conn.stats.high == 2 and conn.stats.normal == 20  # ApiVersions + the heartbeat
        finally:
            conn.close()

    asyncio.run(main())


def test_explicit_priority_overrides_the_api_key_default(kafka_bootstrap: str) -> None:
    async def main() -> None:
        conn = await BrokerConnection.connect(*_addr(kafka_bootstrap))
        conn.write_log = collections.deque()
        try:
            conn.hold_writes()
            first = conn.send(MetadataRequest(topics=[]), priority=Priority.NORMAL)
            urgent = conn.send(
                HeartbeatRequest(group_id="g", generation_id=-1, member_id="x"), priority=Priority.NORMAL
            )
            meta_high = conn.send(MetadataRequest(topics=[]), priority=Priority.HIGH)
            conn.release_writes()
            await asyncio.gather(first, urgent, meta_high)
            # The HIGH metadata overtook both NORMAL requests, the heartbeat among them.
            assert list(conn.write_log)[-3:] == [3, 3, 12]
        finally:
            conn.close()

    asyncio.run(main())


def test_requests_written_at_once_when_queues_are_empty_count_as_bypass(kafka_bootstrap: str) -> None:
    async def main() -> None:
        conn = await BrokerConnection.connect(*_addr(kafka_bootstrap))
        try:
            before = conn.stats.bypass
            await conn.request(MetadataRequest(topics=[]))
            assert conn.stats.bypass == before + 1
        finally:
            conn.close()

    asyncio.run(main())


def test_adaptive_window_halves_on_error_and_grows_back_on_success() -> None:
    conn = BrokerConnection("127.0.0.1", 1, max_in_flight=8, min_in_flight=1)
    assert conn.in_flight_limit == 8
    conn.record_outcome(False)
    conn.record_outcome(False)
    assert conn.in_flight_limit == 2
    for _ in range(100):
        conn.record_outcome(True)
    assert conn.in_flight_limit == 8
    for _ in range(10):
        conn.record_outcome(False)
    assert conn.in_flight_limit == 1  # never below the configured floor


def test_closed_connection_fails_waiting_requests(kafka_bootstrap: str) -> None:
    async def main() -> None:
        conn = await BrokerConnection.connect(*_addr(kafka_bootstrap))
        conn.hold_writes()
        fut = conn.send(MetadataRequest(topics=[]))
        conn.close()
        with pytest.raises(ConnectionLostError):
            await fut
        with pytest.raises(ConnectionLostError):
            conn.send(MetadataRequest(topics=[]))

    asyncio.run(main())


def test_bundle_opens_connections_per_broker_and_picks_round_robin(kafka_bootstrap: str) -> None:
    async def main() -> None:
        cfg = build_config("admin", kafka_bootstrap, None, {"connections_per_broker": 3})
        cluster = Cluster(cfg)
        try:
            await cluster.refresh()
            node = next(iter(cluster.brokers))
            bundle = cluster.pool.bundle(node)
            await bundle.connect_all()
            assert bundle.usable_count == 3 and len(bundle) == 3
            picked = {id(await cluster.connection(node)) for _ in range(6)}
            assert len(picked) == 3
            bundle.connections[0].close()
            assert bundle.usable_count == 2
            conn = await cluster.connection(node)  # served by a live one while the slot reconnects
            assert not conn.closed
        finally:
            cluster.close()

    asyncio.run(main())


def test_unreachable_broker_raises_connection_lost() -> None:
    async def main() -> None:
        with pytest.raises(ConnectionLostError):
            await BrokerConnection.connect("127.0.0.1", 1, connect_timeout_ms=2000)

    asyncio.run(main())
