"""The request budget is fair: a flood of pipelining clients is throttled, a client sending one
request at a time is still served.

As in Kafka, which mutes a connection while one of its requests is served, a connection that
holds nothing may always bring its next request; connections that hold budget wait when the
complete half is full and are resumed oldest-waiting first as answers go out. The first tests
pin that bookkeeping on ``RequestMemory`` with stand-in connections; the others run a broker
on 127.0.0.1 under a flood of pipelining producers. Every socket has a timeout and every wait
a deadline; nothing here measures time.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from streamcore.broker import handlers
from streamcore.broker.request_memory import _GRANTS_PER_TURN, _READ_BYTES, RequestMemory
from streamcore.broker.server import KafkaServer
from streamcore.protocol import messages as m
from streamcore.protocol.headers import ApiKey

from .wire_client import WireClient, batch, create_topic, fetch_request, produce, request_frame

KIB = 1024
MIB = 1024 * KIB
WAIT_S = 30.0


# ---------------------------------------------------------------- RequestMemory bookkeeping


class StandIn:
    """What RequestMemory needs of a connection; records when it is allowed to read."""

    def __init__(self, memory: RequestMemory, name: str, resumed: list[str]) -> None:
        self.memory = memory
        self.name = name
        self.budget_waits = 0
        self.partial_bytes = 0
        self.reading = False
        self._resumed = resumed

    def wants_budget(self) -> bool:
        return True

    def update_reading(self) -> None:
        was_reading = self.reading
        self.reading = self.memory.may_read(self)  # type: ignore[arg-type]
        if self.reading and not was_reading:
            self._resumed.append(self.name)


def _full_memory(names: str) -> tuple[RequestMemory, dict[str, StandIn], list[str]]:
    """A 4 MiB budget whose complete half is used up, and stand-ins queued in ``names`` order."""
    memory = RequestMemory(4 * MIB)
    memory.add(memory.complete_limit, 0)
    resumed: list[str] = []
    conns = {name: StandIn(memory, name, resumed) for name in names}
    for conn in conns.values():
        conn.update_reading()
    return memory, conns, resumed


def test_connections_holding_budget_queue_once_the_complete_half_is_full() -> None:
    memory, conns, resumed = _full_memory("abc")
    assert memory.full
    assert resumed == []
    assert memory.queued == 3
    assert [c.budget_waits for c in conns.values()] == [1, 1, 1]
    # Asking again keeps a connection's place instead of counting a second wait.
    conns["a"].update_reading()
    assert conns["a"].budget_waits == 1 and memory.waits == 3


def test_freed_room_goes_to_the_oldest_waiting_first_and_counts_one_read_each() -> None:
    async def scenario() -> None:
        memory, conns, resumed = _full_memory("abcd")
        # Room for exactly two reads: each resumed connection is promised one socket read.
        memory.release(2 * _READ_BYTES)
        assert resumed == ["a", "b"]
        assert memory.granted == 2 * _READ_BYTES
        assert memory.queued == 2
        # "a" reads less than promised: the rest of its share goes to the next in line.
        memory.add(_READ_BYTES // 2, 0)
        memory.read_by(conns["a"])  # type: ignore[arg-type]
        assert resumed == ["a", "b", "c"]
        assert memory.granted == 2 * _READ_BYTES
        # After its read "a" still holds budget and the half is full again: it queues behind "d".
        conns["a"].reading = False
        conns["a"].update_reading()
        assert conns["a"].budget_waits == 2
        assert resumed == ["a", "b", "c"]
        await asyncio.sleep(0)  # a new turn of the event loop
        memory.release(memory.complete_used)
        assert resumed == ["a", "b", "c", "d", "a"]

    asyncio.run(scenario())


def test_a_turn_of_the_event_loop_resumes_a_bounded_number_of_waiting_connections() -> None:
    names = "abcdefg"
    assert _GRANTS_PER_TURN < len(names) and len(names) * _READ_BYTES <= RequestMemory(4 * MIB).complete_limit

    async def scenario() -> None:
        memory, _, resumed = _full_memory(names)
        memory.release(memory.complete_used)  # room for every one of them
        assert resumed == list(names[:_GRANTS_PER_TURN])
        for _ in range(len(names)):
            await asyncio.sleep(0)  # the next turns
        assert resumed == list(names)
        assert memory.queued == 0

    asyncio.run(scenario())


def test_a_connection_that_stops_waiting_gives_its_promised_read_to_the_next() -> None:
    async def scenario() -> None:
        memory, conns, resumed = _full_memory("abc")
        memory.release(_READ_BYTES)
        assert resumed == ["a"]
        # "a"'s requests were answered: it holds nothing and needs no promise.
        memory.unqueue(conns["a"])  # type: ignore[arg-type]
        assert resumed == ["a", "b"]
        assert memory.granted == _READ_BYTES
        memory.forget(conns["b"])  # type: ignore[arg-type]  # closed
        assert memory.granted == 0

    asyncio.run(scenario())


# ---------------------------------------------------------------- a live broker under a flood


@pytest.fixture
def fair_broker(streamcore_broker_factory: Callable[..., Any]) -> Any:
    # A small budget (complete half 1 MiB) that a few pipelining producers fill at once.
    return streamcore_broker_factory(
        settings={
            "limits.queued_max_request_bytes": 2 * MIB,
            "limits.request_timeout_ms": 120_000,
        }
    )


def _server(broker: Any) -> KafkaServer:
    server = broker.runtime._server
    assert isinstance(server, KafkaServer)
    return server


def _on_loop(broker: Any, fn: Callable[[], Any]) -> Any:
    """Run ``fn`` on the broker's event loop (its state is only consistent there)."""

    async def call() -> Any:
        return fn()

    return asyncio.run_coroutine_threadsafe(call(), broker._loop).result(WAIT_S)


