"""A fetch served by sendfile reads its batch headers on the event loop when the page
cache holds them (RWF_NOWAIT), and on a read thread otherwise: the answer is the same
bytes either way, and the partition that would wait for the disk goes to the thread
with every partition after it."""

from __future__ import annotations

import asyncio
import errno
import os
import threading
from collections.abc import Awaitable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from storage.page_cache import evict
from streamcore.broker import fetch_records
from streamcore.broker.context import RequestContext
from streamcore.broker.embedded import Broker
from streamcore.broker.handlers import fetch as fetch_mod
from streamcore.broker.state import current_listener
from streamcore.protocol import messages as m
from streamcore.protocol.headers import OutOfLine
from streamcore.storage.log import Log

from .wire_client import (
    WireClient,
    batch,
    create_topic,
    fetch_request,
    fetched_partition,
    produce,
    records_of,
)


class _CountingPool:
    """Stands for the read pool: counts the reads handed to it and runs them on a thread."""

    def __init__(self) -> None:
        self.submitted = 0
        self._pool = ThreadPoolExecutor(max_workers=1)

    def submit(self, fn: Any, *args: Any) -> Future[Any]:
        self.submitted += 1
        return self._pool.submit(fn, *args)

    def shutdown(self, *args: Any, **kwargs: Any) -> None:
        self._pool.shutdown(*args, **kwargs)


@pytest.fixture
def pool(monkeypatch: pytest.MonkeyPatch) -> Any:
    counting = _CountingPool()
    monkeypatch.setattr(fetch_mod, "_read_pool", lambda: counting)
    yield counting
    counting.shutdown()


def _request() -> m.FetchRequest:
    req = fetch_request("a", 0, 0, max_bytes=1 << 20)
    req.topics += fetch_request("b", 0, 0, max_bytes=1 << 20).topics
    return req


def _fetch(bootstrap: str) -> bytes:
    with WireClient(bootstrap) as c:
        c.send(_request(), 12)
        frame = c.recv_frame()
        c.pending.popleft()
        return frame


def _values(frame: bytes, topic: str) -> list[bytes | None]:
    resp = m.FetchResponse.decode(memoryview(frame)[5:], 12)
    return [v for _, _, v in records_of(fetched_partition(resp, topic, 0).records)]


def _filled_broker(data_dir: Path) -> tuple[Broker, dict[str, list[bytes]]]:
    broker = Broker(str(data_dir), host="127.0.0.1", port=0).start()
    values: dict[str, list[bytes]] = {}
    with WireClient(broker.bootstrap_servers) as c:
        for topic in ("a", "b"):
            create_topic(c, topic)
            values[topic] = []
            for i in range(5):
                pair = [b"%s-%d-x" % (topic.encode(), i), b"%s-%d-y" % (topic.encode(), i)]
                assert produce(c, topic, 0, batch(pair)).error_code == 0
                values[topic] += pair
    return broker, values


def _evict(broker: Broker, topic: str) -> None:
    """Drop ``topic``-0's segment files (written back first) from the page cache."""
    directory = broker.state.topics.data_dir / f"{topic}-0"
    for name in os.listdir(directory):
        if name.endswith(".log"):
            evict(directory / name)


def test_cached_headers_are_read_on_the_loop_and_cold_ones_on_a_thread(tmp_path, monkeypatch, pool):
    if getattr(os, "RWF_NOWAIT", None) is None:
        pytest.fail("this platform's os module has no RWF_NOWAIT (Linux 4.14+ needed)")
    broker, values = _filled_broker(tmp_path / "data")
    try:
        # Just written, checked by this broker, in the page cache: no thread.
        hot = _fetch(broker.bootstrap_servers)
        assert pool.submitted == 0
        assert _values(hot, "a") == values["a"] and _values(hot, "b") == values["b"]

        # Topic b's segment written back and dropped from the page cache: a is still
        # read on the loop, b (and what follows it) goes to the pool. Something on this
        # machine may read the page back between the eviction and the fetch (about one
        # run in 25 here), so the pair is tried a few times.
        broker.state.topics.log("b", 0).flush()
        for _ in range(5):
            _evict(broker, "b")
            assert _fetch(broker.bootstrap_servers) == hot
            if pool.submitted:
                break
        assert pool.submitted == 1

        # A kernel without the flag: every read on a thread, the same bytes again.
        monkeypatch.setattr(fetch_records, "_RWF_NOWAIT", None)
        assert _fetch(broker.bootstrap_servers) == hot
        assert pool.submitted == 2
    finally:
        broker.stop()


def test_a_file_system_refusing_the_flag_turns_the_loop_reads_off(tmp_path, monkeypatch, pool):
    broker, values = _filled_broker(tmp_path / "data")
    try:
        monkeypatch.setattr(fetch_records, "_RWF_NOWAIT", getattr(os, "RWF_NOWAIT", 8))
        real = Log.file_ranges

        def refuse(
            self: Log, offset: int, max_bytes: int, stop_before: Any = None, nowait: bool = False
        ) -> Any:
            # What both WAL twins raise when the kernel or file system refuses RWF_NOWAIT.
            if nowait:
                raise OSError(errno.EOPNOTSUPP, "Operation not supported")
            return real(self, offset, max_bytes, stop_before, nowait)

        monkeypatch.setattr(Log, "file_ranges", refuse)
        frame = _fetch(broker.bootstrap_servers)
        assert _values(frame, "a") == values["a"] and _values(frame, "b") == values["b"]
        assert pool.submitted == 1
        assert fetch_records._RWF_NOWAIT is None
    finally:
        broker.stop()


