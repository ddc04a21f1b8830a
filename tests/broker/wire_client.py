"""A blocking raw-socket Kafka client for broker tests: hand-built frames, decoded answers.

Requests are the generated ``streamcore.protocol.messages`` classes; the request header
(v1, or v2 for flexible versions) is written here so a test can also send frames that a
real client never would. Every socket operation has a timeout, so a broker that stops
answering fails the test instead of hanging it.
"""

from __future__ import annotations

import socket
import struct
import time
from collections import deque
from typing import Any

from streamcore._impl import wire
from streamcore.codec import decode_batches, encode_batch
from streamcore.protocol import messages as m
from streamcore.protocol.api_versions import RESPONSE_CLASSES
from streamcore.protocol.headers import decode_api_versions_response, response_header_is_flexible

API_VERSIONS = 18
DEFAULT_TIMEOUT_S = 15.0


def request_frame(
    request: Any,
    version: int,
    correlation_id: int,
    client_id: str | None = "wire-test",
    *,
    api_key: int | None = None,
    body_version: int | None = None,
) -> bytes:
    """A complete request frame (int32 size prefix, header, body) for ``request`` at ``version``.

    ``api_key`` overrides the key in the header; ``body_version`` encodes the body at
    another version than the header claims (for versions the classes do not know).
    """
    key = request.API_KEY if api_key is None else api_key
    body_version = version if body_version is None else body_version
    flexible = request.FLEXIBLE_FROM is not None and body_version >= request.FLEXIBLE_FROM
    w = wire.Writer()
    w.int16(key)
    w.int16(version)
    w.int32(correlation_id)
    w.string(client_id)
    if flexible:
        w.uvarint(0)  # empty tagged-field section of request header v2
    request.encode_into(w, body_version)
    return w.getvalue_framed()


def split_host_port(bootstrap: str) -> tuple[str, int]:
    host, port = bootstrap.rsplit(":", 1)
    return host, int(port)


class ConnectionClosed(Exception):
    """The broker closed the connection."""