def _until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"not within {WAIT_S} s: {what}"
        time.sleep(0.01)


def _flood_frames(topic: str, count: int, value_bytes: int) -> bytes:
    return b"".join(
        request_frame(
            m.ProduceRequest(
                acks=1,
                timeout_ms=30_000,
                topic_data=[
                    m.ProduceRequest_TopicProduceData(
                        name=topic,
                        partition_data=[
                            m.ProduceRequest_PartitionProduceData(
                                index=0, records=batch([b"f" * value_bytes])
                            )
                        ],
                    )
                ],
            ),
            9,
            i + 1,
        )
        for i in range(count)
    )


class Flooder:
    """One connection that sends all its produce requests before reading any answer."""

    def __init__(self, bootstrap: str, frames: bytes, count: int) -> None:
        host, port = bootstrap.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=WAIT_S)
        self.port = self.sock.getsockname()[1]
        self._frames = frames
        self._count = count
        self.correlation_ids: list[int] = []
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.sock.sendall(self._frames)
            buf = b""
            while len(self.correlation_ids) < self._count:
                chunk = self.sock.recv(1 << 16)
                if not chunk:
                    raise ConnectionError("the broker closed a flooding producer")
                buf += chunk
                while len(buf) >= 8 and len(buf) >= 4 + struct.unpack_from(">i", buf)[0]:
                    size = struct.unpack_from(">i", buf)[0]
                    self.correlation_ids.append(struct.unpack_from(">i", buf, 4)[0])
                    buf = buf[4 + size :]
        except BaseException as exc:  # reported by the test
            self.error = exc

    def finish(self) -> None:
        self.thread.join(WAIT_S + 30)
        assert not self.thread.is_alive(), "a flooding producer was still waiting for answers"
        assert self.error is None, self.error
        assert self.correlation_ids == list(range(1, self._count + 1))

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def flooders() -> Iterator[list[Flooder]]:
    started: list[Flooder] = []
    yield started
    for f in started:
        f.close()


