"""Fetch responses sent with os.sendfile: the same bytes as the copying path, partial
sends, clients that go away mid-response, segments deleted or cut under a pending send."""

from __future__ import annotations

import os
import socket
import struct
import time
from pathlib import Path
from typing import Any

import pytest

from streamcore.broker.embedded import Broker
from streamcore.broker.handlers import fetch as fetch_handler
from streamcore.broker.handlers.fetch import BufferRecords, FileRecords
from streamcore.protocol import headers
from streamcore.protocol import messages as m

from .wire_client import (
    WireClient,
    batch,
    create_topic,
    fetch_request,
    fetched_partition,
    produce,
    records_of,
    request_frame,
    split_host_port,
)

SEGMENT_BYTES = 256 * 1024


def _send_buffer_max() -> int:
    """The most a TCP socket's send buffer grows to on this machine (bytes)."""
    try:
        with open("/proc/sys/net/ipv4/tcp_wmem") as f:
            return int(f.read().split()[2])
    except (OSError, ValueError, IndexError):
        return 4 << 20


# Batches of about 60 kB (see _fill) filling one and a half times what the broker's send
# buffer can hold, so that part of a response to a reader that does not read must wait
# for room, whatever the broker sends at once.
MORE_THAN_SOCKET_BUFFERS = _send_buffer_max() * 3 // 2 // 60_000 + 1