def test_read_committed_file_ranges_stop_at_the_last_stable_offset(tmp_path, monkeypatch):
    """An open transaction behind committed data: a read_committed fetch served from the
    segment files ends before the open transaction's first batch, with the same bytes a
    restarted broker (which has checked nothing yet, so it reads and checks first) answers."""
    from confluent_kafka import Producer

    sent_by_file = {"calls": 0}
    real_sendfile = os.sendfile

    def counting(out_fd: int, in_fd: int, offset: Any, count: int) -> int:
        sent_by_file["calls"] += 1
        return real_sendfile(out_fd, in_fd, offset, count)

    monkeypatch.setattr(os, "sendfile", counting)
    data_dir = tmp_path / "data"
    broker, values = _filled_broker(data_dir)
    try:
        producer = Producer({"bootstrap.servers": broker.bootstrap_servers, "transactional.id": "loop-tx"})
        producer.init_transactions(30)
        producer.begin_transaction()
        producer.produce("a", value=b"open", partition=0)
        producer.flush(30)
        req = fetch_request("a", 0, 0)
        req.isolation_level = 1
        with WireClient(broker.bootstrap_servers) as c:
            c.send(req, 12)
            by_file = c.recv_frame()
            c.pending.popleft()
        assert sent_by_file["calls"] > 0
        resp = m.FetchResponse.decode(memoryview(by_file)[5:], 12)
        part = fetched_partition(resp, "a", 0)
        assert part.last_stable_offset == len(values["a"]) < part.high_watermark
        assert [v for _, _, v in records_of(part.records)] == values["a"]
    finally:
        broker.stop()
    # Restarted, the broker has checked nothing yet: it reads and checks first, then
    # sends the checked buffer where sendfile cannot be used (as under TLS), and the
    # checked batches by sendfile otherwise. The same bytes either way.
    for copying in (True, False):
        sent_by_file["calls"] = 0
        broker = Broker(str(data_dir), host="127.0.0.1", port=0).start()
        try:
            with monkeypatch.context() as patched:
                if copying:
                    patched.setattr(fetch_mod, "_sendfile_capable", lambda: (True, False))
                with WireClient(broker.bootstrap_servers) as c:
                    c.send(req, 12)
                    again = c.recv_frame()
                    c.pending.popleft()
            assert (sent_by_file["calls"] == 0) if copying else (sent_by_file["calls"] > 0)
            assert again == by_file
        finally:
            broker.stop()


def _handle_on_loop(broker: Broker, request: m.FetchRequest) -> tuple[bool, m.FetchResponse]:
    """Call the Fetch handler on the broker's loop as a connection does; (whether it
    answered at once, the response, awaited if it had to wait)."""

    async def call() -> tuple[bool, m.FetchResponse]:
        ctx = RequestContext(1, 12, 1, "test", "127.0.0.1:1")
        # As from a plaintext connection: record sets may be sent with sendfile.
        current_listener.set(broker.runtime.listeners[0])
        result = fetch_mod.handle(broker.state, ctx, request)
        at_once = not isinstance(result, Awaitable)
        resp = result if at_once else await result
        # Bring record sets left out of line (open file ranges) into memory, as a
        # sender that cannot sendfile does, and close their files.
        for topic in resp.responses:
            for pd in topic.partitions:
                if isinstance(pd.records, OutOfLine):
                    data = pd.records.materialize()
                    pd.records.close()
                    pd.records = bytes(data)
        return at_once, resp

    loop = broker._loop
    assert loop is not None
    return asyncio.run_coroutine_threadsafe(call(), loop).result(30)


def test_a_fetch_the_first_read_answers_is_answered_at_once_and_one_that_waits_later(tmp_path):
    broker, values = _filled_broker(tmp_path / "data")
    try:
        at_once, resp = _handle_on_loop(broker, fetch_request("a", 0, 0))
        assert at_once
        assert [v for _, _, v in records_of(fetched_partition(resp, "a", 0).records)] == values["a"]

        # Nothing past the high watermark and a wait allowed: the answer comes later,
        # with the records produced meanwhile.
        hw = len(values["a"])
        waiting = fetch_request("a", 0, hw, max_wait_ms=10_000, min_bytes=1)
        with WireClient(broker.bootstrap_servers) as c:

            def produce_soon() -> None:
                assert produce(c, "a", 0, batch([b"late"])).error_code == 0

            timer = threading.Timer(0.3, produce_soon)
            timer.start()
            try:
                at_once, resp = _handle_on_loop(broker, waiting)
            finally:
                timer.join()
        assert not at_once
        assert [v for _, _, v in records_of(fetched_partition(resp, "a", 0).records)] == [b"late"]

        # Nothing to wait for (max_wait_ms 0): answered at once, empty.
        at_once, resp = _handle_on_loop(broker, fetch_request("a", 0, hw + 1))
        assert at_once and fetched_partition(resp, "a", 0).high_watermark == hw + 1
    finally:
        broker.stop()