class WireClient:
    """One connection to the broker; requests may be pipelined, answers are read in order."""

    def __init__(self, bootstrap: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.sock = socket.create_connection(split_host_port(bootstrap), timeout=timeout_s)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._next_correlation = 1
        # (correlation_id, api_key, version) of requests whose answers are still unread.
        self.pending: deque[tuple[int, int, int]] = deque()

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> WireClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(
        self, request: Any, version: int, *, expect_response: bool = True, body_version: int | None = None
    ) -> int:
        """Send ``request`` at ``version``; returns its correlation id."""
        cid = self._next_correlation
        self._next_correlation += 1
        self.sock.sendall(request_frame(request, version, cid, body_version=body_version))
        if expect_response:
            self.pending.append((cid, request.API_KEY, version))
        return cid

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _recv_exact(self, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionClosed(f"connection closed after {len(buf)} of {n} bytes")
            buf += chunk
        return bytes(buf)

    def recv_frame(self) -> bytes:
        """The next response frame without its size prefix."""
        (size,) = struct.unpack(">i", self._recv_exact(4))
        return self._recv_exact(size)

    def recv(self) -> tuple[int, Any]:
        """Read the answer to the oldest pending request: (correlation_id, decoded body)."""
        cid_expected, api_key, version = self.pending.popleft()
        frame = self.recv_frame()
        r = wire.Reader(frame)
        cid = r.int32()
        if response_header_is_flexible(api_key, version):
            r.tagged_fields()
        body = frame[r.pos :]
        if api_key == API_VERSIONS:
            return cid, decode_api_versions_response(body, version)
        reader = wire.Reader(body)
        decoded = RESPONSE_CLASSES[api_key].decode(reader, version)
        if reader.remaining():
            raise AssertionError(f"{reader.remaining()} bytes left after the api {api_key} v{version} body")
        assert cid == cid_expected, f"answer to correlation id {cid}, expected {cid_expected}"
        return cid, decoded

    def request(self, request: Any, version: int) -> Any:
        """Send and wait for the answer; returns the decoded response body."""
        self.send(request, version)
        return self.recv()[1]

    def is_closed_by_peer(self, timeout_s: float = 10.0) -> bool:
        """True if the broker closes this connection within ``timeout_s`` (data read is discarded)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                return False
            except ConnectionResetError:
                return True
            if not chunk:
                return True
        return False


# ---------------------------------------------------------------- request builders


def create_topic(c: WireClient, name: str, partitions: int = 1) -> None:
    """CreateTopics v5 (flexible); fails the test unless the topic was created."""
    resp = c.request(
        m.CreateTopicsRequest(
            topics=[
                m.CreateTopicsRequest_CreatableTopic(
                    name=name, num_partitions=partitions, replication_factor=1
                )
            ],
            timeout_ms=10_000,
        ),
        5,
    )
    assert [(t.name, t.error_code) for t in resp.topics] == [(name, 0)], resp


def batch(
    values: list[bytes],
    *,
    keys: list[bytes] | None = None,
    timestamps_ms: list[int] | None = None,
    producer_id: int = -1,
    producer_epoch: int = -1,
    base_sequence: int = -1,
    compression: str = "none",
) -> bytes:
    """A record batch v2 as a producer would send it (base offset 0)."""
    return encode_batch(
        values,
        keys,
        None,
        timestamps_ms if timestamps_ms is not None else [int(time.time() * 1000)] * len(values),
        compression=compression,
        producer_id=producer_id,
        producer_epoch=producer_epoch,
        base_sequence=base_sequence,
    )


def produce_request(topic: str, partition: int, records: bytes, acks: int = -1) -> m.ProduceRequest:
    return m.ProduceRequest(
        acks=acks,
        timeout_ms=10_000,
        topic_data=[
            m.ProduceRequest_TopicProduceData(
                name=topic,
                partition_data=[m.ProduceRequest_PartitionProduceData(index=partition, records=records)],
            )
        ],
    )


def produce(
    c: WireClient, topic: str, partition: int, records: bytes, *, acks: int = -1, version: int = 9
) -> Any:
    """Produce one batch; returns the partition's response entry."""
    resp = c.request(produce_request(topic, partition, records, acks), version)
    [t] = resp.responses
    assert t.name == topic
    [p] = t.partition_responses
    assert p.index == partition
    return p


def fetch_request(
    topic: str,
    partition: int,
    offset: int,
    *,
    max_wait_ms: int = 0,
    min_bytes: int = 0,
    max_bytes: int = 1 << 20,
    session_id: int = 0,
    session_epoch: int = -1,
) -> m.FetchRequest:
    return m.FetchRequest(
        replica_id=-1,
        max_wait_ms=max_wait_ms,
        min_bytes=min_bytes,
        max_bytes=max_bytes,
        session_id=session_id,
        session_epoch=session_epoch,
        topics=[
            m.FetchRequest_FetchTopic(
                topic=topic,
                partitions=[
                    m.FetchRequest_FetchPartition(
                        partition=partition, fetch_offset=offset, partition_max_bytes=max_bytes
                    )
                ],
            )
        ],
    )


def fetched_partition(resp: Any, topic: str, partition: int) -> Any:
    """The one partition entry for (topic, partition) in a Fetch response."""
    assert resp.error_code == 0, resp
    entries = [
        p for t in resp.responses if t.topic == topic for p in t.partitions if p.partition_index == partition
    ]
    assert len(entries) == 1, resp
    return entries[0]


def records_of(records: bytes | None) -> list[tuple[int, bytes | None, bytes | None]]:
    """(offset, key, value) of every record in fetched record data."""
    if not records:
        return []
    return [(r.offset, r.key, r.value) for b in decode_batches(records) for r in b.records]