def _one_at_a_time_round(c: WireClient, topic: str) -> None:
    p = produce(c, topic, 0, batch([b"one request at a time"]), acks=-1)
    assert p.error_code == 0, p
    resp = c.request(fetch_request(topic, 0, p.base_offset), 12)
    assert resp.responses[0].partitions[0].error_code == 0
    meta = c.request(m.MetadataRequest(topics=[m.MetadataRequest_MetadataRequestTopic(name=topic)]), 9)
    assert [t.error_code for t in meta.topics] == [0]


def test_one_request_at_a_time_is_served_while_a_flood_holds_the_whole_budget(
    fair_broker: Any, flooders: list[Flooder], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The flood's produce requests are held until the test opens the gate, so the budget stays
    # full for as long as the one-at-a-time client runs: it is served without any of the
    # flood's bytes leaving the budget.
    produce_handler = handlers.HANDLERS[ApiKey.PRODUCE]
    real_handle = produce_handler.handle
    gate = asyncio.Event()
    broker_loop: list[asyncio.AbstractEventLoop] = []

    def gated_handle(state: Any, ctx: Any, request: Any) -> Any:
        inner: Any = real_handle(state, ctx, request)
        if request.topic_data[0].name != "flood":
            return inner
        if not broker_loop:
            broker_loop.append(asyncio.get_running_loop())

        async def after_gate() -> Any:
            await gate.wait()
            return await inner

        return after_gate()

    monkeypatch.setattr(produce_handler, "handle", gated_handle)
    with WireClient(fair_broker.bootstrap_servers) as c:
        create_topic(c, "flood")
        create_topic(c, "calm")
    server = _server(fair_broker)
    memory = server.memory
    count = 20
    frames = _flood_frames("flood", count, 128 * KIB - 200)  # 6 x 20 x 128 KiB = 15 MiB offered
    for _ in range(6):
        flooders.append(Flooder(fair_broker.bootstrap_servers, frames, count))
    for f in flooders:
        f.thread.start()
    _until(lambda: memory.full and memory.queued == len(flooders), "the flood filled the budget and queued")

    with WireClient(fair_broker.bootstrap_servers) as calm:
        for _ in range(5):
            _one_at_a_time_round(calm, "calm")

    # Still no answer to the flood, its connections still wait: the client above was served
    # from the connections-that-hold-nothing rule alone.
    assert not gate.is_set()
    assert all(f.correlation_ids == [] for f in flooders)
    assert memory.full
    ports = {f.port for f in flooders}
    waits = _on_loop(
        fair_broker,
        lambda: {int(conn.peer.rsplit(":", 1)[1]): conn.budget_waits for conn in server.connections},
    )
    assert all(waits[port] >= 1 for port in ports), waits

    broker_loop[0].call_soon_threadsafe(gate.set)
    for f in flooders:
        f.finish()
    _until(lambda: memory.used == 0, "every byte left the budget once answered")
    assert (memory.granted, memory.queued) == (0, 0)


def test_pipelining_producers_are_paused_and_all_answered_while_a_client_with_one_request_is_served(
    fair_broker: Any, flooders: list[Flooder]
) -> None:
    with WireClient(fair_broker.bootstrap_servers) as c:
        create_topic(c, "flood")
        create_topic(c, "calm")
    memory = _server(fair_broker).memory
    count = 30
    frames = _flood_frames("flood", count, 256 * KIB - 200)  # 8 x 30 x 256 KiB = 60 MiB offered
    for _ in range(8):
        flooders.append(Flooder(fair_broker.bootstrap_servers, frames, count))
    for f in flooders:
        f.thread.start()
    _until(lambda: memory.waits > 0, "the flood filled the budget")
    rounds = 0
    with WireClient(fair_broker.bootstrap_servers) as calm:
        while rounds < 10:
            _one_at_a_time_round(calm, "calm")
            rounds += 1
    for f in flooders:
        f.finish()
    assert rounds == 10
    assert memory.peak >= memory.complete_limit
    assert memory.waits >= len(flooders)
    _until(lambda: memory.used == 0, "every byte left the budget once answered")
    assert (memory.granted, memory.queued) == (0, 0)