class _SendfileCounter:
    """Wraps os.sendfile (asyncio's selector loop looks it up at each call)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        self.bytes = 0
        #: Calls that found the socket's send buffer full (BlockingIOError), or sent less
        #: than asked of a file long enough: the socket had room for part of it only.
        self.cut = 0
        real = os.sendfile

        def counting(out_fd: int, in_fd: int, offset: Any, count: int) -> int:
            try:
                sent = real(out_fd, in_fd, offset, count)
            except BlockingIOError:
                self.cut += 1
                raise
            if 0 < sent < count and offset + count <= os.fstat(in_fd).st_size:
                self.cut += 1
            self.calls += 1
            self.bytes += sent
            return sent

        monkeypatch.setattr(os, "sendfile", counting)


def _start(data_dir: Path) -> Broker:
    return Broker(
        str(data_dir), host="127.0.0.1", port=0, settings={"storage.segment_bytes": SEGMENT_BYTES}
    ).start()


def _fill(c: WireClient, topic: str, batches: int, value_bytes: int = 60_000) -> list[bytes]:
    """Produce ``batches`` batches of two records each; returns the values in offset order."""
    values = []
    for i in range(batches):
        pair = [bytes([i % 251]) * value_bytes, b"%d" % i]
        assert produce(c, topic, 0, batch(pair)).error_code == 0
        values += pair
    return values


def _raw_fetch(bootstrap: str, request: m.FetchRequest, version: int) -> bytes:
    with WireClient(bootstrap) as c:
        c.send(request, version)
        frame = c.recv_frame()
        c.pending.popleft()
        return frame


def _two_topic_fetch(max_bytes: int) -> m.FetchRequest:
    req = fetch_request("a", 0, 0, max_bytes=max_bytes)
    extra = fetch_request("b", 0, 3, max_bytes=max_bytes)
    req.topics += extra.topics
    return req


def _answers_of_a_first_broker(
    data_dir: Path, batches: tuple[int, int], requests: list[tuple[m.FetchRequest, int]]
) -> tuple[list[bytes], list[bytes]]:
    """Topics "a" and "b" filled with ``batches`` batches each by a broker on
    ``data_dir``, which then answers ``requests`` (request, version) and stops: ("a"'s
    values, the raw answers)."""
    broker = _start(data_dir)
    try:
        with WireClient(broker.bootstrap_servers) as c:
            create_topic(c, "a")
            create_topic(c, "b")
            values_a = _fill(c, "a", batches[0])
            _fill(c, "b", batches[1])
        return values_a, [_raw_fetch(broker.bootstrap_servers, req, v) for req, v in requests]
    finally:
        broker.stop()


def test_a_response_sent_with_sendfile_is_byte_identical_to_the_copying_path(tmp_path, monkeypatch):
    counter = _SendfileCounter(monkeypatch)
    data_dir = tmp_path / "data"
    requests = [(_two_topic_fetch(1 << 20), v) for v in (4, 11, 12)]
    requests.append((_two_topic_fetch(1000), 12))
    # Several segments each (a fetch spans them), the first batch of "b" larger than the
    # partition limit of the last request (KIP-74: still sent whole).
    values_a, sent = _answers_of_a_first_broker(data_dir, (12, 6), requests)
    assert counter.calls > 0
    assert counter.bytes > 0
    # Reopened, the broker has not checked these batches itself: it reads and checks
    # them first, and must answer the very same bytes. Over a connection that cannot use
    # sendfile (as under TLS) it sends the checked buffer; otherwise the batches it has
    # just checked go by sendfile. (A fresh broker for each request: nothing checked yet.)
    for copying in (True, False):
        for (req, version), expected in zip(requests, sent, strict=True):
            counter.calls = 0
            broker = _start(data_dir)
            try:
                with monkeypatch.context() as patched:
                    if copying:
                        patched.setattr(fetch_handler, "_sendfile_capable", lambda: (True, False))
                    assert _raw_fetch(broker.bootstrap_servers, req, version) == expected
                if copying:
                    assert counter.calls == 0
                    if version == 12 and req.topics[0].partitions[0].partition_max_bytes > 1000:
                        # Checked reads that reach the log's end join what the broker
                        # trusts: "b" from offset 2 now goes by sendfile, same bytes.
                        assert _raw_fetch(broker.bootstrap_servers, req, version) == expected
                        assert counter.calls > 0
                else:
                    assert counter.calls > 0
            finally:
                broker.stop()
    resp = m.FetchResponse.decode(memoryview(sent[2])[5:], 12)
    part = fetched_partition(resp, "a", 0)
    got = [v for _, _, v in records_of(part.records)]
    assert got == values_a[: len(got)] and len(got) >= 4
    # KIP-74: a limit below one batch still returns that batch, whole, and only it.
    small = m.FetchResponse.decode(memoryview(sent[3])[5:], 12)
    assert len(records_of(fetched_partition(small, "a", 0).records)) == 2


def test_checked_batches_whose_file_ranges_differ_are_sent_from_the_buffer(tmp_path, monkeypatch):
    """When the file ranges found after a checking read do not hold exactly the checked
    bytes (here: their end offset is off by one, as after a swap in between), the
    checked buffer is sent and the ranges' descriptors are closed."""
    counter = _SendfileCounter(monkeypatch)
    data_dir = tmp_path / "data"
    request = _two_topic_fetch(1 << 20)
    _, (expected,) = _answers_of_a_first_broker(data_dir, (4, 4), [(request, 12)])
    real_open_files = fetch_handler.open_files
    closed: list[int] = []

    class Shifted(FileRecords):
        __slots__ = ()

        def close(self) -> None:
            if self.ranges:  # the close that closes descriptors (not __del__'s after it)
                closed.append(len(self.ranges))
            super().close()

    def shifted(*args: Any, **kwargs: Any) -> Any:
        files = real_open_files(*args, **kwargs)
        if files is None:
            return None
        moved = Shifted(files.ranges, files.records, files.end_offset + 1)
        files.ranges = []  # the descriptors now belong to ``moved``
        return moved

    counter.calls = 0
    broker = _start(data_dir)
    try:
        monkeypatch.setattr(fetch_handler, "open_files", shifted)
        assert _raw_fetch(broker.bootstrap_servers, request, 12) == expected
        assert counter.calls == 0
        assert len(closed) == 2  # each partition's mismatched ranges, closed once
    finally:
        broker.stop()


