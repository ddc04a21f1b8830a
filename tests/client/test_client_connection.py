"""Broker connections: version negotiation, priority channels, adaptive window, bundles."""

from __future__ import annotations

import asyncio
import collections
import os
import socket
import time

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


def test_full_channel_makes_request_wait_and_send_refuse_without_growing_the_queue() -> None:
    from streamcore.client.connection import ChannelFullError

    from .fake_broker import FakeBroker

    async def main(port: int) -> None:
        conn = await BrokerConnection.connect("127.0.0.1", port, normal_capacity=2)
        try:
            conn.hold_writes()
            produce = ProduceRequest(transactional_id=None, acks=1, timeout_ms=1000, topic_data=[])
            queued = [conn.send(produce), conn.send(produce)]
            waiting = asyncio.ensure_future(conn.request(produce))
            for _ in range(5):
                await asyncio.sleep(0)
            assert not waiting.done() and conn.queued == 2 and conn.room(Priority.NORMAL) == 0
            assert conn.stats.channel_full_waits == 1
            with pytest.raises(ChannelFullError, match="capacity of 2"):
                conn.send(produce)
            assert conn.queued == 2
            high = conn.send(MetadataRequest(topics=[]))  # the high channel has its own room
            assert conn.queued == 3
            conn.release_writes()
            await asyncio.wait_for(asyncio.gather(waiting, high, *queued), 10)
        finally:
            conn.close()

    with FakeBroker() as broker:
        asyncio.run(main(broker.port))


def test_closing_a_connection_fails_requests_waiting_for_room() -> None:
    from .fake_broker import FakeBroker

    async def main(port: int) -> None:
        conn = await BrokerConnection.connect("127.0.0.1", port, high_capacity=1)
        conn.hold_writes()
        first = conn.send(MetadataRequest(topics=[]))
        waiting = asyncio.ensure_future(conn.request(MetadataRequest(topics=[])))
        await asyncio.sleep(0)
        conn.close()
        with pytest.raises(ConnectionLostError):
            await asyncio.wait_for(waiting, 10)
        with pytest.raises(ConnectionLostError):
            await first

    with FakeBroker() as broker:
        asyncio.run(main(broker.port))


def test_channel_capacities_default_to_64_and_256_and_follow_the_settings() -> None:
    import streamcore.aio as aio

    from .fake_broker import FakeBroker

    assert BrokerConnection("127.0.0.1", 1).capacities == (64, 256)

    async def main(bootstrap: str) -> None:
        async with aio.Producer(
            bootstrap, {"high.priority.channel.capacity": 8}, normal_priority_channel_capacity=3
        ) as p:
            conns = [c for b in p._core.cluster.pool._bundles.values() for c in b.connections]
            assert conns and all(c.capacities == (8, 3) for c in conns)

    with FakeBroker() as broker:
        asyncio.run(main(broker.bootstrap))


def test_producer_keeps_batches_back_while_the_channel_is_full() -> None:
    import streamcore.aio as aio

    from .fake_broker import FakeBroker

    async def main(bootstrap: str) -> None:
        async with aio.Producer(bootstrap, linger_ms=0, normal_priority_channel_capacity=1) as p:
            await asyncio.wait_for(await p.send("t", b"warm-up"), 10)
            (conn,) = [
                c for b in p._core.cluster.pool._bundles.values() for c in b.connections if c.node_id == 0
            ]
            conn.hold_writes()
            conn.send(ProduceRequest(transactional_id=None, acks=1, timeout_ms=1000, topic_data=[]))
            fut = await p.send("t", b"held")
            for _ in range(20):
                await asyncio.sleep(0.01)
                assert conn.queued <= 1  # never beyond the capacity
            assert not fut.done()
            assert any(p._core.acc.sealed.values()) or p._core.acc.open  # still in the accumulator
            conn.release_writes()
            assert (await asyncio.wait_for(fut, 10)).offset == 1

    with FakeBroker() as broker:
        asyncio.run(main(broker.bootstrap))


class _RecordingTransport:
    """Stands in for an asyncio transport: keeps what it is given, in order."""

    def __init__(self) -> None:
        self.written: list[bytes] = []

    def write(self, data: bytes | memoryview) -> None:
        self.written.append(bytes(data))

    def get_write_buffer_size(self) -> int:
        return sum(len(w) for w in self.written)

    def is_closing(self) -> bool:
        return False


def _read_all(fd: int) -> bytes:
    out = b""
    while True:
        try:
            chunk = os.read(fd, 1 << 16)
        except BlockingIOError:
            return out
        if not chunk:
            return out
        out += chunk


def test_frame_in_parts_goes_out_once_in_order_when_the_vectored_write_takes_only_some() -> None:
    # A non-blocking pipe takes at most its capacity (64 KiB) of the ~300 KB frame in one
    # writev: the transport must get exactly the rest, starting mid-part.
    read_fd, write_fd = os.pipe()
    os.set_blocking(read_fd, False)
    os.set_blocking(write_fd, False)
    try:
        conn = BrokerConnection("127.0.0.1", 1)
        transport = _RecordingTransport()
        conn._transport = transport  # type: ignore[assignment]
        conn._fd = write_fd
        parts = [b"head", b"a" * 100_000, b"mid", b"b" * 200_000, b"tail"]
        conn._write_parts(parts)
        through_fd = _read_all(read_fd)
        assert 0 < len(through_fd) < sum(map(len, parts))
        assert through_fd + b"".join(transport.written) == b"".join(parts)
        # Behind queued data nothing may jump the queue: every part goes to the transport.
        conn._write_parts([b"x", b"y" * 50_000])
        assert _read_all(read_fd) == b""
        assert transport.written[-2:] == [b"x", b"y" * 50_000]
    finally:
        os.close(read_fd)
        os.close(write_fd)


def test_large_produce_request_in_parts_is_written_whole_through_a_small_send_buffer(
    kafka_bootstrap: str, topic_name: str
) -> None:
    from streamcore._impl import record_batch
    from streamcore.client import AdminClient
    from streamcore.client import connection as connection_module
    from streamcore.protocol.messages import (
        ProduceRequest_PartitionProduceData,
        ProduceRequest_TopicProduceData,
    )

    with AdminClient(kafka_bootstrap) as admin:
        admin.create_topic(topic_name, num_partitions=3)
    batches = [
        record_batch.encode_batch([bytes([65 + p]) * 1000 + b"%06d" % i for i in range(250)])
        for p in range(3)
    ]
    assert all(len(b) > 200_000 for b in batches)
    taken: list[int] = []
    real_writev = os.writev

    def writev(fd: int, parts: list[bytes]) -> int:
        n = real_writev(fd, parts)
        taken.append(n)
        return n

    async def main() -> None:
        conn = await BrokerConnection.connect(*_addr(kafka_bootstrap))
        try:
            # A small send buffer: the kernel takes only part of the ~750 KB frame at once.
            sock = conn._transport.get_extra_info("socket")  # type: ignore[union-attr]
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
            req = ProduceRequest(
                transactional_id=None,
                acks=-1,
                timeout_ms=30_000,
                topic_data=[
                    ProduceRequest_TopicProduceData(
                        name=topic_name,
                        partition_data=[
                            ProduceRequest_PartitionProduceData(index=p, records=b)
                            for p, b in enumerate(batches)
                        ],
                    )
                ],
            )
            written = conn.stats.bytes_written
            resp = await conn.request(req)
            assert conn.stats.bytes_written - written > sum(map(len, batches))
            answers = {p.index: p for t in resp.responses for p in t.partition_responses}
            assert sorted(answers) == [0, 1, 2]
            assert all(a.error_code == 0 and a.base_offset == 0 for a in answers.values())
        finally:
            conn.close()

    mp = pytest.MonkeyPatch()
    mp.setattr(connection_module.os, "writev", writev)
    try:
        asyncio.run(main())
    finally:
        mp.undo()
    assert taken and taken[0] < sum(map(len, batches))

    from streamcore.client import Consumer, TopicPartition

    with Consumer(kafka_bootstrap, auto_offset_reset="earliest", enable_auto_commit=False) as consumer:
        tps = [TopicPartition(topic_name, p) for p in range(3)]
        consumer.assign(tps)
        got: dict[int, list[bytes]] = {0: [], 1: [], 2: []}
        deadline = time.monotonic() + 20
        while sum(map(len, got.values())) < 750 and time.monotonic() < deadline:
            for r in consumer.poll(timeout_ms=200):
                got[r.partition].append(r.value)
    for p in range(3):
        assert got[p] == [bytes([65 + p]) * 1000 + b"%06d" % i for i in range(250)]