def _slow_socket(bootstrap: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # A small receive window: the broker's send must wait for this reader (partial sends).
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(30)
    sock.connect(split_host_port(bootstrap))
    return sock


def _recv_exact(sock: socket.socket, n: int, piece: int = 65536) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(min(piece, n - len(buf)))
        if not chunk:
            raise ConnectionError(f"closed after {len(buf)} of {n} bytes")
        buf += chunk
    return bytes(buf)


def _open_segment_fds(data_dir: Path) -> int:
    """Descriptors of this process open on .log files under ``data_dir`` (the log's
    own cache of open segments included)."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(data_dir)) and ".log" in target:
            count += 1
    return count


def _wait_until(predicate: Any, timeout_s: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def _big_fetch() -> m.FetchRequest:
    return fetch_request("big", 0, 0, max_bytes=2 * MORE_THAN_SOCKET_BUFFERS * 60_000)


def test_partial_sends_to_a_slow_reader_deliver_the_whole_response(tmp_path, monkeypatch):
    counter = _SendfileCounter(monkeypatch)
    broker = _start(tmp_path / "data")
    try:
        with WireClient(broker.bootstrap_servers) as c:
            create_topic(c, "big")
            values = _fill(c, "big", MORE_THAN_SOCKET_BUFFERS)
        sock = _slow_socket(broker.bootstrap_servers)
        with sock:
            sock.sendall(request_frame(_big_fetch(), 12, 7))
            # A pipelined request behind the fetch: answered after it, in order.
            sock.sendall(request_frame(m.ApiVersionsRequest(), 0, 8))
            # Nothing is read until the broker found the socket full.
            assert _wait_until(lambda: counter.cut > 0)
            (size,) = struct.unpack(">i", _recv_exact(sock, 4))
            frame = _recv_exact(sock, size, piece=3000)
            (size2,) = struct.unpack(">i", _recv_exact(sock, 4))
            assert struct.unpack(">i", _recv_exact(sock, size2)[:4])[0] == 8
        assert struct.unpack(">i", frame[:4])[0] == 7
        part = fetched_partition(m.FetchResponse.decode(memoryview(frame)[5:], 12), "big", 0)
        assert [v for _, _, v in records_of(part.records)] == values
    finally:
        broker.stop()


def test_a_client_closing_mid_sendfile_leaves_the_broker_serving_and_no_file_open(tmp_path, monkeypatch):
    counter = _SendfileCounter(monkeypatch)
    data_dir = tmp_path / "data"
    broker = _start(data_dir)
    try:
        with WireClient(broker.bootstrap_servers) as c:
            create_topic(c, "big")
            values = _fill(c, "big", 40)
            # The log's own cache of open segments, once the range has been read.
            c.request(_big_fetch(), 12)
        baseline = _open_segment_fds(data_dir)
        for linger in (False, True):
            sock = _slow_socket(broker.bootstrap_servers)
            sock.sendall(request_frame(_big_fetch(), 12, 1))
            _recv_exact(sock, 1000)
            assert _wait_until(lambda: counter.calls > 0)
            if linger:
                # A reset rather than an orderly close.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()
            # The response's own descriptors are closed with the connection.
            assert _wait_until(lambda: _open_segment_fds(data_dir) <= baseline), (
                _open_segment_fds(data_dir),
                baseline,
            )
        with WireClient(broker.bootstrap_servers) as c:
            part = fetched_partition(c.request(_big_fetch(), 12), "big", 0)
            assert [v for _, _, v in records_of(part.records)] == values
    finally:
        broker.stop()


def _delete_records(c: WireClient, topic: str, offset: int) -> int:
    resp = c.request(
        m.DeleteRecordsRequest(
            topics=[
                m.DeleteRecordsRequest_DeleteRecordsTopic(
                    name=topic,
                    partitions=[
                        m.DeleteRecordsRequest_DeleteRecordsPartition(partition_index=0, offset=offset)
                    ],
                )
            ],
            timeout_ms=10_000,
        ),
        2,
    )
    [t] = resp.topics
    [p] = t.partitions
    return int(p.error_code)


def test_segments_deleted_while_a_sendfile_is_pending_are_still_sent_whole(tmp_path, monkeypatch):
    counter = _SendfileCounter(monkeypatch)
    data_dir = tmp_path / "data"
    broker = _start(data_dir)
    try:
        with WireClient(broker.bootstrap_servers) as c:
            create_topic(c, "big")
            values = _fill(c, "big", 40)
            segments_before = len(list((data_dir / "big-0").glob("*.log")))
            sock = _slow_socket(broker.bootstrap_servers)
            with sock:
                sock.sendall(request_frame(_big_fetch(), 12, 1))
                (size,) = struct.unpack(">i", _recv_exact(sock, 4))
                assert _wait_until(lambda: counter.calls > 0)
                # DeleteRecords removes every closed segment below offset 70 under the send.
                assert _delete_records(c, "big", 70) == 0
                assert len(list((data_dir / "big-0").glob("*.log"))) < segments_before
                frame = _recv_exact(sock, size)
            part = fetched_partition(m.FetchResponse.decode(memoryview(frame)[5:], 12), "big", 0)
            assert [v for _, _, v in records_of(part.records)] == values
            # The broker goes on: the deleted range is out of range now, the rest is served.
            part = fetched_partition(c.request(fetch_request("big", 0, 0), 12), "big", 0)
            assert part.error_code == 1  # OFFSET_OUT_OF_RANGE
            part = fetched_partition(c.request(fetch_request("big", 0, 70), 12), "big", 0)
            assert part.error_code == 0 and records_of(part.records)[0][0] == 70
    finally:
        broker.stop()


def test_a_segment_cut_short_under_a_pending_sendfile_closes_only_that_connection(tmp_path, monkeypatch):
    counter = _SendfileCounter(monkeypatch)
    data_dir = tmp_path / "data"
    broker = _start(data_dir)
    try:
        with WireClient(broker.bootstrap_servers) as c:
            create_topic(c, "big")
            _fill(c, "big", MORE_THAN_SOCKET_BUFFERS)
            sock = _slow_socket(broker.bootstrap_servers)
            with sock:
                sock.sendall(request_frame(_big_fetch(), 12, 1))
                (size,) = struct.unpack(">i", _recv_exact(sock, 4))
                assert _wait_until(lambda: counter.calls > 0)
                # Every segment: the first ones may already sit in the socket buffers.
                for segment in (data_dir / "big-0").glob("*.log"):
                    os.truncate(segment, 1000)
                with pytest.raises(ConnectionError):
                    _recv_exact(sock, size)
            # Other connections are served; the damage is reported, not sent.
            part = fetched_partition(c.request(fetch_request("big", 0, 0), 12), "big", 0)
            assert part.error_code != 0
    finally:
        broker.stop()


def test_encode_response_parts_sends_the_frame_encode_response_builds():
    records = batch([b"x" * 5000, b"y"])
    for version in (4, 11, 12):
        resp = m.FetchResponse(
            responses=[
                m.FetchResponse_FetchableTopicResponse(
                    topic="t",
                    partitions=[
                        m.FetchResponse_PartitionData(partition_index=0, records=records),
                        m.FetchResponse_PartitionData(partition_index=1, records=b""),
                        m.FetchResponse_PartitionData(partition_index=2, records=records[:0] + records),
                    ],
                )
            ]
        )
        whole = headers.encode_response(9, 1, version, resp)
        for pd in resp.responses[0].partitions:
            pd.records = BufferRecords(pd.records)
        parts = headers.encode_response_parts(9, 1, version, resp)
        assert sum(1 for p in parts if isinstance(p, headers.OutOfLine)) == 3
        joined = b"".join(bytes(p.materialize()) if isinstance(p, headers.OutOfLine) else p for p in parts)
        assert joined == whole
        assert headers.encode_response(9, 1, version, resp) == whole


def test_a_failure_of_our_own_while_sending_closes_only_that_connection(tmp_path, monkeypatch, caplog):
    from streamcore.broker import fetch_sending

    broker = _start(tmp_path / "data")
    try:
        with WireClient(broker.bootstrap_servers) as c:
            create_topic(c, "big")
            values = _fill(c, "big", 3)
        real = fetch_sending._sendfile_now
        failures = [1]

        def broken(sock_fd: int, fd: int, offset: int, count: int) -> int:
            if failures[0]:
                failures[0] -= 1
                raise RuntimeError("a bug in the send loop")
            return real(sock_fd, fd, offset, count)

        monkeypatch.setattr(fetch_sending, "_sendfile_now", broken)
        with caplog.at_level("ERROR", logger="streamcore"):
            sock = socket.create_connection(("127.0.0.1", broker.port), timeout=10)
            with sock:
                sock.sendall(request_frame(_big_fetch(), 12, 1))
                with pytest.raises(ConnectionError):
                    (size,) = struct.unpack(">i", _recv_exact(sock, 4))
                    _recv_exact(sock, size)
        assert any("sending a fetch response" in r.getMessage() for r in caplog.records)
        # The broker goes on serving, by sendfile again.
        with WireClient(broker.bootstrap_servers) as c:
            part = fetched_partition(c.request(fetch_request("big", 0, 0, max_bytes=1 << 20), 12), "big", 0)
            assert [v for _, _, v in records_of(part.records)] == values
    finally:
        broker.stop()
